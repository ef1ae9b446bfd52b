"""Time for one committed write to reach N live subscribers over WebSocket
(graphql-transport-ws), against a real `clustore-lite serve`; with --stream, N streaming
subscribers (`organizations_stream`), each receiving only the new row.

    .venv/bin/python benchmarks/subscriptions.py [--subscribers 1000] [--rounds 3] [--stream]"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serving import running_server  # noqa: E402

QUERY = "subscription { organizations(order_by: {name: asc}) { id name } }"
STREAM = ('subscription { organizations_stream(batch_size: 100, cursor: {initial_value: '
          '{createdAt: "2000-01-01T00:00:00Z"}}) { id name } }')


async def subscriber(url: str, query: str, ready: asyncio.Queue, updates: asyncio.Queue):
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None,
                                  open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        await ws.recv()  # the first answer
        await ready.put(None)
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == "next":
                [rows] = message["payload"]["data"].values()
                await updates.put((time.perf_counter(), len(rows)))


async def run(base: str, count: int, rounds: int, stream: bool) -> list[float]:
    ws_url = base.replace("http", "ws") + "/v1/graphql"
    query = STREAM if stream else QUERY
    async with httpx.AsyncClient() as client:  # a stream's first answer needs a row
        await client.post(f"{base}/v1/graphql", json={
            "query": 'mutation { insert_organization_one(object: {name: "bench-first"}) { id } }'})
    ready, updates = asyncio.Queue(), asyncio.Queue()
    tasks = []
    for start in range(0, count, 100):  # connect in waves: the accept backlog is finite
        tasks += [asyncio.create_task(subscriber(ws_url, query, ready, updates))
                  for _ in range(start, min(count, start + 100))]
        for _ in range(min(100, count - start)):
            await ready.get()
    times = []
    async with httpx.AsyncClient() as client:
        for number in range(rounds):
            started = time.perf_counter()
            answer = await client.post(f"{base}/v1/graphql", json={
                "query": f'mutation {{ insert_organization_one(object: {{name: "bench-{number}"}}) {{ id }} }}'})
            assert "errors" not in answer.json(), answer.text
            last = started
            for _ in range(count):
                arrived, size = await asyncio.wait_for(updates.get(), 60)
                assert size == (1 if stream else number + 2)
                last = max(last, arrived)
            times.append(last - started)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stream", action="store_true", help="streaming subscribers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, running_server(Path(work) / "store.sqlite") as url:
        times = asyncio.run(run(url, args.subscribers, args.rounds, args.stream))
    kind = "streaming" if args.stream else "live"
    print(f"| one write to {args.subscribers} {kind} subscribers | median {statistics.median(times) * 1000:.0f} ms "
          f"| max {max(times) * 1000:.0f} ms | target < 1000 ms |")


if __name__ == "__main__":
    main()
