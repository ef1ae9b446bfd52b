"""One operation, one transaction: the mutation fields of a request run in order in
ONE write transaction and all roll back on any error, as in Hasura.

SQLite transactions belong to a connection, and the store keeps one connection per
thread; so every write of an operation runs on one thread, taken from a few
long-lived worker threads (each keeps its connection) for the operation's duration.
Nested `store.transaction()`s inside are savepoints: a failing field undoes its own
writes at once, and the operation's end undoes the rest. The event log's triggers write
in the same transaction, so events record only committed writes."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, Callable

from ..errors import ClustoreError

WORKERS = 4  # SQLite has one writer at a time: more would only wait on its lock


class Skipped(ClustoreError):
    """A field not run, after an earlier one of its operation failed (left out of the
    answer, which names the failure itself)."""

    code = "skipped"


SKIPPED = Skipped.code


class Workers:
    """The threads that run operations' transactions, one operation at a time each."""

    def __init__(self, size: int = WORKERS):
        self._executors = [ThreadPoolExecutor(1, thread_name_prefix="clustore-tx")
                           for _ in range(size)]
        self._free: asyncio.Queue | None = None  # made in the server's event loop

    async def take(self) -> ThreadPoolExecutor:
        if self._free is None:
            self._free = asyncio.Queue()
            for executor in self._executors:
                self._free.put_nowait(executor)
        return await self._free.get()

    def give(self, executor: ThreadPoolExecutor) -> None:
        self._free.put_nowait(executor)

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True)


class Rollback(Exception):
    """Thrown into the store's transaction to roll it back."""


class OperationTransaction:
    """The write transaction of one operation, begun by its first write."""

    def __init__(self, workers: Workers):
        self.workers = workers
        self.executor: ThreadPoolExecutor | None = None
        self.transaction = None  # the store's transaction context, entered in the worker
        self.failed = False
        self.rolled_back = False

    async def run(self, store, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)` inside the operation's transaction, on its thread; after
        a failure, nothing more runs (Hasura stops at the first failing field)."""
        if self.failed:
            raise Skipped("not run: an earlier field of this operation failed, and its "
                          "writes were rolled back")
        try:
            if self.executor is None:
                self.executor = await self.workers.take()
            return await self._call(self._within, store, function, *args)
        except BaseException:
            self.failed = True
            raise

    async def finish(self, commit: bool) -> None:
        """Commit when asked and nothing failed, else roll back; the thread goes back
        to the pool once done, even when the request was cancelled meanwhile."""
        if self.executor is None:
            return
        commit = commit and not self.failed
        done = asyncio.get_running_loop().run_in_executor(self.executor, self._end, commit)
        done.add_done_callback(lambda _: self.workers.give(self.executor))
        self.rolled_back = not commit
        await asyncio.shield(done)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    def _within(self, store, function: Callable[..., Any], *args: Any) -> Any:
        if self.transaction is None:  # the operation's first write begins it
            transaction = store.transaction()
            transaction.__enter__()
            self.transaction = transaction
        return function(*args)

    def _end(self, commit: bool) -> None:
        if self.transaction is None:
            return  # it never began
        if commit:
            self.transaction.__exit__(None, None, None)
        else:
            self.transaction.__exit__(Rollback, Rollback(), None)


_CURRENT: ContextVar[OperationTransaction | None] = ContextVar("clustore_operation", default=None)


def current() -> OperationTransaction | None:
    """The transaction of the operation being run, if its runner opened one."""
    return _CURRENT.get()


@contextlib.contextmanager
def running(transaction: OperationTransaction):
    """Resolvers called in this block write in `transaction`."""
    token = _CURRENT.set(transaction)
    try:
        yield transaction
    finally:
        _CURRENT.reset(token)
