"""The rest of the case page's buttons (issue 15): deadline, service, share, consent, resend
and contact, through the email commands' one door and matrix (a button the role may not use
is not shown, and its forged POST is a 403, on the timeline and the audit trail as a refused
command); the case list's filters by whom a case waits on, member and opening date, counted
as the digests count; the way back to the page first asked for after sign-in, never to
another site; and links to the case pages in the mail members and staff get."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlmodel import col, select

from mailflow import clock, models
from mailflow.app import App
from mailflow.casework import recovery
from mailflow.jobs import digests
from mailflow.web import auth
from tests import reportdata as rd
from tests import test_web_pages as wp
from tests.test_web_pages import ANN, JANE, STAFF, T0, TOM, audit_rows, shown
from tests.webclient import Client, sign_in_mail

Council = tuple[str, dict[str, str]]
config_file, council = wp.config_file, wp.council  # the case pages' fixtures: Ann, three cases


def client(app: App, base: str, who: str) -> Client:
    """Signed in, with the form token of a signed-in page."""
    c = wp.client(app, base, who)
    c.get("/cases")
    return c


def case_of(app: App, ref: str) -> models.Case:
    with app.session() as s:
        return s.exec(select(models.Case).where(models.Case.reference == ref)).one()


def requests_of(app: App, ref: str) -> list[tuple[str, str, str]]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        rows = s.exec(select(models.Request, models.Service).join(models.Service)
                      .where(models.Request.case_id == case.id)
                      .order_by(col(models.Request.id))).all()
    return [(sv.name, r.contact, r.state) for r, sv in rows]


def refused_events(app: App, ref: str) -> list[tuple[str | None, str | None]]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return [(e.sender, e.text) for e in s.exec(
            select(models.Event).where(models.Event.case_id == case.id)
            .where(models.Event.kind == "command_refused").order_by(col(models.Event.id)))]


def test_share_and_consent_are_the_members_buttons(app: App, council: Council) -> None:
    base, refs = council
    jane, ann, staff = (client(app, base, w) for w in (JANE, ANN, STAFF))
    bins = refs["bins"]
    page = jane.get(f"/cases/{bins}")
    assert "Set sharing" in page.body and "Record consent" in page.body
    r = jane.post(f"/cases/{bins}/act", {"command": "share", "share": "ward"})
    assert r.status == 200 and "#share: sharing set to ward" in r.body
    assert "once the constituent's consent is recorded" in r.body
    assert ann.get(f"/cases/{bins}").status == 404  # no consent yet: still private
    r = jane.post(f"/cases/{bins}/act", {"command": "consent", "consent": "yes"})
    assert r.status == 200 and "consent recorded: yes" in r.body
    case = case_of(app, bins)
    assert (case.share, case.consent) == ("ward", True)
    page = ann.get(f"/cases/{bins}")
    assert page.status == 200 and "Set sharing" not in page.body and "Add note" in page.body
    # Staff and the colleague are not offered them, and a forged POST is refused as by mail.
    page = staff.get(f"/cases/{bins}")
    assert "Set sharing" not in page.body and "Record consent" not in page.body
    assert "Set deadline" in page.body and "Send request to service" in page.body
    r = staff.post(f"/cases/{bins}/act", {"command": "share", "share": "private"})
    assert r.status == 403 and "Refused:" in r.body and "the case&#39;s member only" in r.body
    r = ann.post(f"/cases/{bins}/act", {"command": "consent", "consent": "no"})
    assert r.status == 403
    assert case_of(app, bins).share == "ward" and case_of(app, bins).consent is True
    assert [who for who, _ in refused_events(app, bins)] == [STAFF, ANN]
    assert ("refused", "command.share", bins) in audit_rows(app, STAFF)
    assert ("refused", "command.consent", bins) in audit_rows(app, ANN)
    assert ("change", "command.consent", bins) in audit_rows(app, JANE)
    # Tom cannot see the case at all: 404, as for every other action.
    tom = client(app, base, TOM)
    assert tom.post(f"/cases/{bins}/act", {"command": "share", "share": "ward"}).status == 404


def test_deadline_and_service(app: App, council: Council) -> None:
    base, refs = council
    jane, ann = client(app, base, JANE), client(app, base, ANN)
    bins, pothole = refs["bins"], refs["pothole"]
    r = jane.post(f"/cases/{bins}/act", {"command": "deadline", "date": "2026-12-18"})
    assert r.status == 200 and "deadline set to 2026-12-18" in r.body
    assert 'value="2026-12-18"' in r.body and "Clear deadline" in r.body
    # The handler's own refusal (a date in the past) is an answer, not a 403.
    r = jane.post(f"/cases/{bins}/act", {"command": "deadline", "date": "2026-11-01"})
    assert r.status == 200 and "Refused:" in r.body and "is in the past" in r.body
    assert str(case_of(app, bins).deadline) == "2026-12-18"
    r = jane.post(f"/cases/{bins}/act", {"command": "deadline", "date": "", "clear": "yes"})
    assert r.status == 200 and "deadline cleared" in r.body
    assert case_of(app, bins).deadline is None
    # A field cannot smuggle a second command: everything is one line of arguments.
    r = jane.post(f"/cases/{bins}/act", {"command": "deadline", "date": "2026-12-18\n#close"})
    assert case_of(app, bins).status == "open"
    # Another service as well, as #service does.
    page = jane.get(f"/cases/{bins}")
    assert '<option>Roads</option>' in page.body
    r = jane.post(f"/cases/{bins}/act", {"command": "service", "service": "Roads"})
    assert r.status == 200 and "request sent to Roads <roads.enquiries@council.example>" \
        in r.body.replace("&lt;", "<").replace("&gt;", ">")
    assert requests_of(app, bins) == [("Waste", "waste@council.example", "sent"),
                                      ("Roads", "roads.enquiries@council.example", "sent")]
    r = jane.post(f"/cases/{bins}/act", {"command": "service", "service": "Roads"})
    assert r.status == 200 and "already has a request to Roads" in r.body
    # Ann shares the pothole: only a note; deadline and service are refused.
    page = ann.get(f"/cases/{pothole}")
    assert "Set deadline" not in page.body and "Send request to service" not in page.body
    for form in ({"command": "deadline", "date": "2026-12-18"},
                 {"command": "service", "service": "Waste"}):
        assert ann.post(f"/cases/{pothole}/act", form).status == 403
    assert requests_of(app, pothole) == [("Roads", "roads.enquiries@council.example", "sent")]
    assert case_of(app, pothole).deadline is None
    with app.session() as s:
        sent = s.exec(select(models.Outbox.recipients).where(models.Outbox.kind == "request")
                      ).all()
    assert sum("roads.enquiries@council.example" in r for r in sent) == 3  # 2 cases + this


def test_resend_and_contact_an_undeliverable_request(app: App, council: Council) -> None:
    base, refs = council
    jane, ann, staff = (client(app, base, w) for w in (JANE, ANN, STAFF))
    bins, pothole = refs["bins"], refs["pothole"]
    page = jane.get(f"/cases/{bins}")
    assert "Send request again" not in page.body  # nothing undeliverable
    assert "Re-address request" in page.body  # a waiting request may be re-addressed
    with app.session() as s:
        for ref in (bins, pothole):
            case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
            recovery.mark_undeliverable(s, rd.the_request(s, case.id), "550 no such user",
                                        clock.now())
        s.commit()
    page = staff.get(f"/cases/{bins}")
    assert "Send request again" in page.body and '<option>Waste</option>' in page.body
    r = staff.post(f"/cases/{bins}/act", {"command": "resend", "service": "Waste"})
    assert r.status == 200 and "Done:" in r.body, r.body
    assert requests_of(app, bins) == [("Waste", "waste@council.example", "sent")]
    # Re-addressed to a named person, only in a trusted domain.
    r = jane.post(f"/cases/{pothole}/act", {"command": "contact",
                                            "address": "someone@evil.example", "service": ""})
    assert r.status == 200 and "is not in a trusted domain" in r.body
    r = jane.post(f"/cases/{pothole}/act", {"command": "contact",
                                            "address": "pat.roads@council.example"})
    assert r.status == 200 and "Done:" in r.body, r.body
    assert requests_of(app, pothole) == [("Roads", "pat.roads@council.example", "sent")]
    # The colleague may do neither.
    for form in ({"command": "resend"}, {"command": "contact", "address": "x@council.example"}):
        assert ann.post(f"/cases/{pothole}/act", form).status == 403
    assert ("refused", "command.contact", pothole) in audit_rows(app, ANN)


def count(page_body: str) -> int:
    import re

    found = re.search(r'<p role="status">(\d+) cases?', page_body)
    assert found, page_body
    return int(found.group(1))


def test_filters_by_waiting_member_and_date(app: App, council: Council) -> None:
    base, refs = council
    staff, jane = client(app, base, STAFF), client(app, base, JANE)
    with app.session() as s:
        light = s.exec(select(models.Case).where(models.Case.reference == refs["light"])).one()
    rd.answer(app, light.id, "2026-11-30T10:00:00Z")  # answered: waits on Tom
    triage_id = rd.open_case(app, TOM, "Nowhere", "2026-11-30T11:00:00Z", "Dog fouling")
    with app.session() as s:
        refs["dogs"] = s.get(models.Case, triage_id).reference  # type: ignore[union-attr]
        bins = s.exec(select(models.Case).where(models.Case.reference == refs["bins"])).one()
        recovery.mark_undeliverable(s, rd.the_request(s, bins.id), "550", clock.now())
        s.commit()
    assert case_of(app, refs["dogs"]).status == "triage"
    assert shown(staff.get("/cases?waiting=service"), refs) == {"pothole"}
    assert shown(staff.get("/cases?waiting=member"), refs) == {"light"}
    assert shown(staff.get("/cases?waiting=staff"), refs) == {"dogs"}
    assert shown(staff.get("/cases?waiting=address"), refs) == {"bins"}
    assert shown(staff.get("/cases?waiting=nonsense"), refs) == set(refs)
    assert shown(staff.get(f"/cases?member={quote(TOM)}"), refs) == {"light", "dogs"}
    assert shown(staff.get("/cases?member=jane%40home.example"), refs) == {"pothole", "bins"}
    assert shown(jane.get(f"/cases?member={quote(TOM)}"), refs) == set()  # not hers to see
    assert shown(staff.get("/cases?from=2026-11-20"), refs) == {"bins", "light", "dogs"}
    assert shown(staff.get("/cases?to=2026-11-20"), refs) == {"pothole", "bins"}
    assert shown(staff.get("/cases?from=2026-11-21&to=2026-11-25&waiting=member"),
                 refs) == {"light"}
    bad = staff.get("/cases?from=yesterday&to=9999-12-31")
    assert "Opened from: enter a date like 2026-11-01." in bad.body
    assert shown(bad, refs) == set(refs)
    page = staff.get("/cases")
    for label in ("Waiting on", "Member", "Opened from", "Opened to"):
        assert f">{label}</label>" in page.body
    # The same counts as the staff digest's triage queue and bounced requests.
    with app.session() as s:
        digest_id = digests.claim(s, "staff", "staff", "test", clock.now())
        assert digest_id is not None
        sections = {x.title: x.total
                    for x in digests.staff_sections(app, s, clock.now(), digest_id)}
        s.rollback()
    assert count(staff.get("/cases?waiting=staff").body) == \
        sections["Triage queue: cases waiting for a service"] == 1
    assert count(staff.get("/cases?waiting=address").body) == sections["Bounced requests"] == 1
    with app.session() as s:
        open_roads = digests.service_sections(app, s, ["Roads"], clock.now())["Roads"].total
        s.rollback()
    assert count(staff.get("/cases?waiting=service&service=Roads").body) == open_roads == 1


def test_filters_carry_over_pages(app: App, council: Council) -> None:
    from mailflow.web import pages

    base, _ = council
    staff = client(app, base, STAFF)
    old, pages.PAGE = pages.PAGE, 1
    try:
        page = staff.get("/cases?waiting=service&from=2026-11-01&status=open")
    finally:
        pages.PAGE = old
    assert 'href="?status=open&amp;waiting=service&amp;from=2026-11-01&amp;page=2"' in page.body


# -- back to the page first asked for ----------------------------------------------------------
BAD_NEXT = ["//evil.example", "https://evil.example", "/\\evil.example", "/\\/evil.example",
            "///evil.example", "http:/evil.example", "javascript:alert(1)", "evil.example",
            "/login/link?token=x", "/cases/\r\nSet-Cookie: x=y", " /cases", "/cases\\..\\x",
            "/" + "a" * 600, "", "/%0d%0a"[:0]]


def test_local_path_takes_only_this_sites_paths() -> None:
    for bad in BAD_NEXT:
        assert auth.local_path(bad) is None, bad
    for good in ("/cases/CW-2026-00001", "/cases?status=open&ward=Linlithgow", "/search?q=x",
                 "/holding"):
        assert auth.local_path(good) == good


def test_sign_in_returns_to_the_page_asked_for(app: App, council: Council) -> None:
    base, refs = council
    ref = refs["pothole"]
    c = Client(base)
    r = c.get(f"/cases/{ref}")
    assert r.status == 303 and r.location == f"/login?next=/cases/{ref}"
    assert Client(base).get("/cases").location == "/login"  # the default needs no next
    r = c.get(r.location)
    assert r.body.count(f'name="next" value="/cases/{ref}"') == 2  # link and code forms
    assert c.post("/login", {"address": JANE, "next": f"/cases/{ref}"}).status == 200
    with app.session() as s:
        row = s.exec(select(models.Outbox).where(models.Outbox.kind == "sign_in")).one()
    text = email.message_from_bytes(row.raw, policy=email.policy.default).get_body(
        ("plain",)).get_content()  # type: ignore[union-attr]
    token, _ = sign_in_mail(app, JANE)
    assert f"/login/link?token={token}&next=/cases/{ref}\n" in text
    page = c.get(f"/login/link?token={token}&next=/cases/{ref}")
    assert f'name="next" value="/cases/{ref}"' in page.body
    r = c.post("/login/link", {"token": token, "next": f"/cases/{ref}"})
    assert r.status == 303 and r.location == f"/cases/{ref}"
    assert c.get(r.location).status == 200
    # The code path too, with the query of a filtered list.
    phone = Client(base)
    phone.get("/login")
    phone.post("/login", {"address": TOM})
    _, code = sign_in_mail(app, TOM)
    r = phone.post("/login/code", {"address": TOM, "code": code,
                                   "next": "/cases?status=open&ward=Bathgate"})
    assert r.status == 303 and r.location == "/cases?status=open&ward=Bathgate"


@pytest.mark.parametrize("bad", ["//evil.example", "https://evil.example", "/\\evil.example",
                                 "/\\/evil.example", "//evil.example/%2e%2e"])
def test_sign_in_never_sends_to_another_site(app: App, council: Council, bad: str) -> None:
    base, _ = council
    c = Client(base)
    page = c.get(f"/login?next={quote(bad, safe='')}")
    assert 'name="next"' not in page.body
    c.post("/login", {"address": JANE, "next": bad})
    token, _ = sign_in_mail(app, JANE)
    with app.session() as s:
        raw = s.exec(select(models.Outbox.raw).where(models.Outbox.kind == "sign_in")).one()
    assert b"next=" not in raw and b"evil" not in raw
    page = c.get(f"/login/link?token={token}&next={quote(bad, safe='')}")
    assert 'name="next"' not in page.body and "evil" not in page.body
    r = c.post("/login/link", {"token": token, "next": bad})  # a forged form
    assert r.status == 303 and r.location == "/cases"


# -- links in mail ------------------------------------------------------------------------------
def _bodies(app: App, kind: str, since: int) -> list[tuple[str, str]]:
    with app.session() as s:
        rows = s.exec(select(models.Outbox).where(models.Outbox.kind == kind)
                      .where(col(models.Outbox.id) > since)).all()
    out = []
    for row in rows:
        msg = email.message_from_bytes(row.raw, policy=email.policy.default)
        out.append((msg.get_body(("plain",)).get_content(),  # type: ignore[union-attr]
                    msg.get_body(("html",)).get_content()))  # type: ignore[union-attr]
    return out


def _last_outbox(app: App) -> int:
    with app.session() as s:
        return max(s.exec(select(models.Outbox.id)).all() or [0])  # type: ignore[type-var]


def test_digests_and_member_mail_link_the_case_pages(app: App, council: Council) -> None:
    _, refs = council
    with app.session() as s:
        s.add(models.Holding(kind="unmatched", reason="no case matched", sender="x@example.org",
                             subject="Hello", created_at=clock.now()))
        s.commit()
    web = "https://casework.council.example"
    pothole, bins, light = refs["pothole"], refs["bins"], refs["light"]
    seen = {}
    for day, base_url in ((0, web + "/"), (1, None)):
        app.settings.web.base_url = base_url
        now = T0 + timedelta(days=day)
        since = _last_outbox(app)
        assert digests.member_digests(app, now)["sent"] >= 1
        assert digests.staff_digest(app, now)["sent"] == 1
        digests.service_digests(app, now)
        rd.open_case(app, JANE, "Roads", now.isoformat(), f"Fence down {day}")
        seen[day] = {k: _bodies(app, k, since)
                     for k in ("member_digest", "staff_digest", "service_digest",
                               "acknowledgement")}
    with_links, without = seen[0], seen[1]
    jane_text, jane_html = next(b for b in with_links["member_digest"] if pothole in b[0])
    for ref in (pothole, bins):
        assert f"\n      {web}/cases/{ref}\n" in jane_text
        assert f'<a href="{web}/cases/{ref}">{ref}</a>' in jane_html
    assert light not in jane_text  # Tom's
    [(staff_text, staff_html)] = with_links["staff_digest"]
    assert f"{web}/holding" in staff_text and f'<a href="{web}/holding">' in staff_html
    assert f"{web}/cases/Roads" not in staff_text  # a service's line is not a case
    assert f"{web}/cases/#" not in staff_text
    # Service contacts never sign in: no links in theirs.
    assert with_links["service_digest"] and all(
        "/cases/" not in t + h for t, h in with_links["service_digest"])
    [(ack_text, ack_html)] = with_links["acknowledgement"]
    assert f"Or open it on the web: {web}/cases/CW-2026-" in ack_text
    assert f'<a href="{web}/cases/CW-2026-' in ack_html
    # No base_url: no links at all (the service digest is weekly: none on the second day).
    for kind, bodies in without.items():
        assert bodies or kind == "service_digest", kind
        assert all(web not in t + h and "/cases/" not in t + h and "/holding" not in t + h
                   for t, h in bodies), kind


def test_an_update_to_the_member_links_the_case(app: App, council: Council) -> None:
    from mailflow.casework import notify

    _, refs = council
    app.settings.web.base_url = "https://casework.council.example"
    for m in app.settings.members:
        m.immediate_updates = True
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == refs["bins"])).one()
        notify.member(app.context, s, case, "service_reply", "Waste replied: emptied.",
                      clock.now(), email=True)
        s.commit()
    [(text, html)] = _bodies(app, "update", 0)
    link = f"https://casework.council.example/cases/{refs['bins']}"
    assert f"Or open it on the web: {link}\n" in text and f'<a href="{link}">' in html
