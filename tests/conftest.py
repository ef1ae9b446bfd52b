import os
import random
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import clustore_lite


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
