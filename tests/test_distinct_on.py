"""Issue 14, item 6: Hasura's `distinct_on` on every list and `_aggregate`, root and
relationship, over HTTP (both of the server's paths), WebSocket subscriptions, the
real `gql` client and the Python API; masked columns group as absent (null)."""

from __future__ import annotations

import asyncio

import pytest
from gql import Client as GqlClient
from graphql import GraphQLNonNull, get_named_type
from gql import gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

import clustore_lite
from clustore_lite.catalog import TABLES
from clustore_lite.errors import InvalidValue
from serving import Client, running_server

KINDS = ["view", "edit", "view", "open", "edit", "view"]  # trackings, in creation order


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Trackings of KINDS (payload {"n": position}); an organization with datasets;
    users whose emails are masked from one another."""
    db = tmp_path_factory.mktemp("distinct") / "store.sqlite"
    with clustore_lite.open(db) as store:
        ana = store.users.create("ana", "ana@example.org")
        others = [store.users.create(n, f"{n}@example.org") for n in ("bob", "cid", "dan")]
        org = store.organizations.create("lumen", owner_id=ana.id, public="guest")
        store.teams.create(org.id, "core", members=[ana.id, *(u.id for u in others)])
        for n, kind in enumerate(KINDS):
            store.trackings.create(kind, payload={"n": n})
        for name in ("b", "a", "c"):  # no owner: one group of ownerId (null)
            store.datasets.create(org.id, name)
    with running_server(db) as url:
        yield url, db, {"ana": ana.id, "bob": others[0].id}


def test_root_list_first_of_each_group(world):
    client = Client(world[0])
    # silent order_by: by the distinct columns, then creation: the first of each kind
    data = client("{ trackings(distinct_on: kind) { kind payload } }")
    assert [(r["kind"], r["payload"]["n"]) for r in data["trackings"]] == \
        [("edit", 1), ("open", 3), ("view", 0)]
    # the last of each kind, newest kind first
    data = client("{ trackings(distinct_on: [kind], order_by: [{kind: desc}, {createdAt: desc}])"
                  " { kind payload } }")
    assert [(r["kind"], r["payload"]["n"]) for r in data["trackings"]] == \
        [("view", 5), ("open", 3), ("edit", 4)]
    # limit and offset page the distinct rows, as PostgreSQL applies DISTINCT ON first
    data = client("{ trackings(distinct_on: kind, order_by: {kind: asc}, limit: 1, offset: 1)"
                  " { kind } }")
    assert data["trackings"] == [{"kind": "open"}]


def test_fast_and_ordinary_paths_agree(world):
    """@include on the root field sends the query through Ariadne, not the fast path."""
    client = Client(world[0])
    for args in ("distinct_on: kind", "distinct_on: kind, order_by: [{kind: desc}, {createdAt: desc}]",
                 "distinct_on: [kind, userId], order_by: [{userId: asc}, {kind: asc}], offset: 1"):
        fast = client(f"{{ trackings({args}) {{ kind payload }} }}")
        slow = client(f"{{ trackings({args}) @include(if: true) {{ kind payload }} }}")
        assert fast == slow


def test_aggregate_counts_the_distinct_rows(world):
    client = Client(world[0])
    data = client("{ trackings_aggregate(distinct_on: kind) { aggregate { count } nodes { kind } } }")
    assert data["trackings_aggregate"]["aggregate"]["count"] == 3
    assert [n["kind"] for n in data["trackings_aggregate"]["nodes"]] == ["edit", "open", "view"]


def test_relationships_take_distinct_on(world):
    client = Client(world[0])
    data = client("{ organizations { datasets(distinct_on: ownerId) { name } "
                  "datasets_aggregate(distinct_on: organizationId) { aggregate { count } } "
                  "teams { members(distinct_on: name, order_by: {name: desc}, limit: 2) { name } } } }")
    [org] = data["organizations"]
    assert len(org["datasets"]) == 1  # no owner: one group (null)
    assert org["datasets_aggregate"]["aggregate"]["count"] == 1
    assert org["teams"][0]["members"] == [{"name": "dan"}, {"name": "cid"}]


def test_distinct_on_must_lead_order_by_through_gql(world):
    """Hasura's rule and message, with code validation-failed, as the gql client sees it."""
    transport = RequestsHTTPTransport(url=f"{world[0]}/v1/graphql", timeout=30)
    with GqlClient(transport=transport) as session:
        ok = session.execute(gql("{ trackings(distinct_on: kind, order_by: [{kind: asc}, "
                                 "{createdAt: desc}]) { kind } }"))
        assert [r["kind"] for r in ok["trackings"]] == ["edit", "open", "view"]
        for args in ("order_by: {createdAt: desc}",
                     "order_by: [{createdAt: desc}, {kind: asc}]",
                     "order_by: {organization: {name: asc}}"):
            with pytest.raises(TransportQueryError) as refused:
                session.execute(gql(f"{{ trackings(distinct_on: kind, {args}) {{ kind }} }}"))
            error = refused.value.errors[0]
            assert error["message"] == '"distinct_on" columns must match initial "order_by" columns'
            assert error["extensions"]["code"] == "validation-failed"
        with pytest.raises(TransportQueryError) as refused:  # the enum: visible columns only
            session.execute(gql("{ chunks(distinct_on: data) { id } }"))
        assert refused.value.errors[0]["extensions"]["code"] == "validation-failed"


def test_masked_values_group_as_absent(world):
    """bob sees the others' emails as null: they make one group, so distinct_on tells
    nothing about values bob cannot read; his own email is a group of its own."""
    url, _, ids = world
    as_bob = Client(url)
    as_bob.http.headers.update({"X-Hasura-Role": "user", "X-Hasura-User-Id": ids["bob"]})
    data = as_bob("{ users_aggregate(distinct_on: email) { aggregate { count } "
                  "nodes { email } } }")["users_aggregate"]
    assert data["aggregate"]["count"] == 2
    assert sorted(n["email"] or "" for n in data["nodes"]) == ["", "bob@example.org"]
    admin = Client(url)("{ users_aggregate(distinct_on: email) { aggregate { count } } }")
    assert admin["users_aggregate"]["aggregate"]["count"] == 4


def test_subscriptions_take_distinct_on(world):
    """The first answer of a subscription, over the graphql-transport-ws protocol."""
    url = world[0].replace("http", "ws") + "/v1/graphql"

    async def first():
        transport = WebsocketsTransport(
            url=url, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
        async with GqlClient(transport=transport) as session:
            async for answer in session.subscribe(gql(
                    "subscription { trackings(distinct_on: kind, order_by: [{kind: desc}, "
                    "{createdAt: desc}]) { kind payload } }")):
                return answer

    answer = asyncio.run(asyncio.wait_for(first(), 60))
    assert [(r["kind"], r["payload"]["n"]) for r in answer["trackings"]] == \
        [("view", 5), ("open", 3), ("edit", 4)]


def test_python_api_list_distinct_on(tmp_path):
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        for n, kind in enumerate(KINDS):
            store.trackings.create(kind, payload={"n": n})
        rows = store.trackings.list(distinct_on="kind", order_by=[{"kind": "asc"}, {"createdAt": "desc"}])
        assert [(r["kind"], r["payload"]["n"]) for r in rows] == [("edit", 4), ("open", 3), ("view", 5)]
        with pytest.raises(InvalidValue, match="must match initial"):
            store.trackings.list(distinct_on="kind", order_by={"createdAt": "asc"})
        with pytest.raises(InvalidValue, match="no column 'nope'"):
            store.trackings.list(distinct_on="nope")


def test_every_list_and_aggregate_field_takes_distinct_on(world):
    """The served schema, introspected by the gql client: `distinct_on:
    [T_select_column!]` on every list and _aggregate of every root type and table."""
    transport = RequestsHTTPTransport(url=f"{world[0]}/v1/graphql", timeout=30)
    with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
        schema = session.client.schema
    checked = 0
    for type_name in ("query_root", "subscription_root", *TABLES):
        for field_name, field in schema.type_map[type_name].fields.items():
            target = get_named_type(field.type).name
            table = target[: -len("_aggregate")] if target.endswith("_aggregate") else target
            if not isinstance(field.type, GraphQLNonNull) or table not in TABLES \
                    or "where" not in field.args or "cursor" in field.args:
                continue  # a stream (T_stream) takes no distinct_on, as in Hasura
            assert str(field.args["distinct_on"].type) == f"[{table}_select_column!]", field_name
            checked += 1
    assert checked == 2 * 2 * len(TABLES) + 2 * sum(len(t.arrays) for t in TABLES.values())


def test_jsonb_columns_group_by_value(tmp_path):
    """distinct_on a jsonb column groups equal values however they are spelled, as
    PostgreSQL's jsonb equality does ({"a": 1, "b": 2} and {"b": 2, "a": 1.0})."""
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        for payload in ({"a": 1, "b": 2}, {"b": 2, "a": 1.0}, {"a": 2}):
            store.trackings.create("k", payload=payload)
        rows = store.trackings.list(distinct_on="payload")
        assert [r["payload"] for r in rows] == [{"a": 1, "b": 2}, {"a": 2}]
