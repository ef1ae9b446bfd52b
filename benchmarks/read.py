"""Read: a whole dataframe back as a pyarrow.Table (store.dataframes.read) and single
chunks by id (store.dataframes.read_chunk), against pyarrow reading the same table from
an Arrow IPC file, with and without memory-mapping.

The files are written once, before timing, so every read is served from a warm OS page
cache: this measures what the library adds on top of the kernel, not the disk. A
memory-mapped IPC read is zero-copy (it touches no data until used), so it is shown for
reference; the target is against the ordinary (copying) IPC read.

    .venv/bin/python benchmarks/read.py                          # 4M x 16 float64 + 6M mixed rows
    .venv/bin/python benchmarks/read.py --rows 20000000 --chunk-reads 50
"""

from __future__ import annotations

import random
import sys

import pyarrow as pa
import pyarrow.ipc as ipc

import _common as c
import clustore_lite
from clustore_lite.arrow import codec as arrow_codec

TARGET = 0.9  # of the IPC file read speed


def whole(store, frame_id: str, path: str, rows: int) -> dict[str, c.Case]:
    def check(table: pa.Table) -> None:
        assert table.num_rows == rows

    def ipc_read() -> float:
        def read():
            with pa.OSFile(path) as source:
                check(ipc.open_file(source).read_all())
        return c.timed(read)

    def ipc_mmap() -> float:
        def read():
            with pa.memory_map(path) as source:
                check(ipc.open_file(source).read_all())
        return c.timed(read)

    def store_read() -> float:
        return c.timed(lambda: check(store.dataframes.read(frame_id)))

    return {"pyarrow IPC file read_all": ipc_read,
            "pyarrow IPC file read_all, memory-mapped": ipc_mmap,
            "clustore-lite dataframes.read": store_read}


def single(store, chunk_ids: list[str], path: str, picks: list[int]) -> dict[str, c.Case]:
    """Read the chunks at positions `picks`, one call each (a file opened per read, as
    a request for one chunk would)."""

    def ipc_batch() -> float:
        def read():
            for index in picks:
                with pa.OSFile(path) as source:
                    ipc.open_file(source).get_batch(index)
        return c.timed(read)

    def ipc_batch_mmap() -> float:
        def read():
            for index in picks:
                with pa.memory_map(path) as source:
                    ipc.open_file(source).get_batch(index)
        return c.timed(read)

    def store_chunk() -> float:
        def read():
            for index in picks:
                store.dataframes.read_chunk(chunk_ids[index])
        return c.timed(read)

    return {"pyarrow IPC file get_batch": ipc_batch,
            "pyarrow IPC file get_batch, memory-mapped": ipc_batch_mmap,
            "clustore-lite dataframes.read_chunk": store_chunk}


def run(args) -> tuple[str, list[dict]]:
    log = c.logger(args.quiet)
    tables = []
    if args.rows:
        tables.append((f"numeric {args.rows:,} x {args.columns} float64",
                       lambda: c.numeric_table(args.rows, args.columns)))
    if args.mixed_rows:
        tables.append((f"mixed {args.mixed_rows:,} rows", lambda: c.mixed_table(args.mixed_rows)))
    rows, results = [], []
    with c.work_dir(args.dir) as folder, clustore_lite.open(folder / "store.sqlite") as store:
        org = store.organizations.create("bench")
        for number, (title, make) in enumerate(tables):
            table = make()
            megabytes, num_rows = table.nbytes / c.MB, table.num_rows
            path = str(folder / f"table{number}.arrow")
            with ipc.new_file(path, table.schema) as writer:
                writer.write_table(table, max_chunksize=args.chunk_rows)
            created = store.datasets.create(org["id"], f"t{number}", table,
                                            chunk_rows=args.chunk_rows)
            frame_id = created["dataframeId"]
            assert store.dataframes.read(frame_id).equals(table), "store read differs"
            del table
            chunk_ids = [chunk["id"] for chunk in store.dataframes.chunks(frame_id)]
            picks = random.Random(number).choices(range(len(chunk_ids)), k=args.chunk_reads)
            chunk_mb = megabytes * len(picks) / len(chunk_ids)
            for kind, group, size in (
                    ("whole table", whole(store, frame_id, path, num_rows), megabytes),
                    (f"{len(picks)} single chunks", single(store, chunk_ids, path, picks),
                     chunk_mb)):
                if log:
                    log(f"{title}, {kind}: {size:,.0f} MB")
                timings = c.interleave(group, args.rounds, args.warmup, log)
                baseline = timings.names[0]
                for name in timings.names:
                    result = {"table": title, "read": kind, "path": name,
                              "mb_per_s": size / timings.median(name),
                              "ratio": timings.ratio(name, baseline),
                              "spread": c.spread(timings.ratios(name, baseline))}
                    results.append(result)
                    target = ""
                    if name.startswith("clustore"):
                        target = f"≥ {TARGET}× — {'met' if result['ratio'] >= TARGET else 'missed'}"
                    rows.append([f"{title}, {kind}" if name == baseline else "", name,
                                 f"{result['mb_per_s']:,.0f}", f"{result['ratio']:.2f}×",
                                 result["spread"], target])
    report = c.markdown(["table, read", "path", "MB/s (median)",
                         "vs IPC read (median of rounds)", "range over rounds", "target"], rows)
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
    p.add_argument("--chunk-reads", type=int, default=20,
                   help="single chunks read per round, at random positions (default 20)")
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    report, _ = run(args)
    c.emit("### Read\n\n" + report, args.output)


if __name__ == "__main__":
    sys.exit(main())
