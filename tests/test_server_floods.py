"""Clients that never finish, never authenticate or flood: each is bounded, answered
with a code that names the limit, and the server goes on (issue 13, items 8 and 10)."""

import json
import socket
import threading
import time

import httpx
import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from serving import running_server

SECRET = "flood-secret"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("floods") / "floods.sqlite"
    with running_server(db, "--no-deliver", "--admin-secret", SECRET) as url:
        yield url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing the connection (b"" if nothing)."""
    sock.settimeout(seconds)
    got = b""
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:  # closed with data it did not read: a reset
            return got or b"reset"
        if not part:
            return got
        got += part


def test_slow_heads_huge_heads_and_silent_websockets_are_cut_off(server):
    """All at once (each waits out the same 10 s): a request head sent a byte short and
    then nothing (408), a 1 MB header (431, or a reset while it is still being sent),
    and WebSockets that never say connection_init (4408, both protocols); meanwhile
    others are served."""
    slow = socket.create_connection(("127.0.0.1", port_of(server)))
    slow.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # ... and nothing more
    huge = socket.create_connection(("127.0.0.1", port_of(server)))
    huge.sendall(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: " + b"a" * (1 << 20))
    silent = [ws_client.connect(server.replace("http", "ws") + "/v1/graphql", subprotocols=[p])
              for p in PROTOCOLS]
    try:
        assert closed_within(huge, 30).startswith((b"HTTP/1.1 431", b"reset"))
        assert httpx.get(f"{server}/ping", timeout=30).text == "pong"  # others are served
        assert closed_within(slow, 60).startswith(b"HTTP/1.1 408")
        for idle in silent:
            with pytest.raises(ConnectionClosed) as closed:
                idle.recv(timeout=60)
            assert closed.value.rcvd.code == 4408
    finally:
        for sock in (slow, huge, *silent):
            sock.close()


def subscribe(socket_, protocol: str, number: int, query: str) -> None:
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    socket_.send(json.dumps({"type": start, "id": str(number), "payload": {"query": query}}))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_connection_holds_at_most_100_subscriptions(server, protocol):
    with ws_client.connect(server.replace("http", "ws") + "/v1/graphql",
                           subprotocols=[protocol]) as socket_:
        socket_.send(json.dumps({"type": "connection_init",
                                 "payload": {"headers": {"X-Hasura-Admin-Secret": SECRET}}}))
        assert json.loads(socket_.recv(timeout=30))["type"] == "connection_ack"
        for number in range(101):
            subscribe(socket_, protocol, number, "subscription { organizations { name } }")
        refused = None
        deadline = time.monotonic() + 60
        while refused is None and time.monotonic() < deadline:
            message = json.loads(socket_.recv(timeout=60))
            if message["type"] == "error" or (message.get("payload") or {}).get("errors"):
                refused = message
        assert refused is not None and refused["id"] == "100", refused
        assert "100 subscriptions open already" in json.dumps(refused)


def test_a_non_ascii_admin_secret_is_refused_not_a_server_error(server):
    response = httpx.post(f"{server}/v1/graphql", json={"query": "{ organizations { name } }"},
                          headers={"x-hasura-admin-secret": "s\xe9cret".encode("latin-1")})
    assert response.status_code == 200 and response.json()["errors"][0]["extensions"]["code"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("headers", [{"X-Hasura-Admin-Secret": "s\xe9cret \u2603"},
                                     {"X-Hasura-Admin-Secret": 12},
                                     {"X-Clusauth-Token": ["a", "b"]}, {"x": {"y": None}}])
def test_bad_connection_init_headers_close_with_4403(server, protocol, headers):
    with ws_client.connect(server.replace("http", "ws") + "/v1/graphql",
                           subprotocols=[protocol]) as socket_:
        socket_.send(json.dumps({"type": "connection_init", "payload": {"headers": headers}}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                message = json.loads(socket_.recv(timeout=30))
                assert message["type"] in ("connection_error",), message
    assert closed.value.rcvd.code == 4403


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clients_that_vanish_mid_push_leave_no_traceback(server, protocol, rng):
    """Subscribers that drop their connection (no close frame) while a writer keeps
    their answers changing: the server's log must stay clean (running_server checks it
    for a traceback when it stops) and the server keeps serving."""
    stop = threading.Event()

    def writer():
        with httpx.Client(timeout=30, headers={"x-hasura-admin-secret": SECRET}) as client:
            number = 0
            while not stop.is_set():
                number += 1
                client.post(f"{server}/v1/graphql", json={"query": 'mutation { insert_organization_one('
                            f'object: {{name: "vanish-{protocol}-{number}"}}) {{ id }} }}'})

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(15):
            socket_ = ws_client.connect(server.replace("http", "ws") + "/v1/graphql",
                                        subprotocols=[protocol])
            socket_.send(json.dumps({"type": "connection_init",
                                     "payload": {"headers": {"X-Hasura-Admin-Secret": SECRET}}}))
            socket_.recv(timeout=30)
            for number in range(rng.randrange(1, 6)):
                subscribe(socket_, protocol, number, "subscription { organizations { name } }")
            socket_.recv(timeout=30)  # pushes are flowing
            socket_.socket.close()  # gone, mid-stream, without a close frame
    finally:
        stop.set()
        thread.join(60)
    assert httpx.get(f"{server}/ping", timeout=30).text == "pong"
