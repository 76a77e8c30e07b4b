"""Alembic owns the schema: after `upgrade`, the database matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import mailflow.models  # noqa: F401
from mailflow import db
from mailflow.app import App


def test_migrations_match_models(app: App) -> None:
    db.upgrade(app.url)  # a second upgrade changes nothing
    with db.engine(app.url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
