"""Issue 14, item 11: Hasura's text and jsonb operators with PostgreSQL's semantics,
through the real server, the real `gql` client and the Python API."""

from __future__ import annotations

import pytest
from gql import Client as GqlClient
from gql import gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

import clustore_lite
from serving import Client, running_server

PAYLOADS = {
    "two": {"a": 2, "tags": ["x", "y"], "nested": {"k": [1, {"deep": True}]}},
    "spaced": {"b": 1.0, "a": "text"},
    "list": ["p", "q", 3],
    "scalar": "p",
    "none": None,
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A store with one tracking per payload (kind = the payload's name), served."""
    db = tmp_path_factory.mktemp("operators") / "store.sqlite"
    with clustore_lite.open(db) as store:
        for kind, payload in PAYLOADS.items():
            store.trackings.create(kind, payload=payload)
        for name in ("Alpha", "beta", "gamma 3", "a.c", "abc"):
            store.users.create(name)
    with running_server(db) as url:
        yield url, db


def kinds(client: Client, where: dict) -> set[str]:
    data = client("query($w: tracking_bool_exp!) { trackings(where: $w) { kind } }", {"w": where})
    return {row["kind"] for row in data["trackings"]}


def names(client: Client, where: dict) -> set[str]:
    data = client("query($w: user_bool_exp!) { users(where: $w) { name } }", {"w": where})
    return {row["name"] for row in data["users"]}


# -- the bug: jsonb _eq/_neq compared texts ---------------------------------------------

def test_jsonb_eq_compares_values_not_texts(served):
    """`{"a": 2}` stored is `_eq` to `{"a":2}` however it is spelled; `_neq` leaves it out."""
    client = Client(served[0])
    assert kinds(client, {"payload": {"_eq": PAYLOADS["two"]}}) == {"two"}
    assert kinds(client, {"payload": {"_eq": {"a": "text", "b": 1}}}) == {"spaced"}
    assert kinds(client, {"payload": {"_neq": PAYLOADS["two"]}}) == {"spaced", "list", "scalar"}
    assert kinds(client, {"payload": {"_in": [["p", "q", 3], "p"]}}) == {"list", "scalar"}
    assert kinds(client, {"payload": {"_nin": [["p", "q", 3], "p"]}}) == {"two", "spaced"}


def test_jsonb_eq_in_the_python_api(tmp_path):
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        store.trackings.create("k", payload={"a": 2})
        assert len(store.trackings.list(where={"payload": {"_eq": {"a": 2}}})) == 1
        assert store.trackings.list(where={"payload": {"_neq": {"a": 2}}}) == []
