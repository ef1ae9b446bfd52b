"""Subscriptions keep no memory per push (issue 13, item 11): graphql-core 3.3 kept
~1.4 KB per pushed message per subscription for the subscription's life.

The server runs in this process (uvicorn in a thread, on a loopback port, the app of
`clustore-lite serve`) so that tracemalloc sees its allocations; clients talk to it
over real WebSockets, on both subprotocols."""

import asyncio
import gc
import json
import threading
import time
import tracemalloc

import uvicorn
import websockets

import clustore_lite
from clustore_lite.server.app import create_app
from serving import free_port

QUERY = "subscription { teams { id name organization { name owner { name email } } } }"
SUBSCRIBERS = 10  # half on each subprotocol
WARMUP, ROUNDS = 20, 200  # rounds of one commit, then one push to every subscriber
MAX_GROWTH = 1 << 20  # bytes over all the pushes (before the fix: ~2.8 KB per push)


class InProcessServer:
    def __init__(self, db):
        config = uvicorn.Config(create_app(str(db)), host="127.0.0.1", port=free_port(),
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"ws://127.0.0.1:{config.port}/v1/graphql"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_):
        self.server.should_exit = True
        self.thread.join(30)


async def subscriber(url: str, protocol: str):
    """A WebSocket subscribed to QUERY on `protocol`."""
    ws = await websockets.connect(url, subprotocols=[protocol], max_size=None)
    await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(await ws.recv())["type"] == "connection_ack"
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    await ws.send(json.dumps({"id": "1", "type": start, "payload": {"query": QUERY}}))
    return ws


async def next_name(ws) -> str:
    """The team's name in the next answer pushed on `ws`."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message["type"] in ("next", "data"):
            return message["payload"]["data"]["teams"][0]["name"]
        assert message["type"] == "ka", message


async def run(url: str, store, team_id: str) -> list[int]:
    """Traced memory after the warm-up and after all the rounds."""
    sockets = [await subscriber(url, ("graphql-transport-ws", "graphql-ws")[i % 2])
               for i in range(SUBSCRIBERS)]
    assert {await next_name(ws) for ws in sockets} == {"core"}
    measured = []
    for round in range(WARMUP + ROUNDS):
        if round in (WARMUP, WARMUP + ROUNDS - 1):
            gc.collect()
            measured.append(tracemalloc.get_traced_memory()[0])
        name = f"core-{round}"
        await asyncio.to_thread(store.teams.update, team_id, name=name)
        for ws in sockets:  # every subscriber sees every commit (maybe after older ones)
            while await next_name(ws) != name:
                pass
    for ws in sockets:
        await ws.close()
    return measured


def test_memory_stays_flat_over_thousands_of_pushes(tmp_path):
    db = tmp_path / "store.sqlite"
    with clustore_lite.open(db) as store:
        owner = store.users.create("ana", "ana@example.org")
        org = store.organizations.create("lumen", owner_id=owner["id"])
        team = store.teams.create(org["id"], "core")
    tracemalloc.start()
    try:
        with InProcessServer(db) as server, clustore_lite.open(db) as store:
            before, after = asyncio.run(run(server.url, store, team["id"]))
    finally:
        tracemalloc.stop()
    pushes = SUBSCRIBERS * (ROUNDS - 1)
    print(f"{after - before} bytes over {pushes} pushes ({(after - before) / pushes:.0f} per push)")
    assert after - before < MAX_GROWTH
