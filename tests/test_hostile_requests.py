"""Hostile GraphQL requests against a real server (issue 13, items 4 and 8): documents
are bounded before they are parsed and checked off the event loop; filters past a limit,
multi-column counts, JSON nested past the decoder (over HTTP and WebSockets) and a
damaged file are answered with a GraphQL error and a code, never a 500."""

import asyncio
import json
import threading
import time

import apsw
import httpx
import pytest
import websockets

import clustore_lite
from clustore_lite import demo
from serving import Client, running_server

NOBODY = "00000000-0000-4000-8000-000000000000"
TEAMS = "query($w: team_bool_exp, $o: [team_order_by!]) { teams(where: $w, order_by: $o) { id } }"
SLOW = TEAMS.replace("{ teams(", "{ __typename teams(")  # not a plain query: Ariadne answers


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("hostile") / "store.sqlite"
    with clustore_lite.open(db) as store:
        demo.fill(store)
    with running_server(db) as url:
        yield url, Client(url)


def refused(response: httpx.Response) -> str:
    """The one error of a refused request (answered 200 as every GraphQL error, code
    validation-failed)."""
    assert response.status_code == 200, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "validation-failed", error
    return error["message"]


def test_a_megabyte_alias_bomb_is_refused_before_it_is_parsed(served):
    _, client = served
    bomb = "{ " + " ".join(f"a{i}: organizations {{ id }}" for i in range(40_000)) + " }"
    assert refused(client.post(bomb)) == f"the document has {len(bomb)} bytes; at most 65536 are allowed"
    many = "{ organizations(where: {name: {_in: [" + ",".join("1" for _ in range(12_000)) + "]}}) { id } }"
    assert "more than 10000 tokens" in refused(client.post(many))


def test_pings_are_answered_while_documents_are_checked(served):
    """Documents that take long to validate (the standard rules are quadratic in fields
    of one name) are checked in worker threads: the event loop keeps answering. Before,
    no ping was answered until they were done."""
    url, _ = served
    heavy = "{ organizations { " + " ".join(f"t: teams {{ {('id', 'name')[i % 2]} }}"
                                            for i in range(999)) + " } }"
    answered = []

    def post(i):
        with httpx.Client(timeout=120) as http:
            response = http.post(f"{url}/v1/graphql", json={"query": f"{heavy} # {i}"})
        answered.append((time.monotonic(), response.status_code))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    pings = []
    with httpx.Client(timeout=120) as http:
        while len(answered) < len(threads):
            assert http.get(f"{url}/ping").text == "pong"
            pings.append(time.monotonic())
    for thread in threads:
        thread.join()
    last = max(at for at, _ in answered)
    assert all(status == 200 for _, status in answered)  # GraphQL errors, answered as Hasura does
    assert sum(at < last for at in pings) >= 20, f"{len(pings)} pings, the loop was blocked"


def nested(levels: int, wrap, leaf=None) -> dict:
    where = leaf or {"name": {"_eq": "x"}}
    for _ in range(levels):
        where = wrap(where)
    return where


@pytest.mark.parametrize("document", [TEAMS, SLOW])
@pytest.mark.parametrize("variables, message", [
    ({"w": {"name": {"_in": [str(i) for i in range(40_000)]}}},
     "_in on team.name has 40000 values; at most 10000 are allowed"),
    ({"w": {"_or": [{"name": {"_eq": str(i)}} for i in range(5_000)]}},
     "_or has 5000 terms; at most 1000 are allowed"),
    ({"w": nested(40, lambda w: {"_not": w})}, "more than 16 levels deep; at most 16 are allowed"),
    ({"w": nested(5, lambda w: {"organization": {"teams": w}})},
     "a filter goes through relationships more than 4 levels deep; at most 4 are allowed"),
    ({"o": [{"name": "asc"}] * 5_000}, "order_by has 5000 terms; at most 100 are allowed"),
    ({"w": {"name": {"_like": "%" * 60_000}}},
     "the _like pattern on team.name has 60000 characters; at most 10000 are allowed"),
])
def test_filters_past_a_limit_are_refused_naming_it(served, document, variables, message):
    _, client = served
    assert message in refused(client.post(document, variables))


def test_json_nested_past_the_decoder_is_refused(served):
    url, client = served
    for variables in ('{"w": ' + '{"_not": ' * 5_000 + '{}' + "}" * 5_000 + "}",
                      '{"v": ' + "[" * 50_000 + "]" * 50_000 + "}"):
        body = '{"query": "query($w: team_bool_exp) { teams(where: $w) { id } }", "variables": ' + variables + "}"
        response = client.http.post(client.url, content=body, headers={"content-type": "application/json"})
        assert "nested deeper than the JSON decoder allows" in refused(response)


def test_documents_and_variables_nested_past_graphql_core_are_refused(served):
    _, client = served
    variables = '{"w": ' + '{"organization": {"teams": ' * 150 + '{}' + "}}" * 150 + "}"
    body = '{"query": "query($w: team_bool_exp) { teams(where: $w) { id } }", "variables": ' + variables + "}"
    response = client.http.post(client.url, content=body, headers={"content-type": "application/json"})
    assert "nested too deeply" in refused(response)
    where = "{name: {_eq: \"x\"}}"
    for _ in range(500):
        where = "{organization: {teams: " + where + "}}"
    assert "nested too deeply" in refused(client.post("{ teams(where: %s) { id } }" % where))


@pytest.fixture(scope="module")
def counted(served):
    """Datasets d1 and d2 owned by one user, d3 by nobody, in an organization of their own."""
    _, client = served
    owner = client("{ users(limit: 1) { id } }")["users"][0]["id"]
    client("""mutation($owner: uuid!) { insert_organization_one(object: {name: "counts", datasets:
              {data: [{name: "d1", ownerId: $owner}, {name: "d2", ownerId: $owner}, {name: "d3"}]}})
              { id } }""", {"owner": owner})
    return client


@pytest.mark.parametrize("columns, distinct, expected", [
    ("[name, name]", False, 3), ("[name, ownerId]", False, 3), ("[ownerId]", False, 2),
    ("[ownerId]", True, 1), ("[name, ownerId]", True, 3), ("[ownerId, ownerId]", True, 2),
])
def test_counts_over_several_columns_count_as_hasura_does(counted, columns, distinct, expected):
    """Hasura emits PostgreSQL's COUNT((a, b)): a row of values is never null, so
    every row counts; with distinct, each distinct combination (nulls included)."""
    where = '{organization: {name: {_eq: "counts"}}}'
    for root in ("datasets_aggregate(where: %s) { aggregate { n: count(columns: %s, distinct: %s) } }",
                 "__typename datasets_aggregate(where: %s) { aggregate { n: count(columns: %s, distinct: %s) } }"):
        data = counted("{ " + root % (where, columns, json.dumps(distinct)) + " }")
        assert data["datasets_aggregate"]["aggregate"]["n"] == expected


def damage(db, table: str) -> None:
    """Overwrite the root page of `table` with garbage, as a failing disk would."""
    with clustore_lite.open(db) as store:
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn = apsw.Connection(str(db))
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    with open(db, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xde\xad\xbe\xef" * (page_size // 4))


def test_a_damaged_file_is_answered_with_a_code_of_its_own(tmp_path):
    db = tmp_path / "store.sqlite"
    with clustore_lite.open(db) as store:
        demo.fill(store)
    damage(db, "team")
    damage(db, "access")  # read to authenticate a token, before any GraphQL
    with running_server(db, "--no-deliver") as url:
        client = Client(url)
        token = {"x-clusauth-token": "not-a-token-of-any-access"}
        for path in ("/v1/graphql", f"/v1/dataframes/{NOBODY}.arrow"):
            response = client.http.request("POST" if path == "/v1/graphql" else "GET",
                                           f"{url}{path}", json={"query": "{ teams { id } }"},
                                           headers=token)
            # Hasura answers every error of /v1/graphql with 200 (Apollo then hands the
            # code to the application); the Arrow routes answer a 4xx
            assert response.status_code == (200 if path == "/v1/graphql" else 409), \
                response.text
            answer = response.json()
            code = answer["errors"][0]["extensions"]["code"] if "errors" in answer else answer["code"]
            assert code == "data-corrupted", answer
        for document in ("{ teams { id } }", "{ __typename teams { id } }",
                         '{ organizations { name teams { name } } }',
                         'mutation { update_team(where: {}, _set: {name: "x"}) { affected_rows } }'):
            response = client.post(document)
            assert response.status_code == 200, response.text
            [error] = response.json()["errors"]
            assert error["extensions"]["code"] == "data-corrupted", error
            assert "the store file is damaged" in error["message"]
        assert client("{ organizations { name } }") == {"organizations": [{"name": "demo-lab"}]}


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_websocket_messages_nested_past_the_decoder_close_the_socket(served, protocol):
    """Closed with 4400 (the protocol's code for a message it cannot read), not a
    traceback and a dropped connection."""
    url, client = served

    async def send(message: str):
        async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                      subprotocols=[protocol], max_size=None) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(message)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            return closed.value.rcvd.code

    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    deep = ('{"id": "1", "type": "%s", "payload": {"query": "subscription { teams { id } }", '
            '"variables": {"v": %s}}}' % (start, "[" * 50_000 + "]" * 50_000))
    for message in (deep, "{not json"):
        assert asyncio.run(send(message)) == 4400
    assert client("{ teams { name } }")["teams"]
