"""Ingest: a dataframe written into the store (store.datasets.create, the real code
path) against pyarrow writing the same table to an Arrow IPC file and to Parquet on
the same disk.

Every compared path ends durable: the IPC and Parquet files are fsync'ed before the
clock stops, and the store's commit syncs the SQLite file (synchronous=NORMAL in the
rollback journal used for bulk writes). The store also fdatasyncs in the background
while it writes (storage.Writeback), so its disk writes overlap its copying; pyarrow's
write + fsync does not, hence the no-fsync IPC write shown for reference (the speed
of copying into the OS page cache alone). Opening the store and creating the
organization are not timed; the timed part is one `datasets.create` call.

    .venv/bin/python benchmarks/ingest.py                        # 4M x 16 float64 + 6M mixed rows
    .venv/bin/python benchmarks/ingest.py --rows 20000000 --mixed-rows 5000000 --rounds 3
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

import _common as c
import clustore_lite
from clustore_lite.arrow import codec as arrow_codec

TARGET = 0.9  # of the IPC file write speed


def cases(table: pa.Table, folder, chunk_rows: int) -> dict[str, c.Case]:
    ipc_path, parquet_path = folder / "table.arrow", folder / "table.parquet"
    store_path = folder / "store.sqlite"

    def ipc_file() -> float:
        seconds = c.timed(lambda: c.write_ipc(table, ipc_path, chunk_rows))
        os.remove(ipc_path)
        return seconds

    def ipc_file_no_fsync() -> float:
        seconds = c.timed(lambda: c.write_ipc(table, ipc_path, chunk_rows, fsync=False))
        c.fsync_path(ipc_path)  # not timed: keep its dirty pages out of the next case
        os.remove(ipc_path)
        return seconds

    def parquet() -> float:
        def write():
            pq.write_table(table, parquet_path)
            c.fsync_path(parquet_path)
        seconds = c.timed(write)
        os.remove(parquet_path)
        return seconds

    def store() -> float:
        c.remove_store(store_path)
        with clustore_lite.open(store_path) as opened:
            org = opened.organizations.create("bench")
            created = {}
            seconds = c.timed(lambda: created.update(
                opened.datasets.create(org["id"], "table", table, chunk_rows=chunk_rows)))
            frame = opened.dataframes.get(created["dataframeId"])
            assert frame["rows"] == table.num_rows, frame
        c.remove_store(store_path)
        return seconds

    return {"pyarrow IPC file write + fsync": ipc_file,
            "pyarrow IPC file write, no fsync (reference)": ipc_file_no_fsync,
            "pyarrow Parquet write (snappy) + fsync": parquet,
            "clustore-lite datasets.create": store}


def run(args) -> tuple[str, list[dict]]:
    log = c.logger(args.quiet)
    tables = []
    if args.rows:
        tables.append((f"numeric {args.rows:,} x {args.columns} float64",
                       lambda: c.numeric_table(args.rows, args.columns)))
    if args.mixed_rows:
        tables.append((f"mixed {args.mixed_rows:,} rows (int64, int32, float64, 2 strings, "
                       "timestamp, bool)", lambda: c.mixed_table(args.mixed_rows)))
    rows, results = [], []
    with c.work_dir(args.dir) as folder:
        for title, make in tables:
            table = make()
            megabytes = table.nbytes / c.MB
            if log:
                log(f"{title}: {megabytes:,.0f} MB in memory")
            timings = c.interleave(cases(table, folder, args.chunk_rows), args.rounds,
                                   args.warmup, log)
            baseline = timings.names[0]
            for name in timings.names:
                ratios = timings.ratios(name, baseline)
                result = {"table": title, "path": name, "mb_per_s": megabytes / timings.median(name),
                          "ratio": timings.ratio(name, baseline), "spread": c.spread(ratios)}
                results.append(result)
                target = ""
                if name.startswith("clustore"):
                    target = f"≥ {TARGET}× — {'met' if result['ratio'] >= TARGET else 'missed'}"
                rows.append([title if name == baseline else "", name,
                             f"{result['mb_per_s']:,.0f}", f"{result['ratio']:.2f}×",
                             result["spread"], target])
            del table
    report = c.markdown(["table (in-memory size / time)", "path", "MB/s (median)",
                         "vs IPC write (median of rounds)", "range over rounds", "target"], rows)
    return report, results


def parser():
    p = c.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4_000_000,
                   help="rows of the numeric table (default 4,000,000; 0 to skip)")
    p.add_argument("--columns", type=int, default=16, help="float64 columns (default 16)")
    p.add_argument("--mixed-rows", type=int, default=6_000_000,
                   help="rows of the mixed table (default 6,000,000; 0 to skip)")
    p.add_argument("--chunk-rows", type=int, default=arrow_codec.DEFAULT_CHUNK_ROWS,
                   help="rows per chunk, and per IPC record batch (default %(default)s)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    report, _ = run(args)
    c.emit("### Ingest\n\n" + report, args.output)


if __name__ == "__main__":
    sys.exit(main())
