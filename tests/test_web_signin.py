"""Sign-in by email link over real HTTP (issue 15): the same answer for any address, the link
mailed through the outbox, only hashes stored, the GET never signs in, single use, expiry,
superseded links, the 6-digit code, rate limits in the database, the cookie's attributes,
idle and absolute timeouts, sign-out everywhere, CSRF on every POST, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from mailflow import clock, models
from mailflow.app import App
from mailflow.web import auth
from tests.webclient import Client, served, sign_in, sign_in_mail

JANE, ALIAS = "jane.smith@council.example", "jane@home.example"
STAFF = "member.services@council.example"
T0 = clock.parse("2026-12-01T10:00:00Z")


@pytest.fixture
def base(app: App) -> Iterator[str]:
    clock.pin(T0)
    with served(app) as address:
        yield address


def mails(app: App) -> list[models.Outbox]:
    with app.session() as s:
        return list(s.exec(select(models.Outbox).where(models.Outbox.kind == "sign_in")))


def audit_rows(app: App, what: str) -> list[models.AuditEntry]:
    with app.session() as s:
        return list(s.exec(select(models.AuditEntry).where(models.AuditEntry.what == what)
                           .order_by(col(models.AuditEntry.id))))


def test_any_address_gets_the_same_answer_and_only_parties_get_mail(app: App, base: str
                                                                     ) -> None:
    answers = {}
    for address in (JANE, ALIAS, STAFF, "stranger@example.org", "tom.brown@COUNCIL.example"):
        c = Client(base)
        c.get("/login")
        r = c.post("/login", {"address": address})
        assert r.status == 200
        answers[address] = r.body.replace(address, "ADDRESS")
    assert len(set(answers.values())) == 1
    sent = sorted(a for m in mails(app) for a in m.recipients)
    assert sent == sorted([JANE, ALIAS, STAFF, "tom.brown@council.example"])
    token, code = sign_in_mail(app, JANE)
    with app.session() as s:  # only hashes are kept
        rows = s.exec(select(models.SignInLink)).all()
        assert all(token not in (r.token_hash, r.code_hash) for r in rows)
        assert any(r.token_hash == auth.digest(token) for r in rows)
        assert all(code not in r.code_hash for r in rows)
    assert len(token) >= 43  # 32 random bytes


def test_get_of_the_link_never_signs_in_and_the_post_does_once(app: App, base: str) -> None:
    c = Client(base)
    c.get("/login")
    c.post("/login", {"address": ALIAS})
    token, _ = sign_in_mail(app, ALIAS)
    scanner = Client(base)
    for _ in range(3):  # a mail scanner opening the link, again and again
        page = scanner.get(f"/login/link?token={token}")
        assert page.status == 200 and "Sign in</button>" in page.body
        assert not any(k.endswith("mailflow") for k in scanner.jar)
    assert c.get("/cases").status == 303
    c.get(f"/login/link?token={token}")
    r = c.post("/login/link", {"token": token})
    assert r.status == 303 and r.location == "/cases"
    cookie = next(line for line in r.cookies() if line.startswith("__Host-mailflow="))
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attrs)
    assert not any(a.startswith("domain") for a in attrs)
    page = c.get("/cases")
    assert page.status == 200 and f"Signed in as {JANE}" in page.body  # the alias is Jane
    with app.session() as s:  # the session is a new random token, stored as its hash
        ws = s.exec(select(models.WebSession)).one()
        assert ws.actor == JANE and ws.token_hash == auth.digest(c.jar["__Host-mailflow"])
    # Used once: the same link again is refused, in any browser.
    other = Client(base)
    other.get(f"/login/link?token={token}")
    assert other.post("/login/link", {"token": token}).status == 400
    assert [(a.actor, a.action, a.via) for a in audit_rows(app, "sign_in")] == [
        (JANE, "change", "web"), ("unknown", "refused", "web")]


def test_expiry_and_a_newer_link_supersede(app: App, base: str) -> None:
    c = Client(base)
    c.get("/login")
    c.post("/login", {"address": JANE})
    old, _ = sign_in_mail(app, JANE)
    c.post("/login", {"address": JANE})
    new, _ = sign_in_mail(app, JANE)
    assert old != new
    c.get(f"/login/link?token={old}")
    assert c.post("/login/link", {"token": old}).status == 400  # superseded
    clock.pin(T0 + auth.LINK_LIFE)  # exactly 15 minutes later: expired
    c.get(f"/login/link?token={new}")
    assert c.post("/login/link", {"token": new}).status == 400
    clock.pin(T0 + timedelta(minutes=16))
    c.post("/login", {"address": JANE})
    fresh, _ = sign_in_mail(app, JANE)
    clock.pin(T0 + timedelta(minutes=30, seconds=59))  # 14:59 after it was sent
    c.get(f"/login/link?token={fresh}")
    assert c.post("/login/link", {"token": fresh}).status == 303


def test_the_code_signs_in_on_another_device_and_wrong_codes_spend_it(app: App, base: str
                                                                     ) -> None:
    c = Client(base)
    c.get("/login")
    c.post("/login", {"address": STAFF})
    token, code = sign_in_mail(app, STAFF)
    phone = Client(base)
    phone.get("/login")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert phone.post("/login/code", {"address": STAFF, "code": wrong}).status == 400
    r = phone.post("/login/code", {"address": STAFF, "code": code})
    assert r.status == 303
    assert phone.get("/cases").status == 200
    c.get(f"/login/link?token={token}")  # the link and its code are one: used
    assert c.post("/login/link", {"token": token}).status == 400
    # Five wrong codes spend the link: the right one no longer works.
    c.post("/login", {"address": STAFF})
    _, code = sign_in_mail(app, STAFF)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(auth.CODE_TRIES):
        assert c.post("/login/code", {"address": STAFF, "code": wrong}).status == 400
    assert c.post("/login/code", {"address": STAFF, "code": code}).status == 400


def test_rate_limits_per_address_and_per_client(app: App, base: str) -> None:
    c = Client(base)
    c.get("/login")
    for _ in range(3):
        assert c.post("/login", {"address": JANE}).status == 200
    assert c.post("/login", {"address": JANE}).status == 429
    assert c.post("/login", {"address": "stranger@example.org"}).status == 200
    assert len(mails(app)) == 3
    clock.pin(T0 + timedelta(minutes=15, seconds=1))
    assert c.post("/login", {"address": JANE}).status == 200
    # 20 per client address per hour, whatever the addresses (5 so far from 127.0.0.1).
    for i in range(15):
        assert c.post("/login", {"address": f"x{i}@example.org"}).status == 200
    assert c.post("/login", {"address": STAFF}).status == 429
    clock.pin(T0 + timedelta(hours=1, seconds=1))
    assert c.post("/login", {"address": STAFF}).status == 200


def test_every_post_needs_our_origin_and_the_form_token(app: App, base: str) -> None:
    c = Client(base)
    c.get("/login")
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert c.post("/login", {"address": JANE}, same_site=False, **cross).status == 403
    assert c.post("/login", {"address": JANE}, same_site=False,
                  Origin="https://evil.example").status == 403
    assert c.request("POST", "/login", {"address": JANE},
                     {"Sec-Fetch-Site": "same-origin"}).status == 403  # no token
    assert c.post("/login", {"address": JANE, "csrf": "0" * 64}).status == 403
    fresh = Client(base)  # a token without the cookie it is bound to
    assert fresh.request("POST", "/login", {"address": JANE, "csrf": c.csrf},
                         {"Sec-Fetch-Site": "same-origin"}).status == 403
    assert mails(app) == []
    assert sign_in(c, app, JANE).status == 303
    page = c.get("/cases")
    # Signed in, the token is bound to the session: the pre-sign-in one no longer works.
    signed_in_token = c.csrf
    c.csrf = auth.csrf_token(app.settings, "not-the-session")
    assert c.post("/logout", {}).status == 403
    c.csrf = signed_in_token
    assert c.post("/logout", {}, same_site=False, **cross).status == 403
    assert c.get("/cases").status == 200 and page.status == 200


def test_idle_and_absolute_timeouts(app: App, base: str) -> None:
    c = Client(base)
    sign_in(c, app, JANE)
    for hours in (7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98, 105, 112, 119,
                  126, 133, 140, 147, 154, 161, 167):
        clock.pin(T0 + timedelta(hours=hours, minutes=59))
        assert c.get("/cases").status == 200, hours  # used within 8 hours: still in
    clock.pin(T0 + auth.ABSOLUTE)
    assert c.get("/cases").status == 303  # 7 days after sign-in, however busy
    idle = Client(base)
    sign_in(idle, app, STAFF)
    clock.pin(T0 + auth.ABSOLUTE + auth.IDLE - timedelta(seconds=1))
    assert idle.get("/cases").status == 200
    clock.pin(T0 + auth.ABSOLUTE + auth.IDLE * 2)
    assert idle.get("/cases").status == 303


def test_sign_out_and_sign_out_everywhere(app: App, base: str) -> None:
    laptop, phone, tablet = Client(base), Client(base), Client(base)
    for c in (laptop, phone, tablet):
        clock.pin(clock.now() + timedelta(minutes=6))  # past the address's rate limit
        assert sign_in(c, app, JANE).status == 303
    staff = Client(base)
    sign_in(staff, app, STAFF)
    laptop.get("/cases")
    assert laptop.post("/logout", {}).status == 303
    assert laptop.get("/cases").status == 303 and phone.get("/cases").status == 200
    phone.get("/cases")
    assert phone.post("/logout", {"everywhere": "yes"}).status == 303
    assert phone.get("/cases").status == 303 and tablet.get("/cases").status == 303
    assert staff.get("/cases").status == 200  # someone else's sessions are untouched
    outs = audit_rows(app, "sign_out")
    assert [(a.actor, a.detail) for a in outs] == [
        (JANE, {"everywhere": False, "sessions": 1}),
        (JANE, {"everywhere": True, "sessions": 2})]
    with app.session() as s:
        live = s.exec(select(func.count()).select_from(models.WebSession)
                      .where(col(models.WebSession.ended_at).is_(None))).one()
    assert live == 1


def test_insecure_cookies_for_local_http(app: App) -> None:
    app.settings.web.insecure_cookies = True
    clock.pin(T0)
    with served(app) as base:
        c = Client(base)
        r = sign_in(c, app, JANE)
    line = next(x for x in r.cookies() if x.startswith("mailflow="))
    assert "secure" not in line.lower() and "httponly" in line.lower()


def test_signing_in_again_ends_the_browsers_old_session(app: App, base: str) -> None:
    c = Client(base)
    sign_in(c, app, JANE)
    old = c.jar["__Host-mailflow"]
    sign_in(c, app, STAFF)
    assert c.jar["__Host-mailflow"] != old
    assert f"Signed in as {STAFF}" in c.get("/cases").body
    stolen = Client(base, jar={"__Host-mailflow": old})
    assert stolen.get("/cases").status == 303


def test_two_nodes_using_one_link_at_once_sign_in_once(app: App, base: str) -> None:
    """Both nodes have read the link as unused; the conditional update lets one through."""
    c = Client(base)
    c.get("/login")
    c.post("/login", {"address": JANE})
    token, _ = sign_in_mail(app, JANE)
    rows = []
    for _ in range(2):  # each node reads the link: unused
        with app.session() as s:
            row = s.exec(select(models.SignInLink)
                         .where(models.SignInLink.token_hash == auth.digest(token))).one()
            assert row.used_at is None
            s.expunge(row)
            rows.append(row)
    outcomes = []
    for row in rows:  # then each spends what it read
        with app.session() as s:
            outcomes.append(auth._use(s, row, clock.now()))
            s.commit()
    assert outcomes == [True, False]
