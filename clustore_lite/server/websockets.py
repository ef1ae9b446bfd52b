"""Ariadne's two WebSocket protocols, fixed where they differ from what clients
(Hasura's included) expect."""

from __future__ import annotations

import asyncio
import contextlib

from ..access.http import AuthError
from .subscriptions import LegacySubscriptions, TransportSubscriptions


class TransportWSHandler(TransportSubscriptions):
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


class LegacyWSHandler(LegacySubscriptions):
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
