"""Alembic environment: runs migrations on the URL handed in by core.db.migrate."""

from alembic import context
from sqlalchemy import create_engine, pool

from core.config import settings
from core.tables import Base

config = context.config
url = config.attributes.get("database_url") or settings.database_url

connectable = create_engine(url, poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()
