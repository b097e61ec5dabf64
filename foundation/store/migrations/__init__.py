"""Alembic environment and migrations of the store."""
