"""The data log: interval records aggregated from control reports, written to SQLite."""
