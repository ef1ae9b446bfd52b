"""Issue 12, items 5, 6 and 7 as the attacks were made: over GraphQL, against a server
with an admin secret and a JWT secret, its own worker delivering to a real receiver."""

import time

import httpx
import jwt
from receiver import Receiver
from serving import running_server

import clustore_lite
from waiting import wait_for

ADMIN, JWT_SECRET = "acl-admin-secret", "acl-jwt-secret-of-enough-length-for-hs256"



def token(user_id):
    return jwt.encode({"sub": user_id, "exp": int(time.time()) + 600}, JWT_SECRET, "HS256")


def gql(url, query, variables=None, auth=None):
    headers = {"X-Clusauth-Token": auth} if auth else {}
    return httpx.post(f"{url}/v1/graphql", headers=headers, timeout=30,
                      json={"query": query, "variables": variables or {}}).json()


def code(answer):
    return answer["errors"][0]["extensions"]["code"]


def test_the_issues_attacks_through_the_server(tmp_path):
    db = tmp_path / "store.sqlite"
    with clustore_lite.open(db) as store:
        ana, gus, mallory = (store.users.create(n) for n in ("ana", "gus", "mallory"))
        org = store.organizations.create("lab", owner_id=ana.id)
        member = store.memberships.create(org.access_id, "guest", user_id=gus.id)
        shown = store.organizations.create("open-lab", owner_id=ana.id, public="guest")
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with Receiver() as hooks, running_server(db, env=env) as url:
        # item 7: a guest points her webhook at the cloud's metadata service
        answer = gql(url, 'mutation($id: uuid!) { update_membership_by_pk(pk_columns: {id: $id}, '
                     '_set: {follow: true, webhook: "http://169.254.169.254/latest"}) { id } }',
                     {"id": member.id}, token(gus.id))
        assert code(answer) == "permission-denied" and "link-local" in answer["errors"][0]["message"]
        # item 5: she follows with her own webhook, and gets only what she may read
        answer = gql(url, 'mutation($id: uuid!, $hook: String!) { update_membership_by_pk('
                     'pk_columns: {id: $id}, _set: {follow: true, webhook: $hook}) { id } }',
                     {"id": member.id, "hook": hooks.url("/gus")}, token(gus.id))
        assert "errors" not in answer, answer
        track = ('mutation($org: uuid!, $kind: String!) { insert_tracking_one(object: '
                 '{kind: $kind, organizationId: $org, payload: {secret: 42}}) { id } }')
        assert "errors" not in gql(url, track, {"org": org.id, "kind": "salary"}, token(ana.id))
        assert "errors" not in gql(url, track, {"org": org.id, "kind": "mine"}, token(gus.id))
        # item 6: a user with no role in the lab writes trackings into it
        assert code(gql(url, track, {"org": org.id, "kind": "spam"}, token(mallory.id))) \
            == "permission-denied"
        # item 5: an anonymous caller inserts a following membership on a public access
        answer = gql(url, 'mutation($a: uuid!, $u: uuid!, $hook: String!) { insert_membership_one('
                     'object: {accessId: $a, userId: $u, role: "guest", follow: true, '
                     'webhook: $hook}) { id } }',
                     {"a": shown.access_id, "u": mallory.id, "hook": hooks.url("/anon")})
        assert code(answer) == "permission-denied"

        kinds = lambda: [b["event"]["data"]["new"]["kind"] for b in hooks.bodies("/gus")  # noqa: E731
                         if b["table"]["name"] == "tracking"]
        wait_for(lambda: "mine" in kinds(), what="gus's own tracking")
        with clustore_lite.open(db) as store:
            wait_for(lambda: store.event_deliveries.count(status="pending") == 0,
                     what="every delivery to be judged")
            assert store.event_deliveries.count(status="withheld") == 1
        assert kinds() == ["mine"] and hooks.bodies("/anon") == []
