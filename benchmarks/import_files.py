"""Import: `clustore-lite import` (the CLI code path, run as a child process) of a CSV
and of a Parquet file many chunks long: throughput, and the child's peak resident memory
(ru_maxrss from os.wait4), against a child process running pyarrow alone that streams
the same file into an Arrow IPC file (+ fsync) with pyarrow's own readers.

Target: the import's peak RSS stays below 2 x one chunk + 150 MB (one chunk = the Arrow
size of --chunk-rows rows), whatever the file size. The report also gives the peak RSS
of a child that only imports clustore_lite's CLI module, the fixed part of that budget.

    .venv/bin/python benchmarks/import_files.py                  # 10 chunks of 65,536 x 16 float64
    .venv/bin/python benchmarks/import_files.py --chunks 40 --chunk-rows 100000
"""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import _common as c
from clustore_lite.arrow import codec as arrow_codec

BUDGET_MB = 150  # on top of 2 chunks

# The raw alternative: pyarrow's streaming readers into an IPC file, nothing else.
PYARROW_CONVERT = """
import os, sys
import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.ipc as ipc, pyarrow.parquet as pq
source, target, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
if source.endswith(".csv"):
    reader = pacsv.open_csv(source)
    batches, schema = reader, reader.schema
else:
    parquet = pq.ParquetFile(source)
    batches, schema = parquet.iter_batches(batch_size=rows), parquet.schema_arrow
with pa.OSFile(target, "wb") as sink:
    with ipc.new_file(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    sink.flush()
    os.fsync(sink.fileno())
"""


# Linux keeps the larger of a process's own peak and the peak of the memory it had when
# it called exec: a child spawned by this (large) process would report this process's
# RSS. A small launcher spawns the measured command and reports its wait4 figures.
LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(process.pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss * 1024, status)
"""


def child(command: list[str]) -> tuple[float, int]:
    """Run a command; answer its wall time and peak RSS in bytes (measured by a small
    launcher process with os.wait4)."""
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *command],
                          capture_output=True, text=True)
    seconds, peak, status = done.stdout.split()
    if done.returncode != 0 or status != "0":
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr}")
    return float(seconds), int(peak)


def write_inputs(folder, rows: int, columns: int, chunk_rows: int, row_group_rows: int):
    """A CSV and a Parquet file of the same table, generated a chunk at a time. The
    Parquet file has pyarrow's default row groups unless told otherwise (1Mi rows: a
    file of fewer rows is one row group, which its reader must decode whole)."""
    csv_path, parquet_path = folder / "input.csv", folder / "input.parquet"
    block = c.numeric_table(chunk_rows, columns)
    written, group, group_rows = 0, [], 0
    with pacsv.CSVWriter(csv_path, block.schema) as csv_writer, \
            pq.ParquetWriter(parquet_path, block.schema) as parquet_writer:
        while written < rows:
            part = c.numeric_table(min(chunk_rows, rows - written), columns, seed=written)
            csv_writer.write_table(part)
            written += part.num_rows
            group.append(part)
            group_rows += part.num_rows
            if group_rows >= row_group_rows or written == rows:
                parquet_writer.write_table(pa.concat_tables(group), row_group_size=row_group_rows)
                group, group_rows = [], 0
    return csv_path, parquet_path, block.nbytes


def run(args) -> tuple[str, list[dict]]:
    log = c.logger(args.quiet)
    rows_total = args.chunks * args.chunk_rows
    python = sys.executable
    results, table_rows = [], []
    with c.work_dir(args.dir) as folder:
        csv_path, parquet_path, chunk_bytes = write_inputs(folder, rows_total, args.columns,
                                                           args.chunk_rows, args.row_group_rows)
        budget = 2 * chunk_bytes + BUDGET_MB * c.MB
        store_path, ipc_path = folder / "store.sqlite", folder / "out.arrow"
        groups = pq.ParquetFile(parquet_path).metadata.num_row_groups
        env_note = (f"{rows_total:,} rows x {args.columns} float64, chunk {chunk_bytes / c.MB:.1f} MB, "
                    f"Parquet in {groups} row group{'s' if groups > 1 else ''}")
        if log:
            log(f"inputs: {env_note}; CSV {csv_path.stat().st_size / c.MB:,.0f} MB, "
                f"Parquet {parquet_path.stat().st_size / c.MB:,.0f} MB")
        _, imports_rss = child([python, "-c", "import clustore_lite.cli"])

        for kind, path in (("CSV", csv_path), ("Parquet", parquet_path)):
            size = path.stat().st_size
            peaks: dict[str, list[int]] = {}

            def measure(name, command, cleanup):
                def case() -> float:
                    cleanup()
                    seconds, peak = child(command)
                    peaks.setdefault(name, []).append(peak)
                    cleanup()
                    return seconds
                return case

            cases = {
                f"pyarrow {kind} → IPC file (streamed, + fsync)": measure(
                    "pyarrow", [python, "-c", PYARROW_CONVERT, str(path), str(ipc_path),
                                str(args.chunk_rows)],
                    lambda: ipc_path.unlink(missing_ok=True)),
                f"clustore-lite import {kind}": measure(
                    "store", [python, "-m", "clustore_lite", "import", str(store_path), str(path),
                              "--org", "bench", "--dataset", "d", "-q",
                              "--chunk-rows", str(args.chunk_rows)],
                    lambda: c.remove_store(store_path)),
            }
            if log:
                log(f"{kind}: {size / c.MB:,.0f} MB")
            timings = c.interleave(cases, args.rounds, args.warmup, log)
            baseline = timings.names[0]
            for name, who in zip(timings.names, ("pyarrow", "store")):
                peak = max(peaks[who])  # warm-up runs included: the worst seen
                result = {"file": kind, "path": name, "mb_per_s": size / c.MB / timings.median(name),
                          "ratio": timings.ratio(name, baseline),
                          "spread": c.spread(timings.ratios(name, baseline)),
                          "peak_rss_mb": peak / c.MB, "budget_mb": budget / c.MB}
                results.append(result)
                target = ""
                if who == "store":
                    verdict = "met" if peak < budget else "missed"
                    target = f"< {budget / c.MB:,.0f} MB — {verdict}"
                table_rows.append([f"{kind}, {size / c.MB:,.0f} MB" if who == "pyarrow" else "",
                                   name, f"{result['mb_per_s']:,.0f}", f"{result['ratio']:.2f}×",
                                   result["spread"], f"{peak / c.MB:,.0f}", target])
    report = c.markdown(["file", "path", "MB/s of file (median)", "vs pyarrow (median of rounds)",
                         "range over rounds", "peak RSS MB (max)", "target: peak RSS"], table_rows)
    report += (f"\n\n{env_note}; a child that only imports `clustore_lite.cli` peaks at "
               f"{imports_rss / c.MB:,.0f} MB.")
    return report, results


def parser():
    p = c.arguments(__doc__.split("\n\n")[0])
    p.add_argument("--chunks", type=int, default=10,
                   help="file length, in chunks of --chunk-rows rows (default 10)")
    p.add_argument("--chunk-rows", type=int, default=arrow_codec.DEFAULT_CHUNK_ROWS,
                   help="rows per chunk (default %(default)s)")
    p.add_argument("--columns", type=int, default=16, help="float64 columns (default 16)")
    p.add_argument("--row-group-rows", type=int, default=1024 * 1024,
                   help="Parquet row group size (default 1,048,576, pyarrow's)")
    p.set_defaults(rounds=5)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    report, _ = run(args)
    c.emit("### Import (CLI)\n\n" + report, args.output)


if __name__ == "__main__":
    sys.exit(main())
