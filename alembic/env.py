"""Alembic environment: the URL comes from mailflow (settings or the caller), never alembic.ini."""

from alembic import context
from sqlmodel import SQLModel

import mailflow.models  # noqa: F401  (registers the tables)
from mailflow import db

target_metadata = SQLModel.metadata


def run() -> None:
    conn = context.config.attributes.get("connection")
    if conn is None:
        from mailflow import settings

        url = context.config.attributes.get("connection_url") or settings.load().database_url
        with db.engine(url).begin() as c:
            _migrate(c)
    else:
        _migrate(conn)


def _migrate(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",  # SQLite needs table copies to alter
        include_object=db.include_object,  # the search index is raw SQL, not a model
    )
    with context.begin_transaction():
        context.run_migrations()


run()
