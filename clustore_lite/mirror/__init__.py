"""Outgrowing one file: a PostgreSQL mirror (push) and Hasura metadata for it."""
