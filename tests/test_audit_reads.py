"""Every read is audited in the one trail (issue 13, item 8): who, when, what, for `cases`,
`case`, `search` (with its query), `holding`, `outbox`, `report` and refused reads, and
`mailflow audit [--case REF] [--by EMAIL] [--since DATE] [--json]` answers "who looked at
this constituent's data", listings included. Through the real CLI, on a moving clock."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import func, text
from sqlmodel import select

from mailflow import clock, db, models, settings
from mailflow.app import App
from tests.conftest import run_cli
from tests.mail import CASEWORK, message
from tests.rules import ALAN, FRIDAY, JANE, STAFF, cli, ingest, open_case, rules_app

__all__ = ["rules_app"]  # a fixture

OS_USER = f"{getpass.getuser()} (os user)"
ALAN_FROM = f"Cllr Alan Reid <{ALAN}>"
MONDAY = FRIDAY + timedelta(days=3)


def audit(app: App, *args: str) -> list[dict[str, Any]]:
    done = cli(app, "audit", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def reads(trail: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(t["action"], t["who"], t["what"]) for t in trail if t["action"] != "change"]


def test_every_read_is_in_the_trail_with_who_when_and_what(rules_app: App) -> None:
    app = rules_app
    janes = open_case(app)  # private: Alan may not see it
    alans = open_case(app, member=ALAN_FROM, constituent="Peter Grant <peter@example.org>",
                      body="The street light on Mill Road is out.\n\nPeter")
    ingest(app, message("who@example.net", CASEWORK, "hi", f"About {janes}"))  # a candidate

    clock.pin(FRIDAY + timedelta(hours=1))
    assert cli(app, "cases").returncode == 0
    assert cli(app, "cases", "--as", ALAN, "--status", "open").returncode == 0
    clock.pin(FRIDAY + timedelta(hours=2))
    assert cli(app, "case", janes, "--json").returncode == 0
    refused = cli(app, "case", janes, "--as", ALAN)
    assert refused.returncode == 1 and "visible to" in refused.stderr
    nobody = cli(app, "cases", "--as", "someone@gmail.example")
    assert nobody.returncode == 64 and "not a member" in nobody.stderr
    found = cli(app, "search", "pothole", "--ward", "Linlithgow", "--as", STAFF)
    assert found.returncode == 0 and janes in found.stdout
    clock.pin(MONDAY)
    for args in (["holding"], ["outbox", "--state", "queued"], ["report", "--period", "2026-11"]):
        assert cli(app, *args).returncode == 0, args

    trail = audit(app)
    assert reads(trail)[:9] == [
        ("read", OS_USER, "cases"),
        ("read", ALAN, "cases"),
        ("read", OS_USER, "case"),
        ("refused", ALAN, "case"),
        ("refused", "someone@gmail.example", "cases"),
        ("read", STAFF, "search"),
        ("read", OS_USER, "holding"),
        ("read", OS_USER, "outbox"),
        ("read", OS_USER, "report"),
    ]
    by_what = {(t["action"], t["who"], t["what"]): t for t in trail}
    every = by_what[("read", OS_USER, "cases")]
    assert every["at"] == "2026-11-20T11:00:00Z" and every["via"] == "cli"
    assert every["cases"] == sorted([janes, alans]) and every["data"]["shown"] == 2
    assert by_what[("read", ALAN, "cases")]["cases"] == [alans]  # what he was shown, only
    assert by_what[("read", ALAN, "cases")]["data"]["status"] == "open"
    one = by_what[("read", OS_USER, "case")]
    assert (one["case"], one["data"], one["at"]) == (janes, {"json": True},
                                                    "2026-11-20T12:00:00Z")
    no = by_what[("refused", ALAN, "case")]
    assert no["case"] == janes and "visible to" in no["text"]
    assert no["data"]["os_user"] == OS_USER  # who ran the command as Alan
    assert "not a member" in by_what[("refused", "someone@gmail.example", "cases")]["text"]
    search = by_what[("read", STAFF, "search")]
    assert search["data"]["query"] == "pothole" and search["data"]["ward"] == "Linlithgow"
    assert janes in search["cases"] and search["data"]["shown"] == len(search["cases"])
    assert janes in by_what[("read", OS_USER, "holding")]["cases"]  # the candidate it showed
    assert set(by_what[("read", OS_USER, "outbox")]["cases"]) == {janes, alans}
    report = by_what[("read", OS_USER, "report")]
    assert (report["data"]["from"], report["data"]["to"]) == ("2026-11-01", "2026-11-30")
    assert report["at"] == "2026-11-23T10:00:00Z"
    # reading the trail is recorded too
    assert reads(audit(app))[-1] == ("read", OS_USER, "audit")


def test_audit_case_finds_listings_that_showed_it_and_its_changes(rules_app: App) -> None:
    app = rules_app
    janes = open_case(app)
    alans = open_case(app, member=ALAN_FROM, constituent="Peter Grant <peter@example.org>",
                      body="The street light on Mill Road is out.\n\nPeter")
    clock.pin(FRIDAY + timedelta(hours=1))
    cli(app, "cases", "--as", JANE)  # shows Jane's case
    cli(app, "cases", "--as", ALAN)  # does not
    cli(app, "search", "street", "light")  # Alan's only
    clock.pin(MONDAY)
    cli(app, "case", janes, "--as", ALAN)  # refused

    trail = audit(app, "--case", janes)
    assert [t["at"] for t in trail] == sorted(t["at"] for t in trail)  # oldest first
    changes = [t["what"] for t in trail if t["action"] == "change"]
    assert changes[0] == "opened" and "request_sent" in changes
    # this very read of the trail is the newest row: recorded before anything is shown
    assert reads(trail) == [("read", JANE, "cases"), ("refused", ALAN, "case"),
                            ("read", OS_USER, "audit")]
    assert all(t["case"] == janes or janes in t["cases"] for t in trail)
    # `case REF --audit` is the same trail, and now shows that read of it too
    via_case = json.loads(cli(app, "case", janes, "--audit", "--json").stdout)
    assert reads(via_case)[:3] == reads(trail)
    assert reads(via_case)[-1] == ("read", OS_USER, "audit")
    assert reads(audit(app, "--case", alans))[:2] == [("read", ALAN, "cases"),
                                                      ("read", OS_USER, "search")]

    assert reads(audit(app, "--by", ALAN)) == [("read", ALAN, "cases"), ("refused", ALAN, "case")]
    mine = audit(app, "--by", getpass.getuser())  # an OS user by their name
    assert {t["who"] for t in mine} == {OS_USER} and ("read", OS_USER, "search") in reads(mine)
    # --since is a council-local day: Monday's rows, and the audit reads made since
    assert [r for r in reads(audit(app, "--since", "2026-11-23")) if r[2] != "audit"] == [
        ("refused", ALAN, "case")]
    bad = cli(app, "audit", "--since", "last week")
    assert bad.returncode == 64 and "--since" in bad.stderr

    text_out = cli(app, "audit", "--case", janes)
    assert text_out.returncode == 0 and "refused" in text_out.stdout and "opened" in text_out.stdout


def test_a_read_that_cannot_be_recorded_shows_nothing(rules_app: App) -> None:
    """The row is committed before anything is printed: no trail, no data."""
    app = rules_app
    ref = open_case(app)
    with db.engine(app.url).begin() as conn:
        conn.execute(text("DROP TABLE auditcase"))
    done = cli(app, "cases", "--json")
    assert done.returncode == 1 and done.stdout == "" and ref not in done.stderr
    assert "database cannot be used" in done.stderr and "Traceback" not in done.stderr


def test_case_reads_move_into_the_one_trail(tmp_path: Path, db_url: str) -> None:
    """Migration 0017: the reads `caseread` held become `auditentry` rows, and it is gone."""
    from tests.rules import council

    path = tmp_path / "mailflow.toml"
    path.write_text(council(db_url))
    app = App(settings.load(path))
    cfg = Config()
    cfg.set_main_option("script_location", str(db.ALEMBIC_DIR))
    cfg.attributes["connection_url"] = db.normalise_url(app.url)
    try:
        # Today's code opens the case on today's schema; the schema then steps back to just
        # before 0017 (every later migration's downgrade runs too), where reads were kept in
        # `caseread`. Migrations released after 0017 chain after it, so this test never needs
        # the app to run on an older schema.
        db.upgrade(app.url)
        app.start(FRIDAY)
        ref = open_case(app)
        with db.engine(app.url).begin() as conn:
            cfg.attributes["connection"] = conn
            before = ScriptDirectory.from_config(cfg).get_revision("0017_audit_reads")
            command.downgrade(cfg, str(before.down_revision))
        with db.engine(app.url).begin() as conn:
            case_id = conn.execute(text('SELECT id FROM "case"')).scalar_one()
            for at, reader, what in (("2026-11-20 11:00:00", OS_USER, "case"),
                                     ("2026-11-20 12:00:00", JANE, "case --json"),
                                     ("2026-11-20 13:00:00", OS_USER, "audit")):
                conn.execute(text("INSERT INTO caseread (case_id, at, reader, via, what) "
                                  "VALUES (:c, :at, :r, 'cli', :w)"),
                             {"c": case_id, "at": at, "r": reader, "w": what})
        db.upgrade(app.url)
        trail = audit(app, "--case", ref)
        assert [(t["who"], t["what"], t["data"], t["at"]) for t in trail
                if t["action"] == "read"][:3] == [
            (OS_USER, "case", {}, "2026-11-20T11:00:00Z"),
            (JANE, "case", {"json": True}, "2026-11-20T12:00:00Z"),
            (OS_USER, "audit", {}, "2026-11-20T13:00:00Z")]
        with app.session() as s:
            assert s.exec(select(func.count()).select_from(models.AuditEntry)).one() == 4
        with db.engine(app.url).connect() as conn:
            from sqlalchemy import inspect

            assert not inspect(conn).has_table("caseread")
    finally:
        db.engine(app.url).dispose()


def test_reading_commands_run_from_a_child_process_are_audited(rules_app: App) -> None:
    """The command a person types, in its own process: the row is there afterwards."""
    app = rules_app
    ref = open_case(app)
    done = run_cli(app.settings.path, "search", "pothole", "--json")
    assert done.returncode == 0, done.stderr
    [row] = [t for t in audit(app, "--case", ref) if t["what"] == "search"]
    assert row["who"] == OS_USER and row["data"]["query"] == "pothole"


def test_who_saw_this_case_is_an_index_lookup(tmp_path: Path) -> None:
    """However long the trail, `audit --case REF` reads only the rows about REF: the query
    plan searches indexes and scans no table (SQLite's plan; PostgreSQL's depends on its
    statistics, so a tiny test table says nothing there)."""
    from mailflow.casework import audit as trail

    url = f"sqlite:///{tmp_path}/plan.db"
    db.upgrade(url)
    try:
        with db.session(url) as s:
            for q in (trail.entries_query("CW-2026-00042"),
                      trail.entries_query("CW-2026-00042", by=ALAN),
                      trail.shown_query([1, 2, 3])):
                sql = str(q.compile(db.engine(url), compile_kwargs={"literal_binds": True}))
                plan = [row[-1] for row in s.execute(text("EXPLAIN QUERY PLAN " + sql))]
                assert any("USING" in p for p in plan), plan
                assert not any(p.startswith("SCAN auditcase") or p.startswith("SCAN auditentry")
                               for p in plan), plan
    finally:
        db.engine(url).dispose()
