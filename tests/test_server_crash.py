"""SIGKILL the real server while clients write through it (GraphQL inserts and Arrow
appends): after each kill the file is intact and every acknowledged write is there.
Each kill comes after a seeded number of acknowledged requests (progress, not time)."""

import os
import random
import signal
import subprocess
import sys
import threading
import time

import httpx
import pyarrow as pa

import clustore_lite
from serving import free_port

KILLS = int(os.environ.get("CLUSTORE_CAMPAIGN_SCALE", "1")) * 4


def start(db, port):
    process = subprocess.Popen([sys.executable, "-m", "clustore_lite", "serve", str(db), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server did not start")


def arrow_bytes(start: int, rows: int) -> bytes:
    batch = pa.record_batch({"x": pa.array(range(start, start + rows), pa.int64())})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def writer(url, frame, acknowledged, stop, rng):
    """Write until the server dies; remember only what was acknowledged."""
    client = httpx.Client(timeout=5)
    number = len(acknowledged["orgs"]) + 10_000 * len(acknowledged["kills"])
    while not stop.is_set():
        number += 1
        try:
            answer = client.post(f"{url}/v1/graphql", json={
                "query": f'mutation {{ insert_organization_one(object: {{name: "org-{number}"}}) {{ id }} }}'})
            if answer.status_code == 200 and "errors" not in answer.json():
                acknowledged["orgs"].append(f"org-{number}")
            rows = rng.randint(1, 5000)
            answer = client.post(f"{url}/v1/dataframes/{frame}/chunks", content=arrow_bytes(number * 10_000, rows),
                                 headers={"content-type": "application/vnd.apache.arrow.stream"})
            if answer.status_code == 200:
                acknowledged["appends"].append((number * 10_000, rows))
        except (httpx.HTTPError, ValueError):
            return


def test_sigkill_during_writes_loses_no_acknowledged_write(tmp_path, rng):
    db = tmp_path / "store.sqlite"
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create()["id"]
    acknowledged = {"orgs": [], "appends": [], "kills": []}

    def acks():
        return len(acknowledged["orgs"]) + len(acknowledged["appends"])

    for kill in range(KILLS):
        seed, k = rng.randrange(2**32), rng.randint(10, 150)
        pause = rng.uniform(0, 0.01) if rng.random() < 0.75 else 0.0  # about one request
        print(f"kill {kill + 1}: client seed {seed}, after {k} acknowledged requests, "
              f"then {pause:.4f} s")
        port = free_port()
        process = start(db, port)
        stop = threading.Event()
        before = acks()
        thread = threading.Thread(target=writer, args=(f"http://127.0.0.1:{port}", frame, acknowledged,
                                                       stop, random.Random(seed)))
        thread.start()
        try:
            deadline = time.monotonic() + 120
            while acks() < before + k:
                assert thread.is_alive(), "the client stopped: the server failed by itself"
                assert time.monotonic() < deadline, f"{acks() - before} of {k} requests acknowledged"
                time.sleep(0.001)
            time.sleep(pause)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            stop.set()
            thread.join()
        acknowledged["kills"].append(kill)
        with clustore_lite.open(db) as store:
            assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            names = {o["name"] for o in store.organizations.list()}
            assert set(acknowledged["orgs"]) <= names
            values = set(store.dataframes.read(frame).column("x").to_pylist()) if \
                store.dataframes.get(frame)["rows"] else set()
            for start_value, rows in acknowledged["appends"]:
                assert {start_value, start_value + rows - 1} <= values
            chunks = store.dataframes.chunks(frame)
            assert store.dataframes.get(frame)["rows"] == sum(c["rows"] for c in chunks)
    assert acknowledged["orgs"] and acknowledged["appends"]
    print(f"{len(acknowledged['orgs'])} inserts and {len(acknowledged['appends'])} appends "
          f"acknowledged over {KILLS} kills")
