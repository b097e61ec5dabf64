"""The store: SQLModel tables, engines and transactions, and the Alembic migrations (each carrying its own frozen code)."""
