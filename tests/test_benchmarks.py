"""The benchmark scripts still run (at a tiny size, so this stays fast): they cannot
rot unnoticed when the library changes."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TINY = ["--rounds", "1", "--warmup", "0", "-q"]


def bench(tmp_path, script, *args):
    output = tmp_path / f"{script}.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *TINY, "--dir", str(tmp_path),
         "--output", str(output), *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = output.read_text()
    assert report.strip() in result.stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("clustore-bench-")]
    return report


def test_ingest(tmp_path):
    report = bench(tmp_path, "ingest", "--rows", "3000", "--columns", "3",
                   "--mixed-rows", "2000", "--chunk-rows", "1000")
    for line in ("numeric 3,000 x 3 float64", "mixed 2,000 rows", "pyarrow IPC file write + fsync",
                 "pyarrow Parquet write", "clustore-lite datasets.create"):
        assert line in report
    assert report.count("≥ 0.9×") == 2


def test_read(tmp_path):
    report = bench(tmp_path, "read", "--rows", "3000", "--columns", "3", "--mixed-rows", "2000",
                   "--chunk-rows", "1000", "--chunk-reads", "3")
    for line in ("whole table", "3 single chunks", "read_all, memory-mapped",
                 "clustore-lite dataframes.read ", "clustore-lite dataframes.read_chunk"):
        assert line in report
    assert report.count("≥ 0.9×") == 4


def test_run_all_writes_one_report(tmp_path):
    output = tmp_path / "RESULTS.md"
    tiny = "--rounds 1 --warmup 0 --chunk-rows 1000 --columns 2"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "-q", "--dir", str(tmp_path),
         "--output", str(output), "--ingest", f"{tiny} --rows 2000 --mixed-rows 0",
         "--read", f"{tiny} --rows 2000 --mixed-rows 0 --chunk-reads 2",
         "--import", f"{tiny} --chunks 2"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = output.read_text()
    for line in ("## Ingest", "## Read", "## Import (CLI)", "- machine: ", "- versions: Python",
                 "`python benchmarks/ingest.py --rounds 1", "clustore-lite datasets.create",
                 "clustore-lite dataframes.read_chunk", "clustore-lite import CSV",
                 "clustore-lite import Parquet", "pyarrow CSV → IPC file",
                 "only imports `clustore_lite.cli`"):
        assert line in report
    assert report.count("MB —") == 2  # the peak RSS verdict of each import


def test_served_ingest(tmp_path):
    report = bench(tmp_path, "served_ingest", "--gb", "0.002", "--kinds", "numeric", "mixed",
                   "--chunk-rows", "2000")
    for line in ("pyarrow IPC file write + fsync", "import alone", "import, served",
                 "one late opener", "query latency p50 / p99 / max", "longest wait to open",
                 "longest wait to commit", "StoreBusy", "load average"):
        assert line in report


def test_compact(tmp_path):
    report = bench(tmp_path, "compact", "--appends", "20", "--rows", "100")
    for line in ("20 appends, compacted", "fresh ingest", "compacting took"):
        assert line in report


def test_write_paths(tmp_path):
    report = bench(tmp_path, "write_paths", "--mb", "4", "--chunk-mb", "1", "--step-mb", "2")
    for line in ("pyarrow IPC file write + fsync of the same table", "WAL, short transactions, checkpoint held off",
                 "rollback journal, one transaction (today alone)", "longest small commit"):
        assert line in report
