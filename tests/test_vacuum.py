"""Space is given back (issue 15, item 8): deleting datasets left the file at its size.
`store.vacuum()` / `clustore-lite vacuum` hand the free pages back: incrementally on
files created with auto_vacuum=INCREMENTAL (every new store), by one full VACUUM on
older files, which also switches them to incremental."""

import os
import subprocess
import sys

import apsw
import numpy as np

import clustore_lite
from clustore_lite.db import maintenance

SEED = 1515


def on_disk(path) -> int:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal") if os.path.exists(f"{path}{s}"))


def two_datasets(path):
    rng = np.random.default_rng(SEED)
    with clustore_lite.open(path) as store:
        org = store.organizations.create("lumen")
        big = store.datasets.create(org.id, "big", {"x": rng.random(3_000_000)})  # 24 MB
        small = store.datasets.create(org.id, "small", {"x": rng.random(100_000)})
    return big, small


def test_vacuum_gives_deleted_space_back_incrementally(tmp_path):
    print("seed", SEED)
    path = tmp_path / "store.sqlite"
    big, small = two_datasets(path)
    with clustore_lite.open(path) as store:
        assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        store.datasets.delete(big.id)
        before = on_disk(path)
        assert before > 24e6  # deleting gave nothing back
        result = store.vacuum()
        assert result.mode == "incremental" and not result.converted
        assert on_disk(path) < before - 20e6 and result.bytes_after == on_disk(path)
        assert store.datasets.read(small.id).num_rows == 100_000
    assert maintenance.check(path).ok


def test_an_older_file_is_rebuilt_once_then_incremental(tmp_path):
    path = tmp_path / "store.sqlite"
    big, small = two_datasets(path)
    conn = apsw.Connection(str(path))  # as files were made before: no auto_vacuum
    conn.execute("PRAGMA auto_vacuum = NONE; VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    with clustore_lite.open(path) as store:
        store.datasets.delete(big.id)
    before = on_disk(path)
    out = subprocess.run([sys.executable, "-m", "clustore_lite", "vacuum", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("full vacuum:") and "now set for incremental" in out.stdout
    assert on_disk(path) < before - 20e6
    with clustore_lite.open(path) as store:
        assert store.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert store.vacuum().mode == "incremental"
        assert store.datasets.read(small.id).num_rows == 100_000
    assert maintenance.check(path).ok
