"""A plain query that fails in a root field is answered by the fast path itself, the
way Ariadne would answer it (same status, same body), and is compiled once."""

import asyncio
import json

import httpx
import pytest
from ariadne import graphql

from clustore_lite import demo
from clustore_lite.graphql import fastpath
from clustore_lite.graphql.errors import format_error
from clustore_lite.graphql.limits import limits_rule
from clustore_lite.graphql.live import Changes
from clustore_lite.graphql.schema import build_schema
from clustore_lite.graphql.select import Selection
from clustore_lite.server.app import Server

NOBODY = "00000000-0000-0000-0000-000000000000"
FAILING = [
    '{ organizations(where: {name: {_eq: null}}) { name } }',  # non-null field: data null, 400
    '{ a: organizations { name } b: organization(id: "%s") { name } '
    'c: organizations(where: {name: {_like: null}}) { id } }' % NOBODY,
    '{ b: organization(id: "%s") { name } ' % NOBODY
    + 'c: organizations_aggregate(where: {name: {_in: null}}) { aggregate { count } } }',
    '{ datasets(where: {owner: {email: {_like: null}}}) { name } }',
]


@pytest.mark.parametrize("query", FAILING)
def test_a_failing_root_field_is_answered_as_ariadne_answers_it(store, query):
    demo.fill(store)
    schema = build_schema()
    planned = fastpath.plan(fastpath.Documents(schema, [limits_rule()]), {"query": query})
    assert planned is not None
    fast = fastpath.answer(schema, store, *planned)
    ok, slow = asyncio.run(graphql(schema, {"query": query}, error_formatter=format_error,
                                   context_value={"store": store, "changes": Changes()}))
    assert json.loads(fast.body) == slow and slow["errors"]
    assert fast.status == (200 if ok else 400)


def test_a_failing_query_is_compiled_once(db_path, monkeypatch):
    compiled = []
    original = Selection.root_json
    monkeypatch.setattr(Selection, "root_json",
                        lambda self, *a: compiled.append(a[1]) or original(self, *a))

    async def ask():
        server = Server(str(db_path), deliver=False)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(server.app),
                                         base_url="http://127.0.0.1") as client:
                return await client.post("/v1/graphql", json={"query": FAILING[0]})
        finally:
            server.store.close()

    response = asyncio.run(ask())
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "validation-failed"
    assert compiled == ["list"]
