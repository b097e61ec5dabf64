"""Alembic environment: forgegov passes the database URL in `config.attributes`, never through a global ini file."""

from alembic import context
from sqlmodel import SQLModel

from forgegov.foundation.store import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from forgegov.foundation.store.db import engine_for

config = context.config
url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
target_metadata = SQLModel.metadata

if context.is_offline_mode():
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with engine_for(url).connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
