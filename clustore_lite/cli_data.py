"""`clustore-lite import` and `export`: dataframe files in and out, and how the
command line names organizations, users and datasets (names or ids)."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid

import apsw
import click
import pyarrow as pa
from tqdm import tqdm

from .arrow import codec, files
from .arrow.delimited import CsvOptions, parse_column_types
from .db.sqlite_errors import translated
from .errors import InvalidValue, NotFound
from .model.dataframes import write_size
from .store import Store

# Above this, one chunk's Arrow data makes the import's memory peak (about 2-3 chunks
# are held at once); below CHUNK_OVERHEAD_SHARE of a chunk, each chunk's own IPC
# framing (schema and message headers, ~0.5-1 KB) bloats the file.
LARGE_CHUNK_BYTES = 256 << 20
CHUNK_OVERHEAD_SHARE = 0.25


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def organization_named(store: Store, name_or_id: str):
    """An organization by name, else by id (NotFound otherwise)."""
    rows = store.organizations.list(name=name_or_id)
    if not rows and is_uuid(name_or_id):
        with contextlib.suppress(NotFound):
            rows = [store.organizations.get(name_or_id)]
    if not rows:
        raise NotFound(f"no organization named {name_or_id!r}")
    return rows[0]


def user_named(store: Store, name_or_id: str):
    """A user by id, else by name."""
    if is_uuid(name_or_id):
        with contextlib.suppress(NotFound):
            return store.users.get(name_or_id)
    rows = store.users.list(name=name_or_id)
    if not rows:
        raise NotFound(f"no user named {name_or_id!r} (create one with `clustore-lite "
                       "create-user DB NAME`)")
    return rows[0]


def dataset_named(store: Store, ref: str):
    """A dataset by id or as ORGANIZATION/NAME."""
    if "/" not in ref:
        if not is_uuid(ref):
            raise InvalidValue(f"{ref!r} is not a dataset id (a UUID such as "
                               "1b4e28ba-2fa1-11d2-883f-0016d3cca427); name a dataset as "
                               "ORGANIZATION/NAME (lumen/measures) instead")
        return store.datasets.get(ref)
    org_name, name = ref.split("/", 1)
    organization = organization_named(store, org_name)
    found = store.datasets.list(organizationId=organization["id"], name=name)
    if not found:
        raise NotFound(f"no dataset {name!r} in organization {org_name!r}")
    return found[0]


def lean_memory_pool() -> None:
    """Use Arrow's jemalloc pool, which hands freed memory back to the system, so that
    a long import holds about a chunk, not every chunk's leftovers.

    pyarrow's default pool (mimalloc) kept freed pages resident: importing a 200 MB CSV
    peaked at 186 MB with it, 152 MB with jemalloc, at the same speed (1.03x, rounds
    0.89-1.18x). jemalloc_set_decay_ms(0) saved 7 MB more but ran at 0.75x. Export
    keeps the default pool: jemalloc saved 10-14 MB there but ran at 0.87-0.99x. A
    command-line process owns its allocator; the library leaves the caller's pool
    alone. Builds without jemalloc keep the default pool."""
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pass


def progress_bar(quiet: bool, **options) -> tqdm:
    """A progress bar on stderr when it is a terminal: tqdm's `\\r` frames would
    litter a log file or a CI log."""
    return tqdm(disable=quiet or not sys.stderr.isatty(), file=sys.stderr, **options)


def _delimiter(ctx, param, value):
    named = {"\\t": "\t", "tab": "\t", "TAB": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    return named.get(value, value)


CSV_OPTIONS = ("delimiter", "null_values", "column_types", "skip_rows", "infer_rows")


def csv_options(fmt: str, given: dict) -> CsvOptions | None:
    """The CSV options given, refused for a format they do not apply to."""
    used = [name for name in CSV_OPTIONS if given[name] not in (None, ())]
    if fmt not in ("csv", "tsv"):
        if used:
            names = ", ".join("--" + name.replace("_", "-") for name in used)
            raise click.UsageError(f"{names} only apply to CSV and TSV files, not {fmt}")
        return None
    nulls = given["null_values"]
    return CsvOptions(
        delimiter=given["delimiter"],
        null_values=("",) + tuple(v for v in (nulls or "").split(",") if v),
        column_types=parse_column_types(list(given["column_types"])),
        skip_rows=given["skip_rows"] or 0, infer_rows=given["infer_rows"]).check()


def chunk_warnings(first: pa.RecordBatch, rows: int, chunk_rows: int,
                   compression: str | None) -> list[str]:
    """What a chunk size would cost, judged from the first batch read (`rows`: the
    rows known to come, at least)."""
    if first.num_rows == 0:
        return []
    row_bytes = first.nbytes / first.num_rows
    chunk_bytes = row_bytes * chunk_rows
    warnings = []
    if chunk_bytes > LARGE_CHUNK_BYTES:
        warnings.append(f"warning: --chunk-rows {chunk_rows} makes chunks of about "
                        f"{chunk_bytes / 2**20:,.0f} MiB; the import holds 2-3 chunks in "
                        f"memory at once (about {3 * chunk_bytes / 2**20:,.0f} MiB). Fewer rows "
                        "per chunk keep memory low at the same speed.")
    framing = codec.stream_size(first.slice(0, 0), compression)
    if chunk_rows < rows and framing > CHUNK_OVERHEAD_SHARE * chunk_bytes:
        warnings.append(f"warning: --chunk-rows {chunk_rows} makes chunks of about "
                        f"{chunk_bytes:,.0f} bytes of data, each with about {framing} bytes "
                        "of Arrow framing: the store will be several times larger than its "
                        "data. A few thousand rows per chunk or more avoid that.")
    return warnings


def _peek(reader: pa.RecordBatchReader) -> tuple[pa.RecordBatch | None, pa.RecordBatchReader]:
    """The first batch, and a reader that still yields it."""
    batches = iter(reader)
    first = next(batches, None)
    if first is None:
        return None, reader

    def again():
        yield first
        yield from batches
    return first, pa.RecordBatchReader.from_batches(reader.schema, again())


@click.command("import")
@click.argument("db", type=click.Path(dir_okay=False))
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--org", "org", required=True, help="Organization name or id (created if missing).")
@click.option("--dataset", "dataset", required=True, help="Dataset name.")
@click.option("--owner", help="User (name or id) who owns the new dataset, and the new "
              "organization if one is created.")
@click.option("--format", "fmt", type=click.Choice(files.FORMATS), help="Default: from the suffix.")
@click.option("--append", is_flag=True, help="Append to an existing dataset; values are cast "
              "to its column types when none changes.")
@click.option("--chunk-rows", default=codec.DEFAULT_CHUNK_ROWS, show_default=True,
              type=click.IntRange(min=1), help="Rows per stored chunk (the unit of reads, "
              "appends and memory use).")
@click.option("--compression", type=click.Choice(["lz4", "zstd"]),
              help="Compress the new dataset's chunks (default: none; an append keeps the "
              "dataset's own).")
@click.option("--delimiter", callback=_delimiter, help="CSV: the field delimiter (',' ';' "
              "'|' or tab; default: tab for .tsv, else ',' unless the header shows another).")
@click.option("--null-values", metavar="LIST", help="CSV: comma-separated values read as null "
              "besides an empty field (NA,null,-); a quoted \"\" is an empty string.")
@click.option("--column-types", multiple=True, metavar="NAME=TYPE", help="CSV: a column's "
              "type instead of a guess (x=float64, id=string, t=timestamp[us, tz=UTC]); "
              "repeat or comma-separate.")
@click.option("--skip-rows", type=click.IntRange(min=0), help="CSV: lines to skip before the header.")
@click.option("--infer-rows", type=click.IntRange(min=1), help="CSV: guess column types from "
              "this many rows (default: the first 8 MiB).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar (there is none when "
              "stderr is not a terminal).")
def import_(db, file, org, dataset, owner, fmt, append, chunk_rows, compression, quiet, **given):
    """Import FILE (CSV, TSV, Parquet or Arrow IPC) as a dataset, streamed in chunks;
    all or nothing."""
    if append and (compression or owner):
        option = "--compression" if compression else "--owner"
        raise click.UsageError(f"{option} applies to a new dataset; --append keeps the "
                               "dataset's own")
    refuse_non_sqlite(db)  # named before FILE is read: the arguments may be swapped
    kind = files.guess_format(file, fmt)
    csv = csv_options(kind, given)
    lean_memory_pool()
    existed = os.path.exists(db)
    try:
        # the store is opened before FILE: a store that cannot be written is refused
        # before Arrow's reading threads start (left running to the interpreter's exit
        # they abort it: "terminate called without an active exception")
        with Store(db) as store:
            result, created = _import(store, file, kind, csv, org, dataset, owner, append,
                                      chunk_rows, compression, quiet)
    except BaseException:
        if not existed:
            _remove_store_files(db)
        raise
    if created:
        click.echo(f"created organization {org!r}", err=True)
    click.echo(result)


def refuse_non_sqlite(db: str) -> None:
    """An existing DB that is not a SQLite file is refused with SQLite's own error."""
    if os.path.isfile(db) and os.path.getsize(db) > 0:
        with open(db, "rb") as head:
            if head.read(16) != b"SQLite format 3\x00":
                raise translated(apsw.NotADBError("file is not a database"), db)


def _import(store: Store, file, kind, csv, org, dataset, owner, append, chunk_rows,
            compression, quiet):
    """Stream FILE into the store (one transaction); Arrow's readers closed at the end."""
    bar = progress_bar(quiet, unit_scale=True, desc=os.path.basename(file))
    source = files.read_batches(file, kind, chunk_rows, csv=csv,
                                on_progress=lambda done: bar.update(done - bar.n),
                                note=lambda text: click.echo(text, err=True))
    bar.total, bar.unit = source.total, source.unit
    try:
        first, reader = _peek(source.reader)
        if first is not None and not append:
            known = max(first.num_rows,
                        source.total if source.unit == "rows" and source.total else 0)
            for warning in chunk_warnings(first, known, chunk_rows, compression):
                click.echo(warning, err=True)
        with bar:
            return _write(store, org, dataset, owner, append, reader, chunk_rows, compression)
    finally:
        source.reader.close()


def _write(store: Store, org, dataset, owner, append, reader, chunk_rows, compression):
    """One transaction: the organization (if new) and the dataset, or nothing. Into a
    served store, the rows are written ahead, unseen until that transaction
    (Dataframes.staged): what must exist is looked up first."""
    owner_id = user_named(store, owner)["id"] if owner else None
    if append or is_uuid(org):
        organization_named(store, org)
    ahead = contextlib.nullcontext(reader) if append else \
        store.dataframes.staged(reader, chunk_rows, compression)
    with ahead as data, store.db.bulk(write_size(data)):
        try:
            organization, created = organization_named(store, org), False
        except NotFound:
            if append or is_uuid(org):  # an id names an organization that must exist
                raise
            organization, created = store.organizations.create(org, owner_id=owner_id), True
        if append:
            found = store.datasets.list(organizationId=organization["id"], name=dataset)
            if not found:
                raise NotFound(f"no dataset {dataset!r} in organization {org!r}")
            frame, ident = store.datasets.append(found[0]["id"], reader, chunk_rows), found[0]["id"]
        else:
            made = store.datasets.create(organization["id"], dataset, data, owner_id=owner_id,
                                         chunk_rows=chunk_rows, compression=compression)
            frame, ident = store.dataframes.get(made["dataframeId"]), made["id"]
    return (f"dataset {ident}: {frame['rows']} rows, {frame['dim']} columns, "
            f"{frame['size']} bytes"), created


def _remove_store_files(db: str) -> None:
    """A store file this import created, gone with the failed import."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(db + suffix)


@click.command("export")
@click.argument("db", type=click.Path(exists=True, dir_okay=False))
@click.argument("dataset")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(files.FORMATS), help="Default: from the suffix.")
def export(db, dataset, file, fmt):
    """Write DATASET (ORGANIZATION/NAME, or an id) to FILE (CSV, TSV, Parquet or Arrow
    IPC), chunk by chunk."""
    kind = files.guess_format(file, fmt)
    with Store(db, readonly=True) as store:
        found = dataset_named(store, dataset)
        schema = store.dataframes.schema(found["dataframeId"])
        if schema is None:
            raise NotFound(f"dataset {dataset} holds no rows yet")
        rows = files.write_batches(store.datasets.iter_batches(found["id"]), schema, file, kind)
        click.echo(f"wrote {rows} rows to {file}")

