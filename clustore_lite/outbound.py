"""HTTP to webhooks, connected only to addresses the destination policy allows
(access/destinations.py).

The check has to sit where the connection is made: checking a URL's host and then
letting the HTTP client resolve it again leaves a window in which a name answers a
public address to the check and an internal one to the connection (DNS rebinding).
So the connection pool's network backend resolves each host once, checks every
address, and connects to those very addresses. A pooled keep-alive connection was
checked when it was opened.

Environment proxies (HTTP_PROXY, ...) are not used: a proxy would resolve the name
itself, past the check."""

from __future__ import annotations

import contextlib
import typing

import httpcore
import httpx

from .access.destinations import WebhookPolicy


class CheckedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to the addresses the policy allows for a host."""

    def __init__(self, policy: WebhookPolicy):
        self.policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            addresses = self.policy.addresses(host, port)
        except OSError as error:  # the name does not resolve
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure or httpcore.ConnectError(f"{host} has no address")


@contextlib.contextmanager
def _as_httpx_errors():
    """httpcore's errors as httpx's of the same name, as httpx's own transport does."""
    try:
        yield
    except httpcore.TimeoutException as error:
        raise getattr(httpx, type(error).__name__, httpx.TimeoutException)(str(error)) from None
    except httpcore.NetworkError as error:
        raise getattr(httpx, type(error).__name__, httpx.NetworkError)(str(error)) from None
    except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as error:
        raise getattr(httpx, type(error).__name__, httpx.TransportError)(str(error)) from None


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: typing.Iterable[bytes]):
        self.stream = stream

    def __iter__(self):
        with _as_httpx_errors():
            yield from self.stream

    def close(self) -> None:
        if hasattr(self.stream, "close"):
            self.stream.close()


class CheckedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool whose connections the policy checks."""

    def __init__(self, policy: WebhookPolicy, limits: httpx.Limits,
                 socket_options: typing.Iterable | None = None):
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            socket_options=socket_options, network_backend=CheckedBackend(policy))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=request.url.raw_scheme, host=request.url.raw_host,
                             port=request.url.port, target=request.url.raw_path),
            headers=request.headers.raw, content=request.stream, extensions=request.extensions)
        with _as_httpx_errors():
            response = self.pool.handle_request(core)
        return httpx.Response(status_code=response.status, headers=response.headers,
                              stream=_Body(response.stream), extensions=response.extensions)

    def close(self) -> None:
        self.pool.close()


def client(policy: WebhookPolicy, timeout: float, limits: httpx.Limits,
           socket_options: typing.Iterable | None = None, **options) -> httpx.Client:
    """An httpx client that calls only destinations `policy` allows."""
    return httpx.Client(transport=CheckedTransport(policy, limits, socket_options),
                        timeout=httpx.Timeout(timeout), trust_env=False, **options)
