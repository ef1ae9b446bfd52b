"""Acknowledged writes are durable (issue 15, item 3). In WAL with synchronous=NORMAL a
commit was answered before any fsync, so a power cut could drop acknowledged writes,
including ones whose events were already POSTed. Now a write returns only after an
fsync (durability="full", the default); durability="normal" is the explicit faster
mode, and even then an event is POSTed only after an fsync that covers its write.

The fsyncs are watched for real, with strace, in a child process that marks each
acknowledged write with a write() of its own to /dev/null."""

import shutil
import subprocess
import sys
import textwrap

import pytest

import clustore_lite
from clustore_lite.errors import InvalidValue
from receiver import Receiver

WRITES = 5
SCRIPT = """
import os, sys
import clustore_lite
from clustore_lite.delivery import Deliverer
path, durability, url = sys.argv[1:4]
mark = os.open(os.devnull, os.O_WRONLY)
store = clustore_lite.open(path, durability=durability)
org = store.organizations.create("lumen", webhook=url or None)
for number in range({writes}):
    os.write(mark, b"WRITE")
    store.organizations.update(org.id, name=f"lumen-{{number}}")
    os.write(mark, b"ACKED")
if url:
    with Deliverer(path, backoff=0, timeout=10, webhook_allow="127.0.0.1") as worker:
        assert worker.run_once().delivered >= {writes}, "not delivered"
store.close()
""".format(writes=WRITES)


def traced(tmp_path, durability: str, url: str = "") -> list[str]:
    """The child's syscalls that matter, in order: WRITE, ACKED (the marks), SYNC
    (fsync or fdatasync of any file) and CONNECT (to the webhook receiver)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed: cannot watch the fsyncs")
    script, log = tmp_path / "writes.py", tmp_path / "strace.log"
    script.write_text(textwrap.dedent(SCRIPT))
    out = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,write,connect",
                          "-o", str(log), sys.executable, str(script),
                          str(tmp_path / "s.sqlite"), durability, url],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0 and "ptrace" in out.stderr:
        pytest.skip(f"strace cannot trace here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    events = []
    for line in log.read_text().splitlines():
        if '"WRITE"' in line or '"ACKED"' in line:
            events.append("WRITE" if '"WRITE"' in line else "ACKED")
        elif "fsync(" in line or "fdatasync(" in line:
            events.append("SYNC")
        elif "connect(" in line and url and f"htons({url.split(':')[2].split('/')[0]})" in line:
            events.append("CONNECT")
    return events


def _between(events: list[str], start: str, end: str) -> list[list[str]]:
    spans, current = [], None
    for event in events:
        if event == start:
            current = []
        elif event == end and current is not None:
            spans.append(current)
            current = None
        elif current is not None:
            current.append(event)
    return spans


def test_every_acknowledged_write_was_fsynced_first(tmp_path):
    spans = _between(traced(tmp_path, "full"), "WRITE", "ACKED")
    assert len(spans) == WRITES
    assert all("SYNC" in span for span in spans), spans


def test_events_are_posted_only_after_their_write_is_durable(tmp_path):
    """In the faster mode writes are answered without an fsync, and the delivery
    worker's claim, a durable commit, syncs them before the POST."""
    with Receiver() as hooks:
        events = traced(tmp_path, "normal", hooks.url())
        assert len(hooks.attempts) >= WRITES
    spans = _between(events, "WRITE", "ACKED")
    assert len(spans) == WRITES and not any("SYNC" in span for span in spans), spans
    after = events[len(events) - events[::-1].index("ACKED"):]
    assert "CONNECT" in after, events
    assert "SYNC" in after[:after.index("CONNECT")], after


def test_durability_is_full_unless_asked(tmp_path):
    def synchronous(store):
        return store.db.execute("PRAGMA synchronous").fetchone()[0]

    with clustore_lite.open(tmp_path / "a.sqlite") as store:
        assert synchronous(store) == 2  # FULL
        store.dataframes.create({"x": list(range(10))})  # a bulk write changes it ...
        assert synchronous(store) == 2  # ... and puts it back
    with clustore_lite.open(tmp_path / "b.sqlite", durability="normal") as store:
        assert synchronous(store) == 1
        store.dataframes.create({"x": list(range(10))})
        assert synchronous(store) == 1
    with pytest.raises(InvalidValue, match="durability must be 'full' or 'normal'"):
        clustore_lite.open(tmp_path / "c.sqlite", durability="fast")


def test_serve_takes_the_faster_mode_as_an_explicit_flag(tmp_path):
    from serving import Client, running_server

    with running_server(tmp_path / "s.sqlite", "--durability", "normal") as url:
        created = Client(url)('mutation { insert_organization_one(object: {name: "lumen"}) '
                              '{ name } }')
        assert created["insert_organization_one"]["name"] == "lumen"
    out = subprocess.run([sys.executable, "-m", "clustore_lite", "serve", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert "--durability [full|normal]" in out.stdout
