"""Events through the real server: a mutation made by a JWT user reaches a webhook via
the server's own delivery worker, with the user's session variables; the event log is
the store admin's, over GraphQL."""

import time

import httpx
import jwt

import clustore_lite
from receiver import Receiver
from serving import running_server

ADMIN, JWT_SECRET = "events-admin", "events-jwt"


def wait_for(condition, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_mutations_reach_webhooks_with_the_callers_session(tmp_path):
    db = tmp_path / "store.sqlite"
    with Receiver() as receiver:
        with clustore_lite.open(db) as store:
            user = store.users.create("ana")
            org = store.organizations.create("lab", owner_id=user["id"], webhook=receiver.url())
        token = jwt.encode({"sub": user["id"], "exp": int(time.time()) + 600}, JWT_SECRET, "HS256")
        env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
        with running_server(db, env=env) as url:
            answer = httpx.post(f"{url}/v1/graphql", headers={"X-Clusauth-Token": token}, json={
                "query": 'mutation($org: uuid!) { insert_dataset_one(object: {name: "d", organizationId: $org}) { id } }',
                "variables": {"org": org["id"]}}).json()
            dataset_id = answer["data"]["insert_dataset_one"]["id"]
            assert wait_for(lambda: any(b["table"]["name"] == "dataset" for b in receiver.bodies()))
            [body] = [b for b in receiver.bodies() if b["table"]["name"] == "dataset"]
            assert body["trigger"]["name"] == "clustore_dataset" and body["event"]["op"] == "INSERT"
            assert body["event"]["data"]["new"]["id"] == dataset_id and body["event"]["data"]["old"] is None
            assert body["event"]["session_variables"] == {"x-hasura-role": "user", "x-hasura-user-id": user["id"]}
            assert body["delivery_info"]["current_retry"] == 0

            admin = {"X-Hasura-Admin-Secret": ADMIN}
            log = httpx.post(f"{url}/v1/graphql", headers=admin, json={"query":
                '{ events(where: {tableName: {_eq: "dataset"}}) { id op status deliveries { url status tries } } }'}).json()
            [event] = log["data"]["events"]
            assert event["id"] == body["id"] and event["deliveries"][0]["url"] == receiver.url()
            assert wait_for(lambda: httpx.post(f"{url}/v1/graphql", headers=admin, json={"query":
                "query($id: uuid!) { event(id: $id) { status } }", "variables": {"id": event["id"]}})
                .json()["data"]["event"]["status"] == "delivered")
            hidden = httpx.post(f"{url}/v1/graphql", headers={"X-Clusauth-Token": token},
                                json={"query": "{ events { id } }"}).json()
            assert hidden["data"]["events"] == []
            denied = httpx.post(f"{url}/v1/graphql", headers={"X-Clusauth-Token": token}, json={
                "query": "mutation($id: uuid!) { redeliver_event(id: $id) { id } }", "variables": {"id": event["id"]}}).json()
            assert denied["errors"][0]["extensions"]["code"] == "permission-denied"
            again = httpx.post(f"{url}/v1/graphql", headers=admin, json={
                "query": "mutation($id: uuid!) { redeliver_event(id: $id) { id } }", "variables": {"id": event["id"]}}).json()
            assert again["data"]["redeliver_event"]["id"] == event["id"]
            assert wait_for(lambda: [b["id"] for b in receiver.bodies()].count(event["id"]) == 2)
