"""Crash safety: a writer process is SIGKILLed at random points, many times, while it
creates multi-chunk datasets, appends and deletes; after every kill the file passes
SQLite's checks and the store's, every acknowledged write is there, and the one write
in flight is wholly there or wholly absent. Both journals are covered: the rollback
journal of a bulk write alone on the file, and WAL with a second connection open.

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


def campaign(tmp_path: Path, mode: str, kills: int) -> Counter:
    db, log = tmp_path / "crash.sqlite", tmp_path / "writes.log"
    model, rng, stats = Model(log), random.Random(f"crash-{mode}"), Counter()
    for _ in range(kills):
        writer = subprocess.Popen(
            [sys.executable, str(HERE / "crash_writer.py"), str(db), str(log),
             str(rng.randrange(2**32)), mode],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = writer.stdout.readline()
        assert ready == "ready\n", writer.communicate()[1]
        time.sleep(rng.uniform(0, 1.0))
        os.kill(writer.pid, signal.SIGKILL)
        _, err = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, f"the writer failed by itself:\n{err}"
        stats["kills"] += 1
        stats["hot rollback journal left"] += Path(f"{db}-journal").exists()
        actual = read_back(db)
        model.catch_up(actual, stats)
        assert actual == model.datasets
    stats["acknowledged writes verified"] = model.acked
    return stats


@pytest.mark.parametrize("mode", ["alone", "shared"])
def test_sigkill_loses_no_acknowledged_write_and_shows_no_partial_one(tmp_path, mode):
    started = time.monotonic()
    stats = campaign(tmp_path, mode, KILLS)
    print(f"\n{mode}: {dict(sorted(stats.items()))} in {time.monotonic() - started:.1f} s")
    bulk_journals = {key.rsplit(" ", 1)[1] for key in stats
                     if key.startswith(("acked create", "acked append"))}
    # the campaign covered the journal it is about
    assert bulk_journals == ({"delete"} if mode == "alone" else {"wal"})
    assert stats["acknowledged writes verified"] >= KILLS


def test_bulk_writes_in_the_rollback_journal_sync_fully(db_path):
    """synchronous=NORMAL is proof against power cuts in WAL only: a bulk write in the
    rollback journal runs with FULL, and the connection returns to NORMAL after."""
    with clustore_lite.open(db_path) as store:
        with store.db.bulk() as conn:
            store.users.create("u")
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
