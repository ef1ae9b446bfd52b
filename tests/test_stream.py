"""Streaming subscriptions (`<plural>_stream`, issue 14 item 9) over the real server:
both WebSocket protocols by hand and through the gql client, a writer inserting rows
while subscribed, Hasura's cursor rules and errors, visibility and column masks."""

import asyncio
import json
import threading
from datetime import datetime

import httpx
import pytest
from gql import Client as GqlClient
from gql import gql
from gql.transport.websockets import WebsocketsTransport
from websockets.sync import client as ws_client

from clustore_lite.catalog import TABLES
from clustore_lite.graphql.sdl import cursor_columns
from clustore_lite.mirror.hasura import ORDER, table_metadata
from serving import Client, running_server

PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
EPOCH = "2000-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("stream") / "store.sqlite"
    with running_server(db) as url:
        yield url


class Socket:
    """One WebSocket of either protocol, speaking it by hand."""

    def __init__(self, url: str, protocol: str, headers: dict | None = None):
        self.protocol = protocol
        self.connecting = ws_client.connect(url.replace("http", "ws") + "/v1/graphql",
                                            subprotocols=[protocol])
        self.headers = headers

    def __enter__(self) -> "Socket":
        self.ws = self.connecting.__enter__()
        headers = self.headers
        self.ws.send(json.dumps({"type": "connection_init", "payload": {"headers": headers or {}}}))
        assert json.loads(self.ws.recv(timeout=30))["type"] == "connection_ack"
        return self

    def __exit__(self, *exc) -> None:
        self.connecting.__exit__(*exc)

    def subscribe(self, number: int, query: str, variables: dict | None = None) -> None:
        start = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        self.ws.send(json.dumps({"type": start, "id": str(number),
                                 "payload": {"query": query, "variables": variables or {}}}))

    def message(self) -> dict:
        """The next message that is not a keep-alive (60 s: only a failure waits that long)."""
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message["type"] not in ("ka", "ping", "pong"):
                return message

    def batch(self, field: str) -> list:
        message = self.message()
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"][field]


def insert_orgs(client: Client, names: list[str]) -> None:
    for name in names:  # one commit each
        client(f'mutation {{ insert_organization_one(object: {{name: "{name}"}}) {{ id }} }}')


def org_stream(prefix: str, batch_size: int, ordering: str = "ASC", initial: str = EPOCH) -> str:
    return (f'subscription {{ organizations_stream(batch_size: {batch_size}, cursor: '
            f'{{initial_value: {{createdAt: "{initial}"}}, ordering: {ordering}}}, '
            f'where: {{name: {{_like: "{prefix}%"}}}}) {{ name createdAt }} }}')


def received(socket_: Socket, field: str, count: int, batch_size: int) -> list[list[str]]:
    """Batches until `count` rows came; each batch holds 1..batch_size rows."""
    batches = []
    while sum(map(len, batches)) < count:
        batch = [row["name"] for row in socket_.batch(field)]
        assert 0 < len(batch) <= batch_size, batch
        batches.append(batch)
    return batches


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stream_sends_the_backlog_in_batches_then_only_new_rows(served, protocol):
    client, prefix = Client(served), f"bk-{protocol}-"
    backlog = [f"{prefix}{i:02}" for i in range(5)]
    insert_orgs(client, backlog)
    with Socket(served, protocol) as socket_:
        socket_.subscribe(1, org_stream(prefix, 2))
        # the backlog drains without any commit: 2 + 2 + 1
        assert received(socket_, "organizations_stream", 5, 2) == [backlog[:2], backlog[2:4], backlog[4:]]
        fresh = [f"{prefix}{i:02}" for i in range(5, 25)]
        writer = threading.Thread(target=insert_orgs, args=(Client(served), fresh))
        writer.start()
        batches = received(socket_, "organizations_stream", len(fresh), 2)
        writer.join()
        assert sum(batches, []) == fresh  # in cursor order, none repeated, none skipped
        # nothing more was waiting: the next answer is exactly the next row
        insert_orgs(client, [f"{prefix}last"])
        assert [r["name"] for r in socket_.batch("organizations_stream")] == [f"{prefix}last"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_empty_first_batch_is_not_sent(served, protocol):
    client, prefix = Client(served), f"empty-{protocol}-"
    with Socket(served, protocol) as socket_:
        socket_.subscribe(1, org_stream(prefix, 10))
        insert_orgs(client, [f"unrelated-to-{prefix}", f"{prefix}first"])
        # the first message is the first row: no empty answer before it, none for the
        # commit of a row the stream does not select
        assert [r["name"] for r in socket_.batch("organizations_stream")] == [f"{prefix}first"]


def test_descending_streams_go_down_from_the_initial_value(served):
    client, prefix = Client(served), "desc-"
    insert_orgs(client, [f"{prefix}{i}" for i in range(4)])
    rows = client('{ organizations(where: {name: {_like: "desc-%"}}, order_by: {createdAt: asc}) '
                  '{ name createdAt } }')["organizations"]
    with Socket(served, "graphql-transport-ws") as socket_:
        socket_.subscribe(1, org_stream(prefix, 2, "DESC", rows[3]["createdAt"]))
        assert received(socket_, "organizations_stream", 3, 2) == [["desc-2", "desc-1"], ["desc-0"]]
        insert_orgs(client, [f"{prefix}later", "desc-marker-not-in-stream"])
        socket_.subscribe(2, org_stream("desc-marker", 1))
        assert socket_.message()["id"] == "2"  # a later row is past a descending cursor: not sent


def test_the_first_batch_is_what_the_same_query_answers(served):
    """The stream's SQL (slow path) and the query's (fast path) agree row for row."""
    client, prefix = Client(served), "same-"
    insert_orgs(client, [f"{prefix}{i}" for i in range(6)])
    expected = client('{ organizations(where: {name: {_like: "same-%"}, createdAt: {_gt: "2000-01-01T00:00:00Z"}}, '
                      'order_by: {createdAt: asc}, limit: 4) { name createdAt } }')["organizations"]
    with Socket(served, "graphql-ws") as socket_:
        socket_.subscribe(1, org_stream(prefix, 4))
        assert socket_.batch("organizations_stream") == expected


@pytest.mark.parametrize("subprotocol", [WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL,
                                         WebsocketsTransport.APOLLO_SUBPROTOCOL])
def test_the_gql_client_streams_over_both_protocols(served, subprotocol):
    """gql validates the document against the served schema, then streams."""
    prefix = f"gql-{subprotocol}-"
    insert_orgs(Client(served), [f"{prefix}{i}" for i in range(3)])
    document = gql("""subscription Stream($from: timestamptz, $like: String!) {
        organizations_stream(batch_size: 2, where: {name: {_like: $like}},
                             cursor: [{initial_value: {createdAt: $from}, ordering: ASC}]) { name }
    }""")
    document.variable_values = {"from": EPOCH, "like": f"{prefix}%"}

    async def stream() -> list:
        transport = WebsocketsTransport(url=served.replace("http", "ws") + "/v1/graphql",
                                        subprotocols=[subprotocol])
        batches = []
        async with GqlClient(transport=transport, fetch_schema_from_transport=True) as session:
            async for answer in session.subscribe(document):
                batches.append([row["name"] for row in answer["organizations_stream"]])
                if len(batches) == 2:
                    await asyncio.to_thread(insert_orgs, Client(served), [f"{prefix}new"])
                if sum(map(len, batches)) == 4:
                    return batches

    batches = asyncio.run(asyncio.wait_for(stream(), 120))
    assert batches == [[f"{prefix}0", f"{prefix}1"], [f"{prefix}2"], [f"{prefix}new"]]


@pytest.mark.parametrize("cursor, argument, message", [
    ("[]", "cursor", "one streaming column field is expected"),
    ('{initial_value: {}}', "cursor", "one streaming column field is expected"),
    ('{initial_value: {name: "a", createdAt: "2000-01-01"}}', "cursor",
     "multiple column cursors are not supported yet"),
    ('[{initial_value: {name: "a"}}, {initial_value: {id: "00000000-0000-0000-0000-000000000000"}}]',
     "cursor", "multiple column cursors are not supported yet"),
    ('{initial_value: {name: null}}', "cursor", "is null"),
])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cursors_hasura_refuses_are_refused_with_its_message(served, protocol, cursor, argument,
                                                             message):
    with Socket(served, protocol) as socket_:
        socket_.subscribe(7, f"subscription {{ s: organizations_stream(batch_size: 1, cursor: "
                             f"{cursor}) {{ name }} }}")
        answer = socket_.message()
        assert answer["type"] == "error" and answer["id"] == "7", answer
        errors = answer["payload"] if isinstance(answer["payload"], list) else [answer["payload"]]
        assert message in errors[0]["message"]
        assert errors[0]["extensions"] == {"code": "validation-failed",
                                           "path": f"$.selectionSet.s.args.{argument}"}


@pytest.mark.parametrize("arguments, path", [
    ('batch_size: -1, cursor: {initial_value: {name: "a"}}', "$.selectionSet.organizations_stream.args.batch_size"),
    ('cursor: {initial_value: {name: "a"}}', None),  # batch_size is required
    ('batch_size: 1, cursor: {initial_value: {name: "a"}, ordering: UP}', None),
    ('batch_size: 1, cursor: {initial_value: {nope: "a"}}', None),
    ('batch_size: 1, cursor: {initial_value: {name: "a"}}, where: {nope: {_eq: 1}}', None),
])
def test_bad_stream_arguments_get_validation_errors(served, arguments, path):
    with Socket(served, "graphql-transport-ws") as socket_:
        socket_.subscribe(1, f"subscription {{ organizations_stream({arguments}) {{ name }} }}")
        answer = socket_.message()
        assert answer["type"] == "error", answer
        assert answer["payload"][0]["extensions"]["code"] == "validation-failed"
        if path:
            assert answer["payload"][0]["extensions"]["path"] == path


def test_streams_show_what_the_caller_sees_and_stream_on_no_masked_value(tmp_path):
    """Bea sees Ana's organization and Ana, but not Ana's email (masked means absent):
    a stream on users' email sends Bea's own row only, and a stream of organizations
    only the organizations Bea may see."""
    with running_server(tmp_path / "store.sqlite") as url:
        admin = Client(url)
        ids = admin("""mutation {
            ana: insert_user_one(object: {name: "ana", email: "ana@example.org"}) { id }
            bea: insert_user_one(object: {name: "bea", email: "bea@example.org"}) { id } }""")
        ana, bea = ids["ana"]["id"], ids["bea"]["id"]
        as_ana = {"x-hasura-role": "user", "x-hasura-user-id": ana}
        ana_client = Client(url)
        ana_client.http.headers.update(as_ana)
        shared = ana_client('mutation { insert_organization_one(object: {name: "shared"}) '
                            '{ id accessId } }')["insert_organization_one"]
        ana_client('mutation { insert_organization_one(object: {name: "private"}) { id } }')
        ana_client(f'mutation {{ insert_membership_one(object: {{accessId: "{shared["accessId"]}", '
                   f'userId: "{bea}", role: "guest"}}) {{ id }} }}')
        as_bea = {"x-hasura-role": "user", "x-hasura-user-id": bea}
        bea_client = Client(url)
        bea_client.http.headers.update(as_bea)
        seen = bea_client('{ users(order_by: {name: asc}) { name email } }')["users"]
        assert seen == [{"name": "ana", "email": None}, {"name": "bea", "email": "bea@example.org"}]
        with Socket(url, "graphql-transport-ws", as_bea) as socket_:
            socket_.subscribe(1, 'subscription { users_stream(batch_size: 10, cursor: '
                                 '{initial_value: {email: ""}}) { name } }')
            assert socket_.batch("users_stream") == [{"name": "bea"}]
            socket_.subscribe(2, f'subscription {{ organizations_stream(batch_size: 10, cursor: '
                                 f'{{initial_value: {{createdAt: "{EPOCH}"}}}}) {{ name }} }}')
            assert socket_.batch("organizations_stream") == [{"name": "shared"}]
            ana_client('mutation { insert_organization_one(object: {name: "private-2"}) { id } }')
            ana_client('mutation { insert_organization_one(object: {name: "public"}) '
                       '{ id access { id } } }')
            public = ana_client('{ organizations(where: {name: {_eq: "public"}}) { accessId } }')
            ana_client(f'mutation {{ update_access_by_pk(pk_columns: {{id: '
                       f'"{public["organizations"][0]["accessId"]}"}}, _set: {{public: "guest"}}) '
                       f'{{ id }} }}')
            # Ana's later private organization never reaches Bea; the public one does
            assert socket_.batch("organizations_stream") == [{"name": "public"}]


def test_every_table_has_a_stream_with_hasuras_types(served):
    introspection = httpx.post(f"{served}/v1/graphql", json={"query": """{
        __schema { subscriptionType { fields { name args { name type { kind name
            ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
        cursor_ordering: __type(name: "cursor_ordering") { enumValues { name } }
    }"""}).json()["data"]
    fields = {f["name"]: f for f in introspection["__schema"]["subscriptionType"]["fields"]}
    assert [v["name"] for v in introspection["cursor_ordering"]["enumValues"]] == ["ASC", "DESC"]
    for name, table in TABLES.items():
        args = {a["name"]: a["type"] for a in fields[f"{table.plural}_stream"]["args"]}
        assert args["batch_size"] == {"kind": "NON_NULL", "name": None, "ofType": {
            "kind": "SCALAR", "name": "Int", "ofType": None}}
        assert args["cursor"] == {"kind": "NON_NULL", "name": None, "ofType": {
            "kind": "LIST", "name": None, "ofType": {
                "kind": "INPUT_OBJECT", "name": f"{name}_stream_cursor_input", "ofType": None}}}
        assert args["where"] == {"kind": "INPUT_OBJECT", "name": f"{name}_bool_exp", "ofType": None}
        inputs = httpx.post(f"{served}/v1/graphql", json={"query": f"""{{
            c: __type(name: "{name}_stream_cursor_input") {{ inputFields {{ name type {{ name ofType {{ name }} }} }} }}
            v: __type(name: "{name}_stream_cursor_value_input") {{ inputFields {{ name type {{ kind }} }} }}
        }}"""}).json()["data"]
        assert {f["name"]: f["type"] for f in inputs["c"]["inputFields"]} == {
            "initial_value": {"name": None, "ofType": {"name": f"{name}_stream_cursor_value_input"}},
            "ordering": {"name": "cursor_ordering", "ofType": None}}
        assert [f["name"] for f in inputs["v"]["inputFields"]] == cursor_columns(table)
        assert {f["type"]["kind"] for f in inputs["v"]["inputFields"]} == {"SCALAR"}


def test_identical_streams_keep_cursors_of_their_own(served):
    """Streams of one document share a computation only at the same cursor: one started
    later still gets the backlog from its initial value, and each gets a new row once."""
    client, prefix = Client(served), "twin-"
    insert_orgs(client, [f"{prefix}0", f"{prefix}1"])
    with Socket(served, "graphql-transport-ws") as socket_:
        socket_.subscribe(1, org_stream(prefix, 5))
        assert [r["name"] for r in socket_.batch("organizations_stream")] == ["twin-0", "twin-1"]
        socket_.subscribe(2, org_stream(prefix, 5))
        message = socket_.message()
        assert message["id"] == "2", message
        assert [r["name"] for r in message["payload"]["data"]["organizations_stream"]] == ["twin-0", "twin-1"]
        insert_orgs(client, [f"{prefix}2"])
        pushed = {}
        while len(pushed) < 2:
            message = socket_.message()
            assert message["id"] not in pushed, message  # once each
            pushed[message["id"]] = [r["name"] for r in message["payload"]["data"]["organizations_stream"]]
        assert pushed == {"1": ["twin-2"], "2": ["twin-2"]}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_streams_count_towards_the_subscriptions_one_connection_may_hold(served, protocol):
    with Socket(served, protocol) as socket_:
        for number in range(100):
            socket_.subscribe(number, org_stream(f"none-{number}-", 1))
        socket_.subscribe(100, "subscription { organizations { name } }")
        refused = socket_.message()  # streams with no rows send nothing: this is the refusal
        assert refused["id"] == "100" and "100 subscriptions open already" in json.dumps(refused)


def test_the_streams_the_hasura_metadata_declares_are_served(served):
    """A client written against the PostgreSQL mirror behind Hasura finds its streams."""
    served_fields = {f["name"]: {a["name"] for a in f["args"]} for f in httpx.post(
        f"{served}/v1/graphql", json={"query": "{ __schema { subscriptionType { fields { name "
                                               "args { name } } } } }"}).json()["data"]["__schema"]["subscriptionType"]["fields"]}
    for table in ORDER:
        configuration = table_metadata(table, "HOOK")["configuration"]
        stream = configuration["custom_root_fields"]["select_stream"]
        assert served_fields[stream] == {"batch_size", "cursor", "where"}, stream


@pytest.mark.parametrize("zone", ["+02:00", "-05:30", "Z", "naive"])
def test_a_timestamptz_initial_value_is_compared_as_the_instant_it_names(served, zone):
    client, prefix = Client(served), f"tz{zone}-"
    insert_orgs(client, [f"{prefix}0", f"{prefix}1"])
    rows = client(f'{{ organizations(where: {{name: {{_like: "{prefix}%"}}}}, '
                  f'order_by: {{createdAt: asc}}) {{ createdAt }} }}')["organizations"]
    instant = datetime.fromisoformat(rows[0]["createdAt"])  # as the store writes it: UTC
    if zone == "naive":  # taken as UTC
        written = instant.replace(tzinfo=None).isoformat()
    elif zone == "Z":
        written = instant.replace(tzinfo=None).isoformat() + "Z"
    else:
        written = instant.astimezone(datetime.fromisoformat(f"2000-01-01T00:00{zone}").tzinfo).isoformat()
    with Socket(served, "graphql-ws") as socket_:
        socket_.subscribe(1, org_stream(prefix, 5, initial=written))
        assert [r["name"] for r in socket_.batch("organizations_stream")] == [f"{prefix}1"]
