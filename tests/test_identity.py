"""Identities (issue 12, items 3, 4 and 8): who a JWT's email maps to, credentials that
lapse on an open WebSocket, and Hasura's impersonation headers; library tests on real
store files, server tests against the real server over HTTP and WebSocket."""

import asyncio
import json
import time
import uuid

import apsw
import httpx
import jwt
import pytest
import websockets

import clustore_lite
from clustore_lite.access.http import Authenticator
from clustore_lite.db.migrations import MIGRATIONS
from serving import HTTP, running_server

ADMIN, JWT_SECRET = "identity-admin-secret", "identity-jwt-secret-of-32-bytes-or-more"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
DEADLINE = 30  # seconds to wait for a condition on a busy machine


def signed(exp_in: float = 600, **claims) -> str:
    return jwt.encode({"exp": int(time.time() + exp_in), **claims}, JWT_SECRET, "HS256")


# -- item 3: email squatting, in the library -------------------------------------------

def test_a_user_cannot_set_an_email_it_has_not_proved(store):
    mallory = store.users.create("mallory")
    with pytest.raises(clustore_lite.PermissionDenied):
        store.as_user(mallory.id).users.update(mallory.id, email="newhire@a.example")
    assert store.users.get(mallory.id).email is None


def test_a_user_sets_the_email_it_proved_and_clears_its_own(store):
    ana = store.users.create("ana")
    as_ana = store.as_user(ana.id, proved_email="ana@a.example")
    assert as_ana.users.update(ana.id, email="ana@a.example").email == "ana@a.example"
    assert as_ana.users.update(ana.id, name="Ana", email="ana@a.example").name == "Ana"  # unchanged: fine
    with pytest.raises(clustore_lite.PermissionDenied):
        as_ana.users.update(ana.id, email="other@a.example")
    assert store.as_user(ana.id).users.update(ana.id, email=None).email is None


def test_refusing_an_email_tells_nothing_about_who_holds_it(store):
    store.users.create("olga", "taken@a.example")
    mallory = store.users.create("mallory")
    messages = []
    for address in ("taken@a.example", "free@a.example"):
        with pytest.raises(clustore_lite.PermissionDenied) as refused:
            store.as_user(mallory.id).users.update(mallory.id, email=address)
        messages.append(str(refused.value).replace(address, "ADDRESS"))
    assert messages[0] == messages[1]


def version_2_store(tmp_path, users: list[tuple[str, str, str]]):
    """A store file as clustore-lite wrote it before migrations 3 and 4, with users
    (id, email, updatedAt), all created on 2024-01-01."""
    path = tmp_path / "v2.sqlite"
    conn = apsw.Connection(str(path))
    for step in MIGRATIONS[:2]:
        conn.execute(step)
    conn.execute("PRAGMA user_version = 2")
    for user_id, email, updated in users:
        conn.execute('INSERT INTO "user" VALUES (?, ?, ?, ?, ?)',
                     (user_id, email.split("@")[0], email, "2024-01-01", updated))
    conn.close()
    return path


def test_an_email_claim_maps_only_to_a_proved_email(tmp_path):
    """A store of schema version 2: its emails were accepted under the old rules, so
    migration 4 trusts only those no one changed since the user was created."""
    ids = {name: str(uuid.uuid4()) for name in ("kept", "changed")}
    path = version_2_store(tmp_path, [(ids["kept"], "kept@a.example", "2024-01-01"),
                                      (ids["changed"], "newhire@a.example", "2024-02-01")])
    with clustore_lite.open(path) as store:
        auth = Authenticator(store, jwt_secret=JWT_SECRET)

        def user_of(email):
            return auth.store_for({"X-Clusauth-Token": signed(email=email)}).caller.user_id

        assert user_of("kept@a.example") == ids["kept"]
        newhire = user_of("newhire@a.example")
        assert newhire != ids["changed"]  # the unproved holder does not inherit the sign-in
        assert store.users.get(newhire).email == "newhire@a.example"
        assert store.users.get(ids["changed"]).email is None  # ... and gives the address up
        assert user_of("newhire@a.example") == newhire


def test_a_sub_claim_does_not_take_an_email_another_user_proved(store):
    olga = store.users.create("olga", "shared@a.example")
    auth = Authenticator(store, jwt_secret=JWT_SECRET)
    sub = str(uuid.uuid4())
    caller = auth.store_for({"X-Clusauth-Token": signed(sub=sub, email="shared@a.example")}).caller
    assert caller.user_id == sub and store.users.get(sub).email is None
    assert store.users.get(olga.id).email == "shared@a.example"


# -- the server ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    db = tmp_path_factory.mktemp("identity") / "store.sqlite"
    with clustore_lite.open(db) as store:
        olga, gus, other = (store.users.create(n)["id"] for n in ("olga", "gus", "other"))
        store.users.create("holder", "taken@a.example")
        lab = store.organizations.create("lab", owner_id=olga)
        store.organizations.create("elsewhere", owner_id=other)
        store.organizations.create("open", owner_id=other, public="guest")
        store.memberships.create(lab.access_id, "guest", user_id=gus)
        store.datasets.create(lab.id, "points", {"x": [1, 2]})
    env = {"CLUSTORE_ADMIN_SECRET": ADMIN, "CLUSTORE_JWT_SECRET": JWT_SECRET}
    with running_server(db, env=env) as url:
        yield {"url": url, "db": db, "olga": olga, "gus": gus, "other": other, "lab": lab.id,
               "lab_access": lab.access_id}


def post(url: str, query: str, variables: dict | None = None, **headers) -> httpx.Response:
    headers = {k.replace("_", "-"): v for k, v in headers.items()}
    return HTTP.post(f"{url}/v1/graphql", json={"query": query, "variables": variables or {}},
                      headers=headers, timeout=30)


def data(response: httpx.Response) -> dict:
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


ADMIN_HEADERS = {"X_Hasura_Admin_Secret": ADMIN}
MY_ID = 'mutation($n: String!) { insert_organization_one(object: {name: $n}) { owner { id } } }'
SET_EMAIL = ('mutation($id: uuid!, $e: String) { update_user_by_pk(pk_columns: {id: $id}, '
             '_set: {email: $e}) { id email } }')


def my_id(url: str, token: str) -> str:
    answer = data(post(url, MY_ID, {"n": f"org-{uuid.uuid4()}"}, X_Clusauth_Token=token))
    return answer["insert_organization_one"]["owner"]["id"]


# -- item 3: email squatting, through the server --------------------------------------

def test_a_squatted_email_does_not_hijack_a_later_sign_in(world):
    url = world["url"]
    mallory_token = signed(sub=str(uuid.uuid4()), name="mallory")
    mallory = my_id(url, mallory_token)
    refused = post(url, SET_EMAIL, {"id": mallory, "e": "newhire@b.example"},
                   X_Clusauth_Token=mallory_token).json()
    assert refused["errors"][0]["extensions"]["code"] == "permission-denied"
    newhire = my_id(url, signed(email="newhire@b.example"))
    assert newhire != mallory


def test_the_answer_to_a_taken_email_is_the_answer_to_a_free_one(world):
    url = world["url"]
    token = signed(sub=str(uuid.uuid4()), name="prober")
    me = my_id(url, token)
    answers = []
    for address in ("taken@a.example", "nobody@a.example"):
        body = post(url, SET_EMAIL, {"id": me, "e": address}, X_Clusauth_Token=token).json()
        answers.append(json.dumps(body).replace(address, "ADDRESS"))
    assert answers[0] == answers[1] and "permission-denied" in answers[0]


def test_a_user_sets_the_email_its_jwt_carries(world):
    url = world["url"]
    sub = str(uuid.uuid4())
    created = data(post(url, 'mutation($id: uuid!) { insert_user_one(object: {id: $id, name: "late"}) { id } }',
                        {"id": sub}, **ADMIN_HEADERS))
    assert created["insert_user_one"]["id"] == sub
    token = signed(sub=sub, email="late@b.example")
    assert data(post(url, SET_EMAIL, {"id": sub, "e": "late@b.example"},
                     X_Clusauth_Token=token))["update_user_by_pk"]["email"] == "late@b.example"
    assert my_id(url, signed(email="late@b.example")) == sub


# -- item 8: Hasura's impersonation ----------------------------------------------------------

TOKENS = "{ accesses { id adminToken guestToken } }"


def as_seen(response: httpx.Response) -> list:
    return sorted(json.dumps(a, sort_keys=True) for a in data(response)["accesses"])


def test_the_admin_secret_with_a_role_and_user_id_acts_as_that_user(world):
    url, gus = world["url"], world["gus"]
    impersonated = post(url, TOKENS, **ADMIN_HEADERS, X_Hasura_Role="user", X_Hasura_User_Id=gus)
    as_gus = post(url, TOKENS, X_Clusauth_Token=signed(sub=gus))
    assert as_seen(impersonated) == as_seen(as_gus)
    assert all(a["adminToken"] is None for a in data(impersonated)["accesses"])
    everything = as_seen(post(url, TOKENS, **ADMIN_HEADERS))
    assert len(everything) > len(as_seen(impersonated))
    assert as_seen(post(url, TOKENS, **ADMIN_HEADERS, X_Hasura_Role="admin", X_Hasura_User_Id=gus)) == everything
    assert as_seen(post(url, TOKENS, **ADMIN_HEADERS, X_Hasura_Role="anonymous")) == as_seen(post(url, TOKENS))


def test_an_impersonated_write_is_the_users(world):
    url, gus = world["url"], world["gus"]
    answer = data(post(url, MY_ID, {"n": "by-impersonation"}, **ADMIN_HEADERS,
                       X_Hasura_Role="user", X_Hasura_User_Id=gus))
    assert answer["insert_organization_one"]["owner"]["id"] == gus
    with clustore_lite.open(world["db"]) as store:  # the event log says who wrote it
        [event] = store.events.list(where={"tableName": {"_eq": "organization"}, "op": {"_eq": "INSERT"},
                                           "resourceId": {"_eq": store.organizations.list(
                                               name="by-impersonation")[0].id}})
    assert event.session_variables == {"x-hasura-role": "user", "x-hasura-user-id": gus}
    refused = post(url, 'mutation($a: uuid!, $u: uuid!) { insert_membership_one(object: '
                   '{accessId: $a, userId: $u, role: "admin"}) { id } }',
                   {"a": world["lab_access"], "u": gus}, **ADMIN_HEADERS,
                   X_Hasura_Role="user", X_Hasura_User_Id=gus).json()
    assert refused["errors"][0]["extensions"]["code"] == "permission-denied"


@pytest.mark.parametrize("headers, code", [
    ({"X-Hasura-Role": "editor"}, "invalid-headers"),
    ({"X-Hasura-Role": "user"}, "invalid-headers"),
    ({"X-Hasura-Role": "user", "X-Hasura-User-Id": "not-an-id"}, "invalid-headers"),
    ({"X-Hasura-Role": "user", "X-Hasura-User-Id": "00000000-0000-4000-8000-00000000dead"}, "invalid-headers"),
])
def test_bad_impersonation_headers_are_refused_with_a_code(world, headers, code):
    response = HTTP.post(f"{world['url']}/v1/graphql", json={"query": TOKENS},
                          headers={"X-Hasura-Admin-Secret": ADMIN, **headers})
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == code
    assert "x-hasura" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("who", ["anonymous", "jwt", "token"])
@pytest.mark.parametrize("role", ["admin", "user"])
def test_without_the_admin_secret_impersonation_is_refused(world, who, role):
    url, gus, olga = world["url"], world["gus"], world["olga"]
    credentials = {"anonymous": {}, "jwt": {"X-Clusauth-Token": signed(sub=gus)},
                   "token": {"X-Clusauth-Token": lab_guest_token(url, world)}}[who]
    response = HTTP.post(f"{url}/v1/graphql", json={"query": TOKENS},
                          headers={**credentials, "X-Hasura-Role": role, "X-Hasura-User-Id": olga})
    assert response.status_code == 200
    assert response.json()["errors"][0]["extensions"]["code"] == "access-denied"


def test_restating_ones_own_role_needs_no_admin_secret(world):
    url, gus = world["url"], world["gus"]
    token = signed(sub=gus)
    plain = as_seen(post(url, TOKENS, X_Clusauth_Token=token))
    assert as_seen(post(url, TOKENS, X_Clusauth_Token=token, X_Hasura_Role="user",
                        X_Hasura_User_Id=gus)) == plain
    assert as_seen(post(url, TOKENS, X_Hasura_Role="anonymous")) == as_seen(post(url, TOKENS))


def test_without_an_admin_secret_every_tokenless_request_may_impersonate(tmp_path):
    with clustore_lite.open(tmp_path / "open.sqlite") as store:
        gus = store.users.create("gus").id
        store.organizations.create("theirs")
    with running_server(tmp_path / "open.sqlite") as url:  # the embedded default: 127.0.0.1 only
        assert len(data(post(url, TOKENS))["accesses"]) == 1  # the store admin
        assert data(post(url, TOKENS, X_Hasura_Role="user", X_Hasura_User_Id=gus))["accesses"] == []


def lab_guest_token(url: str, world: dict) -> str:
    answer = data(post(url, "query($id: uuid!) { access(id: $id) { guestToken } }",
                       {"id": world["lab_access"]}, **ADMIN_HEADERS))
    return answer["access"]["guestToken"]


# -- WebSocket clients ----------------------------------------------------------------------

class Socket:
    """One GraphQL WebSocket client speaking either subprotocol."""

    def __init__(self, ws, protocol: str):
        self.ws, self.protocol = ws, protocol
        self.legacy = protocol == "graphql-ws"

    @classmethod
    async def open(cls, url: str, protocol: str, headers: dict) -> "Socket":
        ws = await websockets.connect(url.replace("http", "ws") + "/v1/graphql", subprotocols=[protocol])
        socket = cls(ws, protocol)
        await ws.send(json.dumps({"type": "connection_init", "payload": {"headers": headers}}))
        return socket

    async def start(self, op_id: str, query: str, variables: dict | None = None) -> None:
        kind = "start" if self.legacy else "subscribe"
        await self.ws.send(json.dumps({"id": op_id, "type": kind,
                                       "payload": {"query": query, "variables": variables or {}}}))

    async def next(self) -> dict:
        """The next message other than keep-alives; raises ConnectionClosed at the end."""
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), DEADLINE))
            if message["type"] not in ("ka", "ping", "pong"):
                return message

    async def payload(self, op_id: str) -> dict:
        message = await self.next()
        assert message.get("id") == op_id and message["type"] in ("next", "data"), message
        return message["payload"]

    async def closed(self) -> tuple[int, str, list]:
        """Read until the server closes: (code, reason, messages read meanwhile)."""
        seen = []
        try:
            while True:
                seen.append(await self.next())
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason, seen


async def acked(url: str, protocol: str, headers: dict) -> Socket:
    socket = await Socket.open(url, protocol, headers)
    assert (await socket.next())["type"] == "connection_ack"
    return socket


# -- item 8 over WebSocket ------------------------------------------------------------------

@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_impersonation_headers_in_connection_init(world, protocol):
    url, gus = world["url"], world["gus"]

    async def run():
        socket = await acked(url, protocol, {"X-Hasura-Admin-Secret": ADMIN, "X-Hasura-Role": "user",
                                             "X-Hasura-User-Id": gus})
        await socket.start("1", "subscription" + TOKENS)
        seen = (await socket.payload("1"))["data"]["accesses"]
        await socket.ws.close()
        return sorted(json.dumps(a, sort_keys=True) for a in seen)

    assert asyncio.run(run()) == as_seen(post(url, TOKENS, X_Clusauth_Token=signed(sub=gus)))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unknown_role_in_connection_init_closes_with_4403(world, protocol):
    async def run():
        socket = await Socket.open(world["url"], protocol, {"X-Hasura-Admin-Secret": ADMIN,
                                                            "X-Hasura-Role": "editor"})
        return await socket.closed()

    code, reason, _ = asyncio.run(run())
    assert code == 4403 and "x-hasura-role" in reason


# -- item 4: credentials that lapse on an open WebSocket -------------------------------

def new_org(url: str, name: str) -> dict:
    answer = data(post(url, 'mutation($n: String!) { insert_organization_one(object: {name: $n}) '
                       "{ id access { id guestToken } } }", {"n": name}, **ADMIN_HEADERS))
    return answer["insert_organization_one"]


def regenerate(url: str, access_id: str) -> None:
    data(post(url, 'mutation($id: uuid!) { regenerate_access_token(id: $id, role: "guest") { id } }',
              {"id": access_id}, **ADMIN_HEADERS))


ORGS = "subscription { organizations { id name } }"
ORG = "subscription($id: uuid!) { organizations(where: {id: {_eq: $id}}) { id name } }"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_regenerating_a_token_closes_the_websockets_that_use_it(world, protocol):
    url = world["url"]
    mine, unrelated = new_org(url, f"mine-{protocol}"), new_org(url, f"unrelated-{protocol}")

    async def run():
        socket = await acked(url, protocol, {"X-Clusauth-Token": mine["access"]["guestToken"]})
        await socket.start("1", ORG, {"id": mine["id"]})
        first = (await socket.payload("1"))["data"]["organizations"]
        assert [o["id"] for o in first] == [mine["id"]]
        await asyncio.to_thread(regenerate, url, unrelated["access"]["id"])  # not this token
        renamed = await asyncio.to_thread(
            post, url, 'mutation($id: uuid!, $n: String!) { update_organization_by_pk('
            'pk_columns: {id: $id}, _set: {name: $n}) { id } }',
            {"id": mine["id"], "n": f"renamed-{protocol}"}, **ADMIN_HEADERS)
        data(renamed)
        while (await socket.payload("1"))["data"]["organizations"][0]["name"] != f"renamed-{protocol}":
            pass  # still served: the unrelated regeneration left this token alone
        await asyncio.to_thread(regenerate, url, mine["access"]["id"])
        return await socket.closed()

    code, reason, after = asyncio.run(run())
    assert code == 4403 and "token" in reason, (code, reason)
    shown = [m for m in after if m["type"] in ("next", "data")]
    assert all(not m["payload"].get("data", {}).get("organizations") for m in shown), shown


INVITE = ('mutation($a: uuid!, $u: uuid!) { insert_membership_one(object: {accessId: $a, '
          'userId: $u, role: "guest"}) { id } }')


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_regenerated_token_runs_nothing_more_on_its_open_websocket(world, protocol):
    url, other = world["url"], world["other"]
    org = new_org(url, f"invites-{protocol}")

    async def run():
        socket = await acked(url, protocol, {"X-Clusauth-Token": org["access"]["guestToken"]})
        await asyncio.to_thread(regenerate, url, org["access"]["id"])
        try:
            await socket.start("1", "query { accesses { guestToken } }")
            await socket.start("2", INVITE, {"a": org["access"]["id"], "u": other})
        except websockets.ConnectionClosed:
            pass  # closed already: nothing ran
        return await socket.closed()

    code, reason, after = asyncio.run(run())
    assert code == 4403 and "token" in reason, (code, reason)
    assert not [m for m in after if m["type"] in ("next", "data") and m["payload"].get("data")], after
    members = data(post(url, "query($a: uuid!) { memberships(where: {accessId: {_eq: $a}}) { id } }",
                        {"a": org["access"]["id"]}, **ADMIN_HEADERS))["memberships"]
    assert members == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_expired_jwt_closes_the_websocket(world, protocol):
    url, gus = world["url"], world["gus"]

    async def run(lifetime):
        socket = await Socket.open(url, protocol, {"X-Clusauth-Token": signed(lifetime, sub=gus)})
        try:
            if (await socket.next())["type"] != "connection_ack":
                return None
            await socket.start("1", ORGS)
            first = await socket.payload("1")
        except websockets.ConnectionClosed:
            return None  # expired before we got this far: a busy machine
        assert world["lab"] in [o["id"] for o in first["data"]["organizations"]]
        return await socket.closed()

    lifetime, outcome = 3, None
    while outcome is None:  # lengthen the JWT's life until the subscription got its first answer
        outcome = asyncio.run(run(lifetime))
        lifetime *= 2
        assert lifetime < 200
    code, reason, _ = outcome
    assert code == 4403 and "expired" in reason, (code, reason)


# -- item 4 in the library: a token's view ends with the token ---------------------------

def test_a_token_view_loses_its_rights_when_the_token_is_regenerated(store, org):
    guest = store.users.create("gus")
    view = store.with_token(store.accesses.get(org.access_id).contributor_token)
    assert [o.id for o in view.organizations.list()] == [org.id]
    store.accesses.regenerate_token(org.access_id, "contributor")
    assert view.organizations.list() == [] and view.accesses.count() == 0
    with pytest.raises(clustore_lite.PermissionDenied):
        view.memberships.create(org.access_id, "guest", user_id=guest.id)
    fresh = store.with_token(store.accesses.get(org.access_id).contributor_token)
    assert [o.id for o in fresh.organizations.list()] == [org.id]


def test_resetting_an_unproved_email_proves_it_only_for_the_admin(tmp_path):
    """A legacy (unproved) email stays unproved when its user saves it again; the
    store admin setting it proves it."""
    legacy = str(uuid.uuid4())
    path = version_2_store(tmp_path, [(legacy, "legacy@a.example", "2024-02-01")])
    with clustore_lite.open(path) as store:
        auth = Authenticator(store, jwt_secret=JWT_SECRET)
        store.as_user(legacy).users.update(legacy, name="Legacy", email="legacy@a.example")
        assert store.users.holder("legacy@a.example") == (legacy, False)
        store.users.update(legacy, email="legacy@a.example")
        assert store.users.holder("legacy@a.example") == (legacy, True)
        token = signed(email="legacy@a.example")
        assert auth.store_for({"X-Clusauth-Token": token}).caller.user_id == legacy
