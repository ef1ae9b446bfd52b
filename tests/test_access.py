"""SPEC section 4 through the Python API: an exhaustive, generated matrix of caller
kind x role x resource kind x operation, with 0 leaks and 0 wrongful refusals."""

import pytest

from access_matrix import OPERATIONS, cases, expected, setup
from clustore_lite import ClustoreError, NotFound, PermissionDenied

CASES = cases()


class Undo(Exception):
    """Raised to roll a destructive check back."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import clustore_lite

    store = clustore_lite.open(tmp_path_factory.mktemp("access") / "store.sqlite")
    caller = store.users.create("caller")
    for case in CASES:
        setup(store, case, caller["id"])
    yield store, caller["id"]
    store.close()


def view(store, caller_id, case):
    if case.grant == "token":
        return store.with_token(case.ids["token"]) if case.ids["token"] else store.anonymous()
    return store.as_user(caller_id)


COLLECTION = {"organization": "organizations", "team": "teams", "dataset": "datasets", "task": "tasks"}


def attempt(store, as_caller, case, operation) -> bool:
    """Run `operation` as the caller; True when it was allowed (and undone)."""
    ids = case.ids
    collection = getattr(as_caller, COLLECTION[case.kind])
    target = ids["target"]
    if operation == "read":
        return _allowed(lambda: collection.get(target))
    if operation == "list":
        return target in {r["id"] for r in collection.list()}
    if operation == "aggregate":
        return collection.count(where={"id": {"_eq": target}}) == 1
    if operation == "relationship":  # reached through its `access` relationship
        return collection.count(where={"id": {"_eq": target}, "access": {"id": {"_eq": ids["access"]}}}) == 1
    if operation == "read_access":
        return _allowed(lambda: as_caller.accesses.get(ids["access"]))
    if operation.endswith("Token"):
        try:
            return as_caller.accesses.get(ids["access"])[operation] is not None
        except NotFound:
            return False
    if operation.startswith("invite_"):
        role = operation.split("_")[1]
        return _undone(store, lambda: as_caller.memberships.create(ids["access"], role, user_id=ids["invitee"]))
    if operation == "update":
        return _undone(store, lambda: collection.update(target, name="renamed"))
    if operation == "append":
        if case.kind != "dataset":
            return _undone(store, lambda: as_caller.dataframes.append(_frame(store, case), {"c": [2.0]}))
        return _undone(store, lambda: collection.append(target, {"x": [3]}))
    if operation == "delete":
        return _undone(store, lambda: collection.delete(target))
    raise AssertionError(operation)


def _frame(store, case):
    task = store.tasks.get(case.ids["target"])
    return task["centroidsId"]


def _allowed(call) -> bool:
    try:
        call()
        return True
    except (NotFound, PermissionDenied):
        return False


def _undone(store, call) -> bool:
    try:
        with store.transaction():
            call()
            raise Undo
    except Undo:
        return True
    except (NotFound, PermissionDenied):
        return False


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matrix_through_the_python_api(world, case):
    store, caller_id = world
    as_caller = view(store, caller_id, case)
    wrong = {op: (attempt(store, as_caller, case, op), expected(case, op)) for op in OPERATIONS}
    wrong = {op: f"got {got}, expected {want}" for op, (got, want) in wrong.items() if got != want}
    assert not wrong


def test_anonymous_sees_exactly_the_public_resources(world):
    store, _ = world
    anonymous = store.anonymous()
    public = {c.ids["target"] for c in CASES if c.grant == "public" and c.role}
    for kind, plural in COLLECTION.items():
        seen = {r["id"] for r in getattr(anonymous, plural).list()}
        assert seen == {c.ids["target"] for c in CASES if c.kind == kind and c.grant == "public" and c.role} | \
            {c.ids["target"] for c in CASES if c.grant == "public" and c.role and c.kind == "organization"
             and kind == "organization"} | _inherited(store, kind, public)
    assert anonymous.trackings.list() == []
    with pytest.raises(PermissionDenied):
        anonymous.organizations.create("anonymous-org")


def _inherited(store, kind, public):
    """Resources of publicly readable organizations are readable too."""
    if kind == "organization":
        return set()
    orgs = {c.ids["target"] for c in CASES if c.kind == "organization" and c.grant == "public" and c.role}
    return {r["id"] for r in store.collection(kind).list(where={"organizationId": {"_in": sorted(orgs)}})}


def test_stale_token_is_refused_at_once(world):
    store, _ = world
    [case] = [c for c in CASES if c.name == "dataset-token-admin"]
    old = case.ids["token"]
    store.with_token(old)
    regenerated = store.accesses.regenerate_token(case.ids["access"], "admin")
    with pytest.raises(PermissionDenied, match="no longer"):
        store.with_token(old)
    case.ids["token"] = regenerated["adminToken"]


def test_users_create_organizations_and_own_them(world):
    store, caller_id = world
    with store.transaction():
        org = store.as_user(caller_id).organizations.create("mine")
        assert org["ownerId"] == caller_id
        with pytest.raises(PermissionDenied):
            store.as_user(caller_id).organizations.create("not-mine", owner_id=store.users.create("x")["id"])
        store.organizations.delete(org["id"])


def test_a_refused_write_changes_nothing(world):
    store, caller_id = world
    [case] = [c for c in CASES if c.name == "dataset-membership-guest"]
    before = store.datasets.get(case.ids["target"])
    with pytest.raises(PermissionDenied):
        store.as_user(caller_id).datasets.update(case.ids["target"], name="x")
    with pytest.raises(PermissionDenied):
        store.as_user(caller_id).memberships.create(case.ids["access"], "admin", user_id=caller_id)
    assert store.datasets.get(case.ids["target"]) == before
    assert isinstance(PermissionDenied("x"), ClustoreError)
