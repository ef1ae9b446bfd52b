"""Helpers shared by the benchmark scripts: test tables, interleaved timing, machine
description, markdown tables.

The machines these run on are shared and noisy, so a benchmark never reports a lone
time: each round runs every case once, back to back, in a rotating order; ratios are
taken within a round (the store against the raw pyarrow alternative of that same round)
and the report gives the median over rounds, with the spread."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

MB = 1e6


# -- data ---------------------------------------------------------------------------

def numeric_table(rows: int, columns: int = 16, seed: int = 0) -> pa.Table:
    """`rows` x `columns` float64, uniform in [0, 1)."""
    rng = np.random.default_rng(seed)
    return pa.table({f"x{i}": rng.random(rows) for i in range(columns)})


def mixed_table(rows: int, seed: int = 0) -> pa.Table:
    """Integers, floats, short strings, a dictionary-free category, timestamps and a
    boolean: the kind of table a CSV of measurements becomes."""
    rng = np.random.default_rng(seed)
    ids = np.arange(rows, dtype=np.int64)
    codes = rng.integers(0, 1_000_000, rows)
    names = pc.binary_join_element_wise(
        "item-", pc.cast(pa.array(codes), pa.string()), "")
    kinds = pa.array(np.array(["alpha", "beta", "gamma", "delta"])[rng.integers(0, 4, rows)])
    start = np.datetime64("2024-01-01T00:00:00", "us")
    stamps = start + rng.integers(0, 365 * 86_400 * 10**6, rows).astype("timedelta64[us]")
    return pa.table({
        "id": ids,
        "count": rng.integers(-2**31, 2**31 - 1, rows, dtype=np.int32),
        "value": rng.standard_normal(rows),
        "name": names,
        "kind": kinds,
        "at": pa.array(stamps, type=pa.timestamp("us", tz="UTC")),
        "flag": rng.random(rows) < 0.5,
    })


# -- files --------------------------------------------------------------------------

def write_ipc(table: pa.Table, path: str | Path, chunk_rows: int | None = None,
              fsync: bool = True) -> None:
    """The baseline every ingest is compared with: pyarrow writing `table` to an Arrow
    IPC file, fsync'ed before it returns (unless `fsync` is False)."""
    with pa.OSFile(str(path), "wb") as sink:
        with ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=chunk_rows)
        if fsync:
            sink.flush()
            os.fsync(sink.fileno())


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_store(path: str | Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


@contextlib.contextmanager
def work_dir(given: str | None):
    """A scratch directory under `given` (default: the current directory, so that the
    files land on the disk the benchmark is about), removed afterwards."""
    base = Path(given or ".").resolve()
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="clustore-bench-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- timing -------------------------------------------------------------------------

Case = Callable[[], float]  # runs once, answers the seconds of its timed part


@dataclass
class Timings:
    names: list[str]
    seconds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def ratios(self, name: str, baseline: str) -> list[float]:
        """Per round: how fast `name` ran relative to `baseline` (>1: faster)."""
        return [b / s for s, b in zip(self.seconds[name], self.seconds[baseline])]

    def ratio(self, name: str, baseline: str) -> float:
        return statistics.median(self.ratios(name, baseline))


def interleave(cases: dict[str, Case], rounds: int, warmup: int = 1,
               log: Callable[[str], None] | None = None) -> Timings:
    """Run every case once per round, rotating the order each round; `warmup` rounds
    first, not counted."""
    names = list(cases)
    timings = Timings(names, {name: [] for name in names})
    for number in range(warmup + rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = cases[name]()
            if number >= warmup:
                timings.seconds[name].append(seconds)
            if log:
                kind = "warm-up" if number < warmup else f"round {number - warmup + 1}"
                log(f"  {kind:>8} {name:<44} {seconds * 1000:9.1f} ms")
    return timings


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# -- reporting ----------------------------------------------------------------------

def machine() -> dict[str, str]:
    import apsw

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024**2:.0f} GiB RAM"
    return {
        "cpu": f"{usable} CPUs (nproc), {model}" + (f", {memory}" if memory else ""),
        "os": f"{platform.system()} {platform.release()}",
        "versions": f"Python {platform.python_version()}, pyarrow {pa.__version__}, "
                    f"SQLite {apsw.sqlite_lib_version()} (apsw {apsw.apsw_version()})",
    }


def filesystem(path: str | None) -> str:
    """The device and filesystem type holding `path` (from /proc/mounts)."""
    target = os.path.realpath(path or ".")
    best = ("", "unknown", "unknown")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best[0]):
                best = (mount, device, kind)
    return f"{best[1]} ({best[2]})"


def markdown(header: list[str], rows: list[list[object]], text_columns: int = 2) -> str:
    """A markdown table; the first `text_columns` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:"
                            for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=5,
                        help="measured rounds; each runs every case once (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    parser.add_argument("--dir", default=None,
                        help="where to write the scratch files (default: current directory)")
    parser.add_argument("--output", default=None,
                        help="also write the markdown report to this file")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-run log on stderr")
    return parser


def logger(quiet: bool) -> Callable[[str], None] | None:
    if quiet:
        return None
    return lambda line: print(line, file=sys.stderr, flush=True)


def emit(report: str, output: str | None) -> None:
    print(report)
    if output:
        Path(output).write_text(report + "\n")
