"""Compaction: a dataframe made by many small appends, read whole before and after
`dataframes.compact`, against a fresh ingest of the same rows; and the time to compact.

    .venv/bin/python benchmarks/compact.py                  # 1,000 appends of 4,000 x 16 float64
    .venv/bin/python benchmarks/compact.py --appends 200 --rows 1000
"""

from __future__ import annotations

import os
import sys
import time


import _common as c
import clustore_lite


def run(args) -> str:
    log = c.logger(args.quiet)
    load = os.getloadavg()[0]
    with c.work_dir(args.dir) as folder:
        table = c.numeric_table(args.appends * args.rows, 16)
        path = folder / "store.sqlite"
        with clustore_lite.open(path, durability="normal") as store:
            scattered, compacted = store.dataframes.create(), store.dataframes.create()
            for piece in table.to_batches(max_chunksize=args.rows):
                store.dataframes.append(scattered["id"], piece)
                store.dataframes.append(compacted["id"], piece)
            started = time.perf_counter()
            store.dataframes.compact(compacted["id"])
            compact_seconds = time.perf_counter() - started
            fresh = store.dataframes.create(table)
            assert store.dataframes.read(compacted["id"]).equals(store.dataframes.read(fresh["id"]))
            cases = {name: (lambda id=frame["id"]: c.timed(lambda: store.dataframes.read(id)))
                     for name, frame in (("fresh ingest (1 write)", fresh),
                                         (f"{args.appends:,} appends", scattered),
                                         (f"{args.appends:,} appends, compacted", compacted))}
            timings = c.interleave(cases, args.rounds, args.warmup, log)
            chunks = {name: len(store.dataframes.chunks(frame["id"])) for name, frame in
                      zip(cases, (fresh, scattered, compacted))}
    megabytes = table.nbytes / c.MB
    base = timings.names[0]
    rows = [[name, chunks[name], f"{megabytes / timings.median(name):,.0f}",
             f"{timings.ratio(name, base):.2f}×", c.spread(timings.ratios(name, base))]
            for name in timings.names]
    return (c.markdown(["dataframe (whole read, dataframes.read)", "chunks", "MB/s (median)",
                        "vs fresh ingest", "range"], rows, text_columns=1)
            + f"\n\n- {megabytes:,.0f} MB; compacting took {compact_seconds:.2f} s; load "
              f"average (1 min) {load:.2f}; {args.rounds} round(s)")


def main(argv=None) -> None:
    p = c.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--appends", type=int, default=1000)
    p.add_argument("--rows", type=int, default=4000, help="rows per append (16 float64 each)")
    args = p.parse_args(argv)
    c.emit("### Compaction\n\n" + run(args), args.output)


if __name__ == "__main__":
    sys.exit(main())
