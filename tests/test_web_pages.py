"""The case pages over real HTTP (issue 15): a member sees their own cases and those shared
with them, staff see all; another member's case is 404 (and the refusal audited); filters;
a case action by button goes through the email commands' one door and matrix; search has
`search --as` visibility; every read is audited as the CLI's are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailflow import clock, models
from mailflow.app import App
from tests import reportdata as rd
from tests.webclient import Answer, Client, served, sign_in

JANE, TOM, ANN = rd.JANE, rd.TOM, "ann.lee@council.example"
STAFF = "member.services@council.example"
T0 = clock.parse("2026-12-01T10:00:00Z")

ANN_TOML = """
[[members]]
name = "Cllr Ann Lee"
email = "ann.lee@council.example"
ward = "Linlithgow"
"""


@pytest.fixture
def config_file(config_file: Path) -> Path:
    config_file.write_text(config_file.read_text() + ANN_TOML)
    return config_file


@pytest.fixture
def council(app: App) -> Iterator[tuple[str, dict[str, str]]]:
    """Jane: a pothole (shared with her ward, consent given) and bins (private); Tom: a
    street light; Ann, Jane's ward colleague, none of her own."""
    ids = {
        "pothole": rd.open_case(app, JANE, "Roads", "2026-11-02T10:00:00Z", "Pothole on Main St"),
        "bins": rd.open_case(app, JANE, "Waste", "2026-11-20T10:00:00Z", "Bins not emptied"),
        "light": rd.open_case(app, TOM, "Roads", "2026-11-25T10:00:00Z", "Broken street light"),
    }
    refs = {}
    with app.session() as s:
        for name, case_id in ids.items():
            case = s.get(models.Case, case_id)
            assert case is not None
            refs[name] = case.reference
            if name == "pothole":
                case.share, case.consent = "ward", True
                s.add(case)
        s.commit()
    clock.pin(T0)
    with served(app) as base:
        yield base, refs


def client(app: App, base: str, who: str) -> Client:
    c = Client(base)
    assert sign_in(c, app, who).status == 303
    return c


def audit_rows(app: App, actor: str) -> list[tuple[str, str, str | None]]:
    with app.session() as s:
        rows = s.exec(select(models.AuditEntry).where(models.AuditEntry.actor == actor)
                      .where(models.AuditEntry.via == "web")
                      .order_by(col(models.AuditEntry.id))).all()
    return [(a.action, a.what, a.case_ref) for a in rows]


def shown(page: Answer, refs: dict[str, str]) -> set[str]:
    assert page.status == 200, page.body
    return {name for name, ref in refs.items() if f'href="/cases/{ref}"' in page.body}


def test_who_sees_which_cases(app: App, council: tuple[str, dict[str, str]]) -> None:
    base, refs = council
    jane, tom, ann, staff = (client(app, base, w) for w in (JANE, TOM, ANN, STAFF))
    assert shown(jane.get("/cases"), refs) == {"pothole", "bins"}
    assert shown(tom.get("/cases"), refs) == {"light"}
    assert shown(ann.get("/cases"), refs) == {"pothole"}  # shared with her ward
    assert shown(staff.get("/cases"), refs) == {"pothole", "bins", "light"}
    # Another member's case, or no case at all, is the same 404.
    for who, ref in ((tom, refs["bins"]), (ann, refs["bins"]), (jane, refs["light"]),
                     (jane, "CW-2026-99999"), (jane, "nonsense")):
        r = who.get(f"/cases/{ref}")
        assert r.status == 404 and "Case not found" in r.body, ref
        assert "Bins not emptied" not in r.body and "street light" not in r.body
    page = ann.get(f"/cases/{refs['pothole']}")
    assert page.status == 200 and "Pothole on Main St" in page.body
    assert staff.get(f"/cases/{refs['light']}").status == 200
    # Reads and refusals are on the trail, like the CLI's.
    assert audit_rows(app, ANN)[1:] == [("read", "cases", None),
                                        ("refused", "case", refs["bins"]),
                                        ("read", "case", refs["pothole"])]
    with app.session() as s:
        reads = s.exec(select(models.AuditEntry).where(models.AuditEntry.via == "web")
                       .where(models.AuditEntry.what == "case")
                       .where(models.AuditEntry.action == "read")).all()
    assert sorted((r.actor, r.case_ref) for r in reads) == [(ANN, refs["pothole"]),
                                                            (STAFF, refs["light"])]
    assert tom.get("/cases/x").status == 404
    assert Client(base).get(f"/cases/{refs['pothole']}").status == 303  # signed out


def test_filters(app: App, council: tuple[str, dict[str, str]]) -> None:
    base, refs = council
    staff = client(app, base, STAFF)
    assert shown(staff.get("/cases?ward=Bathgate"), refs) == {"light"}
    assert shown(staff.get("/cases?service=Waste"), refs) == {"bins"}
    assert shown(staff.get("/cases?status=closed"), refs) == set()
    # On 1 Dec: the pothole (Roads, 10 working days from 2 Nov) and the bins (Waste, 5 from
    # 20 Nov) are overdue; the light (Roads, from 25 Nov) is not.
    assert shown(staff.get("/cases?overdue=yes"), refs) == {"pothole", "bins"}
    assert shown(staff.get("/cases?overdue=yes&ward=Linlithgow&service=Waste"),
                 refs) == {"bins"}
    assert shown(staff.get("/cases?ward=Nowhere"), refs) == set()


def test_a_case_action_by_button_uses_the_command_matrix(app: App,
                                                         council: tuple[str, dict[str, str]]
                                                         ) -> None:
    base, refs = council
    jane, ann = client(app, base, JANE), client(app, base, ANN)
    ref = refs["pothole"]
    page = jane.get(f"/cases/{ref}")
    for label in ("Close case", "Add note", "Chase waiting requests"):
        assert label in page.body
    r = jane.post(f"/cases/{ref}/act", {"command": "note", "text": "Rang the depot."})
    assert r.status == 200 and "note added" in r.body and "Rang the depot." in r.body
    r = jane.post(f"/cases/{ref}/act", {"command": "close", "text": "Filled."})
    assert r.status == 200 and "Done:" in r.body
    # Ann, a colleague the case is shared with, is offered only a note; a forged close is
    # refused by the same matrix as by mail.
    page = ann.get(f"/cases/{ref}")
    assert "Add note" in page.body and "Reopen case" not in page.body
    r = ann.post(f"/cases/{ref}/act", {"command": "reopen", "text": "no"})
    assert r.status == 403 and "Refused:" in r.body
    assert ann.post(f"/cases/{refs['bins']}/act", {"command": "note", "text": "x"}).status \
        == 404
    assert jane.post(f"/cases/{ref}/act", {"command": "merge", "text": "x"}).status == 400
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        kinds = [(e.kind, e.sender) for e in s.exec(
            select(models.Event).where(models.Event.case_id == case.id)
            .where(col(models.Event.kind).in_(("note", "closed", "command_refused"))))]
        replies = s.exec(select(models.Outbox).where(models.Outbox.kind == "command_reply")
                         ).all()
    assert case.status == "closed"
    assert kinds == [("note", JANE), ("closed", JANE), ("command_refused", ANN)]
    assert replies == []  # the page shows the result: no reply mail
    assert ("change", "command.close", ref) in audit_rows(app, JANE)
    assert ("refused", "command.reopen", ref) in audit_rows(app, ANN)
    # Without the form token, nothing happens.
    jane.csrf = "0" * 64
    assert jane.post(f"/cases/{ref}/act", {"command": "reopen"}).status == 403


def test_search_sees_what_search_as_sees(app: App, council: tuple[str, dict[str, str]]
                                         ) -> None:
    base, refs = council
    tom, staff = client(app, base, TOM), client(app, base, STAFF)
    assert shown(tom.get("/search?q=pothole"), refs) == set()
    assert shown(tom.get("/search?q=street+light"), refs) == {"light"}
    assert shown(staff.get("/search?q=pothole"), refs) == {"pothole"}
    assert ("read", "search", None) in audit_rows(app, TOM)


def test_the_list_pages_and_stays_fast(app: App, council: tuple[str, dict[str, str]]) -> None:
    base, refs = council
    staff = client(app, base, STAFF)
    clock.pin(T0 + timedelta(minutes=1))
    page = staff.get("/cases")
    assert "3 cases." in page.body and "Next page" not in page.body
    far = staff.get("/cases?page=" + "9" * 40)  # no overflow, just an empty page
    assert far.status == 200 and "3 cases, " not in far.body and "<table>" not in far.body


def hold_one(app: App) -> int:
    with app.session() as s:
        row = s.exec(select(models.Outbox).where(models.Outbox.kind == "acknowledgement")
                     .order_by(col(models.Outbox.id))).first()
        assert row is not None and row.id is not None
        row.state, row.held_reason = "held", "rate limit: 20 to one address in an hour"
        s.add(row)
        s.commit()
        return row.id


def test_the_outbox_page_is_for_staff_and_releases_once(
        app: App, council: tuple[str, dict[str, str]]) -> None:
    base, _ = council
    held = hold_one(app)
    jane, staff = client(app, base, JANE), client(app, base, STAFF)
    assert jane.get("/outbox").status == 404
    assert 'href="/outbox"' not in jane.get("/cases").body
    page = staff.get("/outbox")
    assert page.status == 200 and "rate limit: 20 to one address" in page.body
    assert f"Release message {held}" in page.body
    r = staff.post("/outbox", {"id": str(held)})
    assert r.status == 200 and f"Message {held} released" in r.body
    assert staff.post("/outbox", {"id": str(held)}).body.count("is not held") == 1
    with app.session() as s:
        assert s.get(models.Outbox, held).state == "queued"  # type: ignore[union-attr]
    assert jane.post("/outbox", {"id": str(held)}).status == 404
    assert [a for a in audit_rows(app, STAFF) if a[1].startswith("outbox")] == [
        ("read", "outbox", None), ("change", "outbox.release", None),
        ("read", "outbox", None), ("refused", "outbox.release", None), ("read", "outbox", None)]


def test_reports_for_staff_with_charts_and_csv(app: App, council: tuple[str, dict[str, str]]
                                               ) -> None:
    base, _ = council
    jane, staff = client(app, base, JANE), client(app, base, STAFF)
    assert jane.get("/reports").status == 404 and jane.get("/reports.csv").status == 404
    page = staff.get("/reports?period=2026-11&by=service")
    assert page.status == 200 and page.body.count("<svg") == 3
    assert "<td>Roads</td><td>2</td>" in page.body  # two Roads cases opened in November
    csv = staff.get("/reports.csv?period=2026-11&by=service")
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert csv.body.splitlines()[0].startswith("group,opened,") and "Roads,2," in csv.body
    assert staff.get("/reports?period=someday").status == 400
    assert [a for a in audit_rows(app, STAFF) if a[1] == "report"] == [("read", "report", None)] * 2


def test_an_alert_links_to_the_case_page_when_base_url_is_set(
        app: App, council: tuple[str, dict[str, str]]) -> None:
    import email
    import email.policy

    from mailflow.outbound import mail

    _, refs = council
    bodies = []
    for base_url in (None, "https://casework.council.example/"):
        app.settings.web.base_url = base_url
        with app.session() as s:
            case = s.exec(select(models.Case).where(models.Case.reference == refs["bins"])).one()
            row = mail.send(app.context, s, "alert", {"service_name": "Waste",
                                                      "replied_by": None, "text": "Emptied."},
                            to=[JANE], now=clock.now(), case=case)
            msg = email.message_from_bytes(row.raw, policy=email.policy.default)
            bodies.append((msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
                           msg.get_body(("html",)).get_content()))  # type: ignore[union-attr]
            s.rollback()
    link = f"https://casework.council.example/cases/{refs['bins']}"
    assert "/cases/" not in bodies[0][0] + bodies[0][1]
    assert "Reply to this email to add to the case.\n\n-- " in bodies[0][0]
    assert f"open it on the web:\n{link}\n" in bodies[1][0]
    assert f'<a href="{link}">open the case on the web</a>' in bodies[1][1]


def test_htmx_is_served_from_here_and_only_enhances(app: App,
                                                    council: tuple[str, dict[str, str]]) -> None:
    """The vendored htmx is served by mailflow itself (the pages' policy allows only 'self'),
    as JavaScript that is never sniffed; the case page's forms post to the same address with
    or without it, so a browser without JavaScript still acts."""
    base, refs = council
    jane = client(app, base, JANE)
    js = jane.get("/htmx.min.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert js.headers["X-Content-Type-Options"] == "nosniff" and "htmx" in js.body[:2000]
    page = jane.get(f"/cases/{refs['pothole']}")
    assert '<script src="/htmx.min.js" defer></script>' in page.body
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    form = f'action="/cases/{refs["pothole"]}/act" class="action"\n hx-post="/cases/'
    assert page.body.count(form) >= 3
