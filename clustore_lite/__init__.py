"""clustore-lite: Clustore's team data model and chunked Arrow dataframes in one
SQLite file."""

from .errors import (CannotOpen, ClustoreError, ConstraintViolation, DataCorrupted, EventError,
                     InvalidValue, NameTaken, NotAStore, NotFound, PermissionDenied,
                     SchemaMismatch, StoreBusy, StoreFull, StoreIOError, StoreReadOnly,
                     StoreReplaced, StoreVersionError, TooBig, TransactionError)
from .store import Store, open

__version__ = "0.1.0"
__all__ = ["open", "Store", "ClustoreError", "ConstraintViolation", "DataCorrupted", "EventError",
           "InvalidValue", "NameTaken", "NotFound", "PermissionDenied", "SchemaMismatch",
           "StoreBusy", "StoreReplaced", "StoreVersionError", "TransactionError", "CannotOpen",
           "NotAStore", "StoreFull", "StoreIOError", "StoreReadOnly", "TooBig"]
