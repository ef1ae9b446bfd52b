"""The SQLite file: connections and transactions, migrations, the event log's SQL,
backups and checks. Knows nothing of the layers above."""
