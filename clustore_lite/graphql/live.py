"""Live queries: a subscription answers at once, then again each time a commit changes
its answer; identical subscriptions (same document, variables and caller) share one
computation.

Kept fair to everything else: at most LIVE_THREADS recomputations run at once (the
rest of the thread pool stays free for plain queries and writes, however many
subscriptions a commit wakes), and a connection or a caller may hold only so many. Each push is executed by a fresh
executor (FreshEventExecutor)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any, Callable

import anyio
from graphql import Executor, GraphQLError

from ..errors import ClustoreError
from .errors import graphql_error

LIVE_THREADS = 2
MAX_PER_CONNECTION = 100
MAX_PER_CALLER = 300


class Changes:
    """Tells subscriptions that the file changed: `version` goes up on each commit
    seen (in this process or another), and `wait(seen)` returns once it has."""

    def __init__(self):
        self.version = 0
        self._event = asyncio.Event()
        self.subscribers: dict[tuple, int] = {}
        self._answers: dict[tuple, tuple[int, asyncio.Future]] = {}
        self._open: Counter = Counter()  # subscriptions by ("connection", id) and ("caller", who)
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop

    async def answer(self, key: tuple, version: int, compute) -> Any:
        """`compute()` (run in a thread) for this key at this version, once for all
        the subscriptions that share the key."""
        found = self._answers.get(key)
        if found is None or found[0] != version:
            found = (version, asyncio.ensure_future(self._compute(compute)))
            self._answers[key] = found
        return await asyncio.shield(found[1])

    async def _compute(self, compute) -> Any:
        self._limiter = self._limiter or anyio.CapacityLimiter(LIVE_THREADS)
        return await anyio.to_thread.run_sync(compute, limiter=self._limiter)

    def admit(self, connection: int, caller: Any) -> list[tuple]:
        """Count one more subscription of this connection and caller, or refuse it
        with an error that names the limit. Answers the keys to `leave` with."""
        keys = [("connection", connection, MAX_PER_CONNECTION), ("caller", caller, MAX_PER_CALLER)]
        for kind, who, limit in keys:
            if self._open[kind, who] >= limit:
                raise GraphQLError(f"this {kind} has {limit} subscriptions open already, the "
                                   f"most one {kind} may hold: stop one first",
                                   extensions={"code": "validation-failed"})
        counted = [(kind, who) for kind, who, _ in keys]
        self._open.update(counted)
        return counted

    def leave(self, counted: list[tuple]) -> None:
        self._open.subtract(counted)
        for key in counted:
            if self._open[key] <= 0:
                del self._open[key]

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
        counted = changes.admit(id(info.context.get("request")), info.context["store"].caller)
        key = live_key(info)
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
            changes.leave(counted)
    return source


def live_key(info) -> tuple:
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
