"""The Python API: one collection per table of the catalog (store.users, ...)."""
