"""What a web page must not be able to do to a server on the user's machine, refused
before any route runs.

- DNS rebinding: a page from attacker.example whose name is re-pointed at 127.0.0.1
  sends `Host: attacker.example`. Only names the server is served as are accepted:
  IP address literals (a page's origin can be an address only if the page came from
  it, so they cannot be rebound), `localhost`, this machine's host name, and the names
  given with `--allowed-host` (`*.example.org` patterns, or `*` for any).
- Cross-site requests: a WebSocket upgrade, or any request other than GET and HEAD,
  that carries an `Origin` which is neither the server's own nor one given with
  `--cors-origin` is refused (403): browsers send Origin on those, other clients
  do not, so scripts and backends are unaffected. CORS preflights are answered for
  the allowed origins only (Starlette's CORSMiddleware).
Both answer a JSON error with a code, never run the request."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_NAMES = ("localhost", "localhost.localdomain")
SAFE_METHODS = ("GET", "HEAD")


def host_name(host: str) -> str:
    """The name or address of a Host header value (`[::1]:8001` -> `::1`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".")


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The Host and Origin checks around the app (see the module's docstring)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str] = (),
                 cors_origins: list[str] = ()):
        self.names = {*LOCAL_NAMES, socket.gethostname().lower(),
                      *(h.lower().rstrip(".") for h in allowed_hosts)}
        self.any_host = "*" in self.names
        self.origins = {o.rstrip("/").lower() for o in cors_origins}
        self.app = CORSMiddleware(app, allow_origins=sorted(self.origins),
                                  allow_methods=["GET", "POST"], allow_headers=["*"], max_age=600)

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = host_name(host)
        return (self.any_host or is_address(name) or name in self.names
                or any(p.startswith("*.") and name.endswith(p[1:]) for p in self.names))

    def origin_allowed(self, origin: str, host: str) -> bool:
        """An origin may call: the server's own (same host and port) or a listed one."""
        origin = origin.rstrip("/").lower()
        return "*" in self.origins or origin in self.origins or urlsplit(origin).netloc == host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.host_allowed(host):
            return await _refuse(scope, receive, send, 400, "access-denied",
                                 f"this server is not served as {host!r}: give its name with "
                                 "--allowed-host (CLUSTORE_ALLOWED_HOSTS) to accept it")
        origin = headers.get("origin")
        checked = scope["type"] == "websocket" or scope["method"] not in (*SAFE_METHODS, "OPTIONS")
        if origin and checked and not self.origin_allowed(origin, host):
            return await _refuse(scope, receive, send, 403, "access-denied",
                                 f"requests from the web page origin {origin!r} are refused: "
                                 "allow it with --cors-origin (CLUSTORE_CORS_ORIGINS)")
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                  message: str) -> None:
    if scope["type"] == "websocket":  # closing before accepting answers the upgrade with 403
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    await JSONResponse({"error": message, "code": code}, status_code=status)(scope, receive, send)
