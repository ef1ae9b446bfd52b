"""Hasura's aggregates beyond count (issue 14, item 7), through the real server and the
real gql client: sum avg max min stddev stddev_pop stddev_samp var_pop var_samp
variance with Hasura's type names; order_by on an array relationship's aggregate;
T_aggregate_bool_exp filters. Every hop sees only what the caller sees: a row it
cannot see is not counted, a masked column is not aggregated. The fast path and
graphql-core's path answer alike."""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile

import pyarrow as pa
import pytest
from gql import Client as GqlClient
from gql import gql
from gql.transport.httpx import HTTPXTransport
from gql.transport.websockets import WebsocketsTransport
from hypothesis import given, settings
from hypothesis import strategies as st

import clustore_lite
from clustore_lite.db.connection import connect
from clustore_lite.errors import InvalidValue
from serving import Client, running_server

STATS = {"stddev": statistics.stdev, "stddev_pop": statistics.pstdev,
         "stddev_samp": statistics.stdev, "var_pop": statistics.pvariance,
         "var_samp": statistics.variance, "variance": statistics.variance}
NUMERIC = ("size", "dim", "rows")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """ana owns lumen (three datasets), secret1 and secret2; bob owns b1 and b2 and is
    a guest of lumen only, so he sees ana but one of her three organizations; carl is
    a guest of lumen too."""
    path = tmp_path_factory.mktemp("agg") / "agg.sqlite"
    with clustore_lite.open(path) as store:
        ana = store.users.create("ana", "zz-ana@example.org")
        bob = store.users.create("bob", "bob@example.org")
        lumen = store.organizations.create("lumen", owner_id=ana.id,
                                           webhook="https://hooks.example.org/zz-lumen")
        for name in ("secret1", "secret2"):
            store.organizations.create(name, owner_id=ana.id)
        for name in ("b1", "b2"):
            store.organizations.create(name, owner_id=bob.id,
                                       webhook=f"https://hooks.example.org/{name}")
        for rows, name in ((5, "points"), (3, "pairs"), (8, "zebra")):
            data = pa.table({"x": [float(i) for i in range(rows)], "y": list(range(rows))})
            store.datasets.create(lumen.id, name, data, owner_id=ana.id, chunk_rows=2)
        store.memberships.create(lumen.access_id, "guest", user_id=bob.id, follow=True,
                                 webhook="https://hooks.example.org/bob")
        carl = store.users.create("carl")  # his webhook is masked for bob
        store.memberships.create(lumen.access_id, "guest", user_id=carl.id,
                                 webhook="https://hooks.example.org/carl")
        ids = {"ana": ana.id, "bob": bob.id, "lumen": lumen.id}
    with running_server(path) as url:
        yield url, ids


def as_user(url: str, user_id: str) -> Client:
    return Client(url, {"X-Hasura-Role": "user", "X-Hasura-User-Id": user_id})


def both_paths(client: Client, query: str) -> dict:
    """The answer of the fast path, checked equal to graphql-core's (a directive on
    the root field sends a query down the ordinary path)."""
    fast = client(query)
    slow = client(query.replace("{", "{ __typename ", 1))  # not a store's root field
    assert slow.pop("__typename") == "query_root"
    assert fast == slow
    return fast


STATS_QUERY = """{ dataframes_aggregate { aggregate {
  count
  sum { size dim rows } avg { size dim rows }
  max { rows createdAt compression } min { rows id }
  stddev { rows size } stddev_pop { rows size } stddev_samp { rows size }
  var_pop { rows size } var_samp { rows size } variance { rows size } } } }"""


def test_every_function_answers_what_postgresql_would(world):
    url, _ = world
    client = Client(url)
    aggregate = both_paths(client, STATS_QUERY)["dataframes_aggregate"]["aggregate"]
    frames = client("{ dataframes { id size dim rows createdAt compression } }")["dataframes"]
    values = {c: [f[c] for f in frames] for c in NUMERIC}
    assert aggregate["count"] == len(frames) == 3
    assert aggregate["sum"] == {c: sum(values[c]) for c in NUMERIC}
    assert aggregate["avg"] == pytest.approx({c: statistics.mean(values[c]) for c in NUMERIC})
    assert aggregate["max"] == {"rows": 8, "createdAt": max(f["createdAt"] for f in frames),
                                "compression": None}
    assert aggregate["min"] == {"rows": 3, "id": min(f["id"] for f in frames)}
    for function, compute in STATS.items():
        expected = {c: compute(values[c]) for c in ("rows", "size")}
        assert aggregate[function] == pytest.approx(expected, rel=1e-12), function


def test_relationship_aggregates_and_empty_sets(world):
    url, ids = world
    data = both_paths(Client(url), """{ dataframes(order_by: {rows: asc}) {
        rows chunks { position size }
        chunks_aggregate { aggregate { sum { rows } max { position } avg { size } } } }
      organizations(where: {name: {_eq: "b1"}}) {
        datasets_aggregate { aggregate { count max { name } min { name } } } } }""")
    for frame in data["dataframes"]:
        chunks = frame["chunks_aggregate"]["aggregate"]
        assert chunks["sum"]["rows"] == frame["rows"]
        assert chunks["max"]["position"] == max(c["position"] for c in frame["chunks"])
        assert chunks["avg"]["size"] == pytest.approx(
            statistics.mean(c["size"] for c in frame["chunks"]))
    empty = data["organizations"][0]["datasets_aggregate"]["aggregate"]
    assert empty == {"count": 0, "max": {"name": None}, "min": {"name": None}}


def test_a_caller_aggregates_only_rows_and_columns_it_sees(world):
    url, ids = world
    bob = as_user(url, ids["bob"])
    data = both_paths(bob, """{
      users_aggregate { aggregate { count max { email } min { email name } } }
      users(order_by: {name: asc}) { name organizations_aggregate { aggregate { count max { name } } } }
      accesses_aggregate { aggregate { max { webhook } } }
      memberships_aggregate { aggregate { count max { webhook } } }
      hooked: accesses_aggregate(where: {memberships_aggregate: {count: {
        arguments: [webhook], predicate: {_gt: 1}}}}) { aggregate { count } } }""")
    users = data["users_aggregate"]["aggregate"]
    assert users["count"] == 2  # ana (lumen's owner) and himself
    assert users["max"] == {"email": "bob@example.org"}  # ana's email is masked for him
    assert users["min"] == {"email": "bob@example.org", "name": "ana"}
    per_user = {u["name"]: u["organizations_aggregate"]["aggregate"] for u in data["users"]}
    assert per_user["ana"] == {"count": 1, "max": {"name": "lumen"}}  # not secret2
    assert per_user["bob"] == {"count": 2, "max": {"name": "b2"}}
    # an access's webhook shows to its admins: b2's, not lumen's, is the max he sees
    assert data["accesses_aggregate"]["aggregate"]["max"] == {
        "webhook": "https://hooks.example.org/b2"}
    # his own membership's webhook is his to read, carl's is not
    assert data["memberships_aggregate"]["aggregate"] == {
        "count": 2, "max": {"webhook": "https://hooks.example.org/bob"}}
    assert data["hooked"]["aggregate"]["count"] == 0  # lumen's has one webhook he sees
    admin = Client(url)("""{ accesses_aggregate { aggregate { max { webhook } } }
      hooked: accesses_aggregate(where: {memberships_aggregate: {count: {
        arguments: [webhook], predicate: {_gt: 1}}}}) { aggregate { count } } }""")
    assert admin["accesses_aggregate"]["aggregate"]["max"] == {
        "webhook": "https://hooks.example.org/zz-lumen"}
    assert admin["hooked"]["aggregate"]["count"] == 1


def test_order_by_an_array_relationships_aggregate(world):
    url, ids = world
    query = """{ users(order_by: [{organizations_aggregate: {count: desc}}]) { name }
      organizations(order_by: [{datasets_aggregate: {max: {name: desc_nulls_last}}}, {name: asc}],
                    where: {name: {_in: ["lumen", "b1"]}}) { name }
      by_rows: organizations(order_by: {datasets_aggregate: {sum: {name: asc}}}) { name } }"""
    client = Client(url)
    response = client.post(query).json()
    assert response["errors"][0]["extensions"]["code"] == "validation-failed"  # sum of text
    query = query[: query.index("by_rows")] + "}"
    admin = both_paths(client, query)
    assert [u["name"] for u in admin["users"]] == ["ana", "bob", "carl"]  # 3, 2, 0
    assert [o["name"] for o in admin["organizations"]] == ["lumen", "b1"]
    bob = both_paths(as_user(url, ids["bob"]), query)
    assert [u["name"] for u in bob["users"]] == ["bob", "ana"]  # he sees 1 of ana's


def test_aggregate_bool_exp_filters(world):
    url, ids = world
    query = """{
      many: users(where: {organizations_aggregate: {count: {predicate: {_gte: 3}}}}) { name }
      p: organizations(where: {datasets_aggregate: {count: {predicate: {_eq: 2},
           filter: {name: {_like: "p%"}}, distinct: true, arguments: [name]}}}) { name }
      none: organizations(where: {datasets_aggregate: {count: {predicate: {_eq: 0}}}},
                          order_by: {name: asc}) { name }
      following: accesses_aggregate(where: {memberships_aggregate: {
           bool_or: {arguments: follow, predicate: {_eq: true}}}}) { aggregate { count } }
      all_follow: accesses_aggregate(where: {memberships_aggregate: {
           bool_and: {arguments: follow, predicate: {_eq: true}}}}) { aggregate { count } } }"""
    admin = both_paths(Client(url), query)
    assert [u["name"] for u in admin["many"]] == ["ana"]
    assert [o["name"] for o in admin["p"]] == ["lumen"]
    assert [o["name"] for o in admin["none"]] == ["b1", "b2", "secret1", "secret2"]
    assert admin["following"]["aggregate"]["count"] == 1
    assert admin["all_follow"]["aggregate"]["count"] == 0  # bob follows lumen, carl not
    bob = both_paths(as_user(url, ids["bob"]), query)
    assert bob["many"] == []  # he sees one of ana's three organizations


def test_the_gql_client_validates_and_runs_against_hasuras_types(world):
    url, _ = world
    transport = HTTPXTransport(url=f"{url}/v1/graphql", timeout=30)
    with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
        request = gql("""query Sizes($min: Int!) {
          dataframes_aggregate { aggregate { sum { rows } variance { rows } max { createdAt } } }
          organizations(where: {datasets_aggregate: {count: {predicate: {_gte: $min}}}},
                        order_by: {datasets_aggregate: {count: desc}}) { name } }""")
        request.variable_values = {"min": 1}
        data = session.execute(request)
        schema = session.client.schema
    assert data["dataframes_aggregate"]["aggregate"]["sum"] == {"rows": 16}
    assert [o["name"] for o in data["organizations"]] == ["lumen"]
    fields = schema.type_map["dataframe_aggregate_fields"].fields
    assert set(fields) == {"count", "sum", "avg", "max", "min", "stddev", "stddev_pop",
                           "stddev_samp", "var_pop", "var_samp", "variance"}
    for function in ("sum", "avg", "max", "min", "stddev", "variance"):
        assert str(fields[function].type) == f"dataframe_{function}_fields"
    assert str(schema.type_map["dataframe_sum_fields"].fields["size"].type) == "bigint"
    assert str(schema.type_map["dataframe_avg_fields"].fields["dim"].type) == "Float"
    assert "sum" not in schema.type_map["organization_aggregate_fields"].fields  # no numbers
    assert "emailVerified" not in schema.type_map["user_max_fields"].fields  # hidden
    assert "follow" not in schema.type_map["membership_max_fields"].fields  # boolean
    bool_and = schema.type_map["membership_aggregate_bool_exp_bool_and"].fields
    assert str(bool_and["arguments"].type) == \
        "membership_select_column_membership_aggregate_bool_exp_bool_and_arguments_columns!"
    assert str(schema.type_map["organization_order_by"].fields["datasets_aggregate"].type) == \
        "dataset_aggregate_order_by"
    assert str(schema.type_map["organization_bool_exp"].fields["datasets_aggregate"].type) == \
        "dataset_aggregate_bool_exp"


def test_python_api_orders_and_filters_by_aggregates_with_clear_errors(tmp_path):
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        ana = store.users.create("ana")
        for name, count in (("one", 1), ("three", 3), ("none", 0)):
            org = store.organizations.create(name, owner_id=ana.id)
            for i in range(count):
                store.datasets.create(org.id, f"d{i}", {"x": list(range(i + 1))}, owner_id=ana.id)
        ordered = store.organizations.list(order_by={"datasets_aggregate": {"count": "desc"}})
        assert [o.name for o in ordered] == ["three", "one", "none"]
        many = store.organizations.list(
            where={"datasets_aggregate": {"count": {"predicate": {"_gt": 1}}}})
        assert [o.name for o in many] == ["three"]
        for where, message in (
                ({"datasets_aggregate": {"count": {"_gt": 1}}}, "needs a predicate"),
                ({"datasets_aggregate": {"sum": {"predicate": {"_gt": 1}}}}, "count, bool_and"),
                ({"datasets_aggregate": {"count": {"predicate": {"_gt": 1}, "arguments": ["x"]}}},
                 "no column 'x'")):
            with pytest.raises(InvalidValue, match=message):
                store.organizations.list(where=where)
        for order_by, message in (
                ({"datasets_aggregate": {"sum": {"name": "asc"}}}, "sum does not apply"),
                ({"datasets_aggregate": {"median": {"name": "asc"}}}, "unknown aggregate"),
                ({"datasets_aggregate": {"count": "upward"}}, "order direction"),
                ({"name": {"asc": True}}, "order direction")):  # was a TypeError
            with pytest.raises(InvalidValue, match=message):
                store.organizations.list(order_by=order_by)


numbers = st.one_of(st.integers(-10**15, 10**15),
                    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.lists(st.one_of(st.none(), numbers), max_size=30))
def test_variances_match_pythons_exact_statistics(values):
    """The registered aggregates against `statistics` (exact, with fractions)."""
    with tempfile.TemporaryDirectory() as directory:
        conn = connect(os.path.join(directory, "v.sqlite"))
        conn.execute("CREATE TEMP TABLE v (x)")
        conn.executemany("INSERT INTO v VALUES (?)", [(x,) for x in values])
        present = [x for x in values if x is not None]
        for name, compute, least in (("var_pop", statistics.pvariance, 1),
                                     ("var_samp", statistics.variance, 2),
                                     ("stddev_pop", statistics.pstdev, 1),
                                     ("stddev_samp", statistics.stdev, 2)):
            [(got,)] = conn.execute(f"SELECT clustore_{name}(x) FROM v")
            if len(present) < least:
                assert got is None
            else:
                assert got == pytest.approx(compute(present), rel=1e-9, abs=1e-6), name
        conn.close()


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
def test_subscriptions_push_new_aggregates(server, subprotocol):
    """The real gql client subscribes over each WebSocket protocol; each write that
    changes the aggregate pushes its new value."""
    url, _ = server
    client = Client(url)
    document = gql("""subscription { organizations_aggregate { aggregate {
        count max { name } min { createdAt } } } }""")

    async def watch() -> list:
        transport = WebsocketsTransport(url=url.replace("http", "ws") + "/v1/graphql",
                                        subprotocols=[subprotocol])
        seen = []
        async with GqlClient(transport=transport) as session:
            async for answer in session.subscribe(document):
                seen.append(answer["organizations_aggregate"]["aggregate"])
                if len(seen) == 3:
                    break
                await asyncio.to_thread(client, 'mutation { insert_organization_one('
                                        f'object: {{name: "s{len(seen)}"}}) {{ id }} }}')
        return seen

    seen = asyncio.run(asyncio.wait_for(watch(), 60))
    assert [(a["count"], a["max"]["name"]) for a in seen] == [(0, None), (1, "s1"), (2, "s2")]
    assert seen[0]["min"]["createdAt"] is None and seen[2]["min"] == seen[1]["min"]
