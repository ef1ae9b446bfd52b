"""What a web page, or a client that never authenticates, can do to a served store:
refused before anything runs (issue 13, items 1-3, 6, 7), tested against the real
server over loopback."""

import json
import socket
import subprocess
import sys

import httpx
import numpy as np
import pyarrow as pa
import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus

import clustore_lite
from serving import running_server

SECRET = "edge-secret"
JSON = {"content-type": "application/json"}
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}
MUTATION = 'mutation { insert_organization_one(object: {name: "csrf"}) { id } }'


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """A laptop's server: no admin secret, so every caller is the store admin."""
    db = tmp_path_factory.mktemp("edge") / "open.sqlite"
    with running_server(db, "--no-deliver", "--cors-origin", "https://app.example",
                        "--allowed-host", "lab.example") as url:
        yield url, db


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory):
    db = tmp_path_factory.mktemp("edge") / "guarded.sqlite"
    with running_server(db, "--no-deliver", "--admin-secret", SECRET,
                        "--max-decoded-mb", "1") as url:
        yield url, db


def organizations(db) -> list[str]:
    with clustore_lite.open(db) as store:
        return [o["name"] for o in store.organizations.list()]


# -- 1. cross-site WebSockets ----------------------------------------------------------

@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_websocket_from_another_origin_is_refused(open_server, protocol):
    url, db = open_server
    ws = url.replace("http", "ws") + "/v1/graphql"
    with pytest.raises(InvalidStatus) as refused:
        ws_client.connect(ws, origin="http://evil.example", subprotocols=[protocol])
    assert refused.value.response.status_code == 403
    for origin in (url, "https://app.example", None):  # its own page, an allowed one, a script
        with ws_client.connect(ws, origin=origin, subprotocols=[protocol]) as socket_:
            socket_.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(socket_.recv(timeout=30))["type"] == "connection_ack"
    assert "csrf" not in organizations(db)


# -- 2. DNS rebinding --------------------------------------------------------------------

@pytest.mark.parametrize("host, allowed", [
    ("attacker.example", False), ("attacker.example:8001", False), ("localhost.evil", False),
    ("127.0.0.1", True), ("localhost:8001", True), ("[::1]:8001", True), ("lab.example", True),
])
def test_only_the_names_the_server_is_served_as_are_answered(open_server, host, allowed):
    url, _ = open_server
    response = httpx.post(f"{url}/v1/graphql", headers={**JSON, "host": host},
                          json={"query": "{ accesses { adminToken } }"})
    if allowed:
        assert response.status_code == 200 and "data" in response.json()
    else:
        assert response.status_code == 400 and response.json()["code"] == "access-denied"
        assert "adminToken" not in response.text


# -- 3. cross-site requests --------------------------------------------------------------

@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_a_mutation_in_a_form_or_text_body_does_not_run(open_server, content_type):
    url, db = open_server
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps({"query": MUTATION}).encode()
    if content_type and content_type.startswith("multipart"):
        body = (b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n'
                + MUTATION.encode() + b"\r\n--x--\r\n")
    response = httpx.post(f"{url}/v1/graphql", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["errors"][0]["extensions"]["code"] == "validation-failed"
    assert "csrf" not in organizations(db)


def test_a_cross_site_json_post_is_refused_and_an_allowed_origin_gets_cors(open_server):
    url, db = open_server
    evil = httpx.post(f"{url}/v1/graphql", json={"query": MUTATION},
                      headers={"origin": "http://evil.example"})
    assert evil.status_code == 403 and "csrf" not in organizations(db)
    preflight = httpx.options(f"{url}/v1/graphql", headers={
        "origin": "http://evil.example", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert "access-control-allow-origin" not in preflight.headers
    allowed = httpx.options(f"{url}/v1/graphql", headers={
        "origin": "https://app.example", "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    answer = httpx.post(f"{url}/v1/graphql", json={"query": "{ organizations { name } }"},
                        headers={"origin": "https://app.example"})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "https://app.example"


def test_rows_are_appended_only_from_an_arrow_stream(open_server):
    url, db = open_server
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create({"x": [1.0]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([("x", pa.float64())])) as writer:
        writer.write_batch(pa.record_batch({"x": [2.0]}))
    for content_type in ("text/plain", "multipart/form-data; boundary=x", None):
        headers = {"content-type": content_type} if content_type else {}
        response = httpx.post(f"{url}/v1/dataframes/{frame['id']}/chunks",
                              content=sink.getvalue().to_pybytes(), headers=headers)
        assert response.status_code == 415 and response.json()["code"] == "validation-failed"
    with clustore_lite.open(db) as store:
        assert store.dataframes.get(frame["id"])["rows"] == 1


# -- 6. bodies are read only for a known caller ------------------------------------------

def raw_request(url: str, head: str, body: bytes = b"") -> str:
    """Send a request's head (and the start of a body), then read the answer: a server
    that waits for the rest of the body never answers (socket time-out)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    return answer.decode(errors="replace")


def test_a_wrong_secret_is_answered_before_its_body_is_sent(guarded_server):
    url, _ = guarded_server
    answer = raw_request(url, "POST /v1/graphql HTTP/1.1\nHost: 127.0.0.1\n"
                         "Content-Type: application/json\nX-Hasura-Admin-Secret: wrong\n"
                         f"Content-Length: {200 << 20}\n", b'{"query": "')
    assert answer.startswith("HTTP/1.1 200")  # the refusal, answered 200 as Hasura does


def test_an_upload_to_no_dataframe_is_answered_before_its_body_is_sent(guarded_server):
    url, _ = guarded_server
    missing = "00000000-0000-4000-8000-000000000000"
    answer = raw_request(url, f"POST /v1/dataframes/{missing}/chunks HTTP/1.1\n"
                         "Host: 127.0.0.1\nContent-Type: application/vnd.apache.arrow.stream\n"
                         f"Content-Length: {200 << 20}\n", b"\xff\xff\xff\xff")
    assert answer.startswith("HTTP/1.1 404")


def test_large_bodies_are_received_a_few_at_a_time(guarded_server):
    url, _ = guarded_server
    port = int(url.rsplit(":", 1)[1])
    head = ("POST /v1/graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Hasura-Admin-Secret: {SECRET}\r\nContent-Length: {8 << 20}\r\n\r\n").encode()
    held = []
    try:
        for _ in range(4):  # four large bodies being received ...
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(head + b" " * 1024)
            held.append(sock)
        with httpx.Client(timeout=30) as client:  # ... so a fifth must wait its turn
            for _ in range(50):
                fifth = client.post(f"{url}/v1/graphql", content=b" " * (2 << 20),
                                    headers={**JSON, "x-hasura-admin-secret": SECRET})
                if fifth.status_code == 429:
                    break
            assert fifth.status_code == 429
            assert "large request bodies" in fifth.json()["errors"][0]["message"]
    finally:
        for sock in held:
            sock.close()


def test_a_body_that_is_not_json_gets_a_json_error(guarded_server):
    url, _ = guarded_server
    for body, code in ((b"{not json", "invalid-json"), ("é".encode("latin-1"), "invalid-json"),
                       (b"[" * 100_000 + b"]" * 100_000, "validation-failed")):  # a limit
        response = httpx.post(f"{url}/v1/graphql", content=body,
                              headers={**JSON, "x-hasura-admin-secret": SECRET})
        assert response.status_code == 200  # as Hasura answers every error of /v1/graphql
        assert response.json()["errors"][0]["extensions"]["code"] == code


# -- 7. decompression bombs --------------------------------------------------------------

def test_a_decompression_bomb_is_refused_before_it_is_decompressed(guarded_server):
    url, db = guarded_server
    with clustore_lite.open(db) as store:
        frame = store.dataframes.create({"x": [1.0]})
    zeros = pa.record_batch({"x": np.zeros(1 << 18)})  # 2 MB once decompressed
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, zeros.schema,
                           options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_batch(zeros)
    body = sink.getvalue().to_pybytes()
    assert len(body) < 10_000
    response = httpx.post(f"{url}/v1/dataframes/{frame['id']}/chunks", content=body,
                          headers={**ARROW, "x-hasura-admin-secret": SECRET})
    assert response.status_code == 400, response.text
    assert "once decompressed" in response.json()["error"] and "1048576" in response.json()["error"]
    with clustore_lite.open(db) as store:
        assert store.dataframes.get(frame["id"])["rows"] == 1


# -- operators -----------------------------------------------------------------------------

def test_serve_says_where_it_listens_and_refuses_what_it_cannot_do(tmp_path):
    out = subprocess.run([sys.executable, "-m", "clustore_lite", "serve", str(tmp_path / "a.sqlite"),
                          "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "70000 is not in the range" in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "clustore_lite", "serve",
                              str(tmp_path / "b.sqlite"), "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert not (tmp_path / "b.sqlite").exists()
    server = subprocess.Popen([sys.executable, "-m", "clustore_lite", "serve",
                               str(tmp_path / "c.sqlite"), "--no-deliver"], text=True,
                              stderr=subprocess.PIPE, env={**__import__("os").environ,
                                                           "CLUSTORE_PORT": "0"})
    try:
        line = server.stderr.readline()
        assert line.startswith(f"serving {tmp_path / 'c.sqlite'} on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        assert port not in (0, 8001)
        assert httpx.get(f"http://127.0.0.1:{port}/ping", timeout=30).text == "pong"
    finally:
        server.terminate()
        server.wait(timeout=30)
