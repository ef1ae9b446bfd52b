"""A bounded load test (loopback only, about 20 s): hostile clients (slow request heads,
idle WebSockets, a connection flooding subscriptions that a writer keeps waking, huge
bodies, bodies from unknown callers, decompression bombs) run against the real server
while a well-behaved client asks plain queries. Its p99 stays low, measured against the
same client on the quiet server in the same run (a generous bound: the test is for
starvation, not speed, and holds on a busy machine), and the server's memory stays
bounded."""

import json
import multiprocessing
import os
import socket
import statistics
import threading
import time

import httpx
import numpy as np
import pyarrow as pa
import websockets.sync.client as ws_client

from serving import running_server

SECRET = "load-secret"
ADMIN = {"x-hasura-admin-secret": SECRET}
QUERY = {"query": "{ organizations(limit: 5) { name teams { name } } }"}
SECONDS = 8.0


def server_pid(port: int) -> int:
    """The pid listening on `port` (from /proc), to read its memory."""
    inode = None
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":
                inode = fields[9]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]"
                   for fd in os.listdir(f"/proc/{pid}/fd")):
                return int(pid)
        except OSError:
            continue
    raise AssertionError(f"no process listens on {port}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def latencies(url: str, seconds: float) -> list[float]:
    found = []
    with httpx.Client(timeout=30, headers=ADMIN) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert client.post(f"{url}/v1/graphql", json=QUERY).status_code == 200
            found.append(time.perf_counter() - started)
    return found


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


JOBS = ("slow_heads", "idle_sockets", "subscription_flood", "writer", "huge_bodies",
        "anonymous_uploads", "bombs")


class Hostile:
    """Each kind of hostile client in a thread of its own, until `stop` is set; run in
    a process of its own (`run`), so that it does not slow the measuring client."""

    def __init__(self, url: str, frame_id: str, stop, jobs=JOBS):
        self.url, self.port, self.frame_id = url, int(url.rsplit(":", 1)[1]), frame_id
        self.stop = stop
        self.statuses: list[int] = []
        self.threads = [threading.Thread(target=getattr(self, job), daemon=True) for job in jobs]

    def run(self, started, statuses) -> None:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)  # let them all start
        started.set()
        self.stop.wait()
        for thread in self.threads:
            thread.join(60)
        statuses.extend(self.statuses)

    def slow_heads(self):
        held = []
        while not self.stop.is_set() and len(held) < 100:
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(sock)
            time.sleep(0.02)
        self.stop.wait()
        for sock in held:
            sock.close()

    def idle_sockets(self):
        held = []
        while not self.stop.is_set() and len(held) < 100:
            held.append(ws_client.connect(self.url.replace("http", "ws") + "/v1/graphql",
                                          subprotocols=["graphql-transport-ws"]))
            time.sleep(0.02)
        self.stop.wait()
        for sock in held:
            sock.close()

    def subscription_flood(self):
        with ws_client.connect(self.url.replace("http", "ws") + "/v1/graphql",
                               subprotocols=["graphql-transport-ws"]) as sock:
            sock.send(json.dumps({"type": "connection_init", "payload": {"headers": ADMIN}}))
            sock.recv(timeout=30)
            for number in range(150):  # distinct documents: no sharing of their answers
                query = f"subscription {{ organizations(limit: {number + 1}) {{ name }} }}"
                sock.send(json.dumps({"type": "subscribe", "id": str(number),
                                      "payload": {"query": query}}))
            while not self.stop.is_set():
                try:
                    sock.recv(timeout=0.5)
                except TimeoutError:
                    pass

    def writer(self):
        with httpx.Client(timeout=30, headers=ADMIN) as client:
            number = 0
            while not self.stop.is_set():
                number += 1
                client.post(f"{self.url}/v1/graphql", json={"query": 'mutation { '
                            f'insert_organization_one(object: {{name: "load-{number}"}}) {{ id }} }}'})
                time.sleep(0.02)

    def huge_bodies(self):
        body = b" " * (7 << 20)  # just under the 8 MiB a GraphQL body may be
        with httpx.Client(timeout=60, headers={**ADMIN, "content-type": "application/json"}) as client:
            while not self.stop.is_set():
                self.statuses.append(client.post(f"{self.url}/v1/graphql", content=body).status_code)

    def anonymous_uploads(self):
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                self.statuses.append(client.post(
                    f"{self.url}/v1/dataframes/{self.frame_id}/chunks", content=b"\0" * (32 << 20),
                    headers={"content-type": "application/vnd.apache.arrow.stream"}).status_code)

    def bombs(self):
        zeros = pa.record_batch({"x": np.zeros(1 << 22)})  # 32 MB of zeros, a few KB of zstd
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, zeros.schema,
                               options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
            for _ in range(40):  # 1.3 GB once decompressed
                writer.write_batch(zeros)
        bomb = sink.getvalue().to_pybytes()
        with httpx.Client(timeout=60, headers={**ADMIN, "content-type":
                                              "application/vnd.apache.arrow.stream"}) as client:
            while not self.stop.is_set():
                self.statuses.append(client.post(
                    f"{self.url}/v1/dataframes/{self.frame_id}/chunks", content=bomb).status_code)


def test_a_well_behaved_client_is_served_while_hostile_ones_run(tmp_path):
    import clustore_lite

    db = tmp_path / "load.sqlite"
    with clustore_lite.open(db) as store:
        for number in range(20):
            org = store.organizations.create(f"org-{number}")
            store.teams.create(org.id, "core")
        frame_id = store.dataframes.create({"x": [1.0]})["id"]
    jobs = os.environ.get("LOAD_JOBS", ",".join(JOBS)).split(",")
    context = multiprocessing.get_context("fork")
    with running_server(db, "--no-deliver", "--admin-secret", SECRET) as url, \
            context.Manager() as manager:
        pid = server_pid(int(url.rsplit(":", 1)[1]))
        quiet = latencies(url, SECONDS / 2)
        before = rss_mb(pid)
        stop, started, statuses = manager.Event(), manager.Event(), manager.list()
        hostile = context.Process(target=Hostile(url, frame_id, stop, jobs).run,
                                  args=(started, statuses))
        hostile.start()
        try:
            assert started.wait(60)
            busy = latencies(url, SECONDS)
            peak = rss_mb(pid)
        finally:
            stop.set()
            hostile.join(120)
        assert httpx.get(f"{url}/ping", timeout=30).text == "pong"
        statuses = list(statuses)
    print(f"p99 quiet {p99(quiet) * 1e3:.1f} ms ({len(quiet)} queries), with hostile clients "
          f"{p99(busy) * 1e3:.1f} ms ({len(busy)}); RSS {before:.0f} -> {peak:.0f} MB; "
          f"hostile answers {sorted(set(statuses))}")
    assert all(status < 500 for status in statuses), statuses
    assert p99(busy) < max(0.25, 20 * p99(quiet))  # starvation, not speed: see README
    assert peak - before < 400
