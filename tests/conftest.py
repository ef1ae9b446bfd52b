import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import clustore_lite


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
