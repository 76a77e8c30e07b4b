"""Alembic owns the schema: after `upgrade`, the database matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import mailflow.models  # noqa: F401
from mailflow import db
from mailflow.app import App


def test_migrations_match_models(app: App) -> None:
    db.upgrade(app.url)  # a second upgrade changes nothing
    with db.engine(app.url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": db.include_object})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []


def test_only_the_search_index_is_left_out_of_the_comparison(app: App) -> None:
    """The filter above must not hide real tables: it skips the index's tables, nothing else."""
    tables = set(inspect(db.engine(app.url)).get_table_names())
    hidden = {t for t in tables if not db.include_object(None, t, "table", True, None)}
    assert hidden and hidden <= {"case_search", "case_fts", "case_fts_data", "case_fts_idx",
                                 "case_fts_content", "case_fts_docsize", "case_fts_config"}
    assert set(SQLModel.metadata.tables) <= tables - hidden
    assert db.include_object(None, "stray_table", "table", True, None)
