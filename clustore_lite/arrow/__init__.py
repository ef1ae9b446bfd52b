"""Arrow in and out: the chunk codec and dataframe files (CSV, Parquet, Arrow IPC)."""
