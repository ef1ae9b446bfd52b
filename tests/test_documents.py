"""Documents are checked within limits and only the valid ones are cached, bounded in
count and in bytes (issue 13, items 4 and 5): the cache kept up to 1,024 documents
keyed by their full text, rejected ones included (+27 MB of RSS per distinct 0.25 MB
document)."""

import gc
import tracemalloc

import pytest

from clustore_lite.graphql.documents import Documents
from clustore_lite.graphql.limits import MAX_DOCUMENT_BYTES, MAX_TOKENS, limits_rule
from clustore_lite.graphql.schema import build_schema


@pytest.fixture(scope="module")
def schema():
    return build_schema()


def valid(i: int, fields: int = 1) -> str:
    return "{ organizations { " + " ".join(f"f{i}_{j}: name" for j in range(fields)) + " } }"


def test_rejected_documents_are_not_kept(schema):
    documents = Documents(schema, [limits_rule()])
    documents.check(valid(0))  # warm graphql-core's own caches
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for i in range(40):  # ~24 KB each, failing validation 100 times
            text = f"# {i}\n{{ organizations {{ " + " ".join(f"no{j}" for j in range(2500)) + " } }"
            assert documents.check(text).errors
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    print(f"{grown} bytes kept after 40 rejected documents")
    assert len(documents) == 1 and grown < 1 << 20


def test_the_cache_is_bounded_in_bytes_and_count(schema):
    documents = Documents(schema, [limits_rule()], size=50, cache_bytes=20_000)
    texts = [valid(i, fields=100) for i in range(30)]  # ~1.7 KB each
    checked = [documents.check(text) for text in texts]
    assert not any(c.errors for c in checked)
    assert documents.cached_bytes <= 20_000 and len(documents) == 20_000 // len(texts[-1])
    assert documents.check(texts[-1]) is checked[-1]  # the most recent are kept
    assert documents.check(texts[0]) is not checked[0]  # the oldest went first
    small = Documents(schema, [limits_rule()], size=3)
    for i in range(10):
        small.check(valid(i))
    assert len(small) == 3


def test_documents_over_the_size_limits_are_refused_before_parsing(schema):
    documents = Documents(schema, [limits_rule()])
    bomb = "{ " + " ".join(f"a{i}: organizations {{ id }}" for i in range(40_000)) + " }"
    error = documents.check(bomb).errors[0]
    assert error.message == (f"the document has {len(bomb)} bytes; at most "
                             f"{MAX_DOCUMENT_BYTES} are allowed")
    assert error.extensions == {"code": "validation-failed"}
    tokens = "{ organizations(where: {name: {_in: [" + ",".join("1" for _ in range(MAX_TOKENS)) + "]}}) { id } }"
    assert len(tokens) < MAX_DOCUMENT_BYTES
    assert f"more than {MAX_TOKENS} tokens" in documents.check(tokens).errors[0].message
    assert len(documents) == 0


def test_shape_limits_are_checked_before_the_standard_rules(schema):
    """A document over the field limit is refused without running the standard rules
    (OverlappingFieldsCanBeMerged takes time quadratic in the fields)."""
    documents = Documents(schema, [limits_rule()])
    text = "{ organizations { " + " ".join(f"t: teams {{ {('id', 'name')[i % 2]} }}" for i in range(1200)) + " } }"
    errors = documents.check(text).errors
    assert [e.message for e in errors] == [
        "the query selects more than 2000 fields once fragments are expanded; at most 2000 are allowed"]


def test_validation_stops_at_the_time_budget(schema):
    documents = Documents(schema, [limits_rule()], seconds=1e-6)
    errors = documents.check(valid(0, fields=50)).errors
    assert [e.message for e in errors] == [
        "checking the document took more than 1e-06 s; at most 1e-06 s are allowed"]
    assert errors[0].extensions == {"code": "validation-failed"} and len(documents) == 0


def test_chains_of_fragments_are_refused_past_their_limit(schema):
    """A chain of fragments each spreading the next made the shape check recurse
    past Python's limit (found by the fuzz of test_fuzz_server.py)."""
    documents = Documents(schema, [limits_rule()])

    def chain(n: int) -> str:
        return ("{ organizations { ...F0 } } " + " ".join(
            f"fragment F{i} on organization {{ id ...F{i + 1} }}" for i in range(n))
            + f" fragment F{n} on organization {{ name }}")

    assert not documents.check(chain(49)).errors
    [error] = documents.check(chain(1000)).errors
    assert error.message == ("fragments are spread in fragments more than 50 levels deep; "
                             "at most 50 are allowed")
