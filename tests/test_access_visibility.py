"""What a caller may not read, it may not filter, order or count on either (issue 12,
items 1, 2 and 9): masked columns behave as NULL for that caller everywhere, ordering
through a relationship applies the caller's visibility at each hop, and personal data
(emails, webhook URLs) shows only to those who need it. Through the Python API and
through the real server with an admin secret and a JWT secret."""

import time

import httpx
import jwt
import pytest

import clustore_lite
from serving import running_server

ADMIN, JWT_SECRET = "admin-secret-for-visibility", "jwt-secret-for-visibility-tests-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A private lab with a public dataset, and two private organizations whose names
    and owners' emails sort opposite to their creation order, each with a public
    dataset: what a caller cannot see must not decide the order it gets."""
    path = tmp_path_factory.mktemp("visibility") / "store.sqlite"
    store = clustore_lite.open(path)
    olga = store.users.create("olga", "olga@lab.example")
    gus = store.users.create("gus", "gus@lab.example")
    carl = store.users.create("carl", "carl@lab.example")
    dave = store.users.create("dave", "dave@elsewhere.example")
    lab = store.organizations.create("lab", owner_id=olga.id, webhook="http://127.0.0.1:9/lab")
    store.memberships.create(lab.access_id, "guest", user_id=gus.id, webhook="http://127.0.0.1:9/gus")
    store.memberships.create(lab.access_id, "contributor", user_id=carl.id,
                             webhook="http://127.0.0.1:9/carl")
    open_data = store.datasets.create(lab.id, "open", {"x": [1]}, owner_id=olga.id, public="guest")
    store.datasets.create(lab.id, "closed", {"x": [2]}, owner_id=olga.id)
    zed = store.users.create("zed", "z@hidden.example")
    amy = store.users.create("amy", "a@hidden.example")
    zeta = store.organizations.create("zeta-corp", owner_id=zed.id)  # created first, sorts last
    alpha = store.organizations.create("alpha-corp", owner_id=amy.id)
    first = store.datasets.create(zeta.id, "in-zeta", {"x": [3]}, public="guest")
    second = store.datasets.create(alpha.id, "in-alpha", {"x": [4]}, public="guest")
    ids = dict(olga=olga.id, gus=gus.id, carl=carl.id, dave=dave.id, lab=lab.id,
               lab_access=lab.access_id, open=open_data.id, open_access=open_data.access_id,
               first=first.id, second=second.id, zed=zed.id)
    yield store, ids
    store.close()


@pytest.fixture(scope="module")
def server(world):
    store, _ = world
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with running_server(store.path, env=env) as url:
        yield url


def gql(url, query, variables=None, headers=None) -> dict:
    response = httpx.post(f"{url}/v1/graphql", json={"query": query, "variables": variables or {}},
                          headers=headers or {}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


def as_jwt(user_id: str) -> dict:
    claims = {"sub": user_id, "exp": int(time.time()) + 600}
    return {"X-Clusauth-Token": jwt.encode(claims, JWT_SECRET, "HS256")}


# -- item 1: masked columns are absent for filtering, ordering and counting -------------


def test_anonymous_cannot_filter_count_or_order_on_a_token_it_cannot_read(world):
    store, ids = world
    admin_token = store.accesses.get(ids["open_access"]).admin_token
    anonymous = store.anonymous()
    accesses = anonymous.accesses
    assert accesses.get(ids["open_access"]).admin_token is None  # masked in the output ...
    mine = {"id": {"_eq": ids["open_access"]}}
    for ops in ({"_eq": admin_token}, {"_gte": admin_token[:3]}, {"_lte": admin_token},
                {"_like": admin_token[:4] + "%"}, {"_in": [admin_token]}, {"_is_null": False}):
        assert accesses.count(where={**mine, "adminToken": ops}) == 0, ops  # ... and compares as NULL
        assert accesses.list(where={**mine, "adminToken": ops}) == [], ops
    assert accesses.count(where={**mine, "adminToken": {"_is_null": True}}) == 1
    assert accesses.count(where={**mine, "_not": {"adminToken": {"_eq": admin_token}}}) == 0
    through = {"id": {"_eq": ids["open"]}, "access": {"adminToken": {"_eq": admin_token}}}
    assert anonymous.datasets.count(where=through) == 0  # through a relationship too
    assert anonymous.datasets.list(where=through) == []


def test_a_guest_filters_on_the_token_it_reads_but_not_on_those_above(world):
    store, ids = world
    access = store.accesses.get(ids["lab_access"])
    guest = store.as_user(ids["gus"]).accesses
    assert guest.count(where={"guestToken": {"_eq": access.guest_token}}) == 1
    assert guest.count(where={"contributorToken": {"_eq": access.contributor_token}}) == 0
    contributor = store.as_user(ids["carl"]).organizations
    assert contributor.count(where={"access": {"contributorToken": {"_eq": access.contributor_token}}}) == 1
    assert contributor.count(where={"access": {"adminToken": {"_eq": access.admin_token}}}) == 0


def test_ordering_by_a_masked_token_is_the_default_order(world):
    store, ids = world
    anonymous = store.anonymous().accesses
    default = [a.id for a in anonymous.list()]
    assert len(default) >= 3
    for direction in ("asc", "desc"):
        assert [a.id for a in anonymous.list(order_by={"adminToken": direction})] == default


def test_masked_columns_compare_as_null_over_graphql(world, server):
    store, ids = world
    admin_token = store.accesses.get(ids["open_access"]).admin_token
    query = """query($a: uuid!, $t: String!, $p: String!) {
      exact: accesses(where: {id: {_eq: $a}, adminToken: {_eq: $t}}) { id }
      bisect: accesses(where: {id: {_eq: $a}, adminToken: {_gte: $p}}) { id }
      nulls: accesses(where: {id: {_eq: $a}, adminToken: {_is_null: true}}) { id adminToken }
      through: datasets(where: {access: {adminToken: {_eq: $t}}}) { id }
      counted: accesses_aggregate(where: {adminToken: {_eq: $t}}) { aggregate { count } }
      columns: accesses_aggregate { aggregate { all: count tokens: count(columns: [adminToken])
                                               distinct: count(columns: [adminToken], distinct: true) } }
    }"""
    answer = gql(server, query, {"a": ids["open_access"], "t": admin_token, "p": admin_token[:2]})
    assert answer["exact"] == [] and answer["bisect"] == [] and answer["through"] == []
    assert answer["nulls"] == [{"id": ids["open_access"], "adminToken": None}]
    assert answer["counted"]["aggregate"]["count"] == 0
    counts = answer["columns"]["aggregate"]
    assert counts["all"] >= 1 and counts["tokens"] == 0 and counts["distinct"] == 0
    as_admin = gql(server, query, {"a": ids["open_access"], "t": admin_token, "p": admin_token[:2]},
                   {"X-Hasura-Admin-Secret": ADMIN})
    assert as_admin["exact"] == [{"id": ids["open_access"]}]  # the same query can match


# -- item 2: order_by through object relationships applies visibility at each hop ------


def _names(rows):
    return [r["name"] for r in rows]


@pytest.mark.parametrize("order", [
    {"organization": {"name": "asc"}}, {"organization": {"name": "desc"}},
    {"organization": {"owner": {"email": "asc"}}}, {"organization": {"owner": {"email": "desc"}}},
    {"organization": {"owner": {"name": "asc"}}}, {"organization": {"createdAt": "desc"}},
], ids=str)
def test_order_through_a_hidden_organization_ignores_its_values(world, order):
    """The datasets are public, their organizations are not: ordering by the
    organization's name, or its owner's email, must give the order of no order_by."""
    store, ids = world
    only = {"id": {"_in": [ids["first"], ids["second"]]}}
    for caller in (store.anonymous(), store.as_user(ids["dave"])):
        default = _names(caller.datasets.list(where=only))
        assert default == ["in-zeta", "in-alpha"]  # created first, first
        assert _names(caller.datasets.list(where=only, order_by=order)) == default


def test_order_through_a_hidden_organization_over_graphql(world, server):
    _, ids = world
    query = """query($ids: [uuid!]!) {
      byName: datasets(where: {id: {_in: $ids}}, order_by: {organization: {name: asc}}) { name }
      byEmail: datasets(where: {id: {_in: $ids}}, order_by: {organization: {owner: {email: asc}}}) { name }
      plain: datasets(where: {id: {_in: $ids}}) { name }
    }"""
    for headers in ({}, as_jwt(ids["dave"])):
        answer = gql(server, query, {"ids": [ids["first"], ids["second"]]}, headers)
        assert answer["byName"] == answer["byEmail"] == answer["plain"] == [
            {"name": "in-zeta"}, {"name": "in-alpha"}]
    as_admin = gql(server, query, {"ids": [ids["first"], ids["second"]]}, {"X-Hasura-Admin-Secret": ADMIN})
    assert as_admin["byName"] == [{"name": "in-alpha"}, {"name": "in-zeta"}]  # the admin sees the names


# -- item 9: personal data ------------------------------------------------------------------


def test_anonymous_and_token_callers_see_no_users(world):
    store, ids = world
    guest_token = store.accesses.get(ids["open_access"]).guest_token
    for caller in (store.anonymous(), store.with_token(guest_token)):
        assert caller.users.list() == []
        assert caller.users.count(where={"email": {"_eq": "olga@lab.example"}}) == 0
        assert caller.datasets.get(ids["open"]).owner_id == ids["olga"]  # the id, not the person
        assert caller.datasets.count(where={"owner": {"name": {"_eq": "olga"}}}) == 0


def test_an_email_shows_only_to_its_user(world):
    store, ids = world
    assert store.as_user(ids["olga"]).users.get(ids["olga"]).email == "olga@lab.example"
    for other in ("gus", "carl"):  # members of her organization see her name, not her email
        users = store.as_user(ids[other]).users
        olga = users.get(ids["olga"])
        assert olga.name == "olga" and olga.email is None
        assert users.count(where={"id": {"_eq": ids["olga"]}, "email": {"_like": "olga%"}}) == 0
        assert users.count(where={"id": {"_eq": ids["olga"]}, "email": {"_is_null": True}}) == 1
    assert store.users.get(ids["olga"]).email == "olga@lab.example"  # the store admin sees it


def test_a_webhook_shows_only_to_its_user_and_to_admins(world):
    store, ids = world

    def hooks(user):
        return {m.user_id: m.webhook for m in store.as_user(ids[user]).memberships.list(
            where={"accessId": {"_eq": ids["lab_access"]}})}

    gus, carl, olga = ids["gus"], ids["carl"], ids["olga"]
    assert hooks("gus") == {gus: "http://127.0.0.1:9/gus", carl: None}
    assert hooks("carl") == {gus: None, carl: "http://127.0.0.1:9/carl"}
    assert hooks("olga") == {gus: "http://127.0.0.1:9/gus", carl: "http://127.0.0.1:9/carl"}
    assert store.as_user(gus).memberships.count(where={"webhook": {"_like": "%carl%"}}) == 0
    # the resource's own webhook is its admins' business too
    assert store.as_user(gus).accesses.get(ids["lab_access"]).webhook is None
    assert store.as_user(carl).accesses.get(ids["lab_access"]).webhook is None
    assert store.as_user(olga).accesses.get(ids["lab_access"]).webhook == "http://127.0.0.1:9/lab"


def test_personal_data_over_graphql(world, server):
    _, ids = world
    assert gql(server, "{ users { id } users_aggregate { aggregate { count } } }") == {
        "users": [], "users_aggregate": {"aggregate": {"count": 0}}}
    opened = gql(server, "query($id: uuid!) { dataset(id: $id) { ownerId owner { name } } }",
                 {"id": ids["open"]})
    assert opened == {"dataset": {"ownerId": ids["olga"], "owner": None}}
    query = """query($a: uuid!) {
      memberships(where: {accessId: {_eq: $a}}, order_by: {role: asc}) { userId webhook }
      users(where: {id: {_eq: "%s"}}) { name email }
    }""" % ids["olga"]
    as_gus = gql(server, query, {"a": ids["lab_access"]}, as_jwt(ids["gus"]))
    assert as_gus["memberships"] == [{"userId": ids["carl"], "webhook": None},
                                     {"userId": ids["gus"], "webhook": "http://127.0.0.1:9/gus"}]
    assert as_gus["users"] == [{"name": "olga", "email": None}]
    as_olga = gql(server, query, {"a": ids["lab_access"]}, as_jwt(ids["olga"]))
    assert as_olga["users"] == [{"name": "olga", "email": "olga@lab.example"}]
    assert {m["webhook"] for m in as_olga["memberships"]} == {"http://127.0.0.1:9/gus",
                                                              "http://127.0.0.1:9/carl"}


def test_counts_read_columns_as_the_caller_reads_them(world, server):
    """count(columns:) counts values as the caller reads them (a masked one is NULL),
    with Hasura's semantics for several columns: PostgreSQL's COUNT((a, b)) counts every
    row, and with distinct the distinct combinations (it used to answer 500)."""
    query = """{ accesses { public }
      accesses_aggregate { aggregate { rows: count tokens: count(columns: [adminToken])
        both: count(columns: [id, adminToken])
        pairs: count(columns: [public, adminToken], distinct: true) } }
      team_members_aggregate { aggregate { count(distinct: true) } } }"""
    as_anonymous = gql(server, query)
    anonymous = as_anonymous["accesses_aggregate"]["aggregate"]
    assert anonymous["rows"] >= 3 and anonymous["tokens"] == 0  # masked: never counted
    assert anonymous["both"] == anonymous["rows"]
    assert anonymous["pairs"] == len({a["public"] for a in as_anonymous["accesses"]})
    admin = gql(server, query, headers={"X-Hasura-Admin-Secret": ADMIN})
    counts = admin["accesses_aggregate"]["aggregate"]
    assert counts["tokens"] == counts["both"] == counts["pairs"] == counts["rows"] > anonymous["rows"]
    assert admin["team_members_aggregate"]["aggregate"]["count"] == 0
