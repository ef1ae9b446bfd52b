"""Hasura's wire contract on /v1/graphql, through the real server and the real `gql`
client: every GraphQL error answers 200 with `extensions.code` and `extensions.path`,
transport refusals keep their 4xx."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest
from gql import Client as GqlClient
from gql import GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from gql.transport.requests import RequestsHTTPTransport

import clustore_lite
from serving import HTTP, running_server

ADMIN, JWT_SECRET = "wire-admin-secret", "wire-jwt-secret-of-32-bytes-or-more!"
HEADERS = {"X-Hasura-Admin-Secret": ADMIN}


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    db = tmp_path_factory.mktemp("wire") / "store.sqlite"
    with clustore_lite.open(db) as store:
        owner = store.users.create("olga")["id"]
        store.organizations.create("taken", owner_id=owner)
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with running_server(db, env=env) as url:
        yield url, db


def post(url: str, body=None, headers=None) -> httpx.Response:
    """POST a JSON body with the admin secret, or with `headers` instead."""
    return HTTP.post(f"{url}/v1/graphql", json=body,
                      headers=HEADERS if headers is None else headers, timeout=30)


def only_error(response: httpx.Response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    body = response.json()
    assert len(body["errors"]) == 1, body
    return body["errors"][0]


# -- 1. errors answer 200, with Hasura's code and path ---------------------------------

@pytest.mark.parametrize("query, variables, code, path", [
    ('{ organizations(where: {name: {_eqq: "x"}}) { id } }', None, "validation-failed",
     "$.selectionSet.organizations.args.where.name._eqq"),
    ("{ organizations { nope } }", None, "validation-failed",
     "$.selectionSet.organizations.selectionSet.nope"),
    ('{ o: organization(id: "not-a-uuid") { name } }', None, "validation-failed",
     "$.selectionSet.o.args.id"),
    ("{ organizations { name }", None, "validation-failed", "$.query"),
    ("query($id: uuid!) { organization(id: $id) { name } }", {}, "validation-failed", "$"),
    ("query($id: uuid!) { organization(id: $id) { name } }", {"id": 5}, "validation-failed", "$"),
    ('mutation { a: insert_organization_one(object: {name: "taken"}) { id } }', None,
     "constraint-violation", "$.selectionSet.a"),
])
def test_graphql_errors_answer_200_with_code_and_path(wire, query, variables, code, path):
    url, _ = wire
    error = only_error(post(url, {"query": query, "variables": variables}))
    assert error["extensions"]["code"] == code, error
    assert error["extensions"]["path"] == path, error
    assert error["message"]


@pytest.mark.parametrize("headers, code", [
    ({"X-Hasura-Admin-Secret": "wrong"}, "access-denied"),
    ({"X-Clusauth-Token": jwt.encode({"sub": "x"}, "other-secret-of-32-bytes-or-more!", "HS256")},
     "invalid-jwt"),
    ({"X-Clusauth-Token": "not-a-token-of-any-access"}, "invalid-token"),
    ({**HEADERS, "X-Hasura-Role": "editor"}, "invalid-headers"),
    ({"X-Hasura-Role": "admin"}, "access-denied"),
])
def test_credential_errors_answer_200_as_hasura_does(wire, headers, code):
    url, _ = wire
    error = only_error(post(url, {"query": "{ organizations { id } }"}, headers))
    assert error["extensions"] == {"path": "$", "code": code}, error


def test_a_body_that_is_not_json_answers_a_json_error_with_a_code(wire):
    url, _ = wire
    response = HTTP.post(f"{url}/v1/graphql", content=b"{not json",
                          headers={**HEADERS, "Content-Type": "application/json"})
    assert only_error(response)["extensions"] == {"path": "$", "code": "invalid-json"}


def test_transport_refusals_keep_their_status(wire):
    url, _ = wire
    wrong_type = HTTP.post(f"{url}/v1/graphql", content=b'{"query": "{ users { id } }"}',
                            headers={**HEADERS, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["errors"][0]["extensions"]["code"] == "validation-failed"
    too_big = HTTP.post(f"{url}/v1/graphql", content=b'{"query": "' + b" " * (9 << 20) + b'"}',
                         headers={**HEADERS, "Content-Type": "application/json"})
    assert too_big.status_code == 413


@pytest.mark.parametrize("transport", [HTTPXTransport, RequestsHTTPTransport])
def test_gql_clients_see_graphql_errors_with_their_code(wire, transport):
    url, _ = wire
    client = GqlClient(transport=transport(url=f"{url}/v1/graphql", headers=HEADERS))
    with client as session:
        with pytest.raises(TransportQueryError) as raised:
            session.execute(gql('mutation { insert_organization_one(object: {name: "taken"}) { id } }'))
    assert raised.value.errors[0]["extensions"]["code"] == "constraint-violation"
    denied = GqlClient(transport=transport(url=f"{url}/v1/graphql",
                                           headers={"X-Hasura-Admin-Secret": "wrong"}))
    with denied as session:
        with pytest.raises(TransportQueryError) as raised:
            session.execute(gql("{ organizations { id } }"))
    assert raised.value.errors[0]["extensions"]["code"] == "access-denied"


# -- 2. batching ---------------------------------------------------------------------------

def names(db) -> set[str]:
    with clustore_lite.open(db) as store:
        return {row["name"] for row in store.db.query("SELECT name FROM organization")}


def test_a_batch_is_answered_in_order_each_operation_on_its_own(wire):
    url, db = wire
    batch = [
        {"query": 'mutation { insert_organization_one(object: {name: "batch-1"}) { name } }'},
        {"query": "{ organizations { nope } }"},
        {"query": 'mutation { insert_organization_one(object: {name: "taken"}) { id } }'},
        {"query": 'query($n: String!) { organizations(where: {name: {_eq: $n}}) { name } }',
         "variables": {"n": "batch-1"}},
        "not an operation",
        {"query": 'mutation { insert_organization_one(object: {name: "batch-2"}) { name } }'},
    ]
    response = post(url, batch)
    assert response.status_code == 200
    answers = response.json()
    assert isinstance(answers, list) and len(answers) == len(batch), answers
    assert answers[0] == {"data": {"insert_organization_one": {"name": "batch-1"}}}
    assert answers[1]["errors"][0]["extensions"]["code"] == "validation-failed"
    assert answers[2]["errors"][0]["extensions"]["code"] == "constraint-violation"
    assert answers[3] == {"data": {"organizations": [{"name": "batch-1"}]}}
    assert answers[4]["errors"][0]["extensions"]["code"] == "validation-failed"
    assert answers[5] == {"data": {"insert_organization_one": {"name": "batch-2"}}}
    assert {"batch-1", "batch-2"} <= names(db)
    assert post(url, []).json() == []


@pytest.mark.parametrize("transport", [HTTPXTransport, RequestsHTTPTransport])
def test_gql_sends_batches(wire, transport):
    url, _ = wire
    client = GqlClient(transport=transport(url=f"{url}/v1/graphql", headers=HEADERS))
    requests = [GraphQLRequest(gql("query($n: String!) { organizations(where: {name: {_eq: $n}}) { name } }"),
                               variable_values={"n": name}) for name in ("taken", "absent", "taken")]
    with client as session:
        assert session.execute_batch(requests) == [
            {"organizations": [{"name": "taken"}]}, {"organizations": []},
            {"organizations": [{"name": "taken"}]}]
        failing = GraphQLRequest(gql('mutation { insert_organization_one(object: {name: "taken"}) { id } }'))
        results = session.transport.execute_batch([requests[0], failing])
    assert results[0].data == {"organizations": [{"name": "taken"}]} and not results[0].errors
    assert results[1].errors[0]["extensions"]["code"] == "constraint-violation"


def test_a_batch_over_the_limit_is_refused_naming_it(wire):
    url, db = wire
    batch = [{"query": f'mutation {{ insert_organization_one(object: {{name: "over-{i}"}}) {{ id }} }}'}
             for i in range(21)]
    error = only_error(post(url, batch))
    assert error["extensions"]["code"] == "validation-failed" and "at most 20" in error["message"]
    assert not any(name.startswith("over-") for name in names(db))


# -- 3. a request is one transaction -------------------------------------------------------

def events_of(db, name: str) -> int:
    with clustore_lite.open(db) as store:
        return store.db.query("SELECT count(*) AS n FROM event WHERE new ->> 'name' = ? "
                              "OR old ->> 'name' = ?", (name, name))[0]["n"]


def test_a_failing_field_rolls_back_the_fields_before_it(wire):
    url, db = wire
    response = post(url, {"query": 'mutation { a: insert_organization_one(object: {name: "tx1"}) { id } '
                                   'b: insert_organization_one(object: {name: "taken"}) { id } }'})
    assert response.json() == {"errors": [only_error(response)]}  # Hasura: errors alone
    assert only_error(response)["extensions"] == {"path": "$.selectionSet.b", "code": "constraint-violation"}
    assert "tx1" not in names(db)
    assert events_of(db, "tx1") == 0  # the event log records committed writes only


def test_fields_after_a_failing_one_do_not_run(wire):
    url, db = wire
    response = post(url, {"query": 'mutation { a: insert_organization_one(object: {name: "taken"}) { id } '
                                   'b: insert_organization_one(object: {name: "tx-after"}) { id } }'})
    assert only_error(response)["extensions"]["path"] == "$.selectionSet.a"
    assert "tx-after" not in names(db) and events_of(db, "tx-after") == 0


def test_a_refused_delete_stops_an_insert_after_it(wire):
    url, db = wire
    with clustore_lite.open(db) as store:
        gus = store.users.create("gus")["id"]
        lab = store.organizations.list(where={"name": {"_eq": "taken"}})[0]
        store.memberships.create(lab["accessId"], "guest", user_id=gus)
    token = jwt.encode({"sub": gus}, JWT_SECRET, "HS256")
    response = post(url, {"query": "mutation($id: uuid!) { a: delete_organization_by_pk(id: $id) { id } "
                                   'b: insert_organization_one(object: {name: "after-refusal"}) { id } }',
                          "variables": {"id": lab["id"]}}, {"X-Clusauth-Token": token})
    assert only_error(response)["extensions"]["code"] == "permission-denied"
    assert "after-refusal" not in names(db) and "taken" in names(db)


def test_the_fields_of_a_request_see_each_other_and_commit_together(wire):
    url, db = wire
    response = post(url, {"query": 'mutation { a: insert_organization_one(object: {name: "tx-a"}) { name } '
                                   'b: update_organization(where: {name: {_eq: "tx-a"}}, _set: {name: "tx-b"}) '
                                   "{ affected_rows } }"})
    assert response.json() == {"data": {"a": {"name": "tx-a"}, "b": {"affected_rows": 1}}}
    assert "tx-b" in names(db) and "tx-a" not in names(db)
    assert events_of(db, "tx-a") == 2  # the insert, and the update (old name)


def test_concurrent_requests_each_commit_whole(wire):
    url, db = wire
    documents = [f'mutation {{ a: insert_organization_one(object: {{name: "par-{i}-a"}}) {{ id }} '
                 f'b: insert_organization_one(object: {{name: "{"taken" if i % 3 == 0 else f"par-{i}-b"}"}}) '
                 "{ id } }" for i in range(12)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda document: post(url, {"query": document}).json(), documents))
    present = names(db)
    for i, answer in enumerate(answers):
        failed = i % 3 == 0
        assert ("errors" in answer) == failed, answer
        assert (f"par-{i}-a" in present) == (not failed)


# -- 4. probes -----------------------------------------------------------------------------

def test_health_and_version_probes_answer_as_hasura_does(wire):
    url, _ = wire
    health = HTTP.get(f"{url}/healthz")
    assert (health.status_code, health.text) == (200, "OK")
    version = HTTP.get(f"{url}/v1/version")
    assert version.status_code == 200
    assert version.json() == {"version": clustore_lite.__version__, "server_type": "clustore-lite"}


# -- 5. an update without an operator ------------------------------------------------------

@pytest.mark.parametrize("field", [
    'update_organization(where: {name: {_eq: "taken"}}) { affected_rows }',
    'update_organization(where: {name: {_eq: "taken"}}, _set: {}) { affected_rows }',
    "update_organization_by_pk(pk_columns: {id: $id}) { id }",
    "update_organization_by_pk(pk_columns: {id: $id}, _set: {}) { id }",
])
def test_an_update_without_an_operator_is_an_error_that_changes_nothing(wire, field):
    url, db = wire
    with clustore_lite.open(db) as store:
        before = store.organizations.list(where={"name": {"_eq": "taken"}})[0]
    variables = "($id: uuid!)" if "$id" in field else ""
    response = post(url, {"query": f"mutation{variables} {{ {field} }}", "variables": {"id": before["id"]}})
    error = only_error(response)
    assert error["extensions"]["code"] == "validation-failed"
    assert error["message"].startswith("at least any one of _set") and error["message"].endswith("is expected")
    with clustore_lite.open(db) as store:
        assert store.organizations.get(before["id"]) == before
    assert events_of(db, "taken") == 1  # its insert only
