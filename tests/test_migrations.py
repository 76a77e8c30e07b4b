"""Alembic owns the schema: after `upgrade`, the database matches the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import mailflow.models  # noqa: F401
from mailflow import db
from mailflow.app import App
from tests.rules import rules_app

__all__ = ["rules_app"]


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


def test_casekey_backfill_indexes_the_cases_already_open(rules_app: App) -> None:
    """0018 fills the duplicate-search index for cases opened before it existed."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlmodel import select

    from mailflow import models
    from mailflow.casework import duplicates
    from tests.rules import get_case, open_case

    ref = open_case(rules_app)
    cfg = Config()
    cfg.set_main_option("script_location", str(db.ALEMBIC_DIR))
    with db.engine(rules_app.url).begin() as conn:
        cfg.attributes["connection"] = conn
        # As it was just before 0018: no casekey table.
        before = ScriptDirectory.from_config(cfg).get_revision("0018_casekey").down_revision
        command.downgrade(cfg, str(before))
    assert "casekey" not in inspect(db.engine(rules_app.url)).get_table_names()
    db.upgrade(rules_app.url)
    case = get_case(rules_app, ref)
    with rules_app.session() as s:
        who = s.get(models.Constituent, case.constituent_id)
        stored = s.exec(select(models.CaseKey.key).where(models.CaseKey.case_id == case.id)).all()
    assert sorted(stored) == duplicates.hashed(duplicates.keys(who, case.subject, case.issue))
    assert len(stored) >= 3  # the street, the constituent, their email
