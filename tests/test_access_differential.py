"""The differential access test (issue 12) through the Python API: for every kind of
caller, every masked column and every relationship path up to depth 3 of the catalog,
where / order_by / count answer the same on the store and on a copy in which every
value that caller cannot read was changed (see access_differential.py). The seed is
printed; DIFFERENTIAL_SEED=<seed> replays a run."""

import random
import time

import pytest

from access_differential import (CALLERS, DATA_MODEL, MASKED_COLUMNS, SEED, TABLES, linking_columns,
                                 python_queries, run_python, targets, view, world)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    print(f"differential seed {SEED} (replay with DIFFERENTIAL_SEED={SEED})")
    store, ids, copies = world(tmp_path_factory.mktemp("differential"), random.Random(SEED))
    yield store, ids, copies
    for copy in copies.values():
        copy.close()
    store.close()


def test_the_queries_are_generated_from_the_catalog():
    """Every relationship is a hop of some path; every masked column ends some path;
    no masked column links rows (a join on it would read it raw)."""
    found = targets()
    assert {(t.leaf, t.column) for t in found} >= {
        (table, column) for table, columns in MASKED_COLUMNS.items() for column in columns}
    hops = {(source, name) for t in found
            for source, (name, _, _) in zip([t.root, *(hop[1] for hop in t.path)], t.path)}
    assert hops == {(table, name) for table in DATA_MODEL
                    for name in [*TABLES[table].objects, *TABLES[table].arrays]}
    assert max(len(t.path) for t in found) == 3
    for table, columns in MASKED_COLUMNS.items():
        assert not set(columns) & linking_columns(table)


@pytest.mark.parametrize("caller", CALLERS)
def test_what_a_caller_cannot_read_does_not_change_its_answers(stores, caller):
    store, ids, copies = stores
    started = time.monotonic()
    queries = python_queries(store, random.Random(f"{SEED}-{caller}"))
    on_store, on_copy = view(store, caller, ids), view(copies[caller], caller, ids)
    wrong = []
    for query in queries:
        expected, got = run_python(on_store, query), run_python(on_copy, query)
        if got != expected:
            wrong.append(f"{query}: {expected} on the store, {got} on the copy")
    print(f"{caller}: {len(queries)} queries, {time.monotonic() - started:.1f} s")
    assert not wrong, f"seed {SEED}: {len(wrong)} of {len(queries)} differ:\n" + "\n".join(wrong[:20])
