"""One row PostgreSQL cannot hold never stops the mirror: a store written before NULs
were refused (or by plain SQL) pushes every other row and table, lists the rows held
back like name conflicts, and mirrors them once they are fixed. Real PostgreSQL."""

import subprocess
import sys

import pytest

import clustore_lite

from pg_server import cluster, unavailable, url  # noqa: F401 - fixtures

try:
    import test_postgres as mirrored  # its helpers: assert_mirrors, pg_rows
    from clustore_lite.mirror import postgres
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

CLI = [sys.executable, "-m", "clustore_lite"]


@pytest.fixture
def store(tmp_path):
    with clustore_lite.open(tmp_path / "old.sqlite") as opened:
        yield opened


def smuggle(store, table, column, value, id):
    """Write what the API refuses, as an older clustore-lite or plain SQL could."""
    with store.transaction():
        store.db.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE id = ?', (value, id))


def old_store(store):
    """Good rows and, among them, rows holding NULs (each in another table)."""
    ana = store.users.create("ana", "ana@example.org")
    good = store.organizations.create("lumen", owner_id=ana.id)
    bad = store.organizations.create("bad", owner_id=ana.id)
    made = {
        "ana": ana, "good": good, "bad": bad,
        "kept": store.datasets.create(good.id, "kept", {"x": [1.0, 2.0]}, chunk_rows=1),
        "odd": store.datasets.create(good.id, "odd", {"x": [3.0]}),
        "orphan": store.datasets.create(bad.id, "orphan", {"x": [4.0]}),
        "team": store.teams.create(bad.id, "core", members=[ana.id]),
        "seen": store.trackings.create("view", organization_id=good.id, payload={"n": 1}),
        "noisy": store.trackings.create("view", organization_id=good.id, payload={"n": 2}),
    }
    smuggle(store, "organization", "name", "ba\x00d", bad.id)
    smuggle(store, "dataframe", "metadata", '{"note": "\\u0000"}', made["odd"].dataframe_id)
    smuggle(store, "tracking", "payload", '{"n": "\\u0000"}', made["noisy"].id)  # last table
    return made


def test_rows_postgresql_cannot_hold_are_held_back_and_everything_else_pushes(store, url, tmp_path):
    made = old_store(store)
    report = postgres.push(store, url)
    assert sorted((r.table, r.id) for r in report.refused) == sorted([
        ("organization", made["bad"].id), ("dataframe", made["odd"].dataframe_id),
        ("tracking", made["noisy"].id)])
    assert all("NUL character" in str(r) for r in report.refused)
    assert not report.conflicts and report.held_back > 0
    remote = mirrored.pg_rows(url)
    assert made["bad"].id not in remote["organization"]
    assert made["orphan"].id not in remote["dataset"] and made["team"].id not in remote["team"]
    assert made["odd"].id not in remote["dataset"]  # its dataframe is held back
    assert made["odd"].dataframe_id not in remote["dataframe"]
    assert made["kept"].id in remote["dataset"] and made["seen"].id in remote["tracking"]
    chunks = store.dataframes.chunks(made["kept"].dataframe_id)
    assert len(chunks) == 2 and all(c.id in remote["chunk"] for c in chunks)

    # a row pushed before that now holds a NUL: its mirrored version stays
    smuggle(store, "user", "name", "an\x00a", made["ana"].id)
    store.organizations.update(made["good"].id, name="lumen-2")
    db = str(store.path)
    cli = subprocess.run([*CLI, "push", db, url, "-q"], capture_output=True, text=True)
    assert cli.returncode == 3, cli.stderr
    assert "Traceback" not in cli.stderr
    assert f"refused: user 'an\\x00a' ({made['ana'].id}) was not pushed: name holds the NUL" \
        in cli.stderr
    assert "4 row(s) PostgreSQL cannot hold kept" in cli.stderr
    remote = mirrored.pg_rows(url)
    assert remote["user"][made["ana"].id]["name"] == "ana"
    assert remote["organization"][made["good"].id]["name"] == "lumen-2"

    # fixed in the store: the next push mirrors everything
    smuggle(store, "organization", "name", "bad", made["bad"].id)
    smuggle(store, "user", "name", "ana", made["ana"].id)
    smuggle(store, "dataframe", "metadata", '{"note": "u"}', made["odd"].dataframe_id)
    smuggle(store, "tracking", "payload", '{"n": 2}', made["noisy"].id)
    report = postgres.push(store, url)
    assert not report.refused and not report.conflicts and report.held_back == 0
    mirrored.assert_mirrors(store, url)


def test_rows_postgresql_refuses_are_found_by_halving_the_batch(store, url, monkeypatch):
    """Whatever PostgreSQL refuses, found or not beforehand: the batch is halved down to
    the refused rows, the others are written."""
    org = store.organizations.create("lumen")
    made = [store.trackings.create("view", organization_id=org.id, payload={"i": i})
            for i in range(40)]
    for i in (7, 31):
        smuggle(store, "tracking", "payload", '{"n": "\\u0000"}', made[i].id)
    smuggle(store, "tracking", "kind", "vi\x00ew", made[20].id)
    monkeypatch.setattr(postgres.Pusher, "_refusal", lambda self, table, row: None,
                        raising=False)  # no check beforehand: PostgreSQL's word only
    report = postgres.push(store, url)
    assert sorted(r.id for r in report.refused) == sorted(made[i].id for i in (7, 20, 31))
    assert all("PostgreSQL refused it" in r.reason for r in report.refused), report.refused
    assert report.sent["tracking"] == 37
    remote = mirrored.pg_rows(url)["tracking"]
    assert set(remote) == {m.id for i, m in enumerate(made) if i not in (7, 20, 31)}
