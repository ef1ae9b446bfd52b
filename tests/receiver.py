"""A real webhook receiver for the event tests: an HTTP server in a thread on
127.0.0.1 (a free port), recording every JSON body POSTed to it."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """`status` answers every POST (or a callable(body) -> status); `delay` seconds
    are spent before answering; while `gate` is cleared, requests wait on it.

    `attempts` lists (path, body) of every POST in arrival order; `overlaps` lists the
    attempts (event id, url path, current_retry) that arrived while the same one was
    still in flight."""

    def __init__(self, status=200, delay: float = 0.0, port: int | None = None,
                 host: str = "127.0.0.1"):
        self.status, self.delay, self.host = status, delay, host
        self.port = port or free_port()
        self.attempts: list[tuple[str, dict]] = []
        self.overlaps: list[tuple] = []
        self.in_flight: set[tuple] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers then body cost a 40 ms delayed ACK

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = (body["id"], self.path, body["delivery_info"]["current_retry"])
                with receiver.lock:
                    if key in receiver.in_flight:
                        receiver.overlaps.append(key)
                    receiver.in_flight.add(key)
                    receiver.attempts.append((self.path, body))
                try:
                    receiver.gate.wait()
                    if receiver.delay:
                        time.sleep(receiver.delay)
                    status = receiver.status(body) if callable(receiver.status) else receiver.status
                    answer = b"ok" if status < 300 else b"nope"
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                finally:
                    with receiver.lock:
                        receiver.in_flight.discard(key)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a worker killed mid-request resets its connection: expected here

        self.server = Server((self.host, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.gate.set()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bodies(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [b for p, b in self.attempts if path is None or p == path]

    def event_ids(self) -> set[str]:
        return {b["id"] for b in self.bodies()}

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
