"""Hasura's update operators (model/operators.py) against a real PostgreSQL: the same
jsonb value and argument give the same result (or both refuse) as PostgreSQL's `||`,
`-` text, `-` int and `#-` text[]; and `Collection.change` writes through the store's
checks and rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import clustore_lite
from clustore_lite.catalog import TABLES
from clustore_lite.errors import InvalidValue, NotFound, PermissionDenied
from clustore_lite.model import update_operators as operators

from pg_server import cluster, unavailable  # noqa: F401 - fixtures

try:
    import psycopg
    from psycopg.types.json import Jsonb
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

KEYS = st.sampled_from(["a", "b", "c", "0", "1"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), KEYS)
JSONB = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=8)
PATH = st.lists(st.sampled_from(["a", "b", "0", "1", "-1", "x"]), max_size=3)
SQL = {"_append": "%s || %s", "_prepend": "%s || %s", "_delete_key": "%s - %s::text",
       "_delete_elem": "%s - %s::int", "_delete_at_path": "%s #- %s::text[]"}
CASES = st.one_of(
    st.tuples(st.sampled_from(["_append", "_prepend"]), JSONB, JSONB),
    st.tuples(st.just("_delete_key"), JSONB, KEYS),
    st.tuples(st.just("_delete_elem"), JSONB, st.integers(-5, 5)),
    st.tuples(st.just("_delete_at_path"), JSONB, PATH))
SETTINGS = settings(max_examples=300, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pg(cluster):  # noqa: F811 - the fixture imported above
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        yield conn


def postgres_says(conn, op: str, value, argument):
    """PostgreSQL's answer: ("ok", value) or ("error", message)."""
    stored = None if value is None else Jsonb(value)  # the store keeps a null as SQL NULL
    given_ = Jsonb(argument) if op in ("_append", "_prepend") else argument
    params = [given_, stored] if op == "_prepend" else [stored, given_]
    try:
        answer = conn.execute(f"SELECT ({SQL[op]})::text", params).fetchone()[0]
        return "ok", None if answer is None else json.loads(answer)
    except psycopg.Error as error:
        return "error", error.diag.message_primary


def python_says(op: str, value, argument):
    try:
        return "ok", operators.APPLY[op](value, argument)
    except InvalidValue as error:
        return "error", str(error)


@SETTINGS
@given(case=CASES)
def test_jsonb_operators_agree_with_postgresql(pg, case):
    op, value, argument = case
    theirs, ours = postgres_says(pg, op, value, argument), python_says(op, value, argument)
    assert ours[0] == theirs[0], (case, ours, theirs)
    if ours[0] == "ok":
        assert ours[1] == theirs[1] and _same_types(ours[1], theirs[1]), (case, ours, theirs)
    else:
        assert ours[1] == theirs[1], (case, ours, theirs)


def _same_types(a, b) -> bool:
    """== says True == 1; JSON does not."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_inc_adds_and_leaves_null(pg):
    assert operators.inc(2, 3) == pg.execute("SELECT 2 + 3").fetchone()[0]
    assert operators.inc(None, 3) is None
    with pytest.raises(InvalidValue, match="_inc takes a number"):
        operators.inc(1, "2")


def test_change_writes_through_the_collection_and_its_rules(tmp_path):
    with clustore_lite.open(tmp_path / "s.sqlite") as store:
        ana = store.users.create("ana")
        org = store.organizations.create("lab", owner_id=ana["id"])
        task = store.tasks.create(org["id"], "t", variables={"keep": 1, "drop": [1, 2, 3]})
        changed = store.tasks.change(task["id"], _set={"name": "t2"},
                                     _append={"variables": {"new": True}},
                                     _delete_at_path={"predictions": ["x"]})
        assert changed["name"] == "t2"
        assert changed["variables"] == {"keep": 1, "drop": [1, 2, 3], "new": True}
        changed = store.tasks.change(task["id"], _delete_key={"variables": "keep"})
        assert changed["variables"] == {"drop": [1, 2, 3], "new": True}
        with pytest.raises(InvalidValue, match='column found in multiple operators; "name"'):
            store.tasks.change(task["id"], _set={"name": "x"}, _append={"name": "y"})
        with pytest.raises(InvalidValue, match="_append does not apply to task.name"):
            store.tasks.change(task["id"], _append={"name": "y"})
        with pytest.raises(InvalidValue, match="at least any one of"):
            store.tasks.change(task["id"])
        frame = store.dataframes.get(store.datasets.create(org["id"], "d")["dataframeId"])
        with pytest.raises(InvalidValue, match="no settable field 'rows'"):
            store.dataframes.change(frame["id"], _inc={"rows": 1})
        bob = store.users.create("bob")
        with pytest.raises(NotFound):  # a row bob cannot see is absent to him
            store.as_user(bob["id"]).tasks.change(task["id"], _prepend={"variables": [0]})
        store.memberships.create(org["accessId"], "guest", user_id=bob["id"])
        with pytest.raises(PermissionDenied):  # one he sees, as a guest, he cannot change
            store.as_user(bob["id"]).tasks.change(task["id"], _prepend={"variables": [0]})
        assert store.tasks.get(task["id"])["variables"] == {"drop": [1, 2, 3], "new": True}
        assert TABLES["task"].columns["variables"] == "json"
