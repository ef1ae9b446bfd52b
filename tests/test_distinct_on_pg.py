"""distinct_on (issue 14, item 6) answers as PostgreSQL's DISTINCT ON: the same rows
of the same store, queried through the Python API and through PostgreSQL, for
distinct_on, order_by, limit and offset that hypothesis makes (derandomized)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clustore_lite

from pg_server import cluster, unavailable  # noqa: F401 - fixtures

try:
    import psycopg
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

COLUMNS = ["kind", "resource"]
DIRECTIONS = ["asc", "desc", "asc_nulls_first", "desc_nulls_last"]
PG_ORDER = {"asc": "ASC NULLS LAST", "desc": "DESC NULLS FIRST",
            "asc_nulls_first": "ASC NULLS FIRST", "desc_nulls_last": "DESC NULLS LAST"}


@pytest.fixture(scope="module")
def both(tmp_path_factory, cluster):
    """30 trackings (seed 14) in a store and, column for column, in PostgreSQL."""
    seed = 14
    print(f"random seed {seed}")
    rng = random.Random(seed)
    store = clustore_lite.open(tmp_path_factory.mktemp("distinct-pg") / "s.sqlite")
    for n in range(30):
        store.trackings.create(rng.choice("abc"), resource=rng.choice(["x", "y", None]),
                               payload={"n": n})
    rows = store.trackings.list()
    conn = psycopg.connect(cluster.url(), autocommit=True)
    conn.execute('CREATE TABLE t (id text, kind text, resource text, "createdAt" text, n int)')
    for row in rows:
        conn.execute("INSERT INTO t VALUES (%s, %s, %s, %s, %s)",
                     (row["id"], row["kind"], row["resource"], row["createdAt"], row["payload"]["n"]))
    yield store, conn
    conn.close()
    store.close()


@st.composite
def queries(draw):
    distinct = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=2, unique=True))
    order = []
    if draw(st.booleans()):  # an order_by: the distinct columns first, in any order
        leading = draw(st.permutations(distinct))
        rest = draw(st.lists(st.sampled_from([*COLUMNS, "createdAt"]), max_size=2))
        order = [{c: draw(st.sampled_from(DIRECTIONS))} for c in [*leading, *rest]]
    limit = draw(st.none() | st.integers(0, 4))
    offset = draw(st.none() | st.integers(0, 3))
    return distinct, order, limit, offset


@settings(max_examples=60, derandomize=True, deadline=None)
@given(queries())
def test_distinct_on_as_postgresql(both, query):
    store, conn = both
    distinct, order, limit, offset = query
    ours = [r["payload"]["n"] for r in store.trackings.list(
        distinct_on=distinct, order_by=order, limit=limit, offset=offset)]
    terms = [f'"{c}" {PG_ORDER[d]}' for item in order for c, d in item.items()] or \
        [f'"{c}" ASC NULLS LAST' for c in distinct]
    sql = (f"SELECT DISTINCT ON ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in distinct)}) n "
           f"FROM t ORDER BY {', '.join(terms)}, \"createdAt\" ASC, id ASC")
    if limit is not None:
        sql += f" LIMIT {limit}"
    if offset:
        sql += f" OFFSET {offset}"
    assert ours == [row[0] for row in conn.execute(sql).fetchall()], sql
