"""The holding pen page and the downloads of a case page, over real HTTP (issue 15).

`/holding` is member services' only (404 for anyone else); its buttons file, open, dismiss
and retry through casework/holding.py and pipeline.retry, as `mailflow holding` and
`#file/#open/#dismiss` do: the item is resolved once, by whom, on the audit trail with `via`
`web`; a form without its token is refused. A case's raw messages and attachments are for
staff and the case's own member only (a colleague it is shared with, and anyone else, 404):
raw mail as text/plain, files as attachments with a safe name; every download audited, and
a message emptied under `raw_message_days` said so plainly. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import unquote

import pytest
from sqlmodel import col, select

from mailflow import clock, models
from mailflow.app import App
from mailflow.casework import retention
from mailflow.inbound import pipeline
from mailflow.web.files import disposition, safe_name
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward
from tests.rules import ALAN, STAFF, STRANGER, TOM, get_case, ingest, rules_app, set_case
from tests.test_web_pages import audit_rows
from tests.webclient import Client, served, sign_in

__all__ = ["rules_app"]  # a fixture

FRI = clock.parse("2026-11-20T10:00:00Z")
MON = clock.parse("2026-11-23T10:00:00Z")
TUE = clock.parse("2026-11-24T11:00:00Z")
PDF = b"%PDF-1.4\n<html><script>alert(1)</script>" + bytes(range(256))
HOSTILE = 'evil";\u202egpj.exe; filename=x.html\u200b.pdf'


def client(app: App, base: str, who: str) -> Client:
    c = Client(base)
    assert sign_in(c, app, who).status == 303
    return c


def held(app: App) -> dict[str, int]:
    """The items waiting, by the sender's role: the roads officer's answer naming Jane's case
    by its tag only, a stranger's new enquiry, and spam."""
    with app.session() as s:
        rows = s.exec(select(models.Holding).where(col(models.Holding.resolved_at).is_(None))
                      .order_by(col(models.Holding.id))).all()
    return {"answer" if h.sender == ROADS else "enquiry" if h.sender == STRANGER else "spam":
            h.id for h in rows if h.id is not None}


def item(app: App, holding_id: int) -> models.Holding:
    with app.session() as s:
        h = s.get(models.Holding, holding_id)
        assert h is not None
        return h


@pytest.fixture
def pen(rules_app: App) -> Iterator[tuple[App, str, str]]:
    """Jane's pothole case (opened Friday) and, on Monday, three held messages."""
    app = rules_app
    ref = ingest(app, outlook_forward(), FRI).case
    assert ref
    for msg in (message(ROADS, CASEWORK, f"RE: [{ref}] Pothole on Main Street",
                        "The pothole was filled this morning."),
                message(f"Pat Doyle <{STRANGER}>", CASEWORK, "Pothole on Elm Road",
                        "There is a deep pothole outside 4 Elm Road."),
                message("sales@pills.example", CASEWORK, "Cheap pills", "Buy now")):
        assert ingest(app, msg, MON).disposition == "holding_pen"
    clock.pin(TUE)
    with served(app) as base:
        yield app, base, ref


def test_the_holding_pen_is_for_staff_only(pen: tuple[App, str, str]) -> None:
    app, base, _ = pen
    ids = held(app)
    jane, tom = client(app, base, JANE), client(app, base, TOM)
    for who in (jane, tom):
        assert who.get("/holding").status == 404
        assert who.get(f"/holding/{ids['enquiry']}/message").status == 404
        r = who.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"})
        assert r.status == 404 and "Page not found" in r.body
        assert 'href="/holding"' not in who.get("/cases").body
    assert item(app, ids["spam"]).resolved_at is None
    assert Client(base).get("/holding").status == 303  # signed out: to the sign-in page
    staff = client(app, base, STAFF)
    assert 'href="/holding">Holding pen</a>' in staff.get("/cases").body


def test_staff_file_open_and_dismiss_by_button(pen: tuple[App, str, str]) -> None:
    app, base, ref = pen
    ids = held(app)
    staff = client(app, base, STAFF)
    page = staff.get("/holding")
    assert page.status == 200 and "3 items waiting." in page.body
    for text in ("Pothole on Elm Road", STRANGER, "Cheap pills", ROADS,
                 f'<a href="/cases/{ref}">{ref}</a>', "2026-11-23 10:00",
                 f"File message {ids['answer']}", f"Dismiss message {ids['spam']}"):
        assert text in page.body, text
    assert "Retry message" not in page.body  # none failed
    r = staff.post(f"/holding/{ids['spam']}/retry", {})
    assert r.status == 400 and "not a failed message" in r.body
    raw = staff.get(f"/holding/{ids['spam']}/message")
    assert raw.status == 200 and raw.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert raw.headers["X-Content-Type-Options"] == "nosniff" and "Subject: Cheap pills" in \
        raw.body
    assert staff.get("/holding/999/message").status == 404

    # File the officer's answer on the case it names (typed, in lower case as people type).
    r = staff.post(f"/holding/{ids['answer']}/file", {"reference": ref.lower()})
    assert r.status == 200 and f"Message {ids['answer']} filed on {ref}" in r.body, r.body
    assert "2 items waiting." in r.body
    h = item(app, ids["answer"])
    assert (h.resolution, h.resolved_by) == ("filed", STAFF)
    assert h.resolved_at and h.resolved_at.replace(tzinfo=None) == TUE.replace(tzinfo=None)
    assert get_case(app, ref).status == "answered"  # as if it had matched: the answer
    with app.session() as s:
        case = get_case(app, ref)
        kinds = [e.kind for e in s.exec(select(models.Event)
                                        .where(models.Event.case_id == case.id))]
    assert "service_reply" in kinds and kinds[-1] == "holding_filed"

    # Filing it again: already resolved (409), nothing changes.
    again = staff.post(f"/holding/{ids['answer']}/file", {"reference": ref})
    assert again.status == 409 and "already filed by" in again.body

    # Open a new case from the stranger's mail, for Jane, to Waste.
    r = staff.post(f"/holding/{ids['enquiry']}/open", {"member": JANE, "service": "Waste"})
    assert r.status == 200 and f"Message {ids['enquiry']} opened as " in r.body, r.body
    new_ref = re.search(r"opened as (\S+):", r.body).group(1)  # type: ignore[union-attr]
    opened = get_case(app, new_ref)
    with app.session() as s:
        member = s.get(models.Member, opened.member_id)
        services = [s.get(models.Service, q.service_id).name  # type: ignore[union-attr]
                    for q in s.exec(select(models.Request)
                                    .where(models.Request.case_id == opened.id))]
    assert member and member.email == JANE and services == ["Waste"]
    assert (item(app, ids["enquiry"]).resolution, item(app, ids["enquiry"]).resolved_by) == (
        "opened", STAFF)

    # Dismiss the spam: a reason is needed.
    r = staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "  "})
    assert r.status == 400 and "say why it is dismissed" in r.body
    r = staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"})
    assert r.status == 200 and f"Message {ids['spam']} dismissed" in r.body
    assert "The holding pen is empty." in r.body and "0 items waiting." in r.body
    h = item(app, ids["spam"])
    assert (h.resolution, h.resolved_by, h.resolution_note) == ("dismissed", STAFF, "spam")

    # Unknown items and actions, a bad reference.
    assert staff.post("/holding/999/dismiss", {"reason": "x"}).status == 404
    assert staff.post(f"/holding/{ids['spam']}/merge", {}).status == 404
    assert staff.post("/holding/99999999999999999999/dismiss", {"reason": "x"}).status == 404

    # The resolved items, on request, with who resolved them.
    everything = staff.get("/holding?all=yes")
    assert "3 items." in everything.body and everything.body.count(f"by {STAFF}") == 3
    assert "File message" not in everything.body

    trail = audit_rows(app, STAFF)
    changes = [t for t in trail if t[1].startswith("holding.")]
    assert changes == [("change", "holding.file", ref), ("change", "holding.open", new_ref),
                       ("change", "holding.dismiss", None)]
    # Refusals of the domain (already resolved, no reason) change nothing and are not
    # changes; every listing is a `holding` read, like the CLI's.
    assert [t for t in trail if t[1] == "holding"] == [("read", "holding", None)] * 9
    assert ("read", "message", None) in trail  # the held message, read as received
    with app.session() as s:
        first = s.exec(select(models.AuditEntry).where(models.AuditEntry.what == "holding")
                       .order_by(col(models.AuditEntry.id))).first()
        assert first is not None and first.detail == {"shown": 3}
        shown = s.exec(select(models.AuditCase.case_ref)
                       .where(models.AuditCase.audit_id == first.id)).all()
    assert shown == [ref]


def test_a_form_without_its_token_or_from_elsewhere_is_refused(pen: tuple[App, str, str]
                                                               ) -> None:
    app, base, _ = pen
    ids = held(app)
    staff = client(app, base, STAFF)
    staff.get("/holding")
    token = staff.csrf
    staff.csrf = "0" * 64
    r = staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"})
    assert r.status == 403 and "Form refused" in r.body
    staff.csrf = token
    r = staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"}, same_site=False,
                   **{"Sec-Fetch-Site": "cross-site"})
    assert r.status == 403
    r = staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"}, same_site=False,
                   Origin="https://evil.example")
    assert r.status == 403
    assert item(app, ids["spam"]).resolved_at is None
    assert staff.post(f"/holding/{ids['spam']}/dismiss", {"reason": "spam"}).status == 200


def test_a_failed_message_is_retried_by_button(rules_app: App) -> None:
    """A message the pipeline failed on (quarantined): Retry puts it through again, once."""
    app = rules_app
    raw_id, _ = pipeline.receive(app, outlook_forward().as_bytes(), source="ingest", now=MON)
    with app.session() as s:  # what `process` does when dispatch raises
        s.get(models.RawMessage, raw_id).state = "done"  # type: ignore[union-attr]
        s.commit()
    pipeline.quarantine(app, raw_id, MON, "RuntimeError: the database went away")
    clock.pin(TUE)
    with served(app) as base:
        staff = client(app, base, STAFF)
        page = staff.get("/holding")
        [hid] = held(app).values()
        assert "could not be processed: RuntimeError" in page.body
        assert f"Retry message {hid}" in page.body
        r = staff.post(f"/holding/{hid}/retry", {})
        assert r.status == 200 and f"Message {hid} retried: case_opened" in r.body, r.body
        assert staff.post(f"/holding/{hid}/retry", {}).status == 409
    h = item(app, hid)
    assert (h.resolution, h.resolved_by) == ("retried", STAFF)
    assert ("change", "holding.retry", None) in audit_rows(app, STAFF)


# -- the downloads of a case page ---------------------------------------------------------------
def with_files() -> EmailMessage:
    fwd = outlook_forward()
    fwd.add_attachment(PDF, maintype="application", subtype="pdf", filename=HOSTILE)
    return fwd


@pytest.fixture
def filed(rules_app: App) -> Iterator[tuple[App, str, str]]:
    """Jane's case from a forward with a file of a hostile name, shared with her ward (Alan
    is her ward colleague) with the constituent's consent."""
    app = rules_app
    ref = ingest(app, with_files(), FRI).case
    assert ref
    set_case(app, ref, share="ward", consent=True)
    clock.pin(TUE)
    with served(app) as base:
        yield app, base, ref


def links(body: str, ref: str) -> tuple[list[str], list[str]]:
    return (re.findall(rf'href="(/cases/{ref}/messages/\d+)"', body),
            re.findall(rf'href="(/cases/{ref}/attachments/\d+)"', body))


def test_raw_message_and_attachments_for_staff_and_the_member_only(
        filed: tuple[App, str, str]) -> None:
    app, base, ref = filed
    jane, alan, tom, staff = (client(app, base, w) for w in (JANE, ALAN, TOM, STAFF))
    page = jane.get(f"/cases/{ref}")
    raws, files = links(page.body, ref)
    assert raws and len(files) == 1, page.body
    assert "\u202e" not in page.body and "gpj.exe; filename=x.html.pdf</a>" in page.body
    raw_url, file_url = raws[0], files[0]

    r = jane.get(raw_url)
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("inline; filename=")
    assert "sandbox" in r.headers["Content-Security-Policy"]
    assert "Subject: FW: Pothole on Main Street" in r.body and "Message-ID: <" in r.body
    saved = jane.get(raw_url + "?download=yes")
    assert saved.headers["Content-Disposition"].startswith(
        f'attachment; filename="{ref}-message-')

    f = jane.get(file_url)
    assert f.status == 200 and f.headers["Content-Type"] == "application/octet-stream"
    assert f.data == PDF
    assert f.headers["X-Content-Type-Options"] == "nosniff"
    cd = f.headers["Content-Disposition"]
    plain = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', cd)
    assert plain, cd
    assert re.fullmatch(r"[A-Za-z0-9 ._()+-]+", plain.group(1)) and plain.group(1).endswith(
        ".pdf")
    full = unquote(plain.group(2))
    assert "\u202e" not in full and "\u200b" not in full and full.endswith(".pdf")
    assert '"' in full  # kept in the encoded name, where it cannot end anything
    assert staff.get(raw_url).status == 200 and staff.get(file_url).status == 200

    # Alan reads the shared case, not the mail behind it; Tom not even the case.
    shared = alan.get(f"/cases/{ref}")
    assert shared.status == 200 and links(shared.body, ref) == ([], [])
    assert "Attachments" not in shared.body
    for who in (alan, tom):
        for url in (raw_url, file_url, raw_url.replace(ref, "CW-2026-99999")):
            r = who.get(url)
            assert r.status == 404 and "Case not found" in r.body and "PDF" not in r.body
    # A message of another case, through this case's address: 404 too.
    other = ingest(app, outlook_forward(subject="Bins not emptied"), FRI).case
    other_raw = get_case(app, other or "").source_message_id
    assert jane.get(f"/cases/{ref}/messages/{other_raw}").status == 404
    assert jane.get(f"/cases/{ref}/attachments/99999999999").status == 404

    assert [t for t in audit_rows(app, ALAN) if t[0] == "refused"] == [
        ("refused", "message", ref), ("refused", "attachment", ref), ("refused", "case",
                                                                      "CW-2026-99999")]
    assert [t for t in audit_rows(app, JANE) if t[1] in ("message", "attachment")][:3] == [
        ("read", "message", ref), ("read", "message", ref), ("read", "attachment", ref)]


def test_a_raw_message_emptied_under_retention_is_said_plainly(
        filed: tuple[App, str, str]) -> None:
    app, base, ref = filed
    jane = client(app, base, JANE)
    raw_url = links(jane.get(f"/cases/{ref}").body, ref)[0][0]
    with app.session() as s:
        raw = s.get(models.RawMessage, int(raw_url.rsplit("/", 1)[1]))
        assert raw is not None
        retention.empty_raw(s, raw)
        s.commit()
    page = jane.get(f"/cases/{ref}")
    assert links(page.body, ref)[0] == [] and "The message as received is no longer kept" \
        in page.body
    r = jane.get(raw_url)
    assert r.status == 410 and "no longer kept" in r.body and "retention" in r.body
    assert jane.get(links(page.body, ref)[1][0]).status == 200  # the file is kept apart


@pytest.mark.parametrize("name,plain,full", [
    ("../../etc/passwd", "passwd", "passwd"),
    ("C:\\Users\\x\\report.docx", "report.docx", "report.docx"),
    ("a\r\nContent-Type: text/html\r\n\r\n<b>.html", "html _b_.html", "html <b>.html"),
    ("a\r\nX-Evil: 1\r\n\r\n<b>.html", "a X-Evil_ 1 _b_.html", "a X-Evil: 1 <b>.html"),
    ("\u202etxt.exe", "txt.exe", "txt.exe"),
    ("...", "attachment-1", "attachment-1"),
    ("Caf\u00e9 menu \u2013 r\u00e9sum\u00e9.pdf", "Caf_ menu _ r_sum_.pdf",
     "Caf\u00e9 menu \u2013 r\u00e9sum\u00e9.pdf"),
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf", "x" * 116 + ".pdf"),
])
def test_file_names_are_made_safe(name: str, plain: str, full: str) -> None:
    assert safe_name(name, "attachment-1") == full
    cd = disposition("attachment", name, "attachment-1")
    assert cd.startswith(f'attachment; filename="{plain}"; filename*=UTF-8\'\'')
    assert unquote(cd.split("''", 1)[1]) == full
    assert all(32 <= ord(c) < 127 for c in cd) and cd.count('"') == 2
