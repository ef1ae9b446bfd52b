"""`push` never sticks: names permuted among a store's rows (swaps, chains, cycles) push,
against a real PostgreSQL, and the mirror's unique constraints stay as Hasura uses them."""

import pytest

import clustore_lite

from pg_server import cluster, unavailable, url  # noqa: F401 - fixtures

try:
    import psycopg

    import test_postgres as mirrored  # its helpers: assert_mirrors, pg_rows
    from clustore_lite.mirror import postgres
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")


@pytest.fixture
def store(tmp_path):
    with clustore_lite.open(tmp_path / "edge.sqlite") as opened:
        yield opened


def rename_all(collection, targets: dict[str, str]):
    """Give each row (id -> new name) its name, through temporary names as SQLite's
    immediate unique constraints want: the store ends with exactly `targets`."""
    with collection.store.transaction():
        for i, id in enumerate(targets):
            collection.update(id, name=f"tmp-{i}")
        for id, name in targets.items():
            collection.update(id, name=name)


def test_two_organizations_swap_names(store, url):
    a, b = (store.organizations.create(name) for name in ("north", "south"))
    postgres.push(store, url)
    rename_all(store.organizations, {a.id: "south", b.id: "north"})
    report = postgres.push(store, url)
    assert not report.conflicts and report.sent["organization"] == 2
    mirrored.assert_mirrors(store, url)
    store.organizations.create("east")  # and later pushes go on as usual
    assert postgres.push(store, url).sent["organization"] == 1
    mirrored.assert_mirrors(store, url)


def test_two_users_swap_emails(store, url):
    ana = store.users.create("ana", "ana@example.org")
    bob = store.users.create("bob", "bob@example.org")
    postgres.push(store, url)
    with store.transaction():
        store.users.update(ana.id, email=None)
        store.users.update(bob.id, email="ana@example.org")
        store.users.update(ana.id, email="bob@example.org")
    assert not postgres.push(store, url).conflicts
    mirrored.assert_mirrors(store, url)


def test_datasets_take_their_siblings_freed_names(store, url):
    """A chain: each dataset takes the name its next sibling gives up, the last one a
    new name, and a new dataset the first one's old name. Pushed in any other order
    than the right one, some name would be taken twice for a moment."""
    org = store.organizations.create("lumen")
    sets = [store.datasets.create(org.id, f"d{i}") for i in range(12)]
    postgres.push(store, url)
    rename_all(store.datasets, {s.id: f"d{i + 1}" for i, s in enumerate(sets)})
    store.datasets.create(org.id, "d0")
    report = postgres.push(store, url)
    assert not report.conflicts and report.sent["dataset"] == 13
    mirrored.assert_mirrors(store, url)


def test_any_permutation_of_names_pushes(store, url, rng):
    """Random permutations (seeded) of organization names and of datasets' (organization,
    name) pairs, some rows taking new names, one deleted and a new one taking its name
    each round: every push succeeds and the mirror equals the store."""
    orgs = [store.organizations.create(f"org-{i}") for i in range(8)]
    sets = [store.datasets.create(orgs[i % 2].id, f"set-{i}") for i in range(10)]
    postgres.push(store, url)
    for round in range(4):
        names = [store.organizations.get(o.id).name for o in orgs]
        rng.shuffle(names)
        names = [f"org-new-{round}-{i}" if rng.random() < 0.2 else n for i, n in enumerate(names)]
        rename_all(store.organizations, dict(zip((o.id for o in orgs), names)))
        places = [(s.organization_id, s.name) for s in map(store.datasets.get, (s.id for s in sets))]
        rng.shuffle(places)
        with store.transaction():
            for i, s in enumerate(sets):
                store.datasets.update(s.id, name=f"tmp-{i}")
            for s, (org_id, name) in zip(sets, places):
                store.datasets.update(s.id, organization_id=org_id, name=name)
        gone = sets.pop(rng.randrange(len(sets)))
        gone = store.datasets.get(gone.id)
        store.datasets.delete(gone.id)
        sets.append(store.datasets.create(gone.organization_id, gone.name))
        report = postgres.push(store, url)
        assert not report.conflicts and not report.refused, [str(c) for c in report.conflicts]
        mirrored.assert_mirrors(store, url)


def test_a_swap_spread_over_many_batches_pushes(store, url, monkeypatch):
    """More renamed rows than one batch holds: the renames still go in one piece."""
    monkeypatch.setattr(postgres, "BATCH_ROWS", 3)
    orgs = [store.organizations.create(f"o{i}") for i in range(10)]
    postgres.push(store, url)
    rename_all(store.organizations, {o.id: f"o{(i + 1) % 10}" for i, o in enumerate(orgs)})
    assert not postgres.push(store, url).conflicts
    mirrored.assert_mirrors(store, url)


def test_the_mirror_names_stay_usable_as_hasura_on_conflict_targets(store, url):
    """Unique constraints stay immediate (not DEFERRABLE): PostgreSQL refuses deferrable
    ones as ON CONFLICT arbiters, which Hasura's `on_conflict: {constraint: ...}` uses."""
    store.organizations.create("north")
    postgres.push(store, url)
    with psycopg.connect(url) as conn:
        deferrable = conn.execute(
            "SELECT conname FROM pg_constraint WHERE condeferrable AND contype = 'u' AND "
            "connamespace = 'public'::regnamespace").fetchall()
        assert deferrable == []
        access = conn.execute("INSERT INTO access DEFAULT VALUES RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO organization (name, \"accessId\") VALUES ('north', %s) "
                     "ON CONFLICT ON CONSTRAINT organization_name_key DO NOTHING", (access,))
