"""Hypothesis throws generated documents and bodies at a real server: no 5xx, no
crash, and the store unchanged (the fuzzer is anonymous, so no write may land)."""

import hashlib
import json
import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
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
