"""Database: engines and transactions, tables, migrations."""
