"""Starting a subscription on either WebSocket protocol as Ariadne does, but with
graphql-core's executor_class set to live.FreshEventExecutor (Ariadne's handlers
offer no way to pass it): without it, memory grows with every push."""

from __future__ import annotations

import asyncio
from inspect import isawaitable

from ariadne.asgi.handlers import GraphQLTransportWSHandler, GraphQLWSHandler
from ariadne.graphql import parse_query, subscribe
from ariadne.logger import log_error
from ariadne.types import Operation
from ariadne.utils import get_operation_type
from graphql import GraphQLError, OperationType

from ..graphql.live import FreshEventExecutor


async def start(handler, data: dict, context, document):
    """Ariadne's subscribe(), with the executor that keeps no memory per push:
    (True, results) or (False, formatted errors)."""
    return await subscribe(
        handler.schema, data, context_value=context, root_value=handler.root_value,
        query_document=document, query_validator=handler.query_validator,
        validation_rules=handler.validation_rules, debug=handler.debug,
        introspection=handler.introspection, logger=handler.logger,
        error_formatter=handler.error_formatter, executor_class=FreshEventExecutor)


async def announce(handler, websocket, operation: Operation) -> None:
    """Ariadne's on_operation hook, called as Ariadne calls it."""
    if not handler.on_operation:
        return
    try:
        result = handler.on_operation(websocket, operation)
        if result and isawaitable(result):
            await result
    except Exception as error:
        if not isinstance(error, GraphQLError):
            error = GraphQLError(str(error), original_error=error)
        log_error(error, handler.logger)


class TransportSubscriptions(GraphQLTransportWSHandler):
    """graphql-transport-ws: a `subscribe` message for a subscription starts it here;
    anything else (queries, mutations, errors, protocol faults) goes to Ariadne."""

    async def handle_websocket_subscribe(self, websocket, data, operation_id, client_context):
        document = context = None
        if client_context.connection_acknowledged and operation_id not in client_context.operations \
                and isinstance(data, dict) and isinstance(data.get("query"), str):
            context = await self.get_context_for_request(websocket, data)
            document = _subscription(context, self.query_parser, data)
        if document is None:
            await super().handle_websocket_subscribe(websocket, data, operation_id, client_context)
            return
        success, results = await start(self, data, context, document)
        if not success:
            await websocket.send_json({"type": self.GQL_ERROR, "id": operation_id,
                                       "payload": results if isinstance(results, list) else [results]})
            return
        operation = Operation(id=operation_id, name=data.get("operationName"), generator=results)
        client_context.operations[operation_id] = operation
        await announce(self, websocket, operation)
        client_context.operation_tasks[operation_id] = asyncio.ensure_future(
            self.observe_async_results(websocket, results, operation_id, client_context))


class LegacySubscriptions(GraphQLWSHandler):
    """graphql-ws: Ariadne's start_websocket_operation, with the executor above."""

    async def start_websocket_operation(self, websocket, data, context_value, query_document,
                                        operation_id, operations):
        success, results = await start(self, data, context_value, query_document)
        if not success:
            await websocket.send_json({"type": self.GQL_ERROR, "id": operation_id,
                                       "payload": results[0]})
            return
        operations[operation_id] = Operation(id=operation_id, name=data.get("operationName"),
                                             generator=results)
        await announce(self, websocket, operations[operation_id])
        asyncio.ensure_future(self.observe_async_results(websocket, results, operation_id))


def _subscription(context, parser, data: dict):
    """The document of `data` when it is a subscription, else None."""
    try:
        document = parse_query(context, parser, data)
        if get_operation_type(document, data.get("operationName")) == OperationType.SUBSCRIPTION:
            return document
    except GraphQLError:
        pass  # Ariadne reports it
    return None
