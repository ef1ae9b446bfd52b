"""The command line: import, export, info."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import clustore_lite
from clustore_lite.arrow import delimited
from clustore_lite.db import migrations

CLI = [sys.executable, "-m", "clustore_lite"]


def run(*args, check=True):
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@pytest.fixture
def table():
    return pa.table({"id": pa.array(range(1000), pa.int64()),
                     "x": pa.array(np.linspace(0, 1, 1000)),
                     "name": pa.array([f"n{i}" for i in range(1000)]),
                     "when": pa.array(np.arange(1000).astype("datetime64[s]"))})


@pytest.mark.parametrize("suffix", [".parquet", ".arrow", ".csv"])
def test_import_then_export_round_trips(tmp_path, table, suffix):
    source, db = tmp_path / f"in{suffix}", tmp_path / "db.sqlite"
    {".parquet": lambda: pq.write_table(table, source),
     ".arrow": lambda: pa.ipc.new_file(source, table.schema).write_table(table) or None,
     ".csv": lambda: pacsv.write_csv(table, source)}[suffix]()
    if suffix == ".arrow":  # close the writer properly
        with pa.ipc.new_file(source, table.schema) as writer:
            writer.write_table(table)
    out = run("import", db, source, "--org", "lumen", "--dataset", "d", "--chunk-rows", 300).stdout
    assert "1000 rows, 4 columns" in out
    with clustore_lite.open(db) as store:
        [dataset] = store.datasets.list()
        assert len(store.dataframes.chunks(dataset["dataframeId"])) == 4
    for export_suffix in (".parquet", ".arrow", ".csv"):
        target = tmp_path / f"out{export_suffix}"
        run("export", db, dataset["id"], target)
        back = {".parquet": pq.read_table, ".csv": pacsv.read_csv,
                ".arrow": lambda p: pa.ipc.open_file(p).read_all()}[export_suffix](target)
        assert back.column("id").to_pylist() == list(range(1000))
        assert back.column("name").to_pylist() == table.column("name").to_pylist()


def test_import_append_and_schema_mismatch(tmp_path, table):
    db, source = tmp_path / "db.sqlite", tmp_path / "in.parquet"
    pq.write_table(table, source)
    run("import", db, source, "--org", "lumen", "--dataset", "d", "-q")
    run("import", db, source, "--org", "lumen", "--dataset", "d", "--append", "-q")
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": ["text"]}), other)
    failed = run("import", db, other, "--org", "lumen", "--dataset", "d", "--append", check=False)
    assert failed.returncode == 1 and "schema" in failed.stderr and "Traceback" not in failed.stderr
    taken = run("import", db, source, "--org", "lumen", "--dataset", "d", check=False)
    assert taken.returncode == 1 and "already exists" in taken.stderr
    report = json.loads(run("info", db, "--json").stdout)
    assert report["datasets"][0]["rows"] == 2000 and report["rows"]["dataset"] == 1


def test_info_lists_what_the_file_holds(tmp_path, table):
    db, source = tmp_path / "db.sqlite", tmp_path / "in.parquet"
    pq.write_table(table, source)
    run("import", db, source, "--org", "lumen", "--dataset", "d", "-q")
    out = run("info", db).stdout
    assert f"schema version {migrations.LATEST}" in out and "lumen/d: 1000 rows x 4 columns" in out


def test_bad_files_are_clear_errors(tmp_path):
    db = tmp_path / "db.sqlite"
    garbage = tmp_path / "bad.arrow"
    garbage.write_bytes(b"this is not arrow")
    failed = run("import", db, garbage, "--org", "o", "--dataset", "d", check=False)
    assert failed.returncode == 1 and "cannot read" in failed.stderr
    unknown = tmp_path / "data.xyz"
    unknown.write_text("x")
    failed = run("import", db, unknown, "--org", "o", "--dataset", "d", check=False)
    assert failed.returncode == 1 and "--format" in failed.stderr


# Linux keeps, as a process's peak RSS, the larger of its own and that of the memory it
# had when it called exec: spawned straight from pytest, the import would report
# pytest's RSS. A small launcher spawns it and reports what os.wait4 says.
LAUNCHER = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(process.pid, 0)
print(status, usage.ru_maxrss * 1024)
sys.stderr.write(process.stderr.read().decode())
"""


def _peak_rss_of_import(db, csv, chunk_rows) -> int:
    result = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, *CLI, "import", str(db), str(csv), "--org", "o",
         "--dataset", csv.stem, "-q", "--chunk-rows", str(chunk_rows)],
        capture_output=True, text=True)
    status, peak = result.stdout.split()
    assert status == "0", result.stderr
    return int(peak)


def _write_csv(path, megabytes):
    rows = megabytes * 1_000_000 // 180
    block = pa.table({f"c{i}": np.random.default_rng(i).random(100_000) for i in range(8)})
    with pacsv.CSVWriter(path, block.schema) as writer:
        for _ in range(max(1, rows // 100_000)):
            writer.write_table(block)
    return path.stat().st_size


def test_csv_import_memory_does_not_grow_with_the_file(tmp_path):
    """Peak memory is bounded by the chunk, not the file: a file 3x larger
    adds almost nothing to the peak RSS of the import."""
    megabytes = int(os.environ.get("CLUSTORE_TEST_CSV_MB", "100"))  # past the read-ahead warm-up
    small = _write_csv(tmp_path / "small.csv", megabytes)
    large = _write_csv(tmp_path / "large.csv", 3 * megabytes)
    rss_small = _peak_rss_of_import(tmp_path / "db.sqlite", tmp_path / "small.csv", 20_000)
    rss_large = _peak_rss_of_import(tmp_path / "db.sqlite", tmp_path / "large.csv", 20_000)
    print(f"csv {small/1e6:.0f} MB -> peak {rss_small/1e6:.0f} MB; "
          f"{large/1e6:.0f} MB -> {rss_large/1e6:.0f} MB")
    # a leak of the data would add about 1.0x; pyarrow's read-ahead timing adds noise
    assert rss_large - rss_small < 0.3 * (large - small)
    assert rss_large < large
    with clustore_lite.open(tmp_path / "db.sqlite") as store:
        assert sum(d["rows"] for d in store.dataframes.list()) > 0


def test_csv_rows_longer_than_a_block_import(tmp_path):
    """The CSV block size is small to bound memory; a row longer than a block (seen in
    the sample) gets larger blocks instead of failing."""
    long_text = "x" * (3 * delimited.CSV_BLOCK_BYTES // 2)
    table = pa.table({"id": pa.array(range(40), pa.int64()), "text": [long_text] * 40})
    source, db = tmp_path / "long.csv", tmp_path / "db.sqlite"
    pacsv.write_csv(table, source)
    run("import", db, source, "--org", "o", "--dataset", "long", "-q")
    with clustore_lite.open(db) as store:
        assert store.datasets.read(store.datasets.list()[0]["id"]).equals(table)
