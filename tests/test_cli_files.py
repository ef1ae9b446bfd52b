"""Issue 16, items 1-5: files in and out as a data person has them. Every format
round-trips exactly; appends take equal data in another representation; CSV options,
errors naming their line; a failed import leaves nothing; surprising options are
refused or warned about."""

import datetime as dt
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import clustore_lite

CLI = [sys.executable, "-m", "clustore_lite"]
SEED = 16


def run(*args, check=True):
    result = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def failed(*args):
    result = run(*args, check=False)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def messy_table(rows: int = 300, seed: int = SEED) -> pa.Table:
    """Real-looking data: nulls everywhere, strings holding delimiters, quotes, newlines
    and an empty string, timestamps with and without zone, dates, bools, mixed widths."""
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    words = ["plain", "a,b", "tab\there", 'say "hi"', "two\nlines", "", "semi;colon", "ünï"]
    def nulls(values):
        return [None if rng.random() < 0.15 else v for v in values]
    base = dt.datetime(2026, 1, 1, 12, 30)
    return pa.table({
        "id": pa.array(range(rows), pa.int64()),
        "count": pa.array(nulls(rng.integers(-1000, 1000, rows).tolist()), pa.int64()),
        "score": pa.array(nulls(rng.normal(size=rows).tolist()), pa.float64()),
        "label": pa.array(nulls(rng.choice(words, rows).tolist()), pa.string()),
        "ok": pa.array(nulls(rng.random(rows).__lt__(0.5).tolist()), pa.bool_()),
        "day": pa.array(nulls([dt.date(2026, 1, 1) + dt.timedelta(days=int(d))
                               for d in rng.integers(0, 400, rows)]), pa.date32()),
        "at": pa.array(nulls([base + dt.timedelta(microseconds=int(u))
                              for u in rng.integers(0, 10**12, rows)]), pa.timestamp("us")),
        "at_utc": pa.array(nulls([base + dt.timedelta(seconds=int(s))
                                  for s in rng.integers(0, 10**7, rows)]),
                           pa.timestamp("s", tz="UTC")),
    })


@pytest.fixture
def store_with_messy(tmp_path):
    db = tmp_path / "db.sqlite"
    table = messy_table()
    with clustore_lite.open(db) as store:
        lab = store.organizations.create("lab")
        store.datasets.create(lab.id, "messy", table, chunk_rows=128)
    return db, table


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".arrow"])
def test_every_format_round_trips_exactly(tmp_path, store_with_messy, suffix):
    db, table = store_with_messy
    out = tmp_path / f"out{suffix}"
    run("export", db, "lab/messy", out)
    if suffix == ".tsv":
        assert out.read_text().splitlines()[0].count("\t") == table.num_columns - 1
    run("import", db, out, "--org", "lab", "--dataset", "back", "-q", "--chunk-rows", 100)
    run("import", db, out, "--org", "lab", "--dataset", "messy", "--append", "-q")
    with clustore_lite.open(db) as store:
        [back] = store.datasets.list(name="back")
        again = store.datasets.read(back.id)
        both = store.datasets.read(store.datasets.list(name="messy")[0].id)
    assert again.to_pylist() == table.to_pylist()
    if suffix in (".parquet", ".arrow"):
        assert again.schema.equals(table.schema)
    else:  # CSV carries no types: they are guessed, as equal values
        assert again.schema.field("at").type == pa.timestamp("ns")
    assert both.num_rows == 2 * table.num_rows and both.slice(table.num_rows).equals(table)


def test_appends_take_equal_data_in_another_representation(tmp_path):
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    db = tmp_path / "db.sqlite"
    with clustore_lite.open(db) as store:
        lab = store.organizations.create("lab")
        made = store.datasets.create(lab.id, "d", {"n": [1, 2], "name": ["a", "b"], "t": pa.array(
            [dt.datetime(2026, 1, 1)] * 2, pa.timestamp("s"))})
        store.datasets.append(made.id, pd.DataFrame(
            {"n": [3], "name": ["c"], "t": [pd.Timestamp("2026-01-02")]}))
        store.datasets.append(made.id, pl.DataFrame(
            {"name": ["d"], "n": [4], "t": [dt.datetime(2026, 1, 3)]}))  # another order too
        store.datasets.append(made.id, pl.DataFrame(
            {"n": [5], "name": ["e"], "t": [dt.datetime(2026, 1, 4)]}).lazy())
        store.datasets.append(made.id, np.array(
            [(6, "f", np.datetime64("2026-01-05T00:00:00", "s"))],
            dtype=[("n", "i8"), ("name", "U1"), ("t", "M8[s]")]))
        assert store.datasets.read(made.id).column("n").to_pylist() == [1, 2, 3, 4, 5, 6]
        assert store.dataframes.schema(made.dataframe_id).field("name").type == pa.string()
        with pytest.raises(clustore_lite.SchemaMismatch, match="column 'n'.*changing its values"):
            store.datasets.append(made.id, {"n": [1.5], "name": ["x"], "t": pa.array(
                [dt.datetime(2026, 1, 1)], pa.timestamp("s"))})
        with pytest.raises(clustore_lite.SchemaMismatch, match="column 't'.*would lose data"):
            store.datasets.append(made.id, pd.DataFrame(
                {"n": [7], "name": ["x"], "t": [pd.Timestamp("2026-01-02 00:00:00.5")]}))
        with pytest.raises(clustore_lite.SchemaMismatch, match="column 'name' is int64"):
            store.datasets.append(made.id, {"n": [7], "name": [1], "t": pa.array(
                [dt.datetime(2026, 1, 1)], pa.timestamp("s"))})
        with pytest.raises(clustore_lite.InvalidValue, match="polars DataFrame or LazyFrame, "
                                                             "a numpy structured array"):
            store.datasets.append(made.id, np.zeros(3))
        assert store.datasets.read(made.id).num_rows == 6
    # a CSV-imported dataset takes a Parquet file polars wrote (large_string, [us])
    csv = tmp_path / "in.csv"
    csv.write_text("name,at\nx,2026-01-01 00:00:00\n")
    run("import", db, csv, "--org", "lab", "--dataset", "csv", "-q")
    parquet = tmp_path / "polars.parquet"
    pl.DataFrame({"name": ["y"], "at": [dt.datetime(2026, 1, 2)]}).write_parquet(parquet)
    assert pq.read_schema(parquet).field("at").type != pa.timestamp("s")
    run("import", db, parquet, "--org", "lab", "--dataset", "csv", "--append", "-q")
    with clustore_lite.open(db) as store:
        read = store.datasets.read(store.datasets.list(name="csv")[0].id)
    assert read.column("name").to_pylist() == ["x", "y"]


def test_csv_options(tmp_path):
    db = tmp_path / "db.sqlite"
    semi = tmp_path / "semi.csv"
    semi.write_text("# exported by a tool\nwhen;value;note\n2026-01-01;NA;\"a;b\"\n2026-01-02;7;\n")
    result = run("import", db, semi, "--org", "o", "--dataset", "sniffed", "--skip-rows", 1,
                 "--null-values", "NA,", "-q")
    assert "reading it as ';'-separated" in result.stderr
    run("import", db, semi, "--org", "o", "--dataset", "given", "--skip-rows", 1,
        "--delimiter", ";", "--null-values", "NA,", "--column-types", "value=float64,note=string", "-q")
    with clustore_lite.open(db) as store:
        sniffed = store.datasets.read(store.datasets.list(name="sniffed")[0].id)
        given = store.datasets.read(store.datasets.list(name="given")[0].id)
    assert sniffed.column_names == ["when", "value", "note"]
    assert sniffed.column("value").to_pylist() == [None, 7]
    assert sniffed.column("note").to_pylist() == ["a;b", None]
    assert given.schema.field("value").type == pa.float64()
    assert "value: NA" not in failed("import", db, semi, "--org", "o", "--dataset", "x",
                                     "--column-types", "nope=int64")
    assert "names no column" in failed("import", db, semi, "--org", "o", "--dataset", "x",
                                       "--skip-rows", 1, "--column-types", "nope=int64")
    assert "unknown column type 'integer'" in failed(
        "import", db, semi, "--org", "o", "--dataset", "x", "--column-types", "value=integer")


def test_csv_errors_name_their_line(tmp_path):
    db = tmp_path / "db.sqlite"
    late = tmp_path / "late.csv"
    late.write_text("n,name\n" + "".join(f"{i},\"row\n{i}\"\n" for i in range(200)) + "12.5,x\n")
    error = failed("import", db, late, "--org", "o", "--dataset", "late", "--infer-rows", 50)
    assert "line 402: column 'n' holds '12.5', which is not int64" in error
    assert "--column-types n=TYPE" in error and "first 50 rows" in error
    run("import", db, late, "--org", "o", "--dataset", "late", "--column-types", "n=float64", "-q")
    malformed = tmp_path / "malformed.csv"
    malformed.write_text("a,b\n1,2\n3,4\n5,6,7\n8,9\n")
    assert "line 4: a row has 3 fields where the header has 2" in failed(
        "import", db, malformed, "--org", "o", "--dataset", "m")
    unterminated = tmp_path / "quote.csv"
    unterminated.write_text('a,b\n1,"fine"\n2,"never closed\n3,x\n4,y\n')
    assert "line 3: a quoted field is never closed" in failed(
        "import", db, unterminated, "--org", "o", "--dataset", "q")
    inches = tmp_path / "inches.csv"  # a quote inside an unquoted field is a character
    inches.write_text('size,n\n5",1\n7,2\n')
    run("import", db, inches, "--org", "o", "--dataset", "inches", "-q")
    with clustore_lite.open(db) as store:
        names = sorted(d.name for d in store.datasets.list())
        inches_read = store.datasets.read(store.datasets.list(name="inches")[0].id)
    assert names == ["inches", "late"]
    assert inches_read.column("size").to_pylist() == ['5"', "7"]


def test_a_failed_import_leaves_nothing(tmp_path):
    db, source = tmp_path / "db.sqlite", tmp_path / "in.csv"
    source.write_text("a,b\n1,2\n3,4,5\n")
    assert "--chunk-rows" in failed("import", db, source, "--org", "o", "--dataset", "d",
                                    "--chunk-rows", 0)
    assert not db.exists()
    error = failed("import", db, source, "--org", "o", "--dataset", "d")
    assert "created organization" not in error and not db.exists()
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    run("import", db, good, "--org", "kept", "--dataset", "d", "-q")
    typed = tmp_path / "typed.csv"
    typed.write_text("a,b\n" + "1,2\n" * 50 + "x,2\n")
    error = failed("import", db, typed, "--org", "new", "--dataset", "d", "--infer-rows", 10)
    assert "line 52" in error and "created organization" not in error
    failed("import", db, source, "--org", "new", "--dataset", "d")
    with clustore_lite.open(db) as store:
        assert [o.name for o in store.organizations.list()] == ["kept"]
        assert store.datasets.count() == 1


def test_surprising_options_are_refused_or_warned(tmp_path):
    db, source = tmp_path / "db.sqlite", tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": np.arange(300, dtype="float64")}), source)
    run("import", db, source, "--org", "o", "--dataset", "d", "-q", "--compression", "zstd")
    assert "--compression applies to a new dataset" in failed(
        "import", db, source, "--org", "o", "--dataset", "d", "--append", "--compression", "lz4")
    tiny = run("import", db, source, "--org", "o", "--dataset", "tiny", "--chunk-rows", 1, "-q")
    assert "several times larger than its data" in tiny.stderr
    huge = run("import", db, source, "--org", "o", "--dataset", "huge", "--chunk-rows",
               1_000_000_000, "-q")
    assert "the import holds 2-3 chunks in memory" in huge.stderr
    fine = run("import", db, source, "--org", "o", "--dataset", "fine", "-q")
    assert "warning" not in fine.stderr
    assert "only apply to CSV" in failed("import", db, source, "--org", "o", "--dataset", "e",
                                         "--delimiter", ";")


def test_library_reads_csv_with_options(tmp_path):
    from clustore_lite.arrow import files
    from clustore_lite.arrow.delimited import CsvOptions

    source = tmp_path / "data.txt"
    pacsv.write_csv(pa.table({"a": ["x|y", None, ""]}), source,
                    pacsv.WriteOptions(delimiter="|"))
    read = files.read_batches(source, "csv", csv=CsvOptions(delimiter="|")).reader.read_all()
    assert read.column("a").to_pylist() == ["x|y", None, ""]
    with pytest.raises(clustore_lite.InvalidValue, match="one character"):
        files.read_batches(source, "csv", csv=CsvOptions(delimiter="||"))


def test_a_type_csv_cannot_hold_is_a_clear_error_and_no_file(tmp_path):
    from clustore_lite.arrow import files

    table = pa.table({"l": [[1, 2], [3]]})
    target = tmp_path / "out.csv"
    with pytest.raises(clustore_lite.InvalidValue, match="cannot write .* as csv"):
        files.write_batches(iter(table.to_batches()), table.schema, target)
    assert not target.exists()
