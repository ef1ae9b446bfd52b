import pytest

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
