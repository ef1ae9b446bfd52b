"""The HTTP side: Starlette routes for GraphQL (HTTP and both WebSocket subprotocols),
the IDE, ping, and dataframes as Arrow IPC streams; the delivery worker and the
watcher that wakes subscriptions run beside them."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import threading
import time
from datetime import timedelta

from ariadne.asgi import GraphQL
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute

from ..access.http import Authenticator, AuthError
from ..db.checkpoints import wal_is_large
from ..db.connection import connect
from ..delivery import Deliverer
from ..graphql import atomic, fastpath
from ..graphql.documents import Checked, Documents
from ..graphql.errors import LOGGER, format_error
from ..graphql.limits import limits_rule
from ..graphql.live import Changes
from ..graphql.schema import build_schema
from ..store import Store
from . import arrow, graphql_http
from .bodies import MAX_JSON_BYTES, Bodies, BodyRefused, NotJSON, decode_json, media_type
from .errors import (EXCEPTION_HANDLERS, error_response, graphql_error_response,
                     store_error_response)
from .guard import Guard
from .ide import IdeAssets, ide_page
from .websockets import INIT_SECONDS, LegacyWSHandler, TransportWSHandler

POLL_SECONDS = 0.05
MAX_BODY_BYTES = 256 << 20
MAX_DECODED_BYTES = 1 << 30  # an Arrow body once decompressed
VERSION = importlib.metadata.version("clustore-lite")


class Server:
    """One store served: the Starlette app and what its handlers share."""

    def __init__(self, path: str, max_body_bytes: int = MAX_BODY_BYTES,
                 admin_secret: str | None = None, jwt_secret: str | None = None,
                 deliver: bool = True, delivery_options: dict | None = None,
                 webhook_allow=None, max_decoded_bytes: int = MAX_DECODED_BYTES,
                 allowed_hosts: list[str] = (), cors_origins: list[str] = (),
                 readonly: bool = False, durability: str = "full"):
        """`readonly`: serve queries and subscriptions only; mutations answer the
        error code read-only and no event is delivered (nothing can queue one).
        `durability`: as for Store."""
        self.store = Store(path, webhook_allow=webhook_allow, readonly=readonly,
                           durability=durability)
        self.auth = Authenticator.from_environment(self.store, admin_secret, jwt_secret)
        self.changes = Changes()
        self.workers = atomic.Workers()  # the threads of mutations' transactions
        self.bodies = Bodies(max_body_bytes)
        self.max_decoded_bytes = max_decoded_bytes
        self.deliver = deliver and not readonly
        self.delivery_options = delivery_options or {}
        self.schema = schema = build_schema()
        self.documents = Documents(schema, [limits_rule()])
        common = dict(context_value=self.context, error_formatter=format_error, logger=LOGGER,
                      validation_rules=[limits_rule()], query_parser=self.documents.parser,
                      query_validator=self.documents.validator)
        guard = dict(on_connect=self.on_connect, reauthenticate=self.reauthenticate,
                     lapsed=self.lapsed)
        self.graphql_http = GraphQL(schema, **common, websocket_handler=TransportWSHandler(
            **guard, connection_init_wait_timeout=timedelta(seconds=INIT_SECONDS)))
        self.graphql_ws = GraphQL(schema, **common, websocket_handler=LegacyWSHandler(**guard))
        self.app = Guard(Starlette(
            routes=[
                Route("/ping", self.ping),
                Route("/healthz", self.healthz),
                Route("/v1/version", self.version),
                Route("/v1/graphql", self.graphql, methods=["GET", "POST"]),
                Mount("/v1/graphql/static", IdeAssets()),
                WebSocketRoute("/v1/graphql", self.websocket),
                Route("/v1/dataframes/{id}.arrow", self.read_arrow),
                Route("/v1/dataframes/{id}/chunks", self.append_arrow, methods=["POST"]),
            ],
            lifespan=self.lifespan,
            exception_handlers=EXCEPTION_HANDLERS,
        ), allowed_hosts, cors_origins)

    async def context(self, request, data=None) -> dict:
        """The GraphQL context; Ariadne asks for it before it parses, so the document
        is checked here, in a worker thread (documents.py), and its parser finds it."""
        store = request.scope.get("clustore.store", self.store)
        context = {"store": store, "changes": self.changes, "request": request}
        if isinstance(data, dict) and isinstance(data.get("query"), str):
            context["document"] = await self.documents.prepare(data["query"])
        return context

    async def caller_store(self, connection, extra_headers: dict | None = None) -> Store:
        """The caller's view of the store, from the request's headers; kept in the
        ASGI scope for the GraphQL context (with the identity and the headers, which a
        WebSocket presents again before each operation)."""
        headers = {**dict(connection.headers), **{k.lower(): v for k, v in (extra_headers or {}).items()}}
        identity = await run_in_threadpool(self.auth.identify, headers)
        connection.scope.update({"clustore.store": identity.store, "clustore.identity": identity,
                                 "clustore.headers": headers})
        return identity.store

    async def reauthenticate(self, websocket) -> None:
        """Before each operation on a WebSocket: its credentials again, as at connection_init
        (one JWT decode or one token lookup); raises AuthError when they no longer hold."""
        headers = websocket.scope.get("clustore.headers")
        if headers is not None:
            identity = await run_in_threadpool(self.auth.identify, headers)
            websocket.scope.update({"clustore.store": identity.store, "clustore.identity": identity})

    async def lapsed(self, websocket) -> str | None:
        """Wait until the WebSocket's credentials lapse and say why: checked at each commit
        (a token regenerated or its access deleted) and at a JWT's `exp`. None at once for
        credentials that cannot lapse (the admin secret, anonymous, a JWT without exp)."""
        while True:
            identity = websocket.scope["clustore.identity"]
            if not identity.can_lapse:
                return None
            seen = self.changes.version
            reason = await run_in_threadpool(self.auth.lapsed, identity)
            if reason is not None:
                return reason
            timeout = None if identity.expires is None else max(0.0, identity.expires - time.time()) + 0.01
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changes.wait(seen), timeout)

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
            deliverer = Deliverer(self.store.path, webhook_allow=self.store.webhooks,
                                  **self.delivery_options)
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
            await run_in_threadpool(self.workers.close)
            self.store.close()

    async def _watch(self, deliverer=None) -> None:
        """Bump `changes` whenever any connection, in any process, commits (and wake
        the delivery worker: a commit may have queued events)."""
        conn = connect(self.store.path, readonly=self.store.readonly)
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
                    if not self.store.readonly and wal_is_large(self.store.path):
                        self.store.db.checkpointer.request()  # a foreign import ended?
        finally:
            conn.close()

    async def ping(self, request: Request):
        return PlainTextResponse("pong")

    async def healthz(self, request: Request):
        """Hasura's health probe: OK once the server answers (the store opened at start)."""
        return PlainTextResponse("OK")

    async def version(self, request: Request):
        """Hasura's version probe; `server_type` tells clustore-lite from Hasura."""
        return JSONResponse({"version": VERSION, "server_type": "clustore-lite"})

    async def graphql(self, request: Request):
        """POST /v1/graphql: the caller is known from the headers before the body is
        read; only JSON is taken (a web form or a text/plain fetch cannot send it
        across sites without a CORS preflight)."""
        if request.method == "GET":
            return ide_page()
        try:
            store = await self.caller_store(request)
        except AuthError as error:  # Hasura answers credentials' errors with 200 too
            return graphql_error_response(error.code, str(error))
        if media_type(request) != "application/json":
            return graphql_error_response("validation-failed",
                                          "a GraphQL request is a JSON body: send it with "
                                          "Content-Type: application/json", 415)
        try:
            data = await decode_json(await self.bodies.read(request, MAX_JSON_BYTES))
        except BodyRefused as error:
            return graphql_error_response("validation-failed", str(error), error.status)
        except NotJSON as error:
            return graphql_error_response(error.code, str(error))
        return await graphql_http.respond(data, lambda one: self._answer(request, store, one))

    async def _answer(self, request: Request, store: Store, data) -> str:
        """The JSON text of one operation's answer: its document checked off the event
        loop (and cached), then from the fast path, else Ariadne's."""
        checked = None
        if isinstance(data, dict) and isinstance(data.get("query"), str):
            checked = await self.documents.prepare(data["query"])
            if checked.errors:  # answered as Ariadne would, without parsing again
                return graphql_http.dumps({"errors": [format_error(e) for e in checked.errors]})
        fast = await run_in_threadpool(self._fast_answer, store, data, checked)
        if fast is not None:
            return fast.body
        return await graphql_http.run_atomically(self.graphql_http.http_handler, request, data,
                                                 self.workers)

    def _fast_answer(self, store: Store, data, checked: Checked | None) -> fastpath.Answer | None:
        """A plain query's answer spliced from SQLite's JSON (fastpath.py), or None
        when Ariadne must answer (mutations, introspection, invalid variables)."""
        planned = fastpath.plan(self.documents, data, checked)
        if planned is None:
            return None
        return fastpath.answer(self.schema, store, *planned)

    async def websocket(self, websocket):
        offered = websocket.scope.get("subprotocols") or []
        app = self.graphql_ws if "graphql-ws" in offered and "graphql-transport-ws" not in offered \
            else self.graphql_http
        try:
            await app.handle_websocket(websocket)
        except (ValueError, RecursionError):  # a message that is not JSON, or nested past the decoder
            await websocket.close(code=4400, reason="messages must be JSON, nested less than "
                                                    "about 1000 levels")

    async def read_arrow(self, request: Request):
        try:
            store = await self.caller_store(request)
        except AuthError as error:
            return store_error_response(error)
        return await arrow.read_response(store, request.path_params["id"])

    async def append_arrow(self, request: Request):
        """POST /v1/dataframes/{id}/chunks: the caller, the dataframe and the right to
        append are checked before the body is read; only an Arrow IPC stream is taken."""
        try:
            store = await self.caller_store(request)
        except AuthError as error:
            return store_error_response(error)
        if media_type(request) != arrow.ARROW_STREAM:
            return error_response(415, "validation-failed", "send the rows as an Arrow IPC "
                                  f"stream, with Content-Type: {arrow.ARROW_STREAM}")
        return await arrow.append_response(store, request.path_params["id"], request,
                                           self.bodies, self.max_decoded_bytes)


def create_app(path: str, **options) -> Guard:
    return Server(path, **options).app
