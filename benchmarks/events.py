"""Events per second delivered to a local webhook: N trackings written, then the
delivery worker (`Deliverer.run_once`, as `clustore-lite deliver --once` runs it)
POSTs them to a receiver running in a process of its own on 127.0.0.1.

    .venv/bin/python benchmarks/events.py [--events 1000] [--concurrency 16] [--rounds 3]"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import clustore_lite  # noqa: E402
from clustore_lite.delivery import Deliverer  # noqa: E402
from serving import free_port  # noqa: E402

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def one_round(work: Path, url: str, events: int, concurrency: int) -> float:
    path = work / f"store-{time.monotonic_ns()}.sqlite"
    with clustore_lite.open(path) as store:
        org = store.organizations.create("bench", webhook=url)
        with store.transaction():
            for number in range(events):
                store.trackings.create("click", organization_id=org["id"], payload={"n": number})
    with Deliverer(path, concurrency=concurrency, webhook_allow="127.0.0.1") as worker:  # a loopback receiver
        started = time.perf_counter()
        summary = worker.run_once()
        elapsed = time.perf_counter() - started
    assert summary.delivered >= events, summary
    return summary.delivered / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    url = f"http://127.0.0.1:{port}/hook"
    try:
        for _ in range(100):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as work:
            rates = [one_round(Path(work), url, args.events, args.concurrency) for _ in range(args.rounds)]
    finally:
        receiver.kill()
    print(f"| events delivered to a local webhook ({args.events}) | median {statistics.median(rates):.0f}/s "
          f"| range {min(rates):.0f}–{max(rates):.0f}/s | target >= 1000/s |")


if __name__ == "__main__":
    main()
