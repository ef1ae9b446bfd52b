"""Hasura's aggregate functions answer here what PostgreSQL answers behind Hasura: the
SQL each function compiles to (aggregation.FUNCTIONS, with the variance aggregates of
db/statistics.py) against PostgreSQL's own, over the same seeded values, integer
(bigint: PostgreSQL's numeric arithmetic, exact) and float (float8)."""

from decimal import Decimal

import pytest

from clustore_lite.aggregation import FUNCTIONS
from clustore_lite.db.connection import connect

from pg_server import cluster, unavailable, url  # noqa: F401 - fixtures

try:
    import psycopg
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")


def sample(rng, kind: str) -> list:
    """Values of one column: some NULLs; sometimes none, one or two values."""
    size = rng.choice([0, 1, 2, 3, 10, 40])
    if kind == "bigint":
        scale = rng.choice([10, 10**6, 10**15])
        values = [rng.randint(-scale, scale) + scale * 3 for _ in range(size)]
    else:
        values = [rng.uniform(-1, 1) * 10 ** rng.randint(-3, 9) + 1e6 for _ in range(size)]
    return [None if rng.random() < 0.1 else v for v in values]


def aggregates_sql(column: str, sql_name=lambda function: function) -> str:
    return ", ".join(f"{sql_name(function)}({column})" for function in FUNCTIONS)


def test_every_function_agrees_with_postgresql(url, rng, tmp_path):  # noqa: F811
    sqlite = connect(tmp_path / "agg.sqlite")
    with psycopg.connect(url, autocommit=True) as pg:
        for trial in range(24):
            kind = ("bigint", "float8")[trial % 2]
            values = sample(rng, kind)
            pg.execute(f"CREATE TEMP TABLE v{trial} (x {kind})")
            sqlite.execute(f"CREATE TEMP TABLE v{trial} (x)")
            with pg.cursor() as cursor:
                cursor.executemany(f"INSERT INTO v{trial} VALUES (%s)", [(x,) for x in values])
            sqlite.executemany(f"INSERT INTO v{trial} VALUES (?)", [(x,) for x in values])
            theirs = pg.execute(f"SELECT {aggregates_sql('x')} FROM v{trial}").fetchone()
            ours = sqlite.execute(
                f"SELECT {aggregates_sql('x', lambda f: FUNCTIONS[f][0])} FROM v{trial}").fetchone()
            for function, expected, got in zip(FUNCTIONS, theirs, ours):
                what = f"{function} of {kind} {values}"
                if expected is None:
                    assert got is None, what
                elif function in ("max", "min") or (function == "sum" and kind == "bigint"):
                    assert got == expected, what  # exact, in the column's own type
                else:
                    expected = float(expected) if isinstance(expected, Decimal) else expected
                    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9), what
    sqlite.close()
