import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import clustore_lite


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (the README's test line): one worker more than the cores, because about a
    third of the suite waits rather than computes (servers starting, timeouts running out,
    webhooks retried, PostgreSQL): on 2 cores, 3 workers took 155 s, 2 took 214 s.
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1


@pytest.fixture(scope="module")
def hasura_metadata(tmp_path_factory) -> tuple[Path, Path, str]:
    """A new store and the metadata `clustore-lite hasura-metadata` writes for it:
    (the store's path, the metadata folder, what the command printed)."""
    base = tmp_path_factory.mktemp("hasura")
    store = base / "store.sqlite"
    clustore_lite.open(store).close()
    out = base / "metadata"
    done = subprocess.run([sys.executable, "-m", "clustore_lite", "hasura-metadata",
                           str(store), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return store, out, done.stdout


@pytest.fixture
def rng(request) -> random.Random:
    """The test's source of random choices: seeded with CLUSTORE_SEED if set, else with
    a number derived from the test's id (the same on every run and machine). The seed
    is printed, so a failing run shows how to repeat it."""
    seed = os.environ.get("CLUSTORE_SEED")
    seed = int(seed) if seed else zlib.crc32(request.node.nodeid.encode())
    print(f"random seed {seed} (repeat with CLUSTORE_SEED={seed})")
    return random.Random(seed)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "store.sqlite"


@pytest.fixture
def store(db_path):
    with clustore_lite.open(db_path) as opened:
        yield opened


@pytest.fixture
def org(store):
    owner = store.users.create("ana", "ana@example.org")
    return store.organizations.create("lumen", owner_id=owner["id"])


@pytest.fixture
def server(tmp_path):
    """A running `clustore-lite serve` on a new store file: (url, db_path)."""
    from serving import running_server

    db = tmp_path / "served.sqlite"
    with running_server(db) as url:
        yield url, db
