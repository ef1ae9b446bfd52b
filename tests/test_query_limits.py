"""The limits of query.py (issue 13, item 8): a where or order_by past one is refused
by the Python API with an InvalidValue that names it (it was an apsw.SQLError or a
RecursionError), and the largest shapes within the limits run, for the store admin
and for a user, whose visibility makes every relationship costlier in SQL."""

import itertools
import uuid

import apsw
import pytest

from clustore_lite import InvalidValue
from clustore_lite.db.sqlite_errors import reported
from clustore_lite.errors import DataCorrupted
from clustore_lite.graphql.mutations import key_where
from clustore_lite.query import (MAX_CONDITIONS, MAX_IN_VALUES, MAX_ORDER_BY, MAX_PATTERN,
                                 MAX_TERMS, MAX_WHERE_DEPTH, MAX_WHERE_HOPS)

LEAF = {"name": {"_eq": "x"}}


def nested(levels: int, wrap) -> dict:
    where = LEAF
    for _ in range(levels):
        where = wrap(where)
    return where


def hops(count: int, inner: dict = LEAF) -> dict:
    """A filter on teams (or datasets) through `count` relationships: organization,
    teams, organization, ..."""
    where = inner
    for i in reversed(range(count)):
        where = {("organization", "teams")[i % 2]: where}
    return where


@pytest.fixture
def views(store, org):
    store.teams.create(org["id"], "core", members=[org["ownerId"]])
    return {"admin": store, "user": store.as_user(org["ownerId"])}


@pytest.mark.parametrize("where, order_by, message", [
    ({"name": {"_in": [str(i) for i in range(40_000)]}}, None,
     "_in on team.name has 40000 values; at most 10000 are allowed"),
    ({"name": {"_nin": [str(i) for i in range(MAX_IN_VALUES + 1)]}}, None, "at most 10000"),
    ({"_or": [LEAF] * 5_000}, None, "_or has 5000 terms; at most 1000 are allowed"),
    ({"_and": [LEAF] * (MAX_TERMS + 1)}, None, "_and has 1001 terms"),
    (nested(5_000, lambda w: {"_not": w}), None, "more than 16 levels deep"),
    (nested(MAX_WHERE_DEPTH, lambda w: {"_and": [w]}), None, "more than 16 levels deep"),
    (hops(500), None, "a filter goes through relationships more than 4 levels deep"),
    (hops(MAX_WHERE_HOPS + 1), None, "a filter goes through relationships more than 4 levels deep"),
    ({"name": {"_like": "%" * 60_000}}, None,
     "the _like pattern on team.name has 60000 characters; at most 10000 are allowed"),
    ({"name": {"_nilike": "a" * (MAX_PATTERN + 1)}}, None, "at most 10000"),
    ({"_or": [{"_or": [LEAF] * 1000}] * 11}, None, "more than 10000 conditions"),
    ({"_or": [{"name": {"_in": ["a"] * 10_000}}] * 4}, None, "more than 30000 values"),
    (None, [{"name": "asc"}] * 5_000, "order_by has 5000 terms; at most 100 are allowed"),
    (None, [{"name": "asc", "id": "desc"}] * 51, "order_by has 102 terms"),
])
def test_filters_past_a_limit_are_refused_with_a_clear_error(views, where, order_by, message):
    for view in views.values():
        with pytest.raises(InvalidValue, match=message):
            view.teams.list(where=where, order_by=order_by)
        if order_by is None:
            with pytest.raises(InvalidValue, match=message):
                view.teams.count(where=where)


def widest(levels: int) -> dict:
    """`levels` of alternating _and/_or, each as wide as the condition limit allows."""
    width = min(MAX_TERMS, MAX_CONDITIONS // (levels + 1) - 1)
    return nested(levels, lambda w: {("_and", "_or")[len(str(w)) % 2]: [w] + [LEAF] * (width - 1)})


@pytest.mark.parametrize("relationships, shape", list(itertools.product(
    [0, 2, MAX_WHERE_HOPS], ["wide", "not", "in", "like"])))
def test_the_largest_filters_within_the_limits_run(views, relationships, shape):
    levels = MAX_WHERE_DEPTH - relationships - 1
    inner = {
        "wide": lambda: widest(levels),
        "not": lambda: nested(levels, lambda w: {"_not": w}),
        "in": lambda: {"name": {"_in": [str(i) for i in range(MAX_IN_VALUES)]}},
        "like": lambda: {"name": {"_ilike": "é%" * (MAX_PATTERN // 2)}},
    }[shape]()
    where = hops(relationships, inner)
    for view in views.values():
        view.teams.list(where=where, order_by=[{"name": "asc"}] * MAX_ORDER_BY)
    views["user"].datasets.list(where=where)  # dataset.organization, organization.teams, ...


def test_sqlite_errors_that_are_not_bugs_become_the_stores_own(store):
    """What only a whole statement can exceed (SQLite's own limits), and a damaged file,
    are reported as the caller's business; other SQL errors stay unexpected."""
    with pytest.raises(InvalidValue, match="too large for SQLite .Expression tree is too large"):
        with reported():
            store.db.execute("SELECT 1" + " + 1" * 1_100)
    with pytest.raises(DataCorrupted, match="the store file is damaged") as raised:
        with reported():
            raise apsw.CorruptError("database disk image is malformed")
    assert raised.value.code == "data-corrupted"
    with pytest.raises(apsw.SQLError, match="no such table"):
        with reported():
            store.db.execute("SELECT * FROM nowhere")


def test_the_rows_a_mutation_touched_are_read_back_within_the_limits(store, org):
    """A mutation's `returning` reads its rows back by key: 25,000 keys (more than one
    _in may hold) or 3,000 team members (more than one _or) still compile and run."""
    team = store.teams.create(org["id"], "core", members=[org["ownerId"]])
    keys = [str(uuid.UUID(int=i)) for i in range(25_000)] + [team["id"]]
    assert [t["id"] for t in store.teams.list(where=key_where("team", keys))] == [team["id"]]
    pairs = [(str(uuid.UUID(int=i)), org["ownerId"]) for i in range(3_000)] + [(team["id"], org["ownerId"])]
    assert len(store.collection("team_member").list(where=key_where("team_member", pairs))) == 1
