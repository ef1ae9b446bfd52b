"""How the delivery worker reads a webhook's answer: a raw socket server on loopback
answers with exactly the bytes each test scripts (a body cut off, a stalled body, a
redirect), which no well-behaved HTTP server library would send."""

import socket
import threading

import pytest

from clustore_lite.delivery import Deliverer

LOCAL = "127.0.0.1"


class RawReceiver:
    """Accepts connections on 127.0.0.1; reads each request whole (headers and
    Content-Length body), records its path, writes `answer(path)` and then closes the
    connection, or keeps it open without a word while `hold` is set."""

    def __init__(self, answer):
        self.answer, self.paths = answer, []
        self.hold = threading.Event()
        self.sock = socket.create_server((LOCAL, 0))
        self.port = self.sock.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path="/hook"):
        return f"http://{LOCAL}:{self.port}{path}"

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            part = conn.recv(65536)
            if not part:
                conn.close()
                return
            data += part
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += conn.recv(65536)
        self.paths.append(head.split(b" ")[1].decode())
        conn.sendall(self.answer(self.paths[-1]))
        if self.hold.is_set():
            self.open.append(conn)  # headers sent, the body never comes
        else:
            conn.close()

    def close(self):
        self.sock.close()
        for conn in self.open:
            conn.close()


@pytest.fixture
def raw():
    made = []

    def start(answer):
        made.append(RawReceiver(answer))
        return made[-1]

    yield start
    for receiver in made:
        receiver.close()


def deliver(store, url, **options):
    """One organization whose webhook is `url`: two events (the INSERTs of its access
    and of itself), both delivered to `url` by one run. Answers the run's summary
    and the delivery of the organization's event (the other one fares alike)."""
    org = store.organizations.create("lumen", webhook=url)
    with Deliverer(store.path, max_retries=options.pop("max_retries", 2), backoff=0.0,
                   webhook_allow=LOCAL, **{"timeout": 5.0, **options}) as worker:
        summary = worker.run_once()
    [event] = store.events.list(where={"resourceId": {"_eq": org.id}})
    [delivery] = store.events.deliveries(event.id)
    return summary, delivery


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{\"ok\": tr",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"ok\": tr",
    b"HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
], ids=["content-length", "chunked", "204-with-a-length"])
def test_a_2xx_whose_body_is_cut_off_is_delivered_once(store, raw, answer):
    hooks = raw(lambda path: answer)
    summary, delivery = deliver(store, hooks.url())
    assert (summary.delivered, summary.retrying, summary.dead) == (2, 0, 0)
    status = int(answer.split(b" ")[1])
    assert (delivery.status, delivery.tries, delivery.lastStatus) == ("delivered", 1, status)
    assert delivery.lastError is None
    assert hooks.paths == ["/hook"] * 2  # each sent once: it arrived


def test_a_2xx_whose_body_never_comes_is_delivered(store, raw):
    hooks = raw(lambda path: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    hooks.hold.set()
    summary, delivery = deliver(store, hooks.url(), timeout=1.0)
    assert (summary.delivered, delivery.status, delivery.tries) == (2, "delivered", 1)
    assert hooks.paths == ["/hook"] * 2


def test_a_failure_whose_body_is_cut_off_is_retried_with_what_arrived(store, raw):
    hooks = raw(lambda path: b"HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\ntry later")
    summary, delivery = deliver(store, hooks.url(), max_retries=1)
    assert (summary.delivered, summary.retrying, summary.dead) == (0, 2, 2)
    assert (delivery.status, delivery.tries, delivery.lastStatus) == ("dead", 2, 503)
    assert delivery.lastError == "HTTP 503: try later"
    assert hooks.paths == ["/hook"] * 4


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(store, raw, status):
    """As Hasura: only 2xx delivers, and a redirect is not followed (a POST replayed
    to wherever a receiver points could leak the event past the destination policy);
    the last error says where it pointed, so the webhook can be corrected."""
    target = raw(lambda path: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    # whole answers, so say the connection closes (else the next POST may race the close)
    hooks = raw(lambda path: (f"HTTP/1.1 {status} Moved\r\nLocation: {target.url('/new')}\r\n"
                              "Connection: close\r\nContent-Length: 0\r\n\r\n").encode())
    summary, delivery = deliver(store, hooks.url(), max_retries=1)
    assert (summary.delivered, summary.dead) == (0, 2)
    assert (delivery.status, delivery.lastStatus) == ("dead", status)
    assert delivery.lastError == (f"HTTP {status}: redirects are not followed; the webhook "
                                  f"points to {target.url('/new')}")
    assert hooks.paths == ["/hook"] * 4 and target.paths == []


def test_a_connection_closed_before_the_status_line_is_a_failure(store, raw):
    hooks = raw(lambda path: b"")
    summary, delivery = deliver(store, hooks.url(), max_retries=0)
    assert (summary.delivered, summary.dead, delivery.lastStatus) == (0, 2, None)
    assert delivery.lastError
