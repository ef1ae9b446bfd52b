"""A writer/reader process for the concurrency tests: `python load_worker.py DB WORKER
THREADS OPS`. Each thread runs a fixed sequence of writes (users, organizations,
multi-chunk datasets, appends to one shared dataset) and reads, opening the store
afresh for every operation so that opening races with other processes' bulk writes.
The same `run` is called serially in the test to get the expected result."""

from __future__ import annotations

import random
import sys
import threading
import time

import pyarrow as pa

import clustore_lite

SHARED_ORG, SHARED_DATASET = "shared", "log"


def setup(db: str) -> None:
    with clustore_lite.open(db) as store:
        org = store.organizations.create(SHARED_ORG)
        store.datasets.create(org["id"], SHARED_DATASET, segment("setup", 3), chunk_rows=2)


def segment(tag: str, rows: int) -> pa.Table:
    """Rows written by one call: `tag` on every row, `i` counting 0..rows-1."""
    return pa.table({"tag": pa.array([tag] * rows), "i": pa.array(range(rows), pa.int64())})


def run(db: str, worker: int, thread: int, ops: int, store=None) -> None:
    """One thread's work. With `store`, every operation uses it (serial run)."""
    pause = random.Random(f"{worker}-{thread}")
    for i in range(ops):
        if store is not None:
            op(store, f"{worker}-{thread}-{i}", i)
            continue
        with clustore_lite.open(db) as fresh:  # opening races with others' bulk writes
            op(fresh, f"{worker}-{thread}-{i}", i)
        time.sleep(pause.uniform(0, 0.03))  # file closed: others may find it alone


def op(store, tag: str, i: int) -> None:
    shared_org = store.organizations.list(name=SHARED_ORG)[0]
    kind = i % 4
    if kind == 0:
        user = store.users.create(f"u-{tag}", email=f"{tag}@example.org")
        store.organizations.create(f"o-{tag}", owner_id=user["id"])
    elif kind == 1:
        store.datasets.create(shared_org["id"], f"d-{tag}", segment(tag, 20_000 + i),
                              chunk_rows=256)
    elif kind == 2:
        [log] = store.datasets.list(organizationId=shared_org["id"], name=SHARED_DATASET)
        store.datasets.append(log["id"], segment(tag, 10 + i), chunk_rows=4)
    else:
        check_log(store)
        with store.transaction():
            team = store.teams.create(shared_org["id"], f"t-{tag}")
            store.memberships.create(shared_org["accessId"], "guest", team_id=team["id"])


def check_log(store) -> None:
    """A reader's view is never partial: rows match, every segment is whole."""
    with store.read_transaction():
        [log] = store.datasets.list(name=SHARED_DATASET)
        frame = store.dataframes.get(log["dataframeId"])
        table = store.dataframes.read(frame["id"])
    assert table.num_rows == frame["rows"], (table.num_rows, frame["rows"])
    counts: dict[str, list[int]] = {}
    for tag, i in zip(table.column("tag").to_pylist(), table.column("i").to_pylist()):
        counts.setdefault(tag, []).append(i)
    for tag, values in counts.items():
        assert values == list(range(len(values))), tag


def canonical(db: str) -> dict:
    """What the file holds, without ids, timestamps or the order of appends."""
    with clustore_lite.open(db) as store:
        datasets = {}
        for dataset in store.datasets.list():
            table = store.datasets.read(dataset["id"])
            datasets[dataset["name"]] = sorted(zip(*[c.to_pylist() for c in table.columns]))
        return {
            "users": sorted((u["name"], u["email"]) for u in store.users.list()),
            "organizations": sorted(o["name"] for o in store.organizations.list()),
            "teams": sorted(t["name"] for t in store.teams.list()),
            "memberships": store.memberships.count(),
            "accesses": store.accesses.count(),
            "dataframes": store.dataframes.count(),
            "datasets": datasets,
        }


def main(db: str, worker: int, threads: int, ops: int) -> None:
    errors: list[BaseException] = []

    def target(thread: int) -> None:
        try:
            run(db, worker, thread, ops)
        except BaseException as error:  # reported below, with the failing thread
            errors.append(error)
            raise

    pool = [threading.Thread(target=target, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        sys.exit(f"worker {worker}: {len(errors)} thread(s) failed: {errors[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
