"""Ariadne's two WebSocket protocols, fixed where they differ from what clients
(Hasura's included) expect, and guarded: a connection's credentials are checked at
connection_init, again before each operation, and watched while it is open. When they
fail or lapse (a token regenerated, a JWT past its `exp`), the connection's operations
stop and it closes with 4403 and the reason, in both protocols."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable

from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected, WebSocketState

from ..access.http import AuthError
from .subscriptions import LegacySubscriptions, TransportSubscriptions

FORBIDDEN = 4403
INIT_TIMEOUT = 4408  # graphql-transport-ws: no connection_init in time
INIT_SECONDS = 10.0  # a socket that has not said connection_init by then is closed
REFUSED = "clustore.refused"  # scope key: this connection is being closed with 4403
INITIALISED = "clustore.initialised"  # scope key: connection_init was received


class Guarded:
    """What both protocols share: `reauthenticate(websocket)` raises AuthError when the
    connection's credentials no longer hold; `lapsed(websocket)` returns the reason
    once they lapse (or None at once when they cannot)."""

    def __init__(self, *args, reauthenticate: Callable[..., Awaitable[None]],
                 lapsed: Callable[..., Awaitable[str | None]], **kwargs):
        super().__init__(*args, **kwargs)
        self.reauthenticate, self.lapsed = reauthenticate, lapsed
        self._watchers: dict[int, asyncio.Task] = {}

    async def handle_websocket(self, websocket):
        try:
            await super().handle_websocket(websocket)
        finally:
            watcher = self._watchers.pop(id(websocket), None)
            if watcher is not None and not watcher.done():
                watcher.cancel()

    def watch(self, websocket, stop_operations: Callable[[], Awaitable[None]]) -> None:
        """Close the connection when its credentials lapse (one watcher per connection,
        however many connection_init messages it sends)."""
        running = self._watchers.get(id(websocket))
        if running is not None and not running.done():
            return

        async def watcher():
            reason = await self.lapsed(websocket)
            if reason is not None:
                await self.refuse(websocket, reason, stop_operations)
        self._watchers[id(websocket)] = asyncio.ensure_future(watcher())

    async def checked(self, websocket, stop_operations: Callable[[], Awaitable[None]]) -> bool:
        """Before an operation: are the credentials still good? If not, close."""
        if websocket.scope.get(REFUSED):
            return False
        try:
            await self.reauthenticate(websocket)
            return True
        except AuthError as error:
            await self.refuse(websocket, str(error), stop_operations)
            return False

    async def refuse(self, websocket, reason: str, stop_operations=None) -> None:
        """Stop every operation (nothing more is sent), then close with 4403."""
        if websocket.scope.get(REFUSED):
            return
        websocket.scope[REFUSED] = True
        if stop_operations is not None:
            await stop_operations()
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnected, OSError):
                await websocket.close(code=FORBIDDEN, reason=reason[:120])


class TransportWSHandler(Guarded, TransportSubscriptions):
    """Ariadne's graphql-transport-ws handler, refusing bad credentials the way the
    protocol says: close code 4403 (Forbidden) with the reason, not a bare close."""

    async def observe_async_results(self, websocket, results, operation_id, client_context):
        # A client that goes away while a push is being sent: Ariadne then tries to send
        # the error too, and the second failure escaped as a server traceback.
        with contextlib.suppress(WebSocketDisconnected, WebSocketDisconnect, OSError):
            await super().observe_async_results(websocket, results, operation_id, client_context)

    async def handle_websocket_connection_init_message(self, websocket, message, client_context):
        first = not client_context.connection_init_received
        if first and self.on_connect:
            try:
                await self.on_connect(websocket, message.get("payload"))
            except AuthError as error:
                client_context.connection_init_received = True
                await self.refuse(websocket, str(error))
                return
        await super().handle_websocket_connection_init_message(websocket, message, client_context)
        if first and client_context.connection_acknowledged:
            self.watch(websocket, self._stopper(websocket, client_context))

    async def handle_websocket_subscribe(self, websocket, data, operation_id, client_context):
        if client_context.connection_acknowledged and \
                not await self.checked(websocket, self._stopper(websocket, client_context)):
            return
        await super().handle_websocket_subscribe(websocket, data, operation_id, client_context)

    def _stopper(self, websocket, client_context):
        async def stop():
            for operation_id in list(client_context.operations):
                await self.stop_websocket_operation(websocket, operation_id, client_context)
        return stop


class LegacyWSHandler(Guarded, LegacySubscriptions):
    """Ariadne's graphql-ws handler, stopping a subscription by cancelling the task
    that reads it before closing it (closing an async generator another task is
    iterating raises "already running"), and refusing credentials with
    connection_error and 4403."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._readers: dict[tuple[int, str], asyncio.Task] = {}

    async def handle_websocket(self, websocket):
        """As Ariadne's, closing with 4408 a socket that says no connection_init within
        INIT_SECONDS (graphql-transport-ws does so itself; this protocol has no timer)."""
        async def deadline():
            await asyncio.sleep(INIT_SECONDS)
            if not websocket.scope.get(INITIALISED) and \
                    websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnected, OSError, RuntimeError):
                    await websocket.close(code=INIT_TIMEOUT)
        timer = asyncio.ensure_future(deadline())
        try:
            await super().handle_websocket(websocket)
        finally:
            timer.cancel()

    async def handle_websocket_connection_init_message(self, websocket, message):
        websocket.scope[INITIALISED] = True
        if self.on_connect:
            try:
                await self.on_connect(websocket, message.get("payload"))
            except AuthError as error:
                await websocket.send_json({"type": self.GQL_CONNECTION_ERROR,
                                           "payload": {"message": str(error)}})
                await self.refuse(websocket, str(error))
                return
        await super().handle_websocket_connection_init_message(websocket, message)
        if websocket.application_state == WebSocketState.CONNECTED:
            self.watch(websocket, self._stopper(websocket))

    async def process_single_message(self, websocket, data, operation_id, operations):
        if not await self.checked(websocket, self._stopper(websocket)):
            return
        with contextlib.suppress(WebSocketDisconnected):  # closed meanwhile: nothing to answer
            await super().process_single_message(websocket, data, operation_id, operations)

    def _stopper(self, websocket):
        async def stop():
            for key in [k for k in self._readers if k[0] == id(websocket)]:
                await self._cancel(self._readers.pop(key, None))
        return stop

    async def observe_async_results(self, websocket, results, operation_id):
        key = (id(websocket), operation_id)
        self._readers[key] = asyncio.current_task()
        try:  # a client gone while a push is sent: nobody is left to tell
            with contextlib.suppress(WebSocketDisconnected, WebSocketDisconnect, OSError):
                await super().observe_async_results(websocket, results, operation_id)
        finally:
            self._readers.pop(key, None)

    async def stop_websocket_operation(self, websocket, operation):
        await self._cancel(self._readers.pop((id(websocket), operation.id), None))
        await super().stop_websocket_operation(websocket, operation)

    @staticmethod
    async def _cancel(reader: asyncio.Task | None) -> None:
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
