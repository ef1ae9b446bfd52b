"""Start the real server (`clustore-lite serve`) on a free loopback port for tests."""

from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx


# Every httpx.Client builds a TLS context unless given one (~20 ms of CPU, loading the CA
# certificates); `httpx.get`/`httpx.post` build a Client per call. The tests speak plain
# HTTP on loopback: their clients share this one context.
TLS = ssl.create_default_context()


def http_client(**options) -> httpx.Client:
    """A client for many requests (1,000 httpx.post calls cost 20 s of the suite's CPU);
    without keep-alive, each request still opens a connection of its own, as httpx.post
    did."""
    return httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0),
                        verify=TLS, **options)


HTTP = http_client()  # this process's: for tests that send one request after another


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def announced_url(process: subprocess.Popen, seen: list[str], seconds: float = 30) -> str:
    """The base URL from the line `serving DB on http://HOST:PORT/v1/graphql` that the
    server writes to stderr once it listens (lines before it go to `seen`)."""
    deadline = time.monotonic() + seconds
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([process.stderr], [], [], remaining)[0]:
            raise RuntimeError(f"server did not start in {seconds} s: {''.join(seen)}")
        line = process.stderr.readline().decode()
        if not line:
            raise RuntimeError(f"server exited: {''.join(seen)}")
        seen.append(line)
        if line.startswith("serving ") and " on http://" in line:
            return line.split(" on ", 1)[1].strip().removesuffix("/v1/graphql")


@contextmanager
def running_server(db_path, *args, env=None, webhook_allow="127.0.0.1"):
    """Yield the base URL of `clustore-lite serve DB`; stop it with SIGTERM and check
    that it shut down cleanly. Webhooks may call `webhook_allow` (the tests' receivers
    listen on loopback, which the server refuses by default); None: the default.
    The server picks its port (--port 0) and says which: no port is chosen here and
    then taken by another process (tests run in parallel), and no polling."""
    allow = [] if webhook_allow is None else ["--webhook-allow", webhook_allow]
    process = subprocess.Popen(
        [sys.executable, "-m", "clustore_lite", "serve", str(db_path), "--port", "0",
         *allow, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        bufsize=0)  # unbuffered: a line read leaves the next one in the pipe, for select
    seen: list[str] = []
    try:
        url = announced_url(process, seen)
        # it listens; the answer waits in its backlog until the app has started
        assert HTTP.get(f"{url}/ping").text == "pong"
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        leftover = "".join(seen) + process.stderr.read().decode()
        assert "Traceback" not in leftover, leftover


class Client:
    """A bare GraphQL-over-HTTP client (POST JSON), to see status codes and errors."""

    def __init__(self, url: str, headers: dict | None = None):
        self.url = f"{url}/v1/graphql"
        self.http = httpx.Client(timeout=30, headers=headers or {}, verify=TLS)

    def post(self, query: str, variables: dict | None = None, **extra) -> httpx.Response:
        return self.http.post(self.url, json={"query": query, "variables": variables or {}, **extra})

    def __call__(self, query: str, variables: dict | None = None) -> dict:
        response = self.post(query, variables)
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]
