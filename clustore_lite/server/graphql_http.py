"""The wire contract of `POST /v1/graphql`, as Hasura keeps it: every GraphQL error is
answered with HTTP 200 and `{"errors": [{"message", "extensions": {"path", "code"}}]}`
(Apollo and other clients then hand `extensions.code` to the application instead of a
network error); a JSON array of operations is a batch, answered by an array in the same
order; an operation is one transaction (graphql/atomic.py): when any of its fields
fails, all its writes roll back and it is answered `{"errors": [...]}` alone. Only
refusals of the transport itself (a body too large, not JSON's content type, too many
large bodies at once) keep their 4xx status."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from ariadne.asgi.handlers import GraphQLHTTPHandler
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ClustoreError
from ..graphql import atomic
from .errors import graphql_error_body

MAX_BATCH = 20  # operations in one batch (Apollo's BatchHttpLink sends at most 10 by default)


def dumps(value: Any) -> str:
    """JSON text as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def answer_json(text: str) -> Response:
    """An answer of /v1/graphql: 200, whatever errors it holds."""
    return Response(text, 200, media_type="application/json")


async def respond(data: Any, answer: Callable[[Any], Awaitable[str]]) -> Response:
    """The response to a decoded request body; `answer` gives the JSON text of one
    operation's answer. A batch's operations are answered one after the other, each
    on its own (one failing leaves the others be), in the order given."""
    if not isinstance(data, list):
        return answer_json(await _answer_one(answer, data))
    if len(data) > MAX_BATCH:  # one answer, not one per operation: its size stays bounded
        return answer_json(dumps(graphql_error_body(
            "validation-failed", f"a batch holds at most {MAX_BATCH} operations, this one "
            f"{len(data)}: send it in several batches")))
    answers = [await _answer_one(answer, operation) for operation in data]
    return answer_json("[" + ",".join(answers) + "]")


async def _answer_one(answer: Callable[[Any], Awaitable[str]], operation: Any) -> str:
    try:
        return await answer(operation)
    except ClustoreError as error:  # refused before any field ran (a store file replaced)
        return dumps(graphql_error_body(error.code, str(error)))


async def run_atomically(handler: GraphQLHTTPHandler, request: Request, data: Any,
                         workers: atomic.Workers) -> str:
    """The JSON text of one operation's answer, run by Ariadne's `handler`; its writes
    are committed together when it answers no error, else rolled back together."""
    transaction = atomic.OperationTransaction(workers)
    try:
        with atomic.running(transaction):
            _, result = await handler.execute_graphql_query(request, data)
    except BaseException:
        await transaction.finish(commit=False)
        raise
    try:
        await transaction.finish(commit=not result.get("errors"))
    except ClustoreError as error:  # the COMMIT itself failed
        return dumps(graphql_error_body(error.code, str(error)))
    if transaction.rolled_back:
        return dumps({"errors": [error for error in result["errors"]
                                 if error.get("extensions", {}).get("code") != atomic.SKIPPED]})
    return dumps(result)
