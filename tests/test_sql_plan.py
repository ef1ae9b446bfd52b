"""A nested query costs a bounded number of SQL statements, whatever its size (no N+1)."""

import asyncio
import json

import apsw
import pytest
from ariadne import graphql

from clustore_lite import demo
from clustore_lite.graphql import fastpath
from clustore_lite.graphql.limits import limits_rule
from clustore_lite.graphql.live import Changes
from clustore_lite.graphql.schema import build_schema

QUERY = """{ organizations {
  name owner { name email }
  datasets { name owner { name } dataframe { rows columns chunks { id size } } }
  teams { name members { name } }
  access { memberships { role user { name } } }
} }"""


def test_hundred_organizations_in_one_statement(store):
    for number in range(100):
        owner = store.users.create(f"user{number}")
        org = store.organizations.create(f"org{number}", owner_id=owner["id"])
        store.teams.create(org["id"], "team", members=[owner["id"]])
        for name in ("a", "b"):
            store.datasets.create(org["id"], name, {"x": [1, 2, 3]}, owner_id=owner["id"])
    statements = []

    def trace(cursor, sql, bindings):
        statements.append(sql)
        return True

    def hook(conn):
        conn.exec_trace = trace

    apsw.connection_hooks.append(hook)
    try:
        store.db.close()  # new connections, traced
        ok, result = asyncio.run(graphql(build_schema(), {"query": QUERY},
                                         context_value={"store": store, "changes": Changes()}))
    finally:
        apsw.connection_hooks.remove(hook)
    assert ok and "errors" not in result, result
    organizations = result["data"]["organizations"]
    assert len(organizations) == 100 and all(len(o["datasets"]) == 2 for o in organizations)
    assert organizations[0]["teams"][0]["members"][0]["name"] == "user0"
    # what a new connection runs first (pragmas, schema version) is not the query's cost
    queries = [s for s in statements if not s.lstrip().upper().startswith(("PRAGMA", "BEGIN", "COMMIT"))
               and "sqlite_schema" not in s]
    assert len(queries) == 1, queries


FAST_QUERIES = [
    "{ organizations { __typename id name owner { name __typename } teams { members { name } } } }",
    "{ tasks { name algorithm { name k init parallel mu __typename } centroids { rows chunks { data } } } }",
    "{ datasets_aggregate(where: {name: {_like: \"%s%\"}}) { __typename aggregate { count n: count(columns: [ownerId], distinct: true) } nodes { name } } }",
    "query($n: String!) { a: datasets(where: {name: {_eq: $n}}) { id dataframe { dim columns metadata } } }",
    "{ accesses(order_by: {createdAt: desc}, limit: 2) { public guestToken memberships { role follow team { name } } } }",
]


# queries whose answer depends on the caller: masked token columns, hidden rows
CALLER_QUERIES = [
    "{ accesses(order_by: {id: asc}) { id public adminToken contributorToken guestToken "
    "memberships { role user { name } } } }",
    "{ organizations(order_by: {name: asc}) { name access { adminToken contributorToken guestToken } "
    "datasets(order_by: {name: asc}) { name access { public adminToken contributorToken guestToken } } } }",
    "{ datasets(order_by: {name: asc}) { name organization { name access { adminToken guestToken } } "
    "access { contributorToken } } datasets_aggregate { aggregate { count } } }",
    "{ users(order_by: {name: asc}) { name email organizations { name } } "
    "accesses_aggregate(where: {adminToken: {_is_null: false}}) { aggregate { count } } }",
]


def fill(store) -> None:
    """The demo (a public organization, a team) and a private organization with a
    dataset that only its owner, the store admin and a token holder can see."""

    demo.fill(store)
    carol = store.users.create("carol", email="carol@demo.example")
    vault = store.organizations.create("vault", owner_id=carol["id"])
    store.datasets.create(vault["id"], "secret", {"x": [1, 2]}, owner_id=carol["id"])


CALLERS = {  # the store as each one sees it
    "admin": lambda store: store,
    "anonymous": lambda store: store.anonymous(),
    "user": lambda store: store.as_user(store.users.list(name="bob")[0]["id"]),  # a team member
    "token": lambda store: store.with_token(  # the contributor token of the private dataset
        store.accesses.get(store.datasets.list(name="secret")[0]["accessId"])["contributorToken"]),
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("query", FAST_QUERIES + CALLER_QUERIES)
def test_the_fast_path_answers_exactly_what_the_executor_answers(store, query, caller):
    fill(store)
    schema = build_schema()
    data = {"query": query, "variables": {"n": "blobs"}}

    def executor(view):
        ok, answer = asyncio.run(graphql(schema, data, context_value={"store": view, "changes": Changes()}))
        assert "errors" not in answer, answer
        return answer

    view = CALLERS[caller](store)
    planned = fastpath.plan(fastpath.Documents(schema, [limits_rule()]), data)
    assert planned is not None
    fast = json.loads(fastpath.answer(schema, view, *planned).body)
    assert fast == executor(view)
    if query in CALLER_QUERIES and caller != "admin":  # the view hid or masked something
        assert fast != executor(store)
