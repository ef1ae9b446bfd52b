"""Issue 14, item 11: Hasura's text and jsonb operators with PostgreSQL's semantics,
through the real server, the real `gql` client and the Python API."""

from __future__ import annotations

import pytest
from gql import Client as GqlClient
from graphql import get_named_type
from gql import GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

import clustore_lite
from clustore_lite.catalog import TABLES
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


# -- text patterns ------------------------------------------------------------------------

@pytest.mark.parametrize("where, expected", [
    ({"_similar": "(Alpha|beta)"}, {"Alpha", "beta"}),
    ({"_similar": "%a"}, {"Alpha", "beta"}),  # SIMILAR TO matches the whole text
    ({"_nsimilar": "%a"}, {"gamma 3", "a.c", "abc"}),
    ({"_similar": "a.c"}, {"a.c"}),  # . is a plain dot in SIMILAR TO
    ({"_regex": "a.c"}, {"a.c", "abc"}),  # ... and any character in a regex
    ({"_regex": "^[[:alpha:]]+$"}, {"Alpha", "beta", "abc"}),
    ({"_regex": "[[:digit:]]$"}, {"gamma 3"}),
    ({"_regex": "^a"}, {"a.c", "abc"}),
    ({"_iregex": "^a"}, {"Alpha", "a.c", "abc"}),
    ({"_nregex": "a"}, set()),
    ({"_niregex": "^A"}, {"beta", "gamma 3"}),
    ({"_regex": "\\mgamma\\M"}, {"gamma 3"}),  # PostgreSQL's word boundaries
])
def test_text_patterns(served, where, expected):
    assert names(Client(served[0]), {"name": where}) == expected


def test_patterns_through_gql_and_their_errors(served):
    """A bad pattern, a catastrophic one and one over the limits are refused with
    validation-failed and a message naming why (never a 500 or a hung server)."""
    transport = RequestsHTTPTransport(url=f"{served[0]}/v1/graphql", timeout=30)
    query = gql("query($w: user_bool_exp!) { users(where: $w) { name } }")
    with GqlClient(transport=transport) as session:
        found = session.execute(GraphQLRequest(query, variable_values={
            "w": {"name": {"_regex": "^(Al|be)"}}}))
        assert {u["name"] for u in found["users"]} == {"Alpha", "beta"}
        for pattern, message in [("(unclosed", "invalid regular expression"),
                                 ("(a+)+$", "repeats a group"), ("(\\w+\\s?)*$", "repeats a group"),
                                 ("a" * 1001, "MAX_REGEX_PATTERN")]:
            with pytest.raises(TransportQueryError) as refused:
                session.execute(GraphQLRequest(query, variable_values={
                    "w": {"name": {"_regex": pattern}}}))
            error = refused.value.errors[0]
            assert message in error["message"] and error["extensions"]["code"] == "validation-failed"


def test_runaway_matching_stops_at_the_budget(tmp_path):
    """A pattern that backtracks exponentially on a row's text (overlapping
    alternatives under a repetition) is stopped at the statement's budget of matching
    time, by name, instead of holding the store; the next query runs as usual."""
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        store.trackings.create("long", payload={"t": "1" * 30_000 + "!"})
        where = {"payload": {"_cast": {"String": {"_regex": "(\\w|\\d)*$"}}}}
        with pytest.raises(clustore_lite.errors.InvalidValue, match="MAX_REGEX_SECONDS"):
            store.trackings.list(where=where)
        where = {"payload": {"_cast": {"String": {"_regex": "(\\w|\\d)+!"}}}}
        assert len(store.trackings.list(where=where)) == 1


def test_matched_text_is_bounded(tmp_path):
    """A text past MAX_REGEX_TEXT is refused by name rather than matched."""
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        store.trackings.create("big", payload={"text": "x" * 100_001})
        store.trackings.create("small", payload={"text": "x"})
        where = {"payload": {"_cast": {"String": {"_regex": "y"}}}}
        with pytest.raises(clustore_lite.errors.InvalidValue, match="MAX_REGEX_TEXT"):
            store.trackings.list(where=where)
        small = {"_and": [{"kind": {"_eq": "small"}}, where]}
        assert store.trackings.list(where=small) == []


# -- jsonb ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where, expected", [
    ({"_contains": {"a": 2}}, {"two"}),
    ({"_contains": {"tags": ["y"]}}, {"two"}),
    ({"_contains": {"nested": {"k": [{"deep": True}]}}}, {"two"}),
    ({"_contains": {"b": 1}}, {"spaced"}),  # 1 = 1.0
    ({"_contains": "p"}, {"list", "scalar"}),  # an array contains a scalar it holds
    ({"_contains": ["q", 3]}, {"list"}),
    ({"_contained_in": {"a": 2, "tags": ["x", "y", "z"], "nested": {"k": [1, {"deep": True}]},
                        "other": 1}}, {"two"}),
    ({"_contained_in": ["p", "q", 3, 4]}, {"list", "scalar"}),
    ({"_has_key": "a"}, {"two", "spaced"}),
    ({"_has_key": "p"}, {"list", "scalar"}),  # a string of an array is a key
    ({"_has_keys_any": ["b", "tags"]}, {"two", "spaced"}),
    ({"_has_keys_all": ["a", "tags"]}, {"two"}),
    ({"_has_keys_all": []}, {"two", "spaced", "list", "scalar"}),
    ({"_cast": {"String": {"_eq": '{"a": "text", "b": 1.0}'}}}, {"spaced"}),  # jsonb's text
    ({"_cast": {"String": {"_like": '%"tags": ["x", "y"]%'}}}, {"two"}),
    ({"_cast": {"String": {"_similar": '\\[%\\]'}}}, {"list"}),
    ({"_cast": {"String": {"_in": ['"p"', "nothing"]}}}, {"scalar"}),
    # jsonb's order: objects by their number of keys first, then keys and values
    ({"_gt": {"z": 0}}, {"two", "spaced"}),
    ({"_lt": {"a": 1, "b": 1, "c": 1}}, {"spaced", "list", "scalar"}),
    ({"_gte": ["p", "q", 3]}, {"two", "spaced", "list"}),
    ({"_lte": "p"}, {"scalar"}),
])
def test_jsonb_operators(served, where, expected):
    assert kinds(Client(served[0]), {"payload": where}) == expected


def test_jsonb_path_argument(served):
    client = Client(served[0])
    data = client('{ trackings(order_by: {kind: asc}) { kind a: payload(path: "a") '
                  'deep: payload(path: "$.nested.k[1].deep") first: payload(path: "[0]") } }')
    by_kind = {row["kind"]: row for row in data["trackings"]}
    assert by_kind["two"] == {"kind": "two", "a": 2, "deep": True, "first": None}
    assert by_kind["spaced"]["a"] == "text" and by_kind["list"]["first"] == "p"
    assert by_kind["none"] == {"kind": "none", "a": None, "deep": None, "first": None}
    response = client.post('{ trackings { payload(path: "a..b") } }').json()
    assert "invalid json path" in response["errors"][0]["message"]
    assert response["errors"][0]["extensions"]["code"] == "validation-failed"


def test_masked_columns_cannot_be_matched(served):
    """A caller matches a masked value as absent: other users' emails match no pattern."""
    url, db = served
    with clustore_lite.open(db) as store:
        ana = store.users.create("ana-masked", "ana@example.org")
        bob = store.users.create("bob-masked", "bob@example.org")
        org = store.organizations.create("masked-org", owner_id=ana.id, public="guest")
        store.teams.create(org.id, "both", members=[ana.id, bob.id])
    as_bob = Client(url)
    as_bob.http.headers.update({"X-Hasura-Role": "user", "X-Hasura-User-Id": bob.id})
    assert names(as_bob, {"email": {"_regex": "example"}}) == {"bob-masked"}
    assert names(as_bob, {"email": {"_nregex": "bob"}}) == set()
    assert "ana-masked" in names(as_bob, {"name": {"_similar": "%masked"}})


def test_the_served_schema_has_hasuras_operators(served):
    """Introspected by the gql client: the text and jsonb operators with Hasura's
    argument types, jsonb_cast_exp, and `path: String` on every jsonb column field."""
    transport = RequestsHTTPTransport(url=f"{served[0]}/v1/graphql", timeout=30)
    with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
        schema = session.client.schema
    text = schema.type_map["String_comparison_exp"].fields
    for op in ("_similar", "_nsimilar", "_regex", "_nregex", "_iregex", "_niregex"):
        assert str(text[op].type) == "String"
    jsonb = {name: str(field.type) for name, field in schema.type_map["jsonb_comparison_exp"].fields.items()}
    assert {k: jsonb[k] for k in ("_contains", "_contained_in", "_has_key", "_has_keys_any",
                                  "_has_keys_all", "_cast")} == {
        "_contains": "jsonb", "_contained_in": "jsonb", "_has_key": "String",
        "_has_keys_any": "[String!]", "_has_keys_all": "[String!]", "_cast": "jsonb_cast_exp"}
    assert str(schema.type_map["jsonb_cast_exp"].fields["String"].type) == "String_comparison_exp"
    for name, table in TABLES.items():
        for column in table.visible_columns:
            field = schema.type_map[name].fields[column]
            if str(get_named_type(field.type)) == "jsonb":
                assert str(field.args["path"].type) == "String", f"{name}.{column}"


def test_fast_and_ordinary_paths_agree(served):
    """@include on the root field sends the query through Ariadne, not the fast path."""
    client = Client(served[0])
    for args, selection in [
            ('where: {payload: {_contains: {a: 2}}}', 'kind a: payload(path: "a")'),
            ('where: {payload: {_cast: {String: {_regex: "^\\\\["}}}}', 'kind payload'),
            ('where: {kind: {_similar: "(two|list)"}}', 'kind t: payload(path: "tags[1]")')]:
        fast = client(f"{{ trackings({args}, order_by: {{kind: asc}}) {{ {selection} }} }}")
        slow = client(f"{{ trackings({args}, order_by: {{kind: asc}}) @include(if: true) "
                      f"{{ {selection} }} }}")
        assert fast == slow and fast["trackings"], args


@pytest.mark.parametrize("where, message", [
    ({"payload": {"_cast": {"Int": {"_eq": 1}}}}, "_cast on tracking.payload takes {String:"),
    ({"payload": {"_has_key": 3}}, "_has_key on tracking.payload takes a key"),
    ({"payload": {"_has_keys_any": "a"}}, "takes a list of keys"),
    ({"kind": {"_contains": {"a": 1}}}, "_contains applies to jsonb, and tracking.kind is not"),
    ({"payload": {"_regex": "a"}}, "_regex applies to text, and tracking.payload is not"),
    ({"kind": {"_similar": 5}}, "_similar on tracking.kind takes a pattern"),
    ({"kind": {"_regex": "a{2"}}, "invalid repetition count"),
])
def test_bad_operands_are_explained(tmp_path, where, message):
    """The Python API takes the same operators; a wrong operand gets a message."""
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        with pytest.raises(clustore_lite.errors.InvalidValue) as refused:
            store.trackings.list(where=where)
        assert message in str(refused.value)
