"""Keeping a store file safe: online backups, and a full consistency check.

`backup` copies a file with SQLite's backup API while other processes keep writing.
It reads from one snapshot held for the whole copy: in WAL, a reader never blocks a
writer, and a snapshot kept open stops SQLite from restarting the copy each time
another connection commits (which, under steady writes, could never finish). It copies
a few pages per step with a short pause, so that a big copy leaves the disk to the
writers too, and it writes next to the destination and renames only a complete copy.

`check` reads a file and reports, without changing its contents, everything that
would make it untrustworthy: SQLite's own integrity and foreign-key checks, and the
store's invariants, which SQLite cannot know: every chunk decodes as Arrow IPC with its
dataframe's schema, and chunk rows and sizes add up to the dataframe's."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from ..arrow import checksum, codec
from ..errors import ClustoreError, DataCorrupted, InvalidValue, NotAStore, NotFound, StoreFull
from .migrations import LATEST
from .connection import BUSY_TIMEOUT_MS, create_private, ensure_wal
from .opening import readonly_connection, side_files, tidy
from .sqlite_errors import translated

PAGES_PER_STEP = 64  # 4 MiB of 64 KiB pages
PAUSE_SECONDS = 0.005
MAX_REPORTED = 50  # problems listed in full; the rest are counted


@dataclass
class BackupResult:
    path: str
    pages: int
    bytes: int
    seconds: float


def backup(source: str | os.PathLike, dest: str | os.PathLike, overwrite: bool = False,
           pages_per_step: int = PAGES_PER_STEP, pause: float = PAUSE_SECONDS) -> BackupResult:
    """Copy the store file `source` to `dest`, consistently, while others write to it."""
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise NotFound(f"no store file at {source}")
    if dest.exists() and _same_file(source, dest):
        raise InvalidValue(f"cannot back up {source} onto itself")
    if dest.exists() and not overwrite:
        raise InvalidValue(f"{dest} already exists: give another name, or overwrite it "
                           "(--force on the command line)")
    if pages_per_step < 1:
        raise InvalidValue(f"pages_per_step must be at least 1, not {pages_per_step}")
    partial = dest.with_name(dest.name + ".partial")
    for leftover in (partial, Path(f"{partial}-journal")):
        leftover.unlink(missing_ok=True)
    started = time.monotonic()
    src = _open(source)
    try:
        # WAL first: a snapshot held in the rollback journal would block every writer
        ensure_wal(src)
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_schema").fetchall()  # pin the snapshot
        create_private(str(partial))  # a backup holds every token too: 0600, as the store
        out = apsw.Connection(str(partial))
        try:
            with out.backup("main", src, "main") as copy:
                while not copy.done:
                    copy.step(pages_per_step)
                    if not copy.done and pause:
                        time.sleep(pause)
                pages = copy.page_count
        finally:
            out.close()
        src.execute("COMMIT")
    except apsw.Error as error:
        partial.unlink(missing_ok=True)
        raise _backup_error(source, dest, error) from None
    finally:
        src.close()
    _fsync(partial)
    os.replace(partial, dest)
    _fsync(dest.parent)
    return BackupResult(str(dest), pages, dest.stat().st_size, time.monotonic() - started)


def _backup_error(source: Path, dest: Path, error: apsw.Error) -> ClustoreError:
    """The real cause, told from the error's kind: SQLite's backup reports a failed
    write of the copy with the message "not an error" (a full disk included)."""
    if isinstance(error, apsw.FullError):
        return StoreFull(f"backup of {source} failed: the disk holding {dest} is full; "
                         "free space there, or back up to another disk")
    ours = translated(error, str(dest))
    if ours is not None and not isinstance(ours, (NotAStore, DataCorrupted)):
        return type(ours)(f"backup of {source} failed: {ours}")
    return ClustoreError(f"backup of {source} to {dest} failed: {error}")


def _same_file(a: Path, b: Path) -> bool:
    return os.path.samefile(a, b)


def _open(path: Path) -> apsw.Connection:
    """A plain connection: no migration, no pragma that changes the file."""
    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READWRITE)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    return conn


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class CheckReport:
    path: str
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0  # found but not listed (past MAX_REPORTED)
    counts: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)  # step -> "ok" or how many problems
    unsummed: int = 0  # chunks with no checksum yet (written before schema version 5)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(text)
        else:
            self.more_problems += 1

    def text(self) -> str:
        counts = [f"schema version {self.counts['schema_version']}"] \
            if "schema_version" in self.counts else []
        counts += [f"{n} {name}" for name, n in self.counts.items() if name != "schema_version"]
        lines = [f"{self.path}: {', '.join(counts)}" if counts else self.path]
        lines += [f"  {step}: {result}" for step, result in self.steps.items()]
        if self.unsummed:
            lines.append(f"  note: {self.unsummed} chunk(s) from before checksums were "
                         "validated in full; `clustore-lite check --repair-checksums` sums them")
        if self.ok:
            lines.append("OK")
        else:
            total = len(self.problems) + self.more_problems
            lines.append(f"{total} PROBLEM{'S' if total > 1 else ''}:")
            lines += [f"  {p}" for p in self.problems]
            if self.more_problems:
                lines.append(f"  ... and {self.more_problems} more")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "ok": self.ok, "problems": self.problems,
                           "more_problems": self.more_problems, "counts": self.counts,
                           "chunks_without_checksum": self.unsummed,
                           "steps": self.steps}, indent=2)


def check(path: str | os.PathLike) -> CheckReport:
    """Verify a store file; the report lists every problem found (none means sound).
    Safe while others write: it reads one snapshot."""
    path = Path(path)
    report = CheckReport(str(path))
    if not path.is_file():
        report.problem(f"no file at {path}")
        return report
    before = side_files(str(path))
    try:
        conn = readonly_connection(str(path))  # never changes the file (issue 15)
        conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    except (apsw.Error, ClustoreError) as error:  # read at open: not SQLite, damaged header
        report.problem(f"the file cannot be read: {type(error).__name__}: {error}")
        return report
    try:
        conn.execute("BEGIN")
        _check_version(conn, report)
        if report.ok:
            _check_sqlite(conn, report)
            _check_dataframes(conn, report)
        conn.execute("COMMIT")
    except (apsw.Error, ClustoreError) as error:
        report.problem(f"the file cannot be read: {type(error).__name__}: {error}")
    finally:
        conn.close()
        tidy(str(path), before)
    return report


def _check_version(conn: apsw.Connection, report: CheckReport) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    if version == 0 or not {"dataframe", "chunk"} <= tables:
        report.problem("not a clustore-lite store (no schema version or no dataframe table)")
    elif version > LATEST:
        report.problem(f"schema version {version} is newer than this clustore-lite knows "
                       f"({LATEST}): check it with a newer clustore-lite")
    report.counts["schema_version"] = version


def _check_sqlite(conn: apsw.Connection, report: CheckReport) -> None:
    try:
        found = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except apsw.Error as error:  # some damage stops the check itself
        found = [f"could not finish: {type(error).__name__}: {error}"]
    report.steps["integrity_check"] = "ok" if found == ["ok"] else f"{len(found)} problem(s)"
    for line in found if found != ["ok"] else []:
        report.problem(f"integrity_check: {line}")
    try:
        # the chunks of an import in flight have no dataframe yet (db/staging.py)
        staged = {rowid for (rowid,) in conn.execute(
            "SELECT rowid FROM chunk WHERE dataframeId IN (SELECT dataframeId FROM chunk_import)")
            } if _has_table(conn, "chunk_import") else set()
        broken = [f"row {rowid} of {table} refers to a missing {parent}"
                  for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check")
                  if not (table == "chunk" and rowid in staged)]
    except apsw.Error as error:
        broken, staged = [f"could not finish: {type(error).__name__}: {error}"], set()
    report.steps["foreign_key_check"] = "ok" if not broken else f"{len(broken)} problem(s)"
    if staged:
        report.steps["staged chunks"] = (f"{len(staged)} of an import in flight, or of one "
                                         "interrupted (removed when the store next opens)")
    for line in broken:
        report.problem(f"foreign_key_check: {line}")


def _has_table(conn: apsw.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?",
                        (name,)).fetchone() is not None


def _check_dataframes(conn: apsw.Connection, report: CheckReport) -> None:
    before = len(report.problems) + report.more_problems
    frames = chunks = rows = 0
    for frame in list(conn.execute(
            "SELECT id, rows, size, dim, columns, arrowSchema FROM dataframe ORDER BY id")):
        frames += 1
        try:
            found_chunks, found_rows = _check_frame(conn, report, *frame)
        except apsw.Error as error:  # a damaged page under this dataframe's chunks
            report.problem(f"dataframe {frame[0]}: its chunks cannot be read: "
                           f"{type(error).__name__}: {error}")
            continue
        chunks += found_chunks
        rows += found_rows
    report.counts.update({"dataframes": frames, "chunks": chunks, "rows": rows})
    problems = len(report.problems) + report.more_problems - before
    report.steps["dataframes and chunks"] = "ok" if not problems else f"{problems} problem(s)"


def _check_frame(conn, report: CheckReport, id, rows, size, dim, columns, schema_bytes):
    where = f"dataframe {id}"
    schema = None
    if schema_bytes is not None:
        try:
            schema = codec.schema_from_bytes(schema_bytes)
        except Exception as error:  # pyarrow raises several kinds on garbage
            report.problem(f"{where}: its stored Arrow schema does not decode: {error}")
            return 0, 0
    names = schema.names if schema is not None else []
    if dim != len(names):
        report.problem(f"{where}: dim is {dim} but its schema has {len(names)} columns")
    try:
        listed = json.loads(columns)
    except (TypeError, ValueError):
        listed = None
    if listed != names:
        report.problem(f"{where}: columns {columns} do not match its schema's {names}")
    total_rows = total_size = count = 0
    last_position = None
    for chunk_id, position, chunk_rows, chunk_size, data, expected in conn.execute(
            "SELECT id, position, rows, size, data, (SELECT checksum FROM chunk_checksum "
            "WHERE chunkId = chunk.id) FROM chunk WHERE dataframeId = ? ORDER BY position",
            (id,)):
        count += 1
        here = f"chunk {chunk_id} ({where}, position {position})"
        if position == last_position:
            report.problem(f"{here}: two chunks at the same position")
        last_position = position
        total_rows += chunk_rows
        total_size += chunk_size
        if not isinstance(data, bytes):
            report.problem(f"{here}: data is {type(data).__name__}, not Arrow IPC bytes")
            continue
        if len(data) != chunk_size:
            report.problem(f"{here}: size is {chunk_size} but its data holds {len(data)} bytes")
        if expected is None:
            report.unsummed += 1
        elif checksum.of(data) != expected:
            report.problem(f"{here}: its bytes do not match their checksum (changed since "
                           "they were written)")  # and what else is wrong, below
        try:
            table = codec.read_stream(data)
        except InvalidValue as error:
            report.problem(f"{here}: {error}")
            continue
        if schema is None:
            report.problem(f"{here}: its dataframe has no schema, yet it holds chunks")
        elif not table.schema.remove_metadata().equals(schema.remove_metadata()):
            report.problem(f"{here}: its Arrow schema ({codec.describe(table.schema)}) is not its "
                           f"dataframe's ({codec.describe(schema)})")
        if table.num_rows != chunk_rows:
            report.problem(f"{here}: rows is {chunk_rows} but its data holds {table.num_rows}")
    if total_rows != rows:
        report.problem(f"{where}: rows is {rows} but its {count} chunks hold {total_rows}")
    if total_size != size:
        report.problem(f"{where}: size is {size} but its {count} chunks hold {total_size} bytes")
    return count, total_rows
