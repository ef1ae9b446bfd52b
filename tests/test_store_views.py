"""A caller's view of a store has every collection the store has; what it may not
read answers PermissionDenied, never AttributeError."""

import pytest

from clustore_lite import PermissionDenied
from clustore_lite.catalog import TABLES


def views(store, org):
    access = store.accesses.get(org["accessId"])
    return {"user": store.as_user(org["ownerId"]), "token": store.with_token(access["guestToken"]),
            "anonymous": store.anonymous()}


def test_every_view_has_every_collection(store, org):
    for name, view in views(store, org).items():
        for table in TABLES.values():
            assert type(getattr(view, table.plural)) is type(getattr(store, table.plural)), \
                (name, table.plural)


@pytest.mark.parametrize("caller", ["user", "token", "anonymous"])
def test_the_event_log_is_the_store_admins(store, org, caller):
    view = views(store, org)[caller]
    assert store.events.count() > 0
    for read in (view.events.list, view.events.count, view.event_deliveries.list,
                 view.events.redeliver_dead):
        with pytest.raises(PermissionDenied, match="only the store admin"):
            read()
