"""Backups taken under write load, and `check` finding what is wrong with a file."""

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import apsw
import pyarrow as pa
import pytest

import clustore_lite
from clustore_lite import InvalidValue
from clustore_lite.db import maintenance

CLI = [sys.executable, "-m", "clustore_lite"]
SCALE = float(os.environ.get("CLUSTORE_CAMPAIGN_SCALE", "1"))


def cli(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)


def raw(path) -> apsw.Connection:
    """A bare connection (foreign keys off), to break things the library would refuse."""
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(10_000)
    return conn


@pytest.fixture
def filled(db_path):
    """A store with two dataframes of different schemas, a few chunks each."""
    with clustore_lite.open(db_path) as store:
        org = store.organizations.create("lumen")
        a = store.datasets.create(org["id"], "a", {"x": list(range(10)), "y": [0.5] * 10},
                                  chunk_rows=3)
        b = store.datasets.create(org["id"], "b", {"name": ["p", "q", "r"]}, chunk_rows=2)
    return db_path, a["dataframeId"], b["dataframeId"]


WRITER = """
    import sys, time, clustore_lite
    store = clustore_lite.open(sys.argv[1])
    org = store.organizations.list(name="lumen")[0]
    frame = store.datasets.list(name="log")[0]
    n = 0
    print("ready", flush=True)
    while True:
        store.datasets.append(frame["id"], {"n": list(range(n, n + 500))}, chunk_rows=100)
        if n % 5000 == 0:
            store.datasets.create(org["id"], f"d{n}", {"n": list(range(2000))}, chunk_rows=64)
        n += 500
        print(n, time.monotonic(), flush=True)  # after the commit, on the system's clock
"""


def test_backup_under_write_load_opens_and_checks_clean(db_path, tmp_path):
    with clustore_lite.open(db_path) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "log", {"n": pa.array([], pa.int64())})
        # ballast, so that the copy takes many steps
        store.datasets.create(org["id"], "ballast", {"v": pa.array(range(int(3e6 * SCALE)))},
                              chunk_rows=50_000)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WRITER), str(db_path)],
                              stdout=subprocess.PIPE, text=True)
    acked: list[tuple[float, int]] = []  # (when, rows appended so far), as the writer says

    def listen():
        for line in writer.stdout:
            if line.strip() != "ready":
                n, when = line.split()
                acked.append((float(when), int(n)))

    def wait_for(condition, what):
        deadline = time.monotonic() + 120
        while not condition():
            assert writer.poll() is None and time.monotonic() < deadline, f"no {what}"
            time.sleep(0.01)

    listener = threading.Thread(target=listen)
    listener.start()
    try:
        wait_for(lambda: len(acked) >= 3, "first appends")
        started = time.monotonic()
        before = acked[-1][1]
        result = maintenance.backup(db_path, tmp_path / "copy.sqlite", pages_per_step=4,
                                    pause=0.002)
        finished = time.monotonic()
        # every append acknowledged before the end of the backup has been heard of
        wait_for(lambda: acked[-1][0] > finished, "append after the backup")
    finally:
        writer.kill()
        writer.wait()
        listener.join()
    assert result.pages > 100  # many steps
    during = [n for when, n in acked if started < when < finished]
    assert len(during) >= 2, "the writer did not progress during the backup"
    report = maintenance.check(tmp_path / "copy.sqlite")
    assert report.ok, report.text()
    with clustore_lite.open(tmp_path / "copy.sqlite") as copy:
        log = copy.datasets.list(name="log")[0]
        numbers = copy.datasets.read(log["id"]).column("n").to_pylist()
        assert numbers == list(range(len(numbers)))  # whole appends, in order
        # a snapshot from within the backup: at least what was acknowledged before it,
        # at most one append more than was acknowledged by its end
        assert before <= len(numbers) <= max(n for when, n in acked if when < finished) + 500
        assert copy.datasets.count() >= 2
    print(f"backup of {result.pages} pages in {result.seconds:.2f} s, "
          f"{len(during)} appends acknowledged meanwhile")
    assert maintenance.check(db_path).ok


def test_backup_command(filled, tmp_path):
    db_path, *_ = filled
    out = cli("backup", db_path, tmp_path / "b.sqlite")
    assert out.returncode == 0 and "backed up" in out.stdout, out.stderr
    again = cli("backup", db_path, tmp_path / "b.sqlite")
    assert again.returncode == 1 and "already exists" in again.stderr
    assert cli("backup", db_path, tmp_path / "b.sqlite", "--force").returncode == 0
    assert cli("check", tmp_path / "b.sqlite").returncode == 0
    with pytest.raises(InvalidValue, match="onto itself"):
        maintenance.backup(db_path, db_path, overwrite=True)
    assert not list(tmp_path.glob("*.partial"))


def test_check_passes_a_sound_file(filled):
    db_path, *_ = filled
    out = cli("check", db_path)
    assert out.returncode == 0, out.stdout
    assert "integrity_check: ok" in out.stdout and out.stdout.strip().endswith("OK")
    assert "2 dataframes, 6 chunks, 13 rows" in out.stdout
    report = json.loads(cli("check", db_path, "--json").stdout)
    assert report["ok"] and report["counts"]["chunks"] == 6


def _chunk(conn, frame, position=1):
    return conn.execute("SELECT id FROM chunk WHERE dataframeId = ? AND position = ?",
                        (frame, position)).fetchone()[0]


CORRUPTIONS = {
    # name: (SQL run with (frame a, frame b, chunk of a), words the report must contain)
    "garbage bytes": ("UPDATE chunk SET data = zeroblob(size) WHERE id = :chunk",
                      ["not a valid Arrow IPC stream"]),
    "truncated bytes": ("UPDATE chunk SET data = substr(data, 1, size - 20) WHERE id = :chunk",
                        ["size is", "but its data holds", "Arrow IPC stream"]),
    "chunk size": ("UPDATE chunk SET size = size + 1 WHERE id = :chunk",
                   ["but its data holds", "size is"]),
    "chunk rows": ("UPDATE chunk SET rows = rows + 1 WHERE id = :chunk",
                   ["rows is 4 but its data holds 3", "rows is 10 but its 4 chunks hold 11"]),
    "dataframe rows": ("UPDATE dataframe SET rows = 99 WHERE id = :a",
                       ["rows is 99 but its 4 chunks hold 10"]),
    "dataframe size": ("UPDATE dataframe SET size = 7 WHERE id = :a",
                       ["size is 7 but its 4 chunks hold"]),
    "dim": ("UPDATE dataframe SET dim = 3 WHERE id = :a", ["dim is 3 but its schema has 2"]),
    "other schema": ("UPDATE chunk SET data = (SELECT data FROM chunk WHERE dataframeId = :b "
                     "AND position = 1), size = (SELECT size FROM chunk WHERE dataframeId = :b "
                     "AND position = 1), rows = 2 WHERE id = :chunk",
                     ["its Arrow schema (name: string) is not its dataframe's "
                      "(x: int64, y: double)"]),
    "lost dataframe": ("DELETE FROM dataframe WHERE id = :b", ["foreign_key_check", "chunk"]),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_check_reports_corrupted_chunks_and_mismatched_sizes(filled, name):
    db_path, a, b = filled
    sql, expected = CORRUPTIONS[name]
    conn = raw(db_path)
    conn.execute(sql, {"a": a, "b": b, "chunk": _chunk(conn, a)})
    conn.close()
    out = cli("check", db_path)
    assert out.returncode == 1, out.stdout
    assert "PROBLEM" in out.stdout and "Traceback" not in out.stderr
    for words in expected:
        assert words in out.stdout, (words, out.stdout)
    if name not in ("lost dataframe",):
        assert _chunk(raw(db_path), a) in out.stdout or a in out.stdout


@pytest.mark.parametrize("damage", ["zeroed page", "changed key"])
def test_check_reports_a_damaged_btree(filled, damage):
    db_path, a, _ = filled
    conn = raw(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_schema "  # the (frame, position) index
                        "WHERE name = 'sqlite_autoindex_chunk_2'").fetchone()[0]
    conn.close()
    with open(db_path, "r+b") as file:
        file.seek((root - 1) * page_size)
        page = bytearray(file.read(page_size))
        if damage == "zeroed page":
            page = bytearray(page_size)
        else:  # one character of a dataframe id inside an index entry
            at = page.rindex(a.encode())
            page[at] = ord("0") if page[at] != ord("0") else ord("1")
        file.seek((root - 1) * page_size)
        file.write(page)
    out = cli("check", db_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "integrity_check: " in out.stdout and "PROBLEM" in out.stdout, out.stdout
    if damage == "changed key":
        assert "missing from index sqlite_autoindex_chunk_2" in out.stdout, out.stdout


def test_check_reports_files_that_are_not_stores(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database" * 1000)
    out = cli("check", garbage)
    assert out.returncode == 1 and "cannot be read" in out.stdout
    assert cli("check", tmp_path / "missing.sqlite").returncode == 1
    empty = tmp_path / "other.sqlite"
    raw(empty).execute("CREATE TABLE t (x)")
    assert "not a clustore-lite store" in cli("check", empty).stdout


def test_store_check_and_backup_from_python(filled, tmp_path):
    db_path, *_ = filled
    with clustore_lite.open(db_path) as store:
        assert store.check().ok
        result = store.backup(tmp_path / "copy.sqlite")
        assert result.bytes == os.path.getsize(tmp_path / "copy.sqlite")
    with clustore_lite.open(tmp_path / "copy.sqlite") as copy:
        assert sorted(d["name"] for d in copy.datasets.list()) == ["a", "b"]
