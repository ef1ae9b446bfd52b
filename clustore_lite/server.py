"""The HTTP side: Starlette routes for GraphQL (HTTP and both WebSocket subprotocols),
the IDE page, ping, and dataframes as Arrow IPC streams."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import json
import threading
from importlib import resources

from ariadne.asgi import GraphQL
from ariadne.asgi.handlers import GraphQLTransportWSHandler, GraphQLWSHandler
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (HTMLResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route, WebSocketRoute

from . import arrow_codec as codec
from . import fastpath, storage
from .auth import Authenticator, AuthError
from .errors import ClustoreError, NotFound, PermissionDenied
from .fastpath import Documents
from .graphql import LOGGER, Changes, build_schema, format_error
from .limits import limits_rule
from .store import Store

ARROW_STREAM = "application/vnd.apache.arrow.stream"
POLL_SECONDS = 0.05
MAX_BODY_BYTES = 256 << 20


class TransportWSHandler(GraphQLTransportWSHandler):
    """Ariadne's graphql-transport-ws handler, refusing bad credentials the way the
    protocol says: close code 4403 (Forbidden) with the reason, not a bare close."""

    async def handle_websocket_connection_init_message(self, websocket, message, client_context):
        if not client_context.connection_init_received and self.on_connect:
            try:
                await self.on_connect(websocket, message.get("payload"))
            except AuthError as error:
                client_context.connection_init_received = True
                await websocket.close(code=4403, reason=str(error)[:120])
                return
        await super().handle_websocket_connection_init_message(websocket, message, client_context)


class LegacyWSHandler(GraphQLWSHandler):
    """Ariadne's graphql-ws handler, stopping a subscription by cancelling the task
    that reads it before closing it (closing an async generator another task is
    iterating raises "already running")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._readers: dict[tuple[int, str], asyncio.Task] = {}

    async def observe_async_results(self, websocket, results, operation_id):
        key = (id(websocket), operation_id)
        self._readers[key] = asyncio.current_task()
        try:
            await super().observe_async_results(websocket, results, operation_id)
        finally:
            self._readers.pop(key, None)

    async def stop_websocket_operation(self, websocket, operation):
        reader = self._readers.pop((id(websocket), operation.id), None)
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        await super().stop_websocket_operation(websocket, operation)


class Server:
    """One store served: the Starlette app and what its handlers share."""

    def __init__(self, path: str, max_body_bytes: int = MAX_BODY_BYTES,
                 admin_secret: str | None = None, jwt_secret: str | None = None,
                 deliver: bool = True, delivery_options: dict | None = None):
        self.store = Store(path)
        self.auth = Authenticator.from_environment(self.store, admin_secret, jwt_secret)
        self.changes = Changes()
        self.max_body_bytes = max_body_bytes
        self.deliver = deliver
        self.delivery_options = delivery_options or {}
        self.schema = schema = build_schema()
        self.documents = Documents(schema, [limits_rule()])
        common = dict(context_value=self.context, error_formatter=format_error, logger=LOGGER,
                      validation_rules=[limits_rule()], query_parser=self.documents.parser,
                      query_validator=self.documents.validator)
        self.graphql_http = GraphQL(schema, **common, websocket_handler=TransportWSHandler(
            on_connect=self.on_connect))
        self.graphql_ws = GraphQL(schema, **common, websocket_handler=LegacyWSHandler(
            on_connect=self.on_connect))
        self.app = Starlette(
            routes=[
                Route("/ping", self.ping),
                Route("/v1/graphql", self.graphql, methods=["GET", "POST"]),
                Route("/v1/graphql/static/{name}", ide_asset),
                WebSocketRoute("/v1/graphql", self.websocket),
                Route("/v1/dataframes/{id}.arrow", self.read_arrow),
                Route("/v1/dataframes/{id}/chunks", self.append_arrow, methods=["POST"]),
            ],
            lifespan=self.lifespan,
        )

    def context(self, request, data=None) -> dict:
        store = request.scope.get("clustore.store", self.store)
        return {"store": store, "changes": self.changes, "request": request}

    async def caller_store(self, connection, extra_headers: dict | None = None) -> Store:
        """The caller's view of the store, from the request's headers; kept in the
        ASGI scope for the GraphQL context."""
        headers = {**dict(connection.headers), **{k.lower(): v for k, v in (extra_headers or {}).items()}}
        store = await run_in_threadpool(self.auth.store_for, headers)
        connection.scope["clustore.store"] = store
        return store

    async def on_connect(self, websocket, payload) -> None:
        """WebSocket clients (Hasura's included) send headers in connection_init."""
        if "clustore.store" in websocket.scope:
            return  # already done by TransportWSHandler, which answers failures with 4403
        headers = (payload or {}).get("headers") if isinstance(payload, dict) else None
        await self.caller_store(websocket, headers if isinstance(headers, dict) else None)

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        deliverer, stop, thread = None, threading.Event(), None
        if self.deliver:
            from .events import Deliverer  # loads httpx: only where events are sent

            deliverer = Deliverer(self.store.path, **self.delivery_options)
            thread = threading.Thread(target=deliverer.run_forever, args=(stop,),
                                      name="clustore-deliver", daemon=True)
            thread.start()
        watcher = asyncio.create_task(self._watch(deliverer))
        try:
            yield
        finally:
            watcher.cancel()
            stop.set()
            if deliverer is not None:
                deliverer.wake()
                await run_in_threadpool(thread.join, 10)
                deliverer.close()
            self.store.close()

    async def _watch(self, deliverer=None) -> None:
        """Bump `changes` whenever any connection, in any process, commits (and wake
        the delivery worker: a commit may have queued events)."""
        conn = storage.connect(self.store.path)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                await asyncio.sleep(POLL_SECONDS)
                version = conn.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self.changes.bump()
                    if deliverer is not None:
                        deliverer.wake()
        finally:
            conn.close()

    async def ping(self, request: Request):
        return PlainTextResponse("pong")

    async def graphql(self, request: Request):
        if request.method == "GET":
            return HTMLResponse(ide_page(), headers=IDE_HEADERS)
        body = await self._bounded_body(request)
        if body is None:
            return _error(413, "validation-failed",
                          f"request body larger than {self.max_body_bytes} bytes")
        request._body = body  # Starlette keeps it: Ariadne reads this copy
        try:
            store = await self.caller_store(request)
        except AuthError as error:
            return JSONResponse({"errors": [{"message": str(error), "extensions": {"code": error.code}}]},
                                status_code=401)
        fast = await self._fast_answer(store, body)
        if fast is not None:
            return Response(fast, media_type="application/json")
        return await self.graphql_http.handle_request(request)

    async def _fast_answer(self, store: Store, body: bytes) -> str | None:
        """A plain query's answer spliced from SQLite's JSON (fastpath.py), or None
        when Ariadne must answer (mutations, introspection, any error)."""
        try:
            planned = fastpath.plan(self.documents, json.loads(body))
        except ValueError:
            return None
        if planned is None:
            return None
        try:
            return await run_in_threadpool(fastpath.answer, self.schema, store, *planned)
        except ClustoreError:
            return None  # Ariadne runs it again and reports the error in GraphQL's shape

    async def _bounded_body(self, request: Request) -> bytes | None:
        """The body, or None as soon as it passes the limit (declared or streamed)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > self.max_body_bytes:
                return None
        return bytes(body)

    async def websocket(self, websocket):
        offered = websocket.scope.get("subprotocols") or []
        app = self.graphql_ws if "graphql-ws" in offered and "graphql-transport-ws" not in offered \
            else self.graphql_http
        await app.handle_websocket(websocket)

    async def read_arrow(self, request: Request):
        frame_id = request.path_params["id"]
        try:
            store = await self.caller_store(request)
            chunk_ids, schema = await run_in_threadpool(_frame_for_reading, store, frame_id)
        except ClustoreError as error:
            return _clustore_error(error)
        return StreamingResponse(_stream_chunks(self.store.path, chunk_ids, schema),
                                 media_type=ARROW_STREAM)

    async def append_arrow(self, request: Request):
        frame_id = request.path_params["id"]
        body = await self._bounded_body(request)
        if body is None:
            return _error(413, "validation-failed",
                          f"request body larger than {self.max_body_bytes} bytes")
        try:
            store = await self.caller_store(request)
            frame = await run_in_threadpool(_append, store, frame_id, body)
        except ClustoreError as error:
            return _clustore_error(error)
        return JSONResponse({"id": frame["id"], "rows": frame["rows"], "size": frame["size"]})


def _frame_for_reading(store: Store, frame_id: str):
    store.dataframes.get(frame_id)
    schema = store.dataframes.schema(frame_id)
    chunks = [c["id"] for c in store.dataframes.chunks(frame_id)]
    return chunks, schema


def _append(store: Store, frame_id: str, body: bytes):
    store.dataframes.get(frame_id)
    return store.dataframes.append_ipc(frame_id, body)  # checks the whole stream first


def _stream_chunks(path: str, chunk_ids: list[str], schema):
    """The dataframe's chunks as one Arrow IPC stream, read one BLOB at a time from a
    connection of its own, in one read transaction (a consistent snapshot)."""
    conn = storage.connect(path)
    try:
        conn.execute("BEGIN")
        sent_schema = False
        if not chunk_ids and schema is not None:
            yield bytes(_schema_message(schema))
            sent_schema = True
        for chunk_id in chunk_ids:
            row = conn.execute("SELECT data FROM chunk WHERE id = ?", (chunk_id,)).fetchone()
            if row is None:
                continue
            head, messages = codec.stream_parts(row[0])
            if not sent_schema:
                yield bytes(head)
                sent_schema = True
            yield bytes(messages)
        if sent_schema:
            yield codec.END_OF_STREAM
        conn.execute("COMMIT")
    finally:
        conn.close()


def _schema_message(schema) -> memoryview:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    head, _ = codec.stream_parts(sink.getvalue().to_pybytes())
    return head


STATUS = {NotFound: 404, PermissionDenied: 403, AuthError: 401}


def _clustore_error(error: ClustoreError):
    status = next((code for cls, code in STATUS.items() if isinstance(error, cls)), 400)
    return _error(status, error.code, str(error))


def _error(status: int, code: str, message: str):
    return JSONResponse({"error": message, "code": code}, status_code=status)


def ide_page() -> str:
    return resources.files(__package__).joinpath("static/ide.html").read_text()


# The IDE (GraphiQL, React) ships inside the package, so the page works with no internet;
# the policy makes the browser refuse anything from another origin.
IDE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
IDE_ASSETS = {
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.css": "text/css; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "ide.js": "text/javascript; charset=utf-8",
}


@functools.cache
def _ide_asset(name: str) -> tuple[bytes, bytes, str]:
    """(body, gzipped body, ETag) of one IDE file, read from the package once."""
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    return body, gzip.compress(body, 6, mtime=0), '"%s"' % hashlib.sha256(body).hexdigest()[:32]


async def ide_asset(request: Request):
    name = request.path_params["name"]
    if name not in IDE_ASSETS:
        return PlainTextResponse("not found", status_code=404)
    body, zipped, etag = await run_in_threadpool(_ide_asset, name)
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400, must-revalidate",
               "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = zipped, "gzip"
    return Response(body, media_type=IDE_ASSETS[name], headers=headers)


def create_app(path: str, **options) -> Starlette:
    return Server(path, **options).app
