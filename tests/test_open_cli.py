"""The command line and the server on files they must not change or cannot write
(issue 15, items 1, 6, 7): reading commands change nothing; every SQLite error is
one line and a non-zero exit; `serve --read-only`, chosen by itself for a file
nobody may write."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import apsw
import httpx
import pyarrow as pa
import pytest

import clustore_lite
from faults import file_state, fill, immutable, small_disk
from serving import Client, free_port

CLI = [sys.executable, "-m", "clustore_lite"]


def run(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def one_line_error(result, match: str):
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0], lines[0]


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(3000)))
    return path


@pytest.fixture
def filled(tmp_path, csv):
    db = tmp_path / "s.sqlite"
    assert run("import", db, csv, "--org", "lumen", "--dataset", "d", "-q").returncode == 0
    return db


def test_reading_commands_change_no_file(tmp_path, filled):
    other = tmp_path / "other.sqlite"
    conn = apsw.Connection(str(other))
    conn.execute("CREATE TABLE notes (body TEXT); CREATE TABLE user (name TEXT)")
    conn.close()
    for db in (other, filled):
        before = file_state(db)
        for args in (["info", db], ["check", db], ["export", db, "lumen/d", tmp_path / "out.csv"],
                     ["events", db]):
            result = run(*args)
            if db == other:
                assert result.returncode != 0, args
                assert "not a clustore-lite store" in result.stderr + result.stdout, args
                assert "Traceback" not in result.stderr
            else:
                assert result.returncode == 0, (args, result.stderr)
            (tmp_path / "out.csv").unlink(missing_ok=True)
            assert file_state(db) == before, args
    conn = apsw.Connection(str(other), flags=apsw.SQLITE_OPEN_READONLY)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_sqlite_errors_are_one_line(tmp_path, csv, filled):
    missing = tmp_path / "nowhere" / "s.sqlite"
    one_line_error(run("import", missing, csv, "--org", "o", "--dataset", "d", "-q"),
                   "does not exist")
    for command in (["info"], ["events"], ["deliver", "--once"], ["export"]):
        extra = ["lumen/d", tmp_path / "o.csv"] if command == ["export"] else []
        one_line_error(run(*command, csv, *extra), "not a SQLite file")
    one_line_error(run("import", csv, filled, "--org", "o", "--dataset", "d", "-q"),
                   "not a SQLite file")  # the arguments swapped
    port = free_port()
    one_line_error(run("serve", csv, "--port", port), "not a SQLite file")
    cut = tmp_path / "cut.sqlite"
    with clustore_lite.open(cut) as store:
        org = store.organizations.create("lumen")
        store.datasets.create(org["id"], "d", pa.table({"x": list(range(300_000))}))
    os.truncate(cut, os.path.getsize(cut) // 2)
    one_line_error(run("export", cut, "lumen/d", tmp_path / "o.csv"), "damaged")


def test_a_read_only_file_and_a_full_disk_are_one_line(tmp_path, csv, filled):
    with immutable(filled):
        one_line_error(run("import", filled, csv, "--org", "lumen", "--dataset", "e", "-q"),
                       "cannot be written")
        one_line_error(run("events", filled, "--redeliver-dead"), "cannot be written")
        assert run("info", filled).returncode == 0  # reading needs no write
    with small_disk(tmp_path / "disk", "16m") as disk:
        db = disk / "s.sqlite"
        assert run("import", db, csv, "--org", "lumen", "--dataset", "d", "-q").returncode == 0
        fill(disk)
        one_line_error(run("import", db, csv, "--org", "lumen", "--dataset", "e", "-q"),
                       "is full")


def test_a_refused_import_never_aborts_the_interpreter(tmp_path, csv, filled):
    """Opened after FILE, a store that cannot be written left Arrow's CSV reading
    threads running to the interpreter's exit, which aborted it ("terminate called
    without an active exception", exit 134) in about 3 runs of 10: run it 8 times."""
    with immutable(filled):
        for _ in range(8):
            one_line_error(run("import", filled, csv, "--org", "lumen", "--dataset", "e", "-q"),
                           "cannot be written")


def _serve(db, *args):
    port = free_port()
    process = subprocess.Popen([*CLI, "serve", str(db), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(f"{url}/ping", timeout=1).text == "pong":
                return process, url
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "server did not start in 30 s"
        time.sleep(0.05)


def _stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)
    return process.stderr.read()


@pytest.mark.parametrize("how", ["flag", "unwritable"])
def test_serving_read_only(filled, how):
    before = file_state(filled)
    guard = immutable(filled) if how == "unwritable" else None
    if guard:
        guard.__enter__()
    try:
        process, url = _serve(filled, *(["--read-only"] if how == "flag" else []))
        try:
            client = Client(url)
            assert [o["name"] for o in client("{ organizations { name } }")["organizations"]] \
                == ["lumen"]
            answer = client.post('mutation { insert_organization_one(object: {name: "x"}) '
                                 '{ id } }').json()
            assert answer["errors"][0]["extensions"]["code"] == "read-only", answer
        finally:
            log = _stop(process)
    finally:
        if guard:
            guard.__exit__(None, None, None)
    assert "Traceback" not in log and "paused" not in log, log
    assert f"serving {filled} read-only" in log, log
    if how == "unwritable":
        assert "cannot be written" in log, log
    assert file_state(filled)[0] == before[0]


def test_a_store_in_a_read_only_directory_is_read_by_another_user(filled, tmp_path):
    """An unprivileged user (root may write anywhere) reads a store in a directory it
    cannot write: no -wal or -shm can be made there, so none is needed."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: cannot run as an unprivileged user")
    shared = Path(tempfile.mkdtemp(prefix="clustore-ro-"))  # outside pytest's 0700 tree
    try:
        shutil.copy(filled, shared / "s.sqlite")
        out = shared / "out"
        out.mkdir()
        out.chmod(0o777)
        shared.chmod(0o555)
        (shared / "s.sqlite").chmod(0o444)
        before = file_state(shared / "s.sqlite")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *CLI]
        runs = subprocess.run([*as_nobody, "--help"], capture_output=True, text=True)
        if runs.returncode != 0:  # a checkout in a private directory (mktemp -d: 0700)
            pytest.skip("the unprivileged user cannot run this checkout's clustore-lite: "
                        + runs.stderr.strip()[-200:])
        probe = subprocess.run([*as_nobody[:4], "touch", str(shared / "x")], capture_output=True)
        if probe.returncode == 0:
            pytest.skip("the unprivileged user can still write the directory")
        for args in (["info", shared / "s.sqlite"], ["check", shared / "s.sqlite"],
                     ["export", shared / "s.sqlite", "lumen/d", out / "d.csv"]):
            result = subprocess.run([*as_nobody, *map(str, args)], capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, (args, result.stderr)
        assert (out / "d.csv").read_text().count("\n") == 3001
        write = subprocess.run([*as_nobody, "import", str(shared / "s.sqlite"),
                                str(out / "d.csv"), "--org", "lumen", "--dataset", "e", "-q"],
                               capture_output=True, text=True, timeout=120)
        one_line_error(write, "cannot be written")
        assert file_state(shared / "s.sqlite") == before
    finally:
        shared.chmod(0o755)
        shutil.rmtree(shared)
