"""Engines, sessions and the write transaction.

Every state change runs inside `write_transaction`, which serialises writers: SQLite takes its database write lock
up front (BEGIN IMMEDIATE) and PostgreSQL a transaction-scoped advisory lock. Gate decisions read approvals and then
write a state change; without one writer at a time two approvers could each see a quorum of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from forgegov.foundation.errors import StoreError

# Any constant works; it only has to be the same for every forgegov process on one database.
_PG_WRITE_LOCK_KEY = 0x466F726765  # "Forge"


_engines: dict[tuple[str, bool], Engine] = {}


def engine_for(url: str, *, write: bool = True) -> Engine:
    """SQLite gets a separate engine for writers, whose transactions begin IMMEDIATE; readers never take the lock."""
    key = (url, write or not is_sqlite(url))
    if key not in _engines:
        _engines[key] = _create_engine(url, immediate=key[1])
    return _engines[key]


def _create_engine(url: str, *, immediate: bool) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so BEGIN IMMEDIATE is ours to emit.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def dispose_engines() -> None:
    """Close every pooled connection (tests and long-lived tools that touch many stores)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@contextmanager
def write_transaction(url: str) -> Iterator[Session]:
    """One atomic, serialised unit of work: commits on success, rolls back on any exception."""
    engine = engine_for(url)
    try:
        with Session(engine) as session:
            with session.begin():
                if not is_sqlite(url):
                    session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_WRITE_LOCK_KEY))
                yield session
    except OperationalError as exc:
        raise StoreError(f"database error: {exc.orig}", hint="check the store URL and that the database is up") from exc


@contextmanager
def read_session(url: str) -> Iterator[Session]:
    engine = engine_for(url, write=False)
    try:
        with Session(engine) as session:
            yield session
    except OperationalError as exc:
        raise StoreError(f"database error: {exc.orig}", hint="check the store URL and that the database is up") from exc


def migrations_dir() -> Path:
    return Path(__file__).parent / "migrations"


def upgrade(url: str, target: str = "head") -> str:
    """Bring the schema to `target` (the newest revision by default); returns the newest revision."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = url
    try:
        command.upgrade(config, target)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {exc}") from exc
    return ScriptDirectory.from_config(config).get_current_head() or ""
