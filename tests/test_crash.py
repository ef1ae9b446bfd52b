"""Crash safety: a writer process is SIGKILLed at random points, many times, while it
creates multi-chunk datasets, appends and deletes; the points are drawn by progress (a
seeded number of acknowledged writes), not by time, so that a slow machine covers the
same ground. After every kill the file passes SQLite's checks and the store's, every
acknowledged write is there, and the one write in flight is wholly there or wholly absent.
Both journals are covered: the rollback journal of a bulk write alone on the file, and
WAL with a second connection open.

CLUSTORE_CAMPAIGN_SCALE=10 runs ten times as many kills (80 per journal)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

import clustore_lite
from clustore_lite.db import maintenance

HERE = Path(__file__).parent
SCALE = float(os.environ.get("CLUSTORE_CAMPAIGN_SCALE", "1"))
KILLS = max(3, round(8 * SCALE))


class Model:
    """What the file must hold, from the writer's log: dataset name -> the calls that
    wrote its rows, as (op, rows), in order."""

    def __init__(self, log: Path):
        self.log = log
        self.datasets: dict[str, list[tuple[int, int]]] = {}
        self.seen = 0  # log lines already applied
        self.acked = 0

    def catch_up(self, actual: dict, stats: Counter) -> None:
        lines = [line for line in self.log.read_text().splitlines() if line.endswith("}")]
        entries = [json.loads(line) for line in lines[self.seen:]]
        self.seen = len(lines)
        intents = {e["op"]: e for e in entries if "kind" in e}
        acks = {e["op"]: e for e in entries if e.get("ack")}
        in_flight = [op for op in intents if op not in acks]
        assert in_flight in ([], [max(intents)]), f"unacknowledged writes {in_flight}"
        for op in sorted(intents):
            if op in acks:
                self.apply(intents[op])
                self.acked += 1
                stats[f"acked {intents[op]['kind']} in {acks[op]['journal']}"] += 1
            elif self.committed(intents[op], actual):
                self.apply(intents[op])
                stats["in-flight write found committed"] += 1
            else:
                stats["in-flight write found rolled back"] += 1

    def apply(self, intent: dict) -> None:
        name, op = intent["name"], intent["op"]
        if intent["kind"] == "create":
            self.datasets[name] = [(op, intent["rows"])]
        elif intent["kind"] == "append":
            self.datasets[name].append((op, intent["rows"]))
        else:
            del self.datasets[name]

    @staticmethod
    def committed(intent: dict, actual: dict) -> bool:
        name = intent["name"]
        if intent["kind"] == "create":
            return name in actual
        if intent["kind"] == "append":
            return intent["op"] in [op for op, _ in actual.get(name, [])]
        return name not in actual


def read_back(db: Path) -> dict:
    """The datasets as the file holds them, checking on the way that no write is
    partly visible: chunk positions 1..n, a chunk never mixes two calls, each call's
    rows are whole (i = 0..rows-1), nothing is orphaned."""
    report = maintenance.check(db)
    assert report.ok, report.text()  # integrity_check, foreign_key_check, chunk sums
    actual = {}
    with clustore_lite.open(db) as store:
        orgs = store.organizations.list(name="crash")
        for dataset in store.datasets.list(organizationId=orgs[0]["id"]) if orgs else []:
            frame = dataset["dataframeId"]
            chunks = store.dataframes.chunks(frame)
            assert [c["position"] for c in chunks] == list(range(1, len(chunks) + 1))
            segments: list[list[int]] = []  # [op, rows]
            for chunk in chunks:
                table = store.dataframes.read_chunk(chunk["id"])
                low, high = pc.min_max(table.column("op")).values()
                assert low == high, f"chunk {chunk['id']} mixes the rows of two calls"
                if not segments or segments[-1][0] != low.as_py():
                    segments.append([low.as_py(), 0])
                start = segments[-1][1]
                assert np.array_equal(table.column("i").to_numpy(),
                                      np.arange(start, start + table.num_rows))
                segments[-1][1] += table.num_rows
            assert store.dataframes.get(frame)["rows"] == sum(rows for _, rows in segments)
            actual[dataset["name"]] = [tuple(s) for s in segments]
        assert store.dataframes.count() == store.datasets.count(), "orphaned dataframe"
        assert store.accesses.count() == store.organizations.count() + store.datasets.count()
    return actual


KINDS = {"create", "append", "delete"}
PROGRESS_DEADLINE = 300  # seconds for a writer to make its progress: ample on a slow machine


def acknowledged_kinds(log: Path) -> list[str]:
    """The kinds of the writes acknowledged in the log so far, in order (complete lines
    only: the writer may be in the middle of one)."""
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]
    kinds = {e["op"]: e["kind"] for e in entries if "kind" in e}
    return [kinds[e["op"]] for e in entries if e.get("ack")]


def wait_for_progress(writer: subprocess.Popen, progressed, what: str) -> None:
    deadline = time.monotonic() + PROGRESS_DEADLINE
    while not progressed():
        if writer.poll() is not None:
            raise AssertionError(f"the writer stopped before {what}:\n{writer.communicate()[1]}")
        if time.monotonic() > deadline:
            writer.kill()
            raise AssertionError(f"the writer did not reach {what} in {PROGRESS_DEADLINE} s")
        time.sleep(0.002)


def campaign(tmp_path: Path, mode: str, kills: int, rng: random.Random) -> Counter:
    """Each writer is killed after progress, not after a time: once it has acknowledged
    k more writes (k drawn from `rng`, so a seed covers the same ground on any machine),
    then at once or after a short random pause (to land at varied points inside the
    next write). The last writer also runs until every kind of write has been
    acknowledged at least once in the campaign."""
    db, log = tmp_path / "crash.sqlite", tmp_path / "writes.log"
    model, stats = Model(log), Counter()
    promised = 0  # acknowledgements the waits guarantee
    for number in range(1, kills + 1):
        seed, k = rng.randrange(2**32), rng.randint(1, 12)
        pause = rng.uniform(0, 0.03) if rng.random() < 0.75 else 0.0  # about one write
        last = number == kills
        print(f"kill {number}: writer seed {seed}, after {k} acknowledgements"
              f"{' and every kind' if last else ''}, then {pause:.3f} s")
        before = len(acknowledged_kinds(log))
        promised += k
        writer = subprocess.Popen(
            [sys.executable, str(HERE / "crash_writer.py"), str(db), str(log), str(seed), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = writer.stdout.readline()
        assert ready == "ready\n", writer.communicate()[1]

        def progressed():
            kinds = acknowledged_kinds(log)
            return len(kinds) >= before + k and (not last or set(kinds) >= KINDS)

        wait_for_progress(writer, progressed, f"{k} acknowledgements")
        time.sleep(pause)
        os.kill(writer.pid, signal.SIGKILL)
        _, err = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, f"the writer failed by itself:\n{err}"
        stats["kills"] += 1
        stats["hot rollback journal left"] += Path(f"{db}-journal").exists()
        actual = read_back(db)
        model.catch_up(actual, stats)
        assert actual == model.datasets
    stats["acknowledged writes verified"] = model.acked
    stats["acknowledgements waited for"] = promised
    return stats


@pytest.mark.parametrize("mode", ["alone", "shared"])
def test_sigkill_loses_no_acknowledged_write_and_shows_no_partial_one(tmp_path, mode, rng):
    started = time.monotonic()
    stats = campaign(tmp_path, mode, KILLS, rng)
    print(f"\n{mode}: {dict(sorted(stats.items()))} in {time.monotonic() - started:.1f} s")
    acked = {key.split(" ")[1] for key in stats if key.startswith("acked ")}
    bulk_journals = {key.rsplit(" ", 1)[1] for key in stats
                     if key.startswith(("acked create", "acked append"))}
    # the campaign covered what it is about: every kind of write, in the journal of the mode
    assert acked == KINDS
    assert bulk_journals == ({"delete"} if mode == "alone" else {"wal"})
    assert stats["acknowledged writes verified"] >= stats["acknowledgements waited for"] >= KILLS


def test_bulk_writes_in_the_rollback_journal_sync_fully(db_path):
    """synchronous=NORMAL is proof against power cuts in WAL only: a bulk write in the
    rollback journal runs with FULL even in durability="normal", and the connection
    returns to NORMAL after."""
    with clustore_lite.open(db_path, durability="normal") as store:
        with store.db.bulk() as conn:
            store.users.create("u")
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
