"""The delivery worker of a server outlives any error: before, `run_forever` caught
only apsw.Error, so one StoreBusy from `claim()` (a long import held the write lock
past the busy timeout) ended delivery until the server restarted."""

import logging
import threading

import apsw
from receiver import Receiver

from clustore_lite.db import connection
from clustore_lite.delivery import Deliverer
from waiting import wait_for

LOCAL = "127.0.0.1"  # the receivers listen on loopback, which the webhook policy refuses unless allowed



class Running:
    """A worker's run_forever in a thread, as the server runs it; `failures` counts
    the errors `claim` raised, by type."""

    def __init__(self, worker: Deliverer):
        self.worker, self.stop, self.failures = worker, threading.Event(), {}
        claim = worker.claim

        def counted(*args, **kwargs):
            try:
                return claim(*args, **kwargs)
            except Exception as error:
                name = type(error).__name__
                self.failures[name] = self.failures.get(name, 0) + 1
                raise

        worker.claim = counted
        self.thread = threading.Thread(target=worker.run_forever, args=(self.stop,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.worker.wake()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def failed(self, name: str, times: int) -> bool:
        assert self.thread.is_alive(), "the worker thread died"
        return self.failures.get(name, 0) >= times


def pauses(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "clustore_lite.delivery" and "paused" in r.getMessage()]


def test_deliveries_resume_after_the_write_lock_was_held_past_the_busy_timeout(
        store, monkeypatch, caplog):
    caplog.set_level(logging.WARNING, logger="clustore_lite.delivery")
    monkeypatch.setattr(connection, "BUSY_TIMEOUT_MS", 100)  # the worker's connections
    with Receiver() as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())  # one event due
        holder = apsw.Connection(store.path)  # a long import, say
        holder.execute("BEGIN IMMEDIATE")
        with Deliverer(store.path, poll=0.05, backoff=0.0, timeout=5.0, webhook_allow=LOCAL) as worker, \
                Running(worker) as running:
            wait_for(lambda: running.failed("StoreBusy", 3), what="claims refused: busy")
            assert hooks.bodies() == []
            holder.execute("ROLLBACK")
            wait_for(lambda: any(b["event"]["data"]["new"]["id"] == org.id
                                 for b in hooks.bodies()), what="the delivery")
        holder.close()
    [message] = pauses(caplog)  # once, not at each of the refused claims
    assert "StoreBusy" in message and "write lock" in message


def test_the_worker_survives_any_error_and_logs_each_distinct_one_once(
        store, caplog):
    caplog.set_level(logging.WARNING, logger="clustore_lite.delivery")
    with Receiver() as hooks:
        org = store.organizations.create("lumen", webhook=hooks.url())
        with Deliverer(store.path, poll=0.05, backoff=0.0, timeout=5.0, webhook_allow=LOCAL) as worker:
            claim, errors = worker.claim, [RuntimeError("boom")] * 3 + [KeyError("k")] * 2

            def failing(*args, **kwargs):  # a bug for the first five claims
                if errors:
                    raise errors.pop(0)
                return claim(*args, **kwargs)

            worker.claim = failing
            with Running(worker) as running:
                wait_for(lambda: any(b["event"]["data"]["new"]["id"] == org.id
                                     for b in hooks.bodies()), what="the delivery")
                assert running.failures == {"RuntimeError": 3, "KeyError": 2}
    messages = pauses(caplog)
    assert len(messages) == 2 and "RuntimeError: boom" in messages[0] and "KeyError" in messages[1]
