"""What every GraphQL resolver shares: store work runs in a thread (SQLite never
blocks the event loop), and the store's errors become GraphQL errors with their code."""

from __future__ import annotations

from typing import Any, Callable

from graphql import GraphQLError
from starlette.concurrency import run_in_threadpool

from .errors import ClustoreError


def graphql_error(error: ClustoreError) -> GraphQLError:
    return GraphQLError(str(error), extensions={"code": error.code}, original_error=error)


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return await run_in_threadpool(function, *args)
    except ClustoreError as error:
        raise graphql_error(error) from None
