"""Event triggers (SPEC section 5): the worker that delivers events by HTTP POST
(the log itself is model/eventlog.py).

The log is written by SQLite triggers (see db/event_sql.py) in the transaction of
each write; this module only reads it and delivers. Delivery is at least once:

- a worker claims due deliveries in a short write transaction (always durable: see
  Deliverer.__init__), setting a lease
  (`leaseUntil`, `leaseOwner`) and counting the attempt; it POSTs with no
  transaction open, then records the outcome in another short transaction, only if it
  still holds the lease. Writers never wait on the network, and two workers (threads
  or processes) never have the same attempt in flight: a worker renews the leases of
  its attempts while they run, so a lease only lapses when its worker stopped for
  `lease` seconds; a worker that died (same host, pid gone) loses its leases at once;
- only the oldest pending event of a resource is claimable for a given URL, so one
  receiver sees the events of one row in the order they were written (across rows,
  the due ones go oldest first);
- 2xx is delivered (once the status line and headers arrived: a body cut off or
  stalled after them does not undo it); anything else, a redirect (never followed, as
  in Hasura), a time-out or a refused connection is retried after an exponential
  backoff with jitter, up to `max_retries` retries; then the delivery is dead, and
  stays in the file until `redeliver`;
- a following member's delivery is vetted when claimed, every attempt: sent only if
  the member may read the row (access/audience.py), else `withheld`;
- the POST goes only where the webhook destination policy allows, checked on the
  addresses the connection uses (outbound.py).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable

import apsw
import httpx

from . import outbound
from . import values as v
from .access import audience
from .access.destinations import DestinationRefused, WebhookPolicy
from .db.connection import Database
from .errors import ClustoreError, InvalidValue
from .model.eventlog import DEFAULT_MAX_RETRIES, payload

log = logging.getLogger(__name__)
RECORD_AFTER = 0.02  # seconds an outcome may wait to be recorded with others
MAX_RESPONSE_BYTES = 65536  # read at most this much of an answer, to keep the connection
LOG_AGAIN = 600.0  # seconds before an error that keeps coming back is logged again


CLAIMABLE = """
    d.status = 'pending' AND (d.leaseUntil IS NULL OR d.leaseUntil <= ?1)
    AND NOT EXISTS (SELECT 1 FROM event_delivery p
                    WHERE p.status = 'pending' AND p.url = d.url AND p.tableName = d.tableName
                      AND p.resourceId = d.resourceId AND p.seq < d.seq)"""
CLAIM_SQL = f"""
    SELECT d.id, d.url, d.tries, d.followers, e.id AS eventId, e.tableName, e.op, e.old,
           e.new, e.sessionVariables, e.createdAt
    FROM event_delivery d JOIN event e ON e.id = d.eventId
    WHERE d.nextTryAt <= ?1 AND {CLAIMABLE}
      AND d.url NOT IN (SELECT value FROM json_each(?3))
    ORDER BY d.nextTryAt, d.seq LIMIT ?2"""  # the order of event_delivery_due: no sort
NEXT_DUE_SQL = """
    SELECT min(nextTryAt) FROM event_delivery WHERE status = 'pending' AND nextTryAt > ?"""


@dataclass
class Attempt:
    delivery_id: int
    url: str
    event_id: str
    current_retry: int
    body: bytes


@dataclass
class Outcome:
    attempt: Attempt
    status: int | None  # HTTP status, None when no answer came
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Summary:
    """What a run did: attempts that were delivered, will be retried, or died; and
    deliveries withheld (their follower may not read the row)."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    withheld: int = 0

    @property
    def attempts(self) -> int:
        return self.delivered + self.retrying + self.dead

    def __str__(self) -> str:
        withheld = f", withheld {self.withheld}" if self.withheld else ""
        return f"delivered {self.delivered}, retrying {self.retrying}, dead {self.dead}{withheld}"


class Deliverer:
    """The delivery worker for one store file. Run several (threads or processes) if
    you like; leases keep them from sending the same attempt twice at once.

    >>> with Deliverer("team.sqlite", max_retries=5) as worker:
    ...     worker.run_once()                    # what is due now, then return
    ...     worker.run_forever(stop_event)       # until stop_event is set (server thread)

    `backoff` is the delay before the first retry (doubled each time, at most
    `backoff_max`, times a random factor in 1 ± `jitter`). `timeout` bounds each
    phase of a POST (connect, send, each read). `concurrency` threads POST; at most
    `batch` attempts (default 4 x `concurrency`) are leased at once, and at most
    `per_url` (default half the threads) to one URL, so a hanging receiver leaves
    threads for the others. Leases last `lease` seconds and are renewed while the
    attempts run. `webhook_allow` widens the destination policy (public addresses
    only by default): "127.0.0.1,10.0.0.0/8,hooks.example", a list, or a
    WebhookPolicy."""

    def __init__(self, store_path: str | os.PathLike, *, max_retries: int = DEFAULT_MAX_RETRIES,
                 timeout: float = 10.0, backoff: float = 10.0, backoff_max: float = 3600.0,
                 jitter: float = 0.25, concurrency: int = 16, per_url: int | None = None,
                 batch: int | None = None,
                 lease: float = 60.0, poll: float = 0.5,
                 on_outcome: Callable[[Outcome], Any] | None = None,
                 webhook_allow: str | list[str] | WebhookPolicy | None = None):
        for name, value in (("max_retries", max_retries), ("concurrency", concurrency)):
            if not isinstance(value, int) or value < (0 if name == "max_retries" else 1):
                raise InvalidValue(f"{name} must be a {'non-negative' if name == 'max_retries' else 'positive'} "
                                   f"integer, not {value!r}")
        if timeout <= 0 or backoff < 0 or not 0 <= jitter <= 1:
            raise InvalidValue("timeout must be positive, backoff non-negative, jitter in [0, 1]")
        self.max_retries, self.timeout, self.poll = max_retries, timeout, poll
        self.backoff, self.backoff_max, self.jitter = backoff, backoff_max, jitter
        self.concurrency, self.batch = concurrency, batch or 4 * concurrency
        self.per_url = per_url or max(1, concurrency // 2)
        self.lease = lease
        if self.lease < 2 * poll or self.lease < 1:
            raise InvalidValue(f"lease ({self.lease}s) must be at least 1 s and twice poll "
                               f"({poll}s): a worker renews its leases while it waits")
        self.on_outcome = on_outcome
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.policy = WebhookPolicy.parse(webhook_allow)
        # Always durable, whatever the writers chose: the claim is a commit, and its WAL
        # fsync makes every earlier commit durable too, so an event is POSTed only once
        # the write it tells of would survive a power cut (README "Reliability").
        self.db = Database(store_path, durability="full")
        self.client = outbound.client(
            self.policy, timeout,
            httpx.Limits(max_connections=2 * concurrency,
                         max_keepalive_connections=2 * concurrency),
            # small POSTs: no Nagle delay on our side
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            follow_redirects=False,
            headers={"Content-Type": "application/json", "User-Agent": "clustore-lite-events"})
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="clustore-deliver")
        self._wake = threading.Event()

    # -- running -------------------------------------------------------------------

    def run_once(self) -> Summary:
        """Deliver everything due now (including retries that fall due meanwhile),
        then return. Deliveries scheduled for later stay pending."""
        return self._run(None)

    def run_forever(self, stop: threading.Event) -> Summary:
        """Deliver until `stop` is set, then finish the attempts in flight. Checks for
        new events at least every `poll` seconds (at once after `wake()`). Any error
        (a lock held past the busy timeout by a long import, a replaced file, a bug)
        pauses delivery for `poll`, then it goes on: a server's worker must outlive
        it. Each distinct error is logged once (again after LOG_AGAIN seconds), not
        at every try."""
        logged, logged_at = None, 0.0
        while True:
            try:
                return self._run(stop)
            except Exception as error:
                key = (type(error).__name__, str(error))
                if key != logged or time.monotonic() - logged_at >= LOG_AGAIN:
                    expected = isinstance(error, (ClustoreError, apsw.Error))
                    log.warning("event delivery paused, retried every %gs: %s: %s", self.poll,
                                key[0], error, exc_info=None if expected else error)
                    logged, logged_at = key, time.monotonic()
                if stop.wait(self.poll):
                    return Summary()  # stopping: do not try again

    def wake(self) -> None:
        """Look for due deliveries now (e.g. right after a write in the same process)."""
        self._wake.set()

    def _run(self, stop: threading.Event | None) -> Summary:
        """Keep up to `batch` attempts leased. They wait in a queue per URL and go to
        the threads at most `per_url` at a time per URL; claim again once half the
        threads' worth of attempts ended (or after `poll`); record outcomes several
        at a time; renew the leases of what is still running or queued."""
        summary = Summary()
        self.release_orphans()
        flying: dict[Future, Attempt] = {}
        queued: dict[str, deque[Attempt]] = {}
        finished: list[Outcome] = []
        refill = max(1, self.concurrency // 2)
        ended = 0  # attempts ended since the last claim
        claimed = first_finished = renewed = time.monotonic()
        try:
            while True:
                now, stopping = time.monotonic(), stop is not None and stop.is_set()
                held = [*flying.values(), *(a for q in queued.values() for a in q)]
                if not stopping and (not held or ended >= refill or now - claimed >= self.poll):
                    for attempt in self.claim(self.batch - len(held),
                                              Counter(a.url for a in held), summary):
                        queued.setdefault(attempt.url, deque()).append(attempt)
                    ended, claimed = 0, now
                if stopping and queued:  # not sent yet: give them back
                    self.release([a for q in queued.values() for a in q])
                    queued.clear()
                running = Counter(a.url for a in flying.values())
                for url, waiting in queued.items():
                    while waiting and running[url] < self.per_url:
                        attempt = waiting.popleft()
                        flying[self.pool.submit(self.post, attempt)] = attempt
                        running[url] += 1
                queued = {url: q for url, q in queued.items() if q}
                if not flying and not finished:
                    if stop is None or stopping:
                        return summary
                    self._wake.wait(self._idle_time())
                    self._wake.clear()
                    continue
                wait_for = min(self.poll, self.lease / 3)
                if finished:
                    wait_for = max(0.0, first_finished + RECORD_AFTER - now)
                done, _ = wait(flying, timeout=wait_for, return_when=FIRST_COMPLETED)
                if done and not finished:
                    first_finished = time.monotonic()
                for future in done:
                    finished.append(future.result())
                    del flying[future]
                ended += len(done)
                if finished and (not flying or len(finished) >= refill
                                 or time.monotonic() >= first_finished + RECORD_AFTER):
                    self.record(finished, summary)
                    finished = []
                if time.monotonic() - renewed > self.lease / 3:
                    self.renew([*flying.values(), *(a for q in queued.values() for a in q)])
                    renewed = time.monotonic()
        finally:
            for future in flying:  # an error above: let the attempts end, leases expire
                future.cancel()

    def _idle_time(self) -> float:
        due = self.db.execute(NEXT_DUE_SQL, (time.time(),)).fetchone()[0]
        if due is None:
            return self.poll
        return min(self.poll, max(0.0, due - time.time()) + 0.001)

    # -- the three steps: claim, post, record ---------------------------------------

    def claim(self, limit: int | None = None, busy: Counter | None = None,
              summary: Summary | None = None) -> list[Attempt]:
        """Lease the next due deliveries (one short write transaction, taken only
        when a plain read saw something due), at most 2 x `per_url` per URL counting
        the `busy` ones already held."""
        now, limit, busy = time.time(), limit or self.batch, Counter(busy or {})
        cap = 2 * self.per_url  # per_url running and as many ready to go
        full = json.dumps([url for url, n in busy.items() if n >= cap])
        if not self.db.execute(CLAIM_SQL, (now, 1, full)).fetchall():
            return []
        with self.db.transaction():
            rows, over = self._pick(now, limit, busy, full, summary)
            if over:  # a worker died during the last allowed attempt
                self._set(over, "status = 'dead', leaseUntil = NULL, leaseOwner = NULL, "
                          "lastError = 'the worker stopped during the last attempt'")
            if not rows:
                return []
            self._set([r["id"] for r in rows], "tries = tries + 1, leaseOwner = ?, leaseUntil = ?",
                      (self.owner, now + self.lease))
        return [Attempt(r["id"], r["url"], r["eventId"], r["tries"],
                        json.dumps(payload(r | {"id": r["eventId"]}, self.max_retries,
                                           r["tries"], r["hidden"])).encode())
                for r in rows]

    def _pick(self, now: float, limit: int, busy: Counter, full: str,
              summary: Summary | None) -> tuple[list[dict], list[int]]:
        """In claim's transaction: the due rows to lease (with the columns to hide
        from their recipient) and those out of retries. A follower's delivery its
        member may not read is withheld instead; the next one of its row may then be
        due, so look again until nothing more is withheld."""
        cap = 2 * self.per_url
        rows: list[dict] = []
        over: list[int] = []
        withheld = True
        while withheld and len(rows) < limit:
            withheld, seen = False, {r["id"] for r in rows} | set(over)
            for row in self.db.query(CLAIM_SQL, (now, 4 * limit, full)):
                if row["id"] in seen or busy[row["url"]] >= cap or len(rows) >= limit:
                    continue
                if row["tries"] > self.max_retries:
                    over.append(row["id"])
                    continue
                verdict = audience.judge(self.db, row["tableName"],
                                         [i for i in (row["old"], row["new"]) if i],
                                         row["followers"])
                if not verdict.allowed:
                    self._set([row["id"]], "status = 'withheld', lastError = ?", (audience.WITHHELD,))
                    withheld = True
                    if summary is not None:
                        summary.withheld += 1
                    continue
                busy[row["url"]] += 1
                rows.append(row | {"hidden": verdict.hidden})
        return rows, over

    def post(self, attempt: Attempt) -> Outcome:
        """One HTTP POST, no transaction open. Never raises: failures are outcomes.
        The answer is its status line: once it and the headers arrived, a body cut
        off, stalled or too long changes nothing (the receiver had its say)."""
        try:
            with self.client.stream("POST", attempt.url, content=attempt.body) as response:
                head = self._read_head(response)
        except DestinationRefused as error:
            return Outcome(attempt, None, str(error))
        except httpx.TimeoutException as error:
            return Outcome(attempt, None, f"timed out after {self.timeout}s ({type(error).__name__})")
        except httpx.ConnectError as error:
            return Outcome(attempt, None, f"could not connect: {error}")
        except Exception as error:  # a bad URL, no answer at all: retried like the rest
            return Outcome(attempt, None, f"{type(error).__name__}: {error}"[:500])
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(attempt, status)
        if 300 <= status < 400:  # as Hasura: not followed (and the policy saw only this URL)
            where = response.headers.get("location")
            return Outcome(attempt, status, f"HTTP {status}: redirects are not followed"
                           + (f"; the webhook points to {where}"[:500] if where else ""))
        detail = head.decode(errors="replace").strip()
        return Outcome(attempt, status, f"HTTP {status}" + (f": {detail}" if detail else ""))

    def _read_head(self, response: httpx.Response) -> bytes:
        """The first 200 bytes of the body, for lastError. Reads at most
        MAX_RESPONSE_BYTES for `timeout` seconds (so the connection can be kept); a
        body cut off or stalled ends the reading, not the answer."""
        head, read = bytearray(), 0
        deadline = time.monotonic() + self.timeout
        try:
            for part in response.iter_bytes():
                head += part[:200 - len(head)]
                read += len(part)
                if read > MAX_RESPONSE_BYTES or time.monotonic() > deadline:
                    break
        except httpx.HTTPError:  # cut off, timed out, badly encoded: what came is enough
            pass
        return bytes(head)

    def record(self, outcomes: list[Outcome], summary: Summary | None = None) -> None:
        """Write the outcomes (one short write transaction). An outcome whose lease
        was lost (it expired and another worker took the delivery) is dropped."""
        now, stamp = time.time(), v.now()
        with self.db.transaction():
            for outcome in outcomes:
                attempt = outcome.attempt
                if outcome.ok:
                    state, sets, params = "delivered", "status = 'delivered', deliveredAt = ?, " \
                        "lastError = NULL", [stamp]
                elif attempt.current_retry >= self.max_retries:
                    state, sets, params = "dead", "status = 'dead', lastError = ?", [outcome.error]
                else:
                    state, sets = "retrying", "nextTryAt = ?, lastError = ?"
                    params = [now + self.delay(attempt.current_retry), outcome.error]
                self.db.execute(
                    f"UPDATE event_delivery SET {sets}, lastStatus = ?, leaseUntil = NULL, "
                    "leaseOwner = NULL, updatedAt = ? WHERE id = ? AND leaseOwner = ?",
                    (*params, outcome.status, stamp, attempt.delivery_id, self.owner))
                if summary is not None and self.db.conn.changes():
                    setattr(summary, state, getattr(summary, state) + 1)
        for outcome in outcomes:
            if self.on_outcome:
                self.on_outcome(outcome)

    def renew(self, attempts: list[Attempt]) -> None:
        """Extend the leases of attempts still held, so that no other worker takes
        them over however long a receiver takes to answer."""
        self._leased(attempts, "leaseUntil = ?", (time.time() + self.lease,))

    def release(self, attempts: list[Attempt]) -> None:
        """Give back attempts claimed but never sent (the worker is stopping)."""
        self._leased(attempts, "leaseUntil = NULL, leaseOwner = NULL, tries = tries - 1")

    def _leased(self, attempts: list[Attempt], assignments: str, params: tuple = ()) -> None:
        if attempts:
            ids = [a.delivery_id for a in attempts]
            with self.db.transaction():
                self.db.execute(f"UPDATE event_delivery SET {assignments} WHERE leaseOwner = ? "
                                f"AND id IN ({', '.join('?' for _ in ids)})",
                                (*params, self.owner, *ids))

    def delay(self, retry: int) -> float:
        """Seconds before the next attempt after attempt number `retry` failed."""
        base = min(self.backoff_max, self.backoff * 2 ** min(retry, 60))
        return base * (1 + self.jitter * (2 * random.random() - 1))

    def release_orphans(self) -> int:
        """Free the leases of workers of this host whose process is gone (killed, ...),
        instead of waiting for the leases to expire. Answers how many were freed."""
        host = socket.gethostname()
        freed = 0
        owners = self.db.execute(
            "SELECT DISTINCT leaseOwner FROM event_delivery WHERE status = 'pending' "
            "AND substr(leaseOwner, 1, ?) = ? AND leaseUntil > ?",
            (len(host) + 1, host + ":", time.time())).fetchall()
        for (owner,) in owners:
            if _process_alive(owner.split(":")[1]):
                continue
            with self.db.transaction():
                self.db.execute("UPDATE event_delivery SET leaseUntil = NULL, leaseOwner = NULL "
                                "WHERE leaseOwner = ?", (owner,))
                freed += self.db.conn.changes()
        return freed

    def _set(self, ids: list[int], assignments: str, params: tuple = ()) -> None:
        if ids:
            marks = ", ".join("?" for _ in ids)
            self.db.execute(f"UPDATE event_delivery SET {assignments}, updatedAt = ? "
                            f"WHERE id IN ({marks})", (*params, v.now(), *ids))

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()
        self.db.close()

    def __enter__(self) -> "Deliverer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _process_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
