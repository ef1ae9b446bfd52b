"""The GraphQL IDE works offline: the real server and Debian's headless chromium run in a
network namespace that has only loopback; chromium is driven over the DevTools protocol
(on a pipe, so the test itself needs no network into the namespace)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--window-size=1280,800",
]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _chromium_or_skip() -> str:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI (.ci/run installs Debian's chromium)")
    pytest.skip(f"no chromium at {CHROMIUM}: apt-get install chromium to run the IDE test")


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
        None)


def _namespaces() -> tuple[str, str, str] | None:
    """(unshare, nsenter, ip) when this process may make a network namespace, else None."""
    tools = _tool("unshare"), _tool("nsenter"), _tool("ip")
    if None in tools:
        return None
    probe = subprocess.run([tools[0], "--net", "--", tools[2], "link", "set", "lo", "up"],
                           capture_output=True)
    return tools if probe.returncode == 0 else None


def _wait_for_own_namespace(process: subprocess.Popen, timeout: float = 10) -> None:
    """Until `unshare` has moved the process out of this network namespace (entering it
    before then would enter ours)."""
    ours = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{process.pid}/ns/net") != ours:
                return
        time.sleep(0.01)
    raise AssertionError(f"no network namespace of its own for pid {process.pid}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_command(db: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("clustore-lite")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "clustore_lite"]
    return [*launcher, "serve", "--demo", str(db), "--host", "127.0.0.1", "--port", str(port)]


class DevTools:
    """A DevTools protocol client over chromium's --remote-debugging-pipe (JSON messages
    ended by NUL: commands in on fd 3, answers and events out on fd 4)."""

    def __init__(self, command: list[str], log: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # high numbers first, so that moving them to 3 and 4 cannot clobber one another; the
        # child keeps only those two (every other descriptor here is close-on-exec)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in (to_chrome_r, from_chrome_w)]

        def to_fds_3_and_4():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            close_fds=False, preexec_fn=to_fds_3_and_4, start_new_session=True)
        for fd in (to_chrome_r, from_chrome_w, *high):
            os.close(fd)
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self.events: list[dict] = []
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_chrome, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._lock:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._answers[message["id"]] = message
                    else:
                        self.events.append(message)
                self._lock.notify_all()

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30) -> dict:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_chrome, data):]
        with self._lock:
            if not self._lock.wait_for(lambda: ident in self._answers, timeout):
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def close(self):
        with contextlib.suppress(OSError):
            os.close(self._to_chrome)  # chromium exits when its pipe closes
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._reader.join(5)
        os.close(self._from_chrome)
        self._log.close()


class Page:
    """One tab, attached over a flat DevTools session."""

    def __init__(self, chrome: DevTools):
        self.chrome = chrome
        target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = chrome.call("Target.attachToTarget",
                                   {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        return self.chrome.call(method, params, self.session, timeout)

    def evaluate(self, expression: str):
        answer = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        logged = [e["params"]["entry"]["text"] for e in self.chrome.events
                  if e.get("method") == "Log.entryAdded"]
        sockets = [e for e in self.chrome.events if e.get("method", "").startswith("Network.webSocket")]
        editors = self.evaluate("[...document.querySelectorAll('.CodeMirror')]"
                                ".map(e => e.CodeMirror.getValue())")
        raise AssertionError(f"timed out waiting for {what}; editors and result: {editors}; "
                             f"log: {logged}; websockets: {sockets}")

    def key(self, key: str, code: str, keycode: int, modifiers: int = 0, text: str = ""):
        base = {"key": key, "code": code, "windowsVirtualKeyCode": keycode,
                "nativeVirtualKeyCode": keycode, "modifiers": modifiers}
        self.call("Input.dispatchKeyEvent",
                  {**base, "type": "keyDown" if text else "rawKeyDown", "text": text})
        self.call("Input.dispatchKeyEvent", {**base, "type": "keyUp"})

    def click(self, selector: str, text: str | None = None):
        """A real mouse click on the first element matching `selector` (and showing `text`)."""
        box = self.evaluate(
            f"(() => {{ const r = [...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => {json.dumps(text)} === null || e.innerText.trim() === {json.dumps(text)})"
            f".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2] }})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def requests(self) -> list[dict]:
        return [e["params"] for e in self.chrome.events
                if e.get("method") == "Network.requestWillBeSent" and e.get("sessionId") == self.session]

    def urls(self) -> list[str]:
        sent = [r["request"]["url"] for r in self.requests()]
        sockets = [e["params"]["url"] for e in self.chrome.events
                   if e.get("method") == "Network.webSocketCreated"]
        return sent + sockets


QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
RESULT = ".graphiql-response .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
ADMIN_SECRET = "edge-box-secret"
CTRL = 2


def _type_into(page: Page, editor: str, text: str, done: str = "true") -> None:
    """Replace an editor's text by typing (select all, then type), until `done` (JavaScript,
    with `editor` the CodeMirror instance) holds."""
    page.click(editor)
    page.key("a", "KeyA", 65, CTRL)
    page.call("Input.insertText", {"text": text})
    page.wait_for(f"(() => {{ const editor = document.querySelector({json.dumps(editor)})"
                  f".CodeMirror; return editor.getValue() === {json.dumps(text)} && ({done}) }})()",
                  f"{text!r} in {editor}")


def _type_query(page: Page, text: str) -> None:
    """Type the query, and wait until GraphiQL has parsed it (it does so 100 ms after the
    last keystroke, and picks HTTP or WebSocket from that parse)."""
    _type_into(page, QUERY_EDITOR, text, f"editor.documentAST?.loc.source.body === {json.dumps(text)}")


def _result_including(text: str) -> str:
    """JavaScript: the result panel's text once it includes `text`, else false."""
    return (f"(() => {{ const shown = document.querySelector({json.dumps(RESULT)})?.CodeMirror"
            f".getValue(); return !!shown && shown.includes({json.dumps(text)}) && shown }})()")


@pytest.fixture
def offline_ide(tmp_path):
    """(page, url, how the network is cut): the demo server and chromium, both offline."""
    chromium = _chromium_or_skip()
    tools = _namespaces()
    port = _free_port()
    serve = _serve_command(tmp_path / "demo.sqlite", port)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    browser = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
    server_log = open(tmp_path / "server.log", "wb")
    # with an admin secret, callers without headers are anonymous (demo-lab is public)
    env = {**os.environ, "CLUSTORE_ADMIN_SECRET": ADMIN_SECRET}
    if tools:
        unshare, nsenter, ip = tools
        # a fresh network namespace whose only interface is loopback, made for this test;
        # `unshare` execs the shell, which execs the server: its pid holds the namespace
        server = subprocess.Popen(
            [unshare, "--net", "--", "sh", "-c", f'"{ip}" link set lo up && exec "$@"', "sh", *serve],
            stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        inside = [nsenter, f"--target={server.pid}", "--net", "--"]
        cut = "network namespace with loopback only"
    else:  # no namespaces here: chromium may resolve and reach loopback only
        server = subprocess.Popen(serve, stdout=server_log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env)
        inside = []
        browser += ["--proxy-server=http://127.0.0.1:9",  # a dead proxy; loopback bypasses it
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        cut = "chromium flags (no network namespace available)"
        warnings.warn(f"IDE test: no network namespace here, the network is cut by {cut} only")
    chrome = None
    try:
        if tools:
            _wait_for_own_namespace(server)
        ready = ("import sys, time, urllib.request\n"
                 "for _ in range(300):\n"
                 "    try:\n"
                 f"        urllib.request.urlopen('http://127.0.0.1:{port}/ping', timeout=1); sys.exit(0)\n"
                 "    except OSError: time.sleep(0.1)\n"
                 "sys.exit(1)\n")
        if subprocess.run([*inside, sys.executable, "-c", ready]).returncode != 0:
            raise AssertionError(f"server did not start: {(tmp_path / 'server.log').read_text()}")
        if tools:
            links = subprocess.run([*inside, tools[2], "-o", "link"], capture_output=True,
                                   text=True, check=True).stdout.splitlines()
            assert [line.split(":")[1].strip() for line in links] == ["lo"], links
        chrome = DevTools([*inside, *browser], tmp_path / "chromium.log")
        yield Page(chrome), f"http://127.0.0.1:{port}/v1/graphql", cut
    finally:
        if chrome:
            chrome.close()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        server_log.close()


def test_ide_runs_a_query_offline(offline_ide, tmp_path):
    page, url, cut = offline_ide
    page.call("Page.navigate", {"url": url})
    page.wait_for(f"!!document.querySelector({json.dumps(QUERY_EDITOR)})", "GraphiQL's editor")
    # the schema came by introspection: the docs explorer opens on the root types
    page.wait_for("!!document.querySelector('.graphiql-sidebar button[aria-label*=\"Documentation\"]')",
                  "the docs explorer button")
    page.click('.graphiql-sidebar button[aria-label*="Documentation"]')
    page.wait_for("document.querySelector('.graphiql-doc-explorer')?.innerText.includes('query_root')",
                  "the schema in the docs explorer")

    # type a query into the editor (schema-aware completion pops up), then Ctrl+Enter
    page.click(QUERY_EDITOR)
    page.key("a", "KeyA", 65, CTRL)
    page.call("Input.insertText", {"text": "{ organizat"})
    page.key("i", "KeyI", 73, text="i")
    page.wait_for("document.querySelector('.CodeMirror-hints')?.innerText.includes('organizations')",
                  "schema-aware completion")
    page.key("Escape", "Escape", 27)
    _type_query(page, "{ organizations { name } }")
    page.key("Enter", "Enter", 13, CTRL)
    shown = page.wait_for(_result_including("demo-lab"), "the query's result")
    assert {"name": "demo-lab"} in json.loads(shown)["data"]["organizations"]
    assert "demo-lab" in page.evaluate("document.querySelector('.graphiql-response').innerText")

    screenshot = tmp_path / "ide.png"
    screenshot.write_bytes(base64.b64decode(page.call("Page.captureScreenshot")["data"]))
    print(f"IDE screenshot: {screenshot} (network cut by {cut})")

    # a subscription goes over a graphql-transport-ws WebSocket, started with the run button;
    # the Headers tab goes with it, in connection_init, where the server reads the caller
    # (the admin secret shows admin tokens, which anonymous callers see as null)
    page.click(".graphiql-editor-tools button", text="Headers")
    _type_into(page, HEADERS_EDITOR, json.dumps({"X-Clustore-Admin-Secret": ADMIN_SECRET}))
    _type_query(page, "subscription { accesses { adminToken } }")
    page.click(".graphiql-execute-button")
    shown = page.wait_for(_result_including("adminToken"), "the subscription's first answer")
    accesses = json.loads(shown)["data"]["accesses"]
    assert accesses and all(a["adminToken"] for a in accesses), accesses
    assert url.replace("http:", "ws:") in page.urls()
    sent = [json.loads(e["params"]["response"]["payloadData"]) for e in page.chrome.events
            if e.get("method") == "Network.webSocketFrameSent"]
    assert {"type": "connection_init",
            "payload": {"headers": {"X-Clustore-Admin-Secret": ADMIN_SECRET}}} in sent, sent

    # ... and with queries over HTTP (the run button stops the subscription first)
    page.click(".graphiql-execute-button")
    _type_query(page, "query Tokens { accesses { adminToken guestToken } }")
    page.key("Enter", "Enter", 13, CTRL)
    shown = page.wait_for(_result_including("guestToken"), "the query with the admin secret")
    assert all(a["adminToken"] for a in json.loads(shown)["data"]["accesses"]), shown
    posted = [r["request"] for r in page.requests() if "Tokens" in r["request"].get("postData", "")]
    assert posted and posted[-1]["headers"].get("X-Clustore-Admin-Secret") == ADMIN_SECRET, posted

    urls = page.urls()
    assert url in urls and any("/v1/graphql/static/graphiql.min.js" in u for u in urls), urls
    outside = [u for u in urls if urlsplit(u).scheme not in ("data", "about", "blob")
               and urlsplit(u).hostname not in LOOPBACK]
    assert not outside, f"the IDE asked for something off the machine: {outside}"
    failed = [e["params"] for e in page.chrome.events if e.get("method") == "Network.loadingFailed"]
    assert not failed, failed
    errors = [e["params"]["entry"] for e in page.chrome.events
              if e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error"]
    assert not errors, errors


def test_ide_files_are_served_by_the_package(tmp_path):
    asyncio.run(_check_ide_files(tmp_path / "store.sqlite"))


IDE_ASSETS = {  # the files the IDE page loads, and the type each must be served with
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.css": "text/css; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "ide.js": "text/javascript; charset=utf-8",
}


async def _check_ide_files(path: Path):
    import re

    import httpx

    from clustore_lite.server.app import Server

    server = Server(str(path))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(server.app),
                                     base_url="http://127.0.0.1") as client:
            page = await client.get("/v1/graphql")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "default-src 'self'" in page.headers["content-security-policy"]
            linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert all(u.startswith(("/v1/graphql/static/", "data:")) for u in linked), linked
            assert {u.rsplit("/", 1)[1] for u in linked if u.startswith("/")} == set(IDE_ASSETS)
            for name, media_type in IDE_ASSETS.items():
                url = f"/v1/graphql/static/{name}"
                plain = await client.get(url, headers={"Accept-Encoding": "identity"})
                assert plain.status_code == 200 and plain.headers["content-type"] == media_type
                assert "max-age" in plain.headers["cache-control"]
                assert "content-encoding" not in plain.headers
                assert b"//unpkg.com" not in plain.content and b"//cdn.jsdelivr" not in plain.content
                zipped = await client.get(url, headers={"Accept-Encoding": "gzip"})
                assert zipped.headers["content-encoding"] == "gzip" and zipped.content == plain.content
                assert int(zipped.headers["content-length"]) < len(plain.content)
                again = await client.get(url, headers={"If-None-Match": plain.headers["etag"]})
                assert again.status_code == 304 and not again.content
            for name in ("ide.html", "README.md", "..%2Fserver.py", "nothing.js"):
                assert (await client.get(f"/v1/graphql/static/{name}")).status_code == 404
    finally:
        server.store.close()
