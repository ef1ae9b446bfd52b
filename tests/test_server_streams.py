"""Subscriptions over both WebSocket subprotocols, Arrow over HTTP, shutdown."""

import asyncio
import json
import subprocess
import sys

import httpx
import pyarrow as pa
import pytest
import websockets

import clustore_lite
from serving import Client, running_server

QUERY = "subscription { organizations(order_by: {name: asc}) { name } }"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("streams") / "store.sqlite"
    with running_server(db) as url:
        yield url, db


async def _transport_ws(url: str, query: str, updates: int, write) -> list:
    """graphql-transport-ws: connection_init, subscribe, next messages."""
    seen = []
    async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                  subprotocols=["graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        while len(seen) < updates:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert message["type"] == "next", message
            seen.append(message["payload"]["data"])
            if len(seen) < updates:
                await asyncio.to_thread(write, len(seen))
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
    return seen


async def _legacy_ws(url: str, query: str, updates: int, write) -> list:
    """The legacy graphql-ws protocol: connection_init, start, data messages."""
    seen = []
    async with websockets.connect(url.replace("http", "ws") + "/v1/graphql",
                                  subprotocols=["graphql-ws"]) as ws:
        assert ws.subprotocol == "graphql-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
        while len(seen) < updates:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "ka":
                continue
            assert message["type"] == "data", message
            seen.append(message["payload"]["data"])
            if len(seen) < updates:
                await asyncio.to_thread(write, len(seen))
        await ws.send(json.dumps({"id": "1", "type": "stop"}))
    return seen


@pytest.mark.parametrize("protocol", [_transport_ws, _legacy_ws])
def test_subscriptions_push_each_committed_change(served, protocol):
    url, db = served
    client = Client(url)
    prefix = protocol.__name__

    def write(n: int):
        client(f'mutation {{ insert_organization_one(object: {{name: "{prefix}-{n}"}}) {{ id }} }}')

    seen = asyncio.run(protocol(url, QUERY, 3, write))
    names = [[o["name"] for o in answer["organizations"] if o["name"].startswith(prefix)]
             for answer in seen]
    assert names == [[], [f"{prefix}-1"], [f"{prefix}-1", f"{prefix}-2"]]


def test_subscriptions_see_writes_of_another_process(served):
    url, db = served

    def write(n: int):
        subprocess.run([sys.executable, "-c",
                        "import clustore_lite, sys; s = clustore_lite.open(sys.argv[1]); "
                        "s.organizations.create(sys.argv[2]); s.close()", str(db), f"proc-{n}"],
                       check=True)

    seen = asyncio.run(_transport_ws(url, QUERY, 2, write))
    assert "proc-1" in [o["name"] for o in seen[1]["organizations"]]


def test_arrow_endpoint_streams_exactly_what_the_library_reads(served):
    url, db = served
    table = pa.table({"x": pa.array(range(10_000), pa.int64()),
                      "s": pa.array([f"v{i % 7}" for i in range(10_000)]).dictionary_encode(),
                      "t": pa.array(range(10_000), pa.timestamp("ms", tz="UTC"))})
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create(table, chunk_rows=3000, compression="zstd")
        expected = store.dataframes.read(frame["id"])
    response = httpx.get(f"{url}/v1/dataframes/{frame['id']}.arrow")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    got = pa.ipc.open_stream(response.content).read_all()
    assert got.equals(expected) and got.schema == expected.schema


def test_arrow_append_over_http(served):
    url, db = served
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create({"x": [1, 2]})
    sink = pa.BufferOutputStream()
    batch = pa.record_batch({"x": pa.array([3, 4, 5], pa.int64())})
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    response = httpx.post(f"{url}/v1/dataframes/{frame['id']}/chunks", content=sink.getvalue().to_pybytes(),
                          headers={"content-type": "application/vnd.apache.arrow.stream"})
    assert response.status_code == 200 and response.json()["rows"] == 5
    with clustore_lite.open(db) as store:
        assert store.dataframes.read(frame["id"]).column("x").to_pylist() == [1, 2, 3, 4, 5]


ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


@pytest.mark.parametrize("body, status", [
    (b"garbage", 400),
    (None, 400),  # right bytes, wrong schema
])
def test_arrow_append_refuses_bad_streams_and_changes_nothing(served, body, status):
    url, db = served
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create({"x": [1]})
    if body is None:
        sink = pa.BufferOutputStream()
        batch = pa.record_batch({"x": pa.array(["text"])})
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        body = sink.getvalue().to_pybytes()
    response = httpx.post(f"{url}/v1/dataframes/{frame['id']}/chunks", content=body, headers=ARROW)
    assert response.status_code == status and response.json()["code"]
    truncated = httpx.post(f"{url}/v1/dataframes/{frame['id']}/chunks", content=body[: len(body) // 2],
                           headers=ARROW)
    assert truncated.status_code == 400
    with clustore_lite.open(db) as store:
        assert store.dataframes.get(frame["id"])["rows"] == 1


def test_arrow_endpoints_answer_404_for_unknown_dataframes(served):
    url, _ = served
    missing = "00000000-0000-4000-8000-000000000000"
    assert httpx.get(f"{url}/v1/dataframes/{missing}.arrow").status_code == 404
    assert httpx.get(f"{url}/v1/dataframes/not-a-uuid.arrow").status_code == 400
    assert httpx.post(f"{url}/v1/dataframes/{missing}/chunks", content=b"x",
                      headers=ARROW).status_code == 404


def test_sigint_shuts_down_cleanly(tmp_path):
    import signal

    from serving import free_port
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "clustore_lite", "serve", str(tmp_path / "new.sqlite"),
                                "--port", str(port)], stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            import time
            time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0
    assert b"Traceback" not in process.stderr.read()
    assert (tmp_path / "new.sqlite").exists()
