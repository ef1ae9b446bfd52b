"""Errors on the GraphQL side: the store's errors as GraphQL errors with Hasura's
codes, resolvers' store work in a thread (SQLite never blocks the event loop), and
what the server logs."""

from __future__ import annotations

import logging
from typing import Any, Callable

import apsw
from graphql import GraphQLError
from starlette.concurrency import run_in_threadpool

from ..db.sqlite_errors import translated
from ..errors import ClustoreError
from . import atomic
from .error_paths import error_path


def graphql_error(error: ClustoreError) -> GraphQLError:
    return GraphQLError(str(error), extensions={"code": error.code}, original_error=error)


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await _translating(run_in_threadpool(function, *args))


async def in_transaction(store, function: Callable[..., Any], *args: Any) -> Any:
    """Like in_thread, for a mutation's writes: inside the operation's transaction
    when its runner opened one (HTTP), else in a thread of the pool."""
    transaction = atomic.current()
    if transaction is None:
        return await in_thread(function, *args)
    return await _translating(transaction.run(store, function, *args))


async def _translating(work) -> Any:
    """The store's errors, and SQLite's that are not bugs (a damaged file), as GraphQL
    errors with their code."""
    try:
        return await work
    except ClustoreError as error:
        raise graphql_error(error) from None
    except apsw.Error as error:
        ours = translated(error)
        if ours is None:
            raise
        raise graphql_error(ours) from None


def error_code(error: GraphQLError) -> str:
    """Hasura's code for an error: the store's own, validation-failed for anything
    wrong with the request itself (parse, validation, variables: no path), else
    unexpected."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, ClustoreError):
        return original.code
    if error.path is None:
        return "validation-failed"
    return "unexpected"


def format_error(error: GraphQLError, debug: bool = False) -> dict:
    """Every error carries a code (Hasura's where one fits) and Hasura's JSON path of
    where it lies; never a stack trace."""
    formatted = error.formatted
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", error_code(error))
    extensions.setdefault("path", error_path(error))
    if extensions["code"] == "unexpected":
        formatted["message"] = f"unexpected error: {error.message}"
    formatted["extensions"] = extensions
    return formatted


class ExpectedErrors(logging.Filter):
    """Log only unexpected errors: a bad request or a refused write is the caller's
    business, answered in the response, not a server fault worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, GraphQLError) and error_code(error) != "unexpected")


LOGGER = logging.getLogger("clustore_lite.graphql")
LOGGER.addFilter(ExpectedErrors())
