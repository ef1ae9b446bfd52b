"""SPEC section 4 through the real server: the same generated matrix as
test_access.py, asked over HTTP with JWTs, resource tokens and the admin secret."""

import time

import jwt
import pyarrow as pa
import pytest

import clustore_lite
from access_matrix import OPERATIONS, cases, expected, setup
from serving import HTTP, running_server

CASES = cases()
ADMIN, JWT_SECRET = "admin-secret-for-tests", "jwt-secret-for-tests"
FIELD = {"organization": "organization", "team": "team", "dataset": "dataset", "task": "task"}
PLURAL = {"organization": "organizations", "team": "teams", "dataset": "datasets", "task": "tasks"}


def token_for(user_id: str, secret: str = JWT_SECRET, **claims) -> str:
    return jwt.encode({"sub": user_id, "exp": int(time.time()) + 600, **claims}, secret, "HS256")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    db = tmp_path_factory.mktemp("access-server") / "store.sqlite"
    with clustore_lite.open(db) as store:
        caller = store.users.create("caller")["id"]
        for case in CASES:
            setup(store, case, caller)
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with running_server(db, env=env) as url:
        yield url, caller


class Http:
    def __init__(self, url: str, headers: dict):
        self.url, self.headers = url, headers

    def gql(self, query: str, variables: dict | None = None) -> dict:
        response = HTTP.post(f"{self.url}/v1/graphql", json={"query": query, "variables": variables or {}},
                              headers=self.headers, timeout=30)
        assert response.status_code < 500
        return response.json()


def caller_http(url, caller, case) -> Http:
    if case.grant == "token":
        return Http(url, {"X-Clusauth-Token": case.ids["token"]} if case.ids["token"] else {})
    return Http(url, {"X-Clusauth-Token": token_for(caller)})


def attempt(http: Http, admin: Http, case, operation) -> bool:
    ids, kind = case.ids, case.kind
    one, many = FIELD[kind], PLURAL[kind]
    if operation == "read":
        return _data(http.gql(f"query($id: uuid!) {{ {one}(id: $id) {{ id }} }}", {"id": ids["target"]}))[one] is not None
    if operation == "list":
        return ids["target"] in {r["id"] for r in _data(http.gql(f"{{ {many} {{ id }} }}"))[many]}
    if operation == "aggregate":
        answer = http.gql(f"query($id: uuid!) {{ {many}_aggregate(where: {{id: {{_eq: $id}}}}) "
                          "{ aggregate { count } } }", {"id": ids["target"]})
        return _data(answer)[f"{many}_aggregate"]["aggregate"]["count"] == 1
    if operation == "relationship":
        rows = _data(http.gql(f"query($id: uuid!) {{ {many}(where: {{id: {{_eq: $id}}}}) {{ access {{ id }} }} }}",
                              {"id": ids["target"]}))[many]
        return bool(rows) and rows[0]["access"] is not None
    if operation == "read_access":
        return _data(http.gql("query($id: uuid!) { access(id: $id) { id } }", {"id": ids["access"]}))["access"] is not None
    if operation.endswith("Token"):
        access = _data(http.gql(f"query($id: uuid!) {{ access(id: $id) {{ {operation} }} }}",
                                {"id": ids["access"]}))["access"]
        return access is not None and access[operation] is not None
    if operation.startswith("invite_"):
        role = operation.split("_")[1]
        answer = http.gql("mutation($a: uuid!, $u: uuid!, $r: String!) { insert_membership_one("
                          "object: {accessId: $a, userId: $u, role: $r}) { id } }",
                          {"a": ids["access"], "u": ids["invitee"], "r": role})
        created = _allowed(answer, "insert_membership_one")
        if created:
            _data(admin.gql("mutation($id: uuid!) { delete_membership_by_pk(id: $id) { id } }",
                            {"id": answer["data"]["insert_membership_one"]["id"]}))
        return created
    if operation == "update":
        answer = http.gql(f"mutation($id: uuid!) {{ update_{one}_by_pk(pk_columns: {{id: $id}}, "
                          f"_set: {{name: \"target\"}}) {{ id }} }}", {"id": ids["target"]})
        return _allowed(answer, f"update_{one}_by_pk")
    if operation == "append":
        frame = _frame(admin, case)
        if frame is None:
            return False
        batch = pa.record_batch({"x": pa.array([7], pa.int64())} if kind == "dataset"
                                else {"c": pa.array([7.0])})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        response = HTTP.post(f"{http.url}/v1/dataframes/{frame}/chunks", content=sink.getvalue().to_pybytes(),
                              headers={**http.headers,
                                       "content-type": "application/vnd.apache.arrow.stream"})
        assert response.status_code in (200, 403, 404), response.text
        return response.status_code == 200
    if operation == "delete":
        answer = http.gql(f"mutation($id: uuid!) {{ delete_{one}_by_pk(id: $id) {{ id }} }}", {"id": ids["target"]})
        return _allowed(answer, f"delete_{one}_by_pk")
    raise AssertionError(operation)


def _frame(admin: Http, case):
    if case.kind == "dataset":
        return _data(admin.gql("query($id: uuid!) { dataset(id: $id) { dataframeId } }",
                               {"id": case.ids["target"]}))["dataset"]["dataframeId"]
    if case.kind == "task":
        return _data(admin.gql("query($id: uuid!) { task(id: $id) { centroidsId } }",
                               {"id": case.ids["target"]}))["task"]["centroidsId"]
    return None


def _data(answer: dict) -> dict:
    assert "errors" not in answer, answer
    return answer["data"]


def _allowed(answer: dict, field: str) -> bool:
    if "errors" in answer:
        assert answer["errors"][0]["extensions"]["code"] in ("permission-denied", "not-found"), answer
        return False
    return answer["data"][field] is not None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matrix_through_graphql(world, case):
    url, caller = world
    http, admin = caller_http(url, caller, case), Http(url, {"X-Hasura-Admin-Secret": ADMIN})
    got = {op: attempt(http, admin, case, op) for op in OPERATIONS}  # delete runs last
    wrong = {op: f"got {got[op]}, expected {expected(case, op)}" for op in OPERATIONS
             if got[op] != expected(case, op)}
    assert not wrong


@pytest.mark.parametrize("headers, code", [
    ({"X-Clusauth-Token": token_for("00000000-0000-4000-8000-000000000001", secret="wrong")}, "invalid-jwt"),
    ({"X-Clusauth-Token": jwt.encode({"sub": "00000000-0000-4000-8000-000000000001", "exp": 1}, JWT_SECRET, "HS256")},
     "invalid-jwt"),
    ({"X-Clusauth-Token": "a.b.c"}, "invalid-jwt"),
    ({"X-Clusauth-Token": jwt.encode({"sub": "x"}, JWT_SECRET, "HS256")}, "invalid-jwt"),
    ({"X-Clusauth-Token": "not-a-token-of-any-access"}, "invalid-token"),
    ({"X-Hasura-Admin-Secret": "wrong"}, "access-denied"),
])
def test_bad_credentials_are_refused(world, headers, code):
    url, _ = world
    response = HTTP.post(f"{url}/v1/graphql", json={"query": "{ organizations { id } }"}, headers=headers)
    assert response.status_code == 200  # as Hasura: clients then see extensions.code
    assert response.json()["errors"][0]["extensions"] == {"path": "$", "code": code}


def test_jwt_email_creates_the_user_on_first_sight(world):
    url, _ = world
    token = jwt.encode({"email": "new@example.org", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    headers = {"X-Clusauth-Token": token}
    created = HTTP.post(f"{url}/v1/graphql", headers=headers, json={
        "query": 'mutation { insert_organization_one(object: {name: "by-email"}) { owner { email } } }'}).json()
    assert created["data"]["insert_organization_one"]["owner"]["email"] == "new@example.org"


def test_anonymous_sees_public_organizations_only(world):
    url, _ = world
    names = {o["name"] for o in HTTP.post(f"{url}/v1/graphql", json={"query": "{ organizations { name } }"})
             .json()["data"]["organizations"]}
    admin = Http(url, {"X-Hasura-Admin-Secret": ADMIN})
    public = _data(admin.gql("{ organizations(where: {access: {public: {_is_null: false}}}) { name } }"))
    assert names == {o["name"] for o in public["organizations"]} and names


def test_websocket_with_bad_credentials_is_closed_with_4403(world):
    import asyncio
    import json

    import websockets

    url, _ = world

    async def connect():
        async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                      subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"headers": {"X-Clusauth-Token": "stale-token"}}}))
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code, closed.rcvd.reason
        return None

    code, reason = asyncio.run(connect())
    assert code == 4403 and "token" in reason


def test_subscription_as_a_user_sees_only_what_the_user_may(world):
    import asyncio
    import json

    import websockets

    url, caller = world

    async def first_answer(headers):
        async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                      subprotocols=["graphql-transport-ws"]) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {"headers": headers}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                      "payload": {"query": "subscription { datasets { id } }"}}))
            return {d["id"] for d in json.loads(await ws.recv())["payload"]["data"]["datasets"]}

    user_headers = {"X-Clusauth-Token": token_for(caller)}
    as_user = asyncio.run(first_answer(user_headers))
    as_admin = asyncio.run(first_answer({"X-Hasura-Admin-Secret": ADMIN}))
    over_http = {d["id"] for d in _data(Http(url, user_headers).gql("{ datasets { id } }"))["datasets"]}
    assert as_user == over_http and as_user < as_admin


def test_regenerating_a_token_over_graphql_invalidates_the_old_one(world):
    url, caller = world
    user = Http(url, {"X-Clusauth-Token": token_for(caller)})
    org = _data(user.gql('mutation { insert_organization_one(object: {name: "regenerating"}) '
                         "{ access { id guestToken } } }"))["insert_organization_one"]["access"]
    old = org["guestToken"]
    assert HTTP.post(f"{url}/v1/graphql", json={"query": "{ teams { id } }"},
                      headers={"X-Clusauth-Token": old}).status_code == 200
    new = _data(user.gql('mutation($id: uuid!) { regenerate_access_token(id: $id, role: "guest") { guestToken } }',
                         {"id": org["id"]}))["regenerate_access_token"]["guestToken"]
    assert new and new != old
    refused = HTTP.post(f"{url}/v1/graphql", json={"query": "{ teams { id } }"}, headers={"X-Clusauth-Token": old})
    assert refused.status_code == 200 and refused.json()["errors"][0]["extensions"]["code"] == "invalid-token"
    [guest_case] = [c for c in CASES if c.name == "team-membership-guest"]
    denied = user.gql('mutation($id: uuid!) { regenerate_access_token(id: $id, role: "guest") { id } }',
                      {"id": guest_case.ids["access"]})
    assert denied["errors"][0]["extensions"]["code"] == "permission-denied"
