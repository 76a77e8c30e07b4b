"""Retention and legal hold (issue 14, items 1 and 2), on SQLite and PostgreSQL, with a
moving clock: cases closed 11 and 13 months before, one on hold, per-category and per-type
periods; reports the same before and after; no trace of a deleted case in any table."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from mailflow import clock, db, models
from mailflow.app import App
from mailflow.jobs import retention, tick
from tests.mail import CASEWORK, message, outlook_forward
from tests.rules import JANE, cli, get_case, ingest, make_app, run
from tests.test_json_contract import table_after

OPENED = clock.parse("2025-11-03T10:00:00Z")  # a Monday
CLOSED_LONG_AGO = clock.parse("2025-11-05T10:00:00Z")  # 13 months before NOW
CLOSED_LATELY = clock.parse("2026-01-12T10:00:00Z")  # 11 months before NOW
NOW = clock.parse("2026-12-10T12:00:00Z")
RETENTION = """
[retention]
closed_case_months = 12
holding_pen_days = 90

[retention.categories]
Waste = 24

[retention.types]
complaint = 72
"""
SHARED = b"%PDF-1.4 the council's leaflet, sent by two constituents\n" * 40
OWN = b"%PDF-1.4 Alice's own letter about her street\n" * 40
ALICE = "alice.auld@example.org"


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Any:
    a = make_app(tmp_path, db_url, RETENTION)
    yield a
    db.engine(a.url).dispose()


def forward(constituent: str, subject: str, body: str, files: dict[str, bytes] | None = None,
            note: str = "Can you look into this please?") -> Any:
    fwd = outlook_forward(constituent=constituent, subject=subject, body=body, note=note)
    for name, data in (files or {}).items():
        fwd.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return fwd


def close(app: App, ref: str, at: datetime) -> None:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        assert run(app, s, case, JANE, "close", "", at).ok
        s.commit()


def world(app: App) -> dict[str, str]:
    """Five of Jane's cases: `gone` (Roads, closed 13 months ago, with her own file and a
    shared one), `recent` (closed 11 months ago, the shared file), `held` (13 months, on
    hold), `waste` (13 months, Waste = 24) and `complaint` (13 months, complaint = 72)."""
    clock.pin(OPENED)
    refs = {
        "gone": forward(f"Alice Auld <{ALICE}>", "Pothole on Auld Street",
                        "A pothole outside 7 Auld Street broke my wheel.\n\nAlice Auld",
                        {"letter.pdf": OWN, "leaflet.pdf": SHARED}),
        "recent": forward("Bob Bell <bob.bell@example.org>", "Pothole on Bell Road",
                          "A pothole on Bell Road.\n\nBob", {"leaflet.pdf": SHARED}),
        "held": forward("Carol Cole <carol.cole@example.org>", "Pothole on Cole Lane",
                        "A pothole on Cole Lane.\n\nCarol"),
        "waste": forward("Dan Dee <dan.dee@example.org>", "Bins not collected",
                         "My bins were not collected.\n\nDan"),
        "complaint": forward("Eve Ell <eve.ell@example.org>", "Pothole on Ell Street",
                             "A pothole on Ell Street.\n\nEve",
                             note="This is a complaint about the roads team."),
    }
    out = {}
    for key, msg in refs.items():
        o = ingest(app, msg, OPENED)
        assert o.disposition == "case_opened", o.reason
        out[key] = o.case
    tick.tick(app, OPENED)  # requests, acknowledgements, digests go out
    for key in ("gone", "held", "waste", "complaint"):
        close(app, out[key], CLOSED_LONG_AGO)
    close(app, out["recent"], CLOSED_LATELY)
    assert get_case(app, out["waste"]).category == "Waste"
    assert get_case(app, out["complaint"]).enquiry_type == "complaint"
    clock.pin(NOW)
    assert cli(app, "case", out["gone"]).returncode == 0  # a read to be forgotten too
    done = cli(app, "hold", out["held"], "--reason", "Ombudsman review", "--now", NOW.isoformat())
    assert done.returncode == 0, done.stderr
    return out


def reports(app: App) -> list[Any]:
    out = []
    for period, by in (("2025", "service"), ("2025-11", "member"), ("2026", "type"),
                       ("2025", "category,month")):
        done = cli(app, "report", "--json", "--period", period, "--by", by,
                   "--now", NOW.isoformat())
        assert done.returncode == 0, done.stderr
        out.append(json.loads(done.stdout))
    return out


def dump(app: App) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, the search index's included."""
    eng = db.engine(app.url)
    with eng.connect() as conn:
        names = inspect(conn).get_table_names()
        return {t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}"'))]
                for t in names}


def traces(app: App, needles: list[str], ref: str) -> list[str]:
    found = []
    for table, rows in dump(app).items():
        cols = None
        for row in rows:
            for value in row:
                blob = (value if isinstance(value, bytes | memoryview) else
                        str(value).encode()) if value is not None else b""
                for n in needles:
                    if n.encode().lower() in bytes(blob).lower():
                        if cols is None:
                            cols = [c["name"] for c in inspect(db.engine(app.url))
                                    .get_columns(table)]
                        found.append(f"{table}: {n} in {dict(zip(cols, row, strict=False))}")
    # The one row allowed: the audit row that says the case was deleted, by reference only.
    return [f for f in found if not (f.startswith("auditentry:") and "'retention'" in f
                                     and ALICE not in f)]


def test_retention_deletes_what_has_passed_and_nothing_else(app: App) -> None:
    refs = world(app)
    before = reports(app)
    assert sum(r["opened"] for r in before[0]) == 5 and sum(r["closed"] for r in before[1]) == 4
    rows_before = dump(app)

    dry = json.loads(cli(app, "retention", "--dry-run", "--json", "--now", NOW.isoformat())
                     .stdout)
    by_case = {i["case"]: i for i in dry if i["kind"] == "case"}
    assert set(by_case) == {refs["gone"], refs["held"]}
    assert by_case[refs["gone"]]["action"] == "would_delete"
    assert by_case[refs["gone"]]["rule"] == "closed_case_months=12"
    assert by_case[refs["gone"]]["since"] == "2025-11-05T10:00:00Z"
    assert by_case[refs["gone"]]["due_at"] == "2026-11-05T10:00:00Z"
    assert by_case[refs["held"]]["action"] == "kept"
    assert by_case[refs["held"]]["legal_hold"]["reason"] == "Ombudsman review"
    assert dump(app) == rows_before, "--dry-run changed the database"
    assert traces(app, [refs["gone"], ALICE], refs["gone"])  # the search can find it

    done = cli(app, "retention", "--json", "--now", NOW.isoformat())
    assert done.returncode == 0, done.stderr
    deleted = [i["case"] for i in json.loads(done.stdout)
               if i["kind"] == "case" and i["action"] == "deleted"]
    assert deleted == [refs["gone"]]

    assert reports(app) == before
    assert traces(app, [refs["gone"], ALICE, "Auld Street"], refs["gone"]) == []
    with app.session() as s:
        blobs = set(s.exec(select(models.Blob.sha256)))
        [entry] = s.exec(select(models.AuditEntry)
                         .where(models.AuditEntry.case_ref == refs["gone"])
                         .where(models.AuditEntry.what == "retention")).all()
        assert entry.actor == "mailflow" and entry.action == "change"
        assert entry.detail == {"rule": "closed_case_months=12",
                                "text": f"case {refs['gone']} deleted under retention rule "
                                        "closed_case_months=12"}
        assert s.exec(select(models.CaseStat)).all()  # statistics stay
    assert hashlib.sha256(OWN).hexdigest() not in blobs  # only Alice's case had it
    assert hashlib.sha256(SHARED).hexdigest() in blobs  # Bob's case still has it
    for key in ("recent", "held", "waste", "complaint"):
        assert get_case(app, refs[key]).status == "closed"
    assert cli(app, "case", refs["gone"]).returncode == 1

    # A second run the same day finds nothing; the hold released, the held case goes.
    again = json.loads(cli(app, "retention", "--json", "--now", NOW.isoformat()).stdout)
    assert [i["action"] for i in again] == ["kept"]
    assert cli(app, "hold", refs["held"], "--release", "--now", NOW.isoformat()).returncode == 0
    again = json.loads(cli(app, "retention", "--json", "--now", NOW.isoformat()).stdout)
    assert [(i["case"], i["action"]) for i in again] == [(refs["held"], "deleted")]
    with app.session() as s:
        trail = [(a.what, a.case_ref) for a in s.exec(select(models.AuditEntry)
                                                      .order_by(models.AuditEntry.id))]
    assert [t for t in trail if t[1] == refs["held"]] == [
        ("hold", refs["held"]), ("hold.release", refs["held"]), ("retention", refs["held"])]

    # The Waste case goes at 24 months, the complaint at 72.
    later = clock.parse("2027-11-06T12:00:00Z")
    items = json.loads(cli(app, "retention", "--json", "--now", later.isoformat()).stdout)
    gone = {(i["case"], i["rule"]) for i in items if i["kind"] == "case"}
    assert gone == {(refs["recent"], "closed_case_months=12"),
                    (refs["waste"], "categories.Waste=24")}
    assert reports(app) == before
    last = clock.parse("2031-11-06T12:00:00Z")
    items = json.loads(cli(app, "retention", "--json", "--now", last.isoformat()).stdout)
    assert [(i["case"], i["rule"]) for i in items if i["kind"] == "case"] == [
        (refs["complaint"], "types.complaint=72")]
    assert reports(app) == before


def test_a_hold_with_an_end_date_lapses(app: App) -> None:
    refs = world(app)
    assert cli(app, "hold", refs["gone"], "--reason", "claim", "--until", "2026-12-20",
               "--now", NOW.isoformat()).returncode == 0
    data = json.loads(cli(app, "case", refs["gone"], "--json").stdout)
    assert data["legal_hold"]["until"] == "2026-12-20"
    assert data["legal_hold"]["reason"] == "claim"
    assert json.loads(cli(app, "case", refs["recent"], "--json").stdout)["legal_hold"] is None
    on = clock.parse("2026-12-20T22:00:00Z")  # still the 20th in London
    assert retention.summary(retention.run(app, on))["cases"] == 0
    after = clock.parse("2026-12-21T09:00:00Z")
    assert [i["case"] for i in retention.run(app, after) if i["action"] == "deleted"] == [
        refs["gone"]]


def test_hold_command_errors(app: App) -> None:
    refs = world(app)
    assert cli(app, "hold", "CW-2020-00999", "--reason", "x").returncode == 1
    assert cli(app, "hold", refs["recent"], "--release").returncode == 2  # not held
    assert cli(app, "hold", refs["recent"]).returncode == 64  # neither --reason nor --release
    assert cli(app, "hold", refs["recent"], "--reason", "x", "--until", "2020-01-01",
               "--now", NOW.isoformat()).returncode == 64


def test_two_runs_at_once_delete_each_case_once(app: App) -> None:
    refs = world(app)
    assert cli(app, "hold", refs["held"], "--release").returncode == 0
    results: list[list[dict[str, Any]]] = []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        results.append(retention.run(app, NOW))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    deleted = sorted(i["case"] for r in results for i in r
                     if i["kind"] == "case" and i["action"] == "deleted")
    assert deleted == sorted([refs["gone"], refs["held"]])
    with app.session() as s:
        rows = s.exec(select(models.AuditEntry).where(models.AuditEntry.what == "retention")
                      .where(models.AuditEntry.case_ref.is_not(None))).all()  # type: ignore[union-attr]
    assert sorted(r.case_ref for r in rows) == deleted  # type: ignore[type-var]


def test_the_daily_job_runs_once_a_day(app: App) -> None:
    refs = world(app)
    first = tick.tick(app, NOW)["retention"]
    assert first["cases"] == 1
    assert tick.tick(app, NOW)["retention"] == {"cases": 0, "holding": 0, "raw_messages": 0,
                                                "mail": 0}
    assert get_case(app, refs["held"]).status == "closed"


def test_holding_pen_items_and_ignored_mail_go_after_their_days(app: App) -> None:
    old, new = clock.parse("2026-08-01T10:00:00Z"), clock.parse("2026-11-20T10:00:00Z")
    for at, who in ((old, "old.stranger@example.net"), (new, "new.stranger@example.net")):
        out = ingest(app, message(who, CASEWORK, "hello", f"Who are you? {who}"), at)
        assert out.disposition == "holding_pen"
        # Our own mail come back is ignored: it reaches no case and no holding-pen item.
        out = ingest(app, message(CASEWORK, CASEWORK, "loop", f"Our own mail {at}"), at)
        assert out.disposition == "ignored"
    dry = retention.run(app, NOW, dry_run=True)
    assert [(i["kind"], i["rule"], i["since"][:10]) for i in dry] == [
        ("holding", "holding_pen_days=90", "2026-08-01"),
        ("raw_message", "holding_pen_days=90", "2026-08-01")]
    done = retention.run(app, NOW)
    assert [i["action"] for i in done] == ["deleted", "deleted"]
    with app.session() as s:
        senders = [h.sender for h in s.exec(select(models.Holding))]
        raws = [bytes(r.raw) for r in s.exec(select(models.RawMessage))]
    assert senders == ["new.stranger@example.net"]
    assert len(raws) == 2 and not any(b"2026-08-01" in r or b"old.stranger" in r for r in raws)
    assert retention.run(app, NOW) == []


def test_the_json_fields_are_documented(app: App) -> None:
    world(app)
    items = retention.run(app, NOW, dry_run=True)
    assert items
    documented = set(table_after("`mailflow retention --json` prints"))
    for item in items:
        assert set(item) == documented
    assert "legal_hold" in table_after("`mailflow case REF --json` prints one object:")


def test_bad_retention_settings_name_the_field_and_the_file(tmp_path: Path, db_url: str) -> None:
    from mailflow import settings

    bad = RETENTION.replace("closed_case_months = 12", "closed_case_months = 0\nkeep = 1") \
        .replace("complaint = 72", "complaint = 72\ngossip = 3").replace("Waste = 24",
                                                                      "Waste = -2")
    path = tmp_path / "council.toml"
    from tests.rules import council

    path.write_text(council(db_url, bad))
    with pytest.raises(settings.ConfigError) as e:
        settings.load(path)
    text_ = str(e.value)
    for field in ("retention.closed_case_months", "retention.keep: is not a known setting",
                  "retention.types: unknown enquiry type 'gossip'",
                  "retention.categories: Waste: -2"):
        assert f"{path}: {field}" in text_, text_
    path.write_text(council(db_url, RETENTION.replace(
        "holding_pen_days = 90", "holding_pen_days = 90\nraw_message_days = 30\n"
                                 "end_of_term_days = 0")))
    s = settings.load(path)
    assert (s.retention.raw_message_days, s.retention.end_of_term_days) == (30, 0)
    assert s.retention.types == {"complaint": 72}


def test_raw_message_days_empties_the_bytes_and_keeps_the_case(tmp_path: Path,
                                                              db_url: str) -> None:
    a = make_app(tmp_path, db_url, RETENTION.replace("holding_pen_days = 90",
                                                     "holding_pen_days = 90\n"
                                                     "raw_message_days = 30"))
    try:
        refs = world(a)
        held = get_case(a, refs["held"])
        items = [i for i in retention.run(a, NOW) if i["kind"] == "raw_message"]
        assert items and {i["rule"] for i in items} == {"raw_message_days=30"}
        with a.session() as s:
            raws = {r.case_id: r for r in s.exec(select(models.RawMessage))}
        assert raws[held.id].size > 0 and raws[held.id].raw  # a held case keeps its mail
        recent = get_case(a, refs["recent"])
        assert raws[recent.id].raw == b"" and raws[recent.id].size == 0
        data = json.loads(cli(a, "case", refs["recent"], "--json").stdout)
        assert "Bell Road" in data["issue"]  # what was read from it stays
    finally:
        db.engine(a.url).dispose()


def test_deleting_a_case_scans_no_table(tmp_path: Path) -> None:
    """Every statement of one case's deletion finds its rows by an index (SQLite's plan says
    SEARCH, never SCAN), so its cost does not grow with the number of cases kept."""
    from sqlalchemy import event

    from mailflow.casework import retention as casework_retention

    a = make_app(tmp_path, f"sqlite:///{tmp_path}/plan.db", RETENTION)
    try:
        refs = world(a)
        statements: list[tuple[str, Any]] = []

        def seen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any,
                 _many: bool) -> None:
            statements.append((statement, params))

        with a.session() as s:
            case = s.exec(select(models.Case).where(models.Case.reference == refs["gone"])).one()
            event.listen(db.engine(a.url), "before_cursor_execute", seen)
            try:
                casework_retention.delete_case(s, case, "closed_case_months=12", NOW)
            finally:
                event.remove(db.engine(a.url), "before_cursor_execute", seen)
            scans = []
            for statement, params in statements:
                if statement.lstrip().upper().startswith(("INSERT", "PRAGMA")):
                    continue
                plan = s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                      params).all()
                scans += [(statement, row[-1]) for row in plan
                          if row[-1].startswith("SCAN") and row[-1] != "SCAN CONSTANT ROW"]
            s.rollback()
        assert len(statements) > 15
        assert scans == [], "\n".join(f"{p}: {st}" for st, p in scans)
    finally:
        db.engine(a.url).dispose()


def test_a_new_case_on_a_deleted_case_s_id_keeps_the_old_statistics(app: App) -> None:
    """SQLite gives a new row the id of the newest row deleted. The deleted case's statistics
    stay, and the new case (same id) must not overwrite them: the reports of 2025 are the
    same after a new case is opened as before the old one was deleted."""
    refs = world(app)
    before = reports(app)
    with app.session() as s:
        newest = s.exec(select(models.Case).order_by(models.Case.id.desc())).first()  # type: ignore[union-attr]
        assert newest is not None and newest.reference == refs["complaint"]
        old_id = newest.id
        from mailflow.casework.retention import delete_case

        delete_case(s, newest, "test", NOW)
        s.commit()
    o = ingest(app, forward("Fay Fox <fay.fox@example.org>", "Pothole on Fox Lane",
                            "A pothole on Fox Lane.\n\nFay"), NOW)
    assert o.disposition == "case_opened", o.reason
    if db.engine(app.url).dialect.name == "sqlite":
        assert get_case(app, o.case).id == old_id  # the reuse this guards against
    after = reports(app)
    assert [after[0], after[1], after[3]] == [before[0], before[1], before[3]]
