"""Small writes: what one organization rename costs, by page size and durability, and
what the page size costs chunk ingest (issue 15, items 3 and 4).

- latency: the median time of one `organizations.update` (a small write transaction,
  with its event-log rows), durability "full" (fsync of the WAL before the answer) and
  "normal" (no fsync);
- write amplification: WAL frames and bytes one rename appends (the WAL is emptied
  first and not checkpointed meanwhile);
- ingest: `datasets.create` of a float64 table, against pyarrow's IPC file write +
  fsync of the same table, in the same round (as benchmarks/ingest.py).

    python benchmarks/small_writes.py
    python benchmarks/small_writes.py --renames 500 --rows 2000000 --page-sizes 4096,65536
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import pyarrow as pa

import _common as c
import clustore_lite
from clustore_lite.db import connection


def open_store(path, page_size: int, durability: str):
    connection.PAGE_SIZE = page_size  # the page size of files created from now on
    return clustore_lite.open(path, durability=durability)


def renames(folder, page_size: int, durability: str, count: int, webhook: bool = False) -> dict:
    path = folder / f"renames-{page_size}-{durability}.sqlite"
    c.remove_store(path)
    with open_store(path, page_size, durability) as store:
        # with a webhook, each rename also queues a delivery (as in the figure)
        org = store.organizations.create("bench", webhook="https://hooks.example/h" if webhook else None)
        store.db.execute("PRAGMA wal_autocheckpoint = 0")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        seconds = []
        for number in range(count):
            start = time.perf_counter()
            store.organizations.update(org.id, name=f"bench-{number}")
            seconds.append(time.perf_counter() - start)
        wal = os.path.getsize(f"{path}-wal") - 32  # less the WAL header
    c.remove_store(path)
    frames = wal / (page_size + 24) / count
    return {"ms": statistics.median(seconds) * 1000, "frames": frames,
            "kb": wal / count / 1000}


def ingest(folder, page_sizes: list[int], table: pa.Table, rounds: int, log) -> dict:
    ipc_path = folder / "table.arrow"

    def ipc_file() -> float:
        seconds = c.timed(lambda: c.write_ipc(table, ipc_path))
        os.remove(ipc_path)
        return seconds

    def store_case(page_size: int):
        def run() -> float:
            path = folder / "ingest.sqlite"
            c.remove_store(path)
            with open_store(path, page_size, "full") as store:
                org = store.organizations.create("bench")
                seconds = c.timed(lambda: store.datasets.create(org["id"], "t", table))
            c.remove_store(path)
            return seconds
        return run

    cases = {"ipc": ipc_file, **{page_size: store_case(page_size) for page_size in page_sizes}}
    timings = c.interleave(cases, rounds, 1, log)
    return {page_size: timings.ratio(page_size, "ipc") for page_size in page_sizes}


def main(argv=None) -> None:
    p = c.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--renames", type=int, default=200)
    p.add_argument("--rows", type=int, default=1_000_000, help="float64 rows x 16 to ingest")
    p.add_argument("--page-sizes", default="4096,16384,65536")
    p.add_argument("--webhook", action="store_true", help="the organization has a webhook")
    args = p.parse_args(argv)
    log = c.logger(args.quiet)
    page_sizes = [int(size) for size in args.page_sizes.split(",")]
    rows = []
    with c.work_dir(args.dir) as folder:
        ratios = ingest(folder, page_sizes, c.numeric_table(args.rows), args.rounds, log)
        for page_size in page_sizes:
            full = renames(folder, page_size, "full", args.renames, args.webhook)
            normal = renames(folder, page_size, "normal", args.renames, args.webhook)
            rows.append([f"{page_size // 1024} KiB", f"{full['frames']:.1f}",
                         f"{full['kb']:,.0f}", f"{full['ms']:.2f}", f"{normal['ms']:.2f}",
                         f"{ratios[page_size]:.2f}×"])
    report = c.markdown(["page size", "WAL frames per rename", "KB per rename",
                         "rename ms, durability full", "rename ms, normal",
                         f"ingest {args.rows:,} x 16 float64 vs IPC write + fsync"], rows, 1)
    c.emit("### Small writes\n\n" + report, args.output)


if __name__ == "__main__":
    sys.exit(main())
