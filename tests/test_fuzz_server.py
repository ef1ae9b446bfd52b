"""Hypothesis throws generated documents and bodies at a real server: no 5xx, no
crash, and the store unchanged (the fuzzer is anonymous, so no write may land).
Besides mutated documents and random bytes, hostile shapes around each limit (issue 13):
huge _in/_or/_and, deep _not and relationship filters, long order_by and LIKE patterns,
deeply nested variables, alias and fragment bombs, multi-column counts."""

import hashlib
import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import clustore_lite
from serving import running_server

SCALE = int(os.environ.get("CLUSTORE_FUZZ_EXAMPLES", "150"))
VALID = [
    "{ organizations { id name datasets { name dataframe { rows chunks { data } } } } }",
    'mutation { insert_organization_one(object: {name: "x"}) { id } }',
    'mutation { delete_dataset(where: {}) { affected_rows } }',
    'mutation { update_organization(where: {}, _set: {name: "y"}) { affected_rows } }',
    "query($id: uuid!) { dataset(id: $id) { id owner { name } } }",
    "subscription { teams { id } }",
    "{ datasets_aggregate(where: {owner: {name: {_ilike: \"%a%\"}}}) { aggregate { count } } }",
]
TOKENS = ["{", "}", "(", ")", ":", "$id", "!", "...", "on", "organization", "where", "_eq", "\"",
          "limit", "-1", "1e999", "null", "[", "]", "@skip", "fragment", "mutation", "__typename",
          "_and", "order_by", "asc", "\\u0000", "💥", "id", "name"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def mutated_documents(draw):
    words = draw(st.sampled_from(VALID)).replace("{", " { ").replace("}", " } ").split()
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(words)))
        if draw(st.booleans()) and words:
            words.pop(min(position, len(words) - 1))
        else:
            words.insert(position, draw(st.sampled_from(TOKENS)))
    return " ".join(words)


bodies = st.one_of(
    st.builds(lambda q, v: json.dumps({"query": q, "variables": v}).encode(), mutated_documents(),
              st.dictionaries(st.sampled_from(["id", "x", ""]), json_values, max_size=2)),
    st.builds(lambda q: json.dumps({"query": q}).encode(), st.text(max_size=200)),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.binary(max_size=300),
)


def fingerprint(db) -> str:
    with clustore_lite.open(db) as store:
        rows = [store.db.query(f'SELECT * FROM "{t}" ORDER BY 1') for t in
                ("user", "organization", "team", "access", "membership", "dataset", "dataframe", "chunk")]
    return hashlib.sha256(json.dumps(rows, default=repr).encode()).hexdigest()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "store.sqlite"
    with clustore_lite.open(db) as store:
        from clustore_lite import demo
        demo.fill(store)
    with running_server(db, env={"CLUSTORE_ADMIN_SECRET": "s3cret"}) as url:
        client = httpx.Client(timeout=30)
        before = fingerprint(db)
        yield url, client
        assert fingerprint(db) == before
        assert client.get(f"{url}/ping").text == "pong"


@settings(max_examples=SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_no_generated_request_makes_a_server_error(fuzzed, body, content_type):
    url, client = fuzzed
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(f"{url}/v1/graphql", content=body, headers=headers)
    assert response.status_code < 500, (body, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        answer = response.json()
        for error in answer.get("errors", []) if isinstance(answer, dict) else []:
            assert error.get("extensions", {}).get("code") not in (None, "unexpected"), (body, error)


def example_each(bodies):
    """Hypothesis @example for each body."""
    def decorate(test):
        for each in reversed(bodies):
            test = example(body=each)(test)
        return test
    return decorate


SIZES = [0, 1, 2, 15, 16, 17, 99, 100, 101, 199, 201, 999, 1000, 1001, 5000, 10_000, 10_001, 40_000]
COLUMNS = ["id", "name", "organizationId", "createdAt"]
HOSTILE_SCALE = max(10, SCALE // 2)


def nested_json(depth: int, wrap: str, leaf: str) -> str:
    """JSON text of `leaf` wrapped `depth` times, e.g. wrap='{"_not": %s}' (built as
    text: json.dumps would recurse as deep)."""
    head, tail = wrap.split("%s")
    return head * depth + leaf + tail * depth


@st.composite
def hostile_filters(draw) -> str:
    """A team_bool_exp as JSON text, around one or more of query.py's limits."""
    leaf = '{"name": {"_eq": "x"}}'
    size = draw(st.sampled_from(SIZES))
    pattern = draw(st.text(alphabet="%_aé💥\\", min_size=1, max_size=8))
    parts = draw(st.lists(st.sampled_from([
        json.dumps({"name": {"_in": [str(i) for i in range(size)]}}),
        json.dumps({"_or": [{"name": {"_eq": str(i)}} for i in range(min(size, 5000))]}),
        json.dumps({"_and": [{"id": {"_is_null": False}}] * min(size, 5000)}),
        nested_json(min(size, 600), '{"_not": %s}', leaf),
        nested_json(min(size, 300), '{"organization": {"teams": %s}}', leaf),
        json.dumps({"name": {draw(st.sampled_from(["_like", "_ilike", "_nlike"])):
                             (pattern * (size // len(pattern) + 1))[:size]}}),
    ]), min_size=1, max_size=3))
    return '{"_and": [' + ", ".join(parts) + "]}"


@st.composite
def hostile_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["filter", "order_by", "variables", "aliases", "fragments", "count"]))
    size = draw(st.sampled_from(SIZES))
    query, variables = "{ __typename }", "{}"
    if kind == "filter":
        root = draw(st.sampled_from(["teams", "teams_aggregate", "organization { teams"]))
        query = ("query($w: team_bool_exp) { organizations { teams(where: $w) { id } } }"
                 if root.startswith("organization") else
                 f"query($w: team_bool_exp) {{ {root}(where: $w) {{ __typename }} }}")
        variables = '{"w": ' + draw(hostile_filters()) + "}"
    elif kind == "order_by":
        query = "query($o: [team_order_by!]) { teams(order_by: $o) { id } }"
        variables = json.dumps({"o": [{draw(st.sampled_from(COLUMNS)): "asc"}] * size})
    elif kind == "variables":
        query = draw(st.sampled_from(["query($v: jsonb) { teams { id } }",
                                      "query($w: team_bool_exp) { teams(where: $w) { id } }"]))
        variables = '{"' + query[7] + '": ' + nested_json(size, draw(st.sampled_from(
            ["[%s]", '{"a": %s}', '{"_not": %s}'])), "{}") + "}"
    elif kind == "aliases":
        field = draw(st.sampled_from(["organizations { id }", "id", "teams { name }"]))
        same = draw(st.booleans())  # one response name for all (quadratic to validate)
        aliased = " ".join(f"{'a' if same else f'a{i}'}: {field}" for i in range(min(size, 40_000)))
        query = "{ " + (aliased if field.startswith("organizations")
                        else f"organizations {{ {aliased} }}") + " }"
    elif kind == "fragments":
        query = ("{ organizations { ...F0 } } " + " ".join(
            f"fragment F{i} on organization {{ id ...F{i + 1} }}" for i in range(min(size, 25_000)))
            + f" fragment F{min(size, 25_000)} on organization {{ name }}")
    else:
        columns = draw(st.lists(st.sampled_from(COLUMNS), max_size=4))
        query = (f"{{ teams_aggregate {{ aggregate {{ count(columns: [{', '.join(columns)}], "
                 f"distinct: {json.dumps(draw(st.booleans()))}) }} }} }}")
    return body(query, variables)


def body(query: str, variables: str = "{}") -> bytes:
    return ('{"query": ' + json.dumps(query) + ', "variables": ' + variables + "}").encode()


TEAMS = "query($w: team_bool_exp) { teams(where: $w) { id } }"
ISSUE_13 = [  # the shapes of the issue, each a 500 or a stalled server before
    body(TEAMS, json.dumps({"w": {"name": {"_in": [str(i) for i in range(40_000)]}}})),
    body(TEAMS, json.dumps({"w": {"_or": [{"name": {"_eq": str(i)}} for i in range(5_000)]}})),
    body(TEAMS, '{"w": ' + nested_json(5_000, '{"_not": %s}', "{}") + "}"),
    body(TEAMS, '{"w": ' + nested_json(500, '{"organization": {"teams": %s}}', "{}") + "}"),
    body("query($o: [team_order_by!]) { teams(order_by: $o) { id } }",
         json.dumps({"o": [{"name": "asc"}] * 5_000})),
    body(TEAMS, json.dumps({"w": {"name": {"_like": "%" * 60_000}}})),
    body("{ teams_aggregate { aggregate { count(columns: [name, name]) } } }"),
    body("query($v: jsonb) { teams { id } }", '{"v": ' + nested_json(50_000, "[%s]", "") + "}"),
    body("{ " + " ".join(f"a{i}: organizations {{ id }}" for i in range(100_000)) + " }"),
    body("{ organizations { id } } " + " ".join(f"fragment F{i} on organization {{ id }}"
                                                for i in range(25_000))),
]


@settings(max_examples=HOSTILE_SCALE, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(body=hostile_bodies())
@example_each(ISSUE_13)
def test_hostile_shapes_get_a_coded_error_never_a_server_error(fuzzed, body):
    url, client = fuzzed
    response = client.post(f"{url}/v1/graphql", content=body,
                           headers={"content-type": "application/json"})
    assert response.status_code < 500, (body[:300], response.text[:300])
    answer = response.json()
    for error in answer.get("errors", []):
        assert error.get("extensions", {}).get("code") not in (None, "unexpected"), error
