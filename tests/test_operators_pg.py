"""The operators of item 11 against a real PostgreSQL: SIMILAR TO, the POSIX regular
expressions, jsonb equality, order, containment, key tests and jsonb's text answer as
PostgreSQL answers, on fixed cases and on jsonb values hypothesis makes (derandomized)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clustore_lite import jsonb, patterns
from clustore_lite.errors import InvalidValue

from pg_server import cluster, unavailable  # noqa: F401 - fixtures

try:
    import psycopg
except ImportError as missing:
    unavailable(f"{missing} (pip install -e '.[test]')")

TEXTS = ["abc", "ABC", "a.c", "a\nc", "", "100$", "x^y", "foo bar", "foobar", "a_b", "a%b",
         "[x]", "aaa", "ab ab", "tab\tend", "α β", "line1\nline2", "\\back"]
SIMILAR = ["abc", "a%", "%c", "a_c", "(a|b)%", "a.c", "%$", "x^y", "[a-c]%", "[^a]%",
           "%(b|B)%", "a*", "a+", "foo bar", "a\\%b", "a\\_b", "%", "_", "", "a{3}",
           "%[[:space:]]%", "[]x]%", "\\[%"]
REGEX = ["abc", "^a", "c$", "a.c", "^$", "\\mfoo", "bar\\M", "\\yab\\y", "\\Yb", "[[:alpha:]]+$",
         "[[:digit:]]{3}", "^[^a]", "a{2,}", "(ab) \\1", "b|x", "\\.", "\\$", "line1$", "^line2",
         "^.+$", "\\s", "\\w+\\W", "[.]", "\\\\", "α", "(?i)abc", "[a-c]{3}", "x?y?z?"]


@pytest.fixture(scope="module")
def pg(cluster):
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        yield conn


def pg_value(conn, sql: str, *params):
    return conn.execute(sql, params).fetchone()[0]


@pytest.mark.parametrize("pattern", SIMILAR)
def test_similar_to_as_postgresql(pg, pattern):
    for text in TEXTS:
        expected = pg_value(pg, "SELECT %s SIMILAR TO %s", text, pattern)
        assert bool(patterns.matches(text, pattern, 1, 0, 0)) == expected, (text, pattern)


@pytest.mark.parametrize("pattern", REGEX)
def test_regular_expressions_as_postgresql(pg, pattern):
    for text in TEXTS:
        for ignore_case, operator in ((0, "~"), (1, "~*")):
            expected = pg_value(pg, f"SELECT %s {operator} %s", text, pattern)
            got = patterns.matches(text, pattern, 0, ignore_case, 0)
            assert bool(got) == expected, (text, pattern, operator)


def test_a_bad_pattern_is_refused_as_postgresql_refuses_it(pg):
    for pattern in ["(", "a{2", "[z-a]"]:
        with pytest.raises(psycopg.Error):
            pg.execute("SELECT 'x' ~ %s", (pattern,))
        with pytest.raises(InvalidValue):
            patterns.matches("x", pattern, 0, 0, 0)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from([1.0, 2.5, -0.0, 1e2])
    | st.sampled_from(["a", "b", "", "é", "q\"t", "new\nline"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["a", "b", "cc", "ab", "é", ""]), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(JSON, JSON)
def test_jsonb_as_postgresql(pg, left, right):
    a, b = json.dumps(left), json.dumps(right)
    row = pg.execute("SELECT %s::jsonb = %s::jsonb, %s::jsonb @> %s::jsonb, %s::jsonb::text, "
                     "%s::jsonb < %s::jsonb, %s::jsonb > %s::jsonb", (a, b, a, b, a, a, b, a, b)).fetchone()
    assert (jsonb.key(a) == jsonb.key(b)) == row[0], (a, b)
    assert (jsonb.compare(a, b) < 0, jsonb.compare(a, b) > 0) == (row[3], row[4]), (a, b)
    assert bool(jsonb.contains(a, b)) == row[1], (a, b)
    assert jsonb.text(a) == row[2], a
    for key in ("a", "b", "é"):
        assert bool(jsonb.has_key(a, key)) == pg_value(pg, "SELECT %s::jsonb ? %s", a, key)
    keys = ["a", "cc"]
    assert bool(jsonb.has_keys(a, json.dumps(keys), 1)) == pg_value(pg, "SELECT %s::jsonb ?& %s", a, keys)
    assert bool(jsonb.has_keys(a, json.dumps(keys), 0)) == pg_value(pg, "SELECT %s::jsonb ?| %s", a, keys)


ORDER_CASES = [([], None), ([1], 5), ([1, 2], 5), ({}, []), ({}, "z"), (True, 10), ("b", "ab"),
               ({"b": 1}, {"aa": 0}), ({"a": 1, "b": 2}, {"a": 1, "c": 0}), ([[1]], [1]),
               (1.0, 1), (-0.0, 0), ([None], None), ("é", "z"), ({"a": [1]}, {"a": [1, 0]})]


@pytest.mark.parametrize("left, right", ORDER_CASES)
def test_jsonb_order_as_postgresql(pg, left, right):
    """The corners of jsonb's order: the empty top-level array before null, a scalar
    before the arrays of its size, objects by size and then by keys in jsonb's order."""
    a, b = json.dumps(left), json.dumps(right)
    expected = pg_value(pg, "SELECT CASE WHEN %s::jsonb < %s::jsonb THEN -1 "
                            "WHEN %s::jsonb > %s::jsonb THEN 1 ELSE 0 END", a, b, a, b)
    assert jsonb.compare(a, b) == expected
    assert jsonb.compare(b, a) == -expected
