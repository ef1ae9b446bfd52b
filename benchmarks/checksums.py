"""Chunk checksums: which hash, and what verifying it costs a read (issue 15, item 2).

- hash speed: XXH3-64 (xxhash) and CRC32C (the `crc32c` package, if installed) over
  256 MB that no cache holds, and over one 8 MB chunk just read (in the CPU's cache);
- read: `dataframes.read` of the same dataframe with checksums (verified, then the
  cheap structural validation) and without them (NULL, as files from before: full
  validation, no hash), interleaved in rounds like every benchmark here;
- write: the pass that copies each chunk's IPC bytes into place, with the checksum
  taken on the way (HashingSink) and without.

    python benchmarks/checksums.py
    python benchmarks/checksums.py --rows 8000000 --rounds 7
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import pyarrow as pa
import xxhash

import _common as c
import clustore_lite
from clustore_lite.arrow import checksum, codec


def best_speed(function, data, repeat: int = 20) -> float:
    """GB/s of the median of `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - start)
    return memoryview(data).nbytes / statistics.median(times) / 1e9


def hashes() -> list[list[str]]:
    big = np.random.default_rng(0).random(32_000_000).tobytes()
    chunk = pa.py_buffer(big[:8_000_000])
    found = {"XXH3-64 (xxhash)": xxhash.xxh3_64_intdigest}
    try:
        import crc32c
        found["CRC32C (crc32c)"] = crc32c.crc32c
    except ImportError:
        pass
    return [[name, f"{best_speed(f, big, 5):.1f}", f"{best_speed(f, chunk):.1f}"]
            for name, f in found.items()]


def reads(folder, table: pa.Table, title: str, rounds: int, log) -> list[str]:
    path = folder / "read.sqlite"
    c.remove_store(path)
    store = clustore_lite.open(path)
    with_sums = store.dataframes.create(table).id
    without = store.dataframes.create(table).id
    store.db.execute("DELETE FROM chunk_checksum WHERE chunkId IN (SELECT id FROM chunk "
                     "WHERE dataframeId = ?)", (without,))

    def case(frame_id):
        return lambda: c.timed(lambda: store.dataframes.read(frame_id))

    timings = c.interleave({"without": case(without), "with": case(with_sums)}, rounds, 1, log)
    store.close()
    c.remove_store(path)
    cost = timings.median("with") / timings.median("without") - 1
    per_round = [w / o - 1 for w, o in zip(timings.seconds["with"], timings.seconds["without"])]
    return [title, f"{table.nbytes / c.MB / timings.median('without'):,.0f}",
            f"{table.nbytes / c.MB / timings.median('with'):,.0f}",
            f"{cost * 100:+.1f}% ({min(per_round) * 100:+.1f} to {max(per_round) * 100:+.1f})"]


def copying(table: pa.Table, rounds: int) -> list[str]:
    """The pass that copies each chunk's IPC bytes into its place (a buffer here, the
    BLOB in the store), without and with the checksum taken on the way."""
    batches = list(codec.rebatch(table.to_batches(), codec.DEFAULT_CHUNK_ROWS))
    places = [pa.allocate_buffer(codec.stream_size(batch)) for batch in batches]

    def copy(hashed: bool):
        def run():
            for batch, place in zip(batches, places):
                sink = pa.FixedSizeBufferWriter(place)
                codec.write_stream(checksum.HashingSink(sink) if hashed else sink, batch)
        return run

    timings = c.interleave({"plain": lambda: c.timed(copy(False)),
                            "hashed": lambda: c.timed(copy(True))}, rounds, 1, None)
    return [f"{len(batches)} chunks, {table.nbytes / c.MB:,.0f} MB",
            f"{timings.median('plain') * 1000:.0f}", f"{timings.median('hashed') * 1000:.0f}"]


def main(argv=None) -> None:
    p = c.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=4_000_000, help="rows of 16 float64")
    p.add_argument("--mixed-rows", type=int, default=6_000_000)
    args = p.parse_args(argv)
    log = c.logger(args.quiet)
    numeric = c.numeric_table(args.rows)
    mixed = c.mixed_table(args.mixed_rows)
    with c.work_dir(args.dir) as folder:
        read_rows = [reads(folder, numeric, f"numeric {args.rows:,} x 16 float64", args.rounds, log),
                     reads(folder, mixed, f"mixed {args.mixed_rows:,} rows", args.rounds, log)]
    report = "\n\n".join([
        c.markdown(["hash", "GB/s, 256 MB", "GB/s, one 8 MB chunk in cache"], hashes(), 1),
        c.markdown(["dataframes.read", "MB/s without checksums (full validation)",
                    "MB/s with checksums", "time added (range over rounds)"], read_rows, 1),
        c.markdown(["write: copy into place", "ms, copy only (before)", "ms, copy + checksum"],
                   [copying(numeric, args.rounds)], 1),
    ])
    c.emit("### Chunk checksums\n\n" + report, args.output)


if __name__ == "__main__":
    sys.exit(main())
