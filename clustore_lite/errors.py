"""Typed errors. Each carries a Hasura-style `code` so the GraphQL layer can
report it without guessing, and a message written for the person who caused it."""


class ClustoreError(Exception):
    code = "unexpected"


class NotFound(ClustoreError, LookupError):
    code = "not-found"


class NameTaken(ClustoreError):
    """A uniqueness rule of the data model would be broken (name, email, ...)."""

    code = "constraint-violation"


class ConstraintViolation(ClustoreError):
    """A reference or check the store enforces does not hold."""

    code = "constraint-violation"


class InvalidValue(ClustoreError, ValueError):
    code = "validation-failed"


class SchemaMismatch(InvalidValue):
    """Appended rows do not have the dataframe's Arrow schema."""


class UnstorableValue(InvalidValue):
    """A value PostgreSQL cannot store (the NUL character in text or JSON): refused as
    PostgreSQL would refuse it (Hasura's code for its data exceptions), so that every
    row of a store can be mirrored."""

    code = "data-exception"


class PermissionDenied(ClustoreError, PermissionError):
    code = "permission-denied"


class StoreVersionError(ClustoreError):
    """The file was written by a newer clustore-lite than this one."""

    code = "unexpected"


class EventError(ClustoreError):
    """An event cannot be delivered as asked (it has no recipient, ...)."""

    code = "validation-failed"


class StoreBusy(ClustoreError):
    """Another connection kept the file locked for longer than the busy timeout."""

    code = "unexpected"


class DataCorrupted(ClustoreError):
    """Stored bytes fail their checks (a chunk changed by another tool), or SQLite found
    the file damaged (a page, the header): refused, since computing on them could crash
    the process; `clustore-lite check` says where, a backup restores them."""

    code = "data-corrupted"


class StoreReplaced(ClustoreError):
    """The store's path no longer names the file this process opened (deleted, or
    replaced by another file): a write would go to a file nobody can open again."""

    code = "store-replaced"


class TransactionError(ClustoreError):
    """A transaction was used in a way SQLite cannot honour (a write in a read snapshot)."""

    code = "unexpected"


def a(word: str) -> str:
    """'a team', 'an organization': for messages."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


class NotAStore(ClustoreError):
    """The file is not a clustore-lite store (not SQLite at all, or another program's
    SQLite file): refused rather than turned into a store or read as one."""

    code = "not-a-store"


class StoreFull(ClustoreError):
    """The disk (or SQLite's temporary space) has no room left: the write was undone."""

    code = "disk-full"


class StoreReadOnly(ClustoreError):
    """The store cannot be written: opened read-only, or its file, directory or mount
    is read-only."""

    code = "read-only"
    status = 409


class CannotOpen(ClustoreError):
    """SQLite cannot open or create the file (no such directory, no permission)."""

    code = "cannot-open"


class StoreIOError(ClustoreError):
    """The operating system reported an I/O error reading or writing the file."""

    code = "io-error"


class TooBig(InvalidValue):
    """One value (a chunk, a string) is over SQLite's limit of 1 GB per value."""
