"""Live queries: a subscription answers at once, then again each time a commit changes
its answer; identical subscriptions (same document, variables and caller) share one
computation. Each push is executed by a fresh executor (FreshEventExecutor)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from graphql import Executor
from starlette.concurrency import run_in_threadpool

from ..errors import ClustoreError
from .errors import graphql_error


class Changes:
    """Tells subscriptions that the file changed: `version` goes up on each commit
    seen (in this process or another), and `wait(seen)` returns once it has."""

    def __init__(self):
        self.version = 0
        self._event = asyncio.Event()
        self.subscribers: dict[tuple, int] = {}
        self._answers: dict[tuple, tuple[int, asyncio.Future]] = {}

    async def answer(self, key: tuple, version: int, compute) -> Any:
        """`compute()` (run in a thread) for this key at this version, once for all
        the subscriptions that share the key."""
        found = self._answers.get(key)
        if found is None or found[0] != version:
            found = (version, asyncio.ensure_future(run_in_threadpool(compute)))
            self._answers[key] = found
        return await asyncio.shield(found[1])

    def release(self, key: tuple) -> None:
        self.subscribers[key] -= 1
        if not self.subscribers[key]:
            del self.subscribers[key]
            self._answers.pop(key, None)

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int) -> None:
        if self.version == seen:
            await self._event.wait()


def subscription_source(answer: Callable[..., Any]):
    """A subscription's source over `answer(info, **args)`, the root field's answer."""
    async def source(_, info, **args):
        changes: Changes = info.context["changes"]
        key = _live_key(info)
        last = object()
        changes.subscribers[key] = changes.subscribers.get(key, 0) + 1
        try:
            while True:
                seen = changes.version
                try:
                    value = await changes.answer(key, seen, lambda: answer(info, **args))
                except ClustoreError as error:
                    raise graphql_error(error) from None
                if value != last:
                    last = value
                    yield value
                await changes.wait(seen)
        finally:
            changes.release(key)
    return source


def _live_key(info) -> tuple:
    source = info.field_nodes[0].loc.source.body if info.field_nodes[0].loc else id(info)
    store = info.context["store"]
    return (source, info.operation.name.value if info.operation.name else None,
            info.path.key, json.dumps(info.variable_values, sort_keys=True, default=str),
            store.caller)


class FreshEventExecutor(Executor):
    """graphql-core's executor, with a fresh executor for each subscription event.

    graphql-core 3.3 runs each event on a shallow copy of the subscription's executor,
    which shares its memo of collected sub-fields; the memo is keyed by lists made anew
    for each event and keeps them alive, so it grew by ~1.4 KB per push per subscription
    for the subscription's life (20 subscribers for 60 s: +31 MB). A fresh executor
    has its own memo, dropped with the event. (graphql-core 3.2 builds each event
    afresh, but pinning it would pin gql, a test dependency, to websockets<12.)"""

    def build_per_event_executor(self, payload: Any) -> Executor:
        return type(self)(
            self.schema, self.fragment_definitions, self.fragments, payload,
            self.context_value, self.operation, self.variable_values, self.field_resolver,
            self.type_resolver, self.subscribe_field_resolver, self.enable_early_execution,
            self.middleware_manager, self.is_awaitable, self.is_async_iterable,
            self.hide_suggestions, self.abort_signal, self.hooks)
