"""An attack corpus: mail that claims to be a party, or carries a tag, a token, a Message-ID or
Authentication-Results it should not be believed for. Each attack targets a case of its own,
goes through `mailflow ingest --json` and through `serve` over SMTP, and must change nothing:
case status, sharing, consent, deadline, the requests' states, contacts and due dates, and no
mail queued. Controls with real proof show the same harness sees a change when there is one.
"""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from mailflow import clock, db, models, settings, tokens
from mailflow.app import App
from mailflow.inbound import authresults
from mailflow.inbound.parse import parse
from tests.conftest import COUNCIL, ROOT, run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, wire
from tests.test_serve import free_port, listening, wait_for

FRIDAY = clock.parse("2026-11-20T10:00:00Z")
MONDAY = "2026-11-23T10:00:00Z"
MX = "mx.council.example"
STAFF = "member.services@council.example"
TOM = "tom.brown@council.example"
ESCALATION = "head.roads@council.example"
ALIAS = "noreply.roads@council.example"
MALLORY = "mallory@attacker.example"
AUTH = f'\n[authentication]\ntrusted_authserv_ids = ["{MX.upper()}"]\n'


@dataclass
class Target:
    """One case opened for one attack, with what a party of it would know."""

    ref: str
    request_id: int
    request_mid: str  # our request's Message-ID
    ack_mid: str  # the member's acknowledgement's Message-ID
    forward_mid: str  # the member's forward, as filed on the case
    reply_address: str  # the request's signed reply address
    constituent: str


@dataclass
class Attack:
    name: str
    build: Callable[[Target], EmailMessage | bytes]
    disposition: str = "holding_pen"
    rule: str = "not_proven"
    envelope_from: str | None = None
    check: Callable[[Any], None] | None = None  # more to assert of the outcome
    recipients: Callable[[Target], list[str]] = field(default=lambda t: [CASEWORK])


def _tag(t: Target, body: str, sender: str, **h: str) -> EmailMessage:
    return message(sender, CASEWORK, f"RE: Pothole [{t.ref}]", body, **h)


def _reply(t: Target, body: str, sender: str, **h: str) -> EmailMessage:
    return message(sender, CASEWORK, f"RE: Pothole [{t.ref}]", body,
                   In_Reply_To=t.request_mid, References=t.request_mid, **h)


def _to_token(t: Target, body: str, sender: str, address: str | None = None) -> EmailMessage:
    return message(sender, address or t.reply_address, "RE: Pothole", body)


def _guessed(t: Target) -> str:
    return f"casework+{t.ref.lower()}.abcdefghjk@council.example"


def _no_from(msg: EmailMessage) -> EmailMessage:
    del msg["From"]
    return msg


def _ar(value: str) -> dict[str, str]:
    return {"Authentication_Results": value}


def _prepend(msg: EmailMessage, *headers: tuple[str, str]) -> EmailMessage:
    """Headers an MTA adds on top, as the first lines of the message."""
    old = list(msg.items())
    for k in list(msg.keys()):
        del msg[k]
    for k, v in [*headers, *old]:
        msg[k] = v
    return msg


def _trusted(msg: EmailMessage, results: str) -> EmailMessage:
    return _prepend(msg, ("Authentication-Results", f"{MX}; {results}"),
                    ("Received", f"from outside.example by {MX}; Mon, 23 Nov 2026 09:15:00 +0000"))


ANSWER = "Pothole filled this morning."
HOLD = "We are waiting for a contractor. I will respond by 18 December 2026."
DMARC_PASS = "dmarc=pass (p=reject) header.from=council.example"

ATTACKS: list[Attack] = [
    # -- a forged From of each role with the subject tag alone --------------------------------
    Attack("tag: forged contact answers", lambda t: _tag(t, ANSWER, ROADS)),
    Attack("tag: forged contact holding reply", lambda t: _tag(t, HOLD, ROADS)),
    Attack("tag: forged contact #holding", lambda t: _tag(t, "#holding 18/12/2026 waiting", ROADS)),
    Attack("tag: forged contact #redirect",
           lambda t: _tag(t, "#redirect dave.gang@council.example", ROADS)),
    Attack("tag: forged contact alias answers", lambda t: _tag(t, ANSWER, ALIAS)),
    Attack("tag: forged escalation answers", lambda t: _tag(t, ANSWER, ESCALATION)),
    Attack("tag: forged member #close", lambda t: _tag(t, "#close", f"Cllr Jane Smith <{JANE}>")),
    Attack("tag: forged member alias #close", lambda t: _tag(t, "#close", "jane@home.example")),
    Attack("tag: forged member #share #consent",
           lambda t: _tag(t, "#share ward\n#consent yes", JANE)),
    Attack("tag: forged member #deadline", lambda t: _tag(t, "#deadline 24/11/2026", JANE)),
    Attack("tag: forged member #send", lambda t: _tag(t, "#send Dear Mary, all done.", JANE)),
    Attack("tag: forged staff #close", lambda t: _tag(t, "#close", STAFF)),
    Attack("tag: forged staff #priority", lambda t: _tag(t, "#priority high", STAFF)),
    Attack("tag: the constituent's address #close", lambda t: _tag(t, "#close", t.constituent)),
    Attack("tag: stranger", lambda t: _tag(t, ANSWER, MALLORY)),
    Attack("tag: unlisted subdomain officer", lambda t: _tag(t, ANSWER, "x@evil.council.example")),
    Attack("tag and a guessed token",
           lambda t: message(ROADS, _guessed(t), f"RE: Pothole [{t.ref}]", ANSWER),
           recipients=lambda t: [_guessed(t)]),
    # -- envelope-only senders and strict From --------------------------------------------
    Attack("no From, envelope of the contact, with our Message-ID",
           lambda t: _no_from(_reply(t, ANSWER, ROADS)), rule="bad_from", envelope_from=ROADS),
    Attack("no From, envelope of the member, #close",
           lambda t: _no_from(_reply(t, "#close", JANE)), rule="bad_from", envelope_from=JANE),
    Attack("no From, Sender of the member",
           lambda t: _no_from(_reply(t, "#close", JANE, Sender=JANE)), rule="bad_from"),
    Attack("empty From", lambda t: _reply(t, "#close", "<>"), rule="bad_from"),
    Attack("two-address From", lambda t: _reply(
        t, ANSWER, f"Roads <{ROADS}>, Mallory <{MALLORY}>"), rule="bad_from"),
    Attack("two From headers",
           lambda t: f"From: {MALLORY}\r\n".encode() + wire(_reply(t, ANSWER, ROADS)),
           rule="bad_from"),
    Attack("contact's address as display name (unquoted)",
           lambda t: _reply(t, ANSWER, f"{ROADS} <{MALLORY}>"), rule="bad_from"),
    Attack("member's address as quoted display name",
           lambda t: _reply(t, "#close", f'"{JANE}" <{MALLORY}>'), rule="bad_from"),
    Attack("contact's address as encoded display name",
           lambda t: _reply(t, ANSWER, f"=?utf-8?q?{ROADS.replace('@', '=40')}?= <{MALLORY}>"),
           rule="bad_from"),
    Attack("address in a comment", lambda t: _reply(t, ANSWER, f"Bob ({ROADS}) <{MALLORY}>"),
           rule="bad_from"),
    Attack("quoted local part holding the contact",
           lambda t: _reply(t, ANSWER, f'"{ROADS}"@attacker.example'), rule="bad_from"),
    Attack("member's new forward with a two-address From",
           lambda t: outlook_forward(member=f"Jane <{JANE}>, Mallory <{MALLORY}>"),
           rule="bad_from"),
    # -- leaked Message-IDs and tokens ------------------------------------------------------
    Attack("leaked Message-ID, stranger", lambda t: _reply(t, ANSWER, MALLORY), rule="matched"),
    Attack("leaked Message-ID, unlisted subdomain",
           lambda t: _reply(t, ANSWER, "officer@evil.council.example"), rule="matched"),
    Attack("leaked Message-ID, the constituent's address",
           lambda t: _reply(t, "#close", t.constituent), rule="matched"),
    Attack("leaked token, stranger", lambda t: _to_token(t, ANSWER, MALLORY), rule="matched",
           recipients=lambda t: [t.reply_address]),
    Attack("retyped token (case, l/1, o/0), stranger",
           lambda t: _to_token(t, ANSWER, MALLORY, t.reply_address.upper()), rule="matched",
           recipients=lambda t: [t.reply_address.upper()]),
    Attack("guessed token, forged contact",
           lambda t: _to_token(t, ANSWER, ROADS,
                               f"casework+{t.ref.lower()}.0123456789@council.example"),
           rule="bad_token",
           recipients=lambda t: [f"casework+{t.ref.lower()}.0123456789@council.example"]),
    Attack("another request's token is not this one's Message-ID",
           lambda t: message(ROADS, f"casework+{t.ref.lower()}.{'z' * 10}@council.example",
                             "RE: Pothole", "#redirect dave.gang@council.example"),
           rule="bad_token",
           recipients=lambda t: [f"casework+{t.ref.lower()}.{'z' * 10}@council.example"]),
    # -- guesses: the member's thread, the constituent, a quoted reference -------------------
    Attack("stranger in the member's forward thread",
           lambda t: message(MALLORY, CASEWORK, "RE: Pothole", "#close",
                             In_Reply_To=t.forward_mid), rule="candidates"),
    Attack("stranger quoting the reference",
           lambda t: message(MALLORY, CASEWORK, "Pothole", f"About {t.ref}: #close"),
           rule="candidates"),
    Attack("the constituent's address in the thread (unverified)",
           lambda t: message(t.constituent, CASEWORK, "RE: Pothole", "#close\nIt is fixed now",
                             In_Reply_To=t.forward_mid),
           disposition="update", rule="guess", check=lambda e: _unverified(e, "constituent")),
    Attack("forged member in their own thread #close",
           lambda t: message(JANE, CASEWORK, "RE: Pothole", "#close\n#share ward",
                             In_Reply_To=t.forward_mid),
           disposition="update", rule="guess", check=lambda e: _unverified(e, "member")),
    Attack("forged contact quoting the reference",
           lambda t: message(ROADS, CASEWORK, "Pothole", f"{t.ref}: {ANSWER}"),
           disposition="update", rule="guess", check=lambda e: _unverified(e, "contact")),
    # -- Authentication-Results from untrusted hosts, and failures from the trusted one --------
    Attack("dmarc=pass from an untrusted host",
           lambda t: _tag(t, ANSWER, ROADS, **_ar(f"mx.attacker.example; {DMARC_PASS}"))),
    Attack("dmarc=pass with our authserv-id, under the MTA's own header",
           lambda t: _trusted(_tag(t, "#close", JANE, **_ar(f"{MX}; {DMARC_PASS}")),
                              "spf=none smtp.mailfrom=council.example")),
    Attack("trusted dkim=pass for another domain",
           lambda t: _trusted(_tag(t, ANSWER, ROADS), "dkim=pass header.d=attacker.example")),
    Attack("trusted spf=pass for another domain",
           lambda t: _trusted(_tag(t, ANSWER, ROADS), "spf=pass smtp.mailfrom=x@attacker.example")),
    Attack("trusted dmarc=pass for another From",
           lambda t: _trusted(_tag(t, ANSWER, ROADS), "dmarc=pass header.from=attacker.example")),
    Attack("trusted spf=softfail",
           lambda t: _trusted(_tag(t, ANSWER, ROADS),
                              "spf=softfail smtp.mailfrom=council.example")),
    Attack("trusted dmarc=fail with our Message-ID",
           lambda t: _trusted(_reply(t, ANSWER, ROADS), "dmarc=fail header.from=council.example"),
           rule="auth_failed"),
    Attack("trusted dmarc=fail with the token",
           lambda t: _trusted(_to_token(t, "#redirect dave.gang@council.example", ROADS),
                              "spf=none; dmarc=fail (p=none) header.from=council.example"),
           rule="auth_failed", recipients=lambda t: [t.reply_address]),
    Attack("trusted spf=fail, no DMARC, with our Message-ID",
           lambda t: _trusted(_reply(t, "#close", JANE),
                              "spf=fail smtp.mailfrom=jane.smith@council.example"),
           rule="auth_failed"),
    Attack("trusted dkim=fail aligned, upper-case authserv-id",
           lambda t: _prepend(_reply(t, ANSWER, ROADS), (
               "Authentication-Results", "MX.Council.Example 1; dkim=fail header.d=council.example"
           )), rule="auth_failed"),
    Attack("trusted dmarc=fail on the member's new forward",
           lambda t: _trusted(outlook_forward(), "dmarc=fail header.from=council.example"),
           rule="auth_failed"),
    Attack("authenticated stranger with the tag",
           lambda t: _trusted(_tag(t, ANSWER, "someone@gmail.example"),
                              "dmarc=pass header.from=gmail.example"), rule="matched"),
    Attack("authenticated unlisted subdomain with the tag",
           lambda t: _trusted(_tag(t, ANSWER, "x@evil.council.example"),
                              "dmarc=pass header.from=evil.council.example"), rule="matched"),
]

# Real proof: each must change its case (the harness sees a change when there is one).
CONTROLS: list[Attack] = [
    Attack("control: contact replies to our request", lambda t: _reply(t, ANSWER, ROADS),
           disposition="update", rule="matched"),
    Attack("control: contact uses the retyped token",
           lambda t: _to_token(t, ANSWER, ROADS, t.reply_address.upper()),
           disposition="update", rule="matched", recipients=lambda t: [t.reply_address.upper()]),
    Attack("control: tag with trusted dmarc=pass",
           lambda t: _trusted(_tag(t, ANSWER, ROADS), DMARC_PASS),
           disposition="update", rule="matched"),
    Attack("control: tag with trusted aligned spf=pass (parent domain)",
           lambda t: _trusted(_tag(t, ANSWER, ROADS),
                              "spf=pass smtp.mailfrom=bounces@mail.council.example"),
           disposition="update", rule="matched"),
    Attack("control: member replies to the acknowledgement #close",
           lambda t: message(JANE, CASEWORK, f"RE: Pothole [{t.ref}]", "#close",
                             In_Reply_To=t.ack_mid, References=t.ack_mid),
           disposition="update", rule="matched"),
]


def raw_of(a: Attack, t: Target) -> tuple[bytes, str]:
    """(bytes as they cross SMTP, Message-ID)."""
    built = a.build(t)
    raw = built if isinstance(built, bytes) else wire(built)
    return raw, str(parse(raw).message_id)


# serve records no rule; the holding item's kind says which rule held it.
KIND_OF_RULE = {"not_proven": "not_proven", "auth_failed": "auth_failed", "bad_from": "bad_from",
                "matched": "stranger", "bad_token": "unmatched", "candidates": "unmatched"}


def _unverified(events: list[models.Event], role: str) -> None:
    [e] = [e for e in events if e.kind == f"{role}_update"]
    assert e.data and e.data["verified"] is False and e.data["evidence"] == "guess"


# -- the world ---------------------------------------------------------------------------------
def _app(tmp_path: Path, db_url: str, extra: str = AUTH) -> App:
    path = tmp_path / "mailflow.toml"
    path.write_text(COUNCIL.format(db_url=db_url) + extra)
    a = App(settings.load(path))
    db.upgrade(a.url)
    a.start(clock.now())
    return a


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[App]:
    a = _app(tmp_path, db_url)
    yield a
    db.engine(a.url).dispose()


def open_targets(app: App, n: int, now: datetime) -> list[Target]:
    """n cases of Jane's, each with its own constituent and a request to Roads."""
    from mailflow.inbound import pipeline

    out = []
    for i in range(n):
        fwd = outlook_forward(constituent=f"Person {i} <person{i}@example.org>",
                              subject=f"Pothole number {i} on Street {i}",
                              body=f"Pothole {i} outside number {i}; street {i} is unsafe.")
        raw_id, _ = pipeline.receive(app, fwd.as_bytes(), source="ingest", now=now)
        o = pipeline.process(app, raw_id, now)
        assert o and o.disposition == "case_opened", o
        with app.session() as s:
            case = s.exec(select(models.Case).where(models.Case.reference == o.case)).one()
            req = s.exec(select(models.Request).where(models.Request.case_id == case.id)).one()
            mails = s.exec(select(models.Outbox).where(models.Outbox.case_id == case.id)).all()
            mid = {m.kind: m.message_id for m in mails}
            raw = s.get(models.RawMessage, raw_id)
            assert raw
            out.append(Target(
                case.reference, req.id or 0, mid["request"], mid["acknowledgement"],
                raw.message_id or "",
                tokens.reply_address(CASEWORK, case.reference, req.token),
                f"person{i}@example.org"))
    return out


def state(app: App, ref: str) -> dict[str, Any]:
    """Everything an attack must not change on a case (digests are the jobs', not ours)."""
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        reqs = s.exec(select(models.Request).where(models.Request.case_id == c.id)
                      .order_by(col(models.Request.id))).all()
        mails = s.exec(select(models.Outbox.kind).where(models.Outbox.case_id == c.id)).all()
        return {
            "case": {k: getattr(c, k) for k in (
                "status", "share", "consent", "priority", "deadline", "closed_at", "open_until",
                "category", "enquiry_type", "merged_into_id", "member_id", "constituent_id")},
            "requests": [{k: getattr(r, k) for k in (
                "state", "contact", "service_id", "due", "target_due", "proposed_due",
                "answered_at", "answered_by")} for r in reqs],
            "mail": sorted(k for k in mails if not k.endswith("_digest")),
        }


def events_of(app: App, raw_id: int) -> list[models.Event]:
    with app.session() as s:
        return list(s.exec(select(models.Event).where(models.Event.raw_message_id == raw_id)))


def holding_of(app: App, raw_id: int) -> models.Holding | None:
    with app.session() as s:
        return s.exec(select(models.Holding).where(models.Holding.raw_message_id == raw_id)).first()


def case_count(app: App) -> int:
    with app.session() as s:
        return len(s.exec(select(models.Case.id)).all())


@dataclass
class Seen:
    name: str
    disposition: str
    rule: str | None
    raw_id: int
    changed: bool


def judge(app: App, attacks: list[Attack], targets: list[Target],
          before: list[dict[str, Any]], results: list[Seen], *, control: bool = False) -> int:
    """Assert each outcome; returns how many attacks changed their case."""
    wrong = 0
    for a, t, b, r in zip(attacks, targets, before, results, strict=True):
        after = state(app, t.ref)
        r.changed = after != b
        assert r.disposition == a.disposition, (a.name, r)
        assert r.rule in (None, a.rule), (a.name, r)  # None: over SMTP (see KIND_OF_RULE)
        if a.disposition == "holding_pen":
            h = holding_of(app, r.raw_id)
            assert h is not None and h.kind == KIND_OF_RULE[a.rule], (a.name, h)
            if a.rule == "not_proven":
                assert h.kind == "not_proven" and h.reason.startswith("sender not proven"), h
                assert h.candidates and h.candidates[0]["case"] == t.ref, h
            if a.rule == "auth_failed":
                assert h.reason.startswith("authentication failed: "), h
        if a.check:
            a.check(events_of(app, r.raw_id))
        if control:
            assert r.changed, (a.name, b, after)
        elif r.changed:
            wrong += 1
            print(f"WRONGLY ACCEPTED: {a.name}: {b} -> {after}")
    return wrong


def _record(path: str, n: int, wrong: int, how: str) -> None:
    line = f"{wrong} wrongly accepted state changes out of {n} attacks ({how})"
    print(line)
    (Path(tempfile.gettempdir()) / path).write_text(line + "\n")


# -- through `mailflow ingest --json` ----------------------------------------------------------
def test_attacks_through_ingest(world: App, tmp_path: Path) -> None:
    app = world
    everything = ATTACKS + CONTROLS
    targets = open_targets(app, len(everything), FRIDAY)
    before = [state(app, t.ref) for t in targets]
    cases_before = case_count(app)
    files = []
    for i, (a, t) in enumerate(zip(everything, targets, strict=True)):
        raw, _ = raw_of(a, t)
        if a.envelope_from:  # an MTA's pipe writes the envelope sender as Return-Path
            raw = f"Return-Path: <{a.envelope_from}>\r\n".encode() + raw
        f = tmp_path / f"attack{i:03d}.eml"
        f.write_bytes(raw)
        files.append(str(f))
    done = run_cli(app.settings.path, "ingest", "--json", "--now", MONDAY, *files)
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    with app.session() as s:
        ids = {r.message_id: r.id for r in s.exec(select(models.RawMessage))}
    seen = [Seen(a.name, o["disposition"], o["rule"], ids[o["message_id"]], False)
            for a, o in zip(everything, out, strict=True)]
    n = len(ATTACKS)
    wrong = judge(app, ATTACKS, targets[:n], before[:n], seen[:n])
    judge(app, CONTROLS, targets[n:], before[n:], seen[n:], control=True)
    assert case_count(app) == cases_before  # no attack opened a case
    _record("mailflow-attacks-ingest.txt", n, wrong, f"ingest, {app.url.split(':')[0]}")
    assert wrong == 0


# -- through `serve` over SMTP -----------------------------------------------------------------
def _serve(app: App) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(app.settings.path), "serve",
         "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    wait_for("serve to listen", lambda: listening(port, proc))
    return port, proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_attacks_over_smtp(world: App) -> None:
    app = world
    everything = ATTACKS + CONTROLS
    now = clock.now()  # serve runs on the wall clock: open the cases on it too
    targets = open_targets(app, len(everything), now)
    before = [state(app, t.ref) for t in targets]
    cases_before = case_count(app)
    port, proc = _serve(app)
    try:
        mids = []
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for a, t in zip(everything, targets, strict=True):
                raw, mid = raw_of(a, t)
                mids.append(mid)
                assert smtp.sendmail(a.envelope_from or MALLORY, a.recipients(t), raw) == {}

        def processed() -> dict[str, models.RawMessage] | None:
            with app.session() as s:
                rows = {r.message_id: r for r in s.exec(
                    select(models.RawMessage).where(col(models.RawMessage.message_id).in_(mids)))}
            done = len(rows) == len(mids) and all(r.disposition for r in rows.values())
            return rows if done else None

        rows: dict[str, models.RawMessage] = wait_for("the attacks", processed, 120)  # type: ignore[assignment]
    finally:
        _stop(proc)
    seen = [Seen(a.name, rows[mid].disposition or "", None, rows[mid].id or 0, False)
            for a, mid in zip(everything, mids, strict=True)]
    n = len(ATTACKS)
    wrong = judge(app, ATTACKS, targets[:n], before[:n], seen[:n])
    judge(app, CONTROLS, targets[n:], before[n:], seen[n:], control=True)
    assert case_count(app) == cases_before
    _record("mailflow-attacks-smtp.txt", n, wrong, f"serve over SMTP, {app.url.split(':')[0]}")
    assert wrong == 0


# -- the doors: allowed_clients, strict trusted domains, the forward's constituent -------------
def test_allowed_clients_refuse_other_hosts(tmp_path: Path, db_url: str) -> None:
    app = _app(tmp_path, db_url, AUTH + "")
    text = app.settings.path.read_text().replace(
        "port = 8025", 'port = 8025\nallowed_clients = ["10.0.0.0/8", "192.0.2.1"]')
    app.settings.path.write_text(text)
    port, proc = _serve(App(settings.load(app.settings.path)))
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            code, answer = smtp.mail(JANE)
            assert code == 550 and answer.startswith(b"5.7.1"), answer
    finally:
        _stop(proc)
    allowed = text.replace('["10.0.0.0/8", "192.0.2.1"]', '["10.0.0.0/8", "127.0.0.1"]')
    app.settings.path.write_text(allowed)
    port, proc = _serve(App(settings.load(app.settings.path)))
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            assert smtp.sendmail(JANE, [CASEWORK], wire(outlook_forward())) == {}
    finally:
        _stop(proc)
    db.engine(app.url).dispose()


def test_allowed_clients_config() -> None:
    s = settings.Smtp(allowed_clients=["127.0.0.1", "10.0.0.0/8", "::1"])
    assert s.allows("127.0.0.1") and s.allows("10.2.3.4") and s.allows("::1")
    assert s.allows("::ffff:10.1.1.1")
    assert not s.allows("192.0.2.1") and not s.allows(None) and not s.allows("nonsense")
    assert settings.Smtp().allows("203.0.113.9")  # empty: everyone
    with pytest.raises(ValueError, match="not an IP address"):
        settings.Smtp(allowed_clients=["mx.council.example"])


def test_trusted_domains_match_exactly(world: App) -> None:
    s = world.settings
    assert s.is_trusted("roads@council.example")
    assert not s.is_trusted("x@evil.council.example")
    assert not s.is_trusted("x@council.example.evil.example")
    assert not s.is_trusted("x@notcouncil.example")
    listed = settings.Council(name="c", casework_address="c@council.example",
                              trusted_domains=["council.example", "*.Council.Example"])
    s.council = listed
    assert s.is_trusted("x@mail.council.example") and s.is_trusted("x@council.example")
    assert not s.is_trusted("x@evilcouncil.example")


def test_forward_constituent_is_the_real_address(world: App) -> None:
    from mailflow.inbound import pipeline

    for sender in ("Mary Jones (mary@gmail.example) <mary.jones@example.org>",
                   '"mary@gmail.example" <mary.jones@example.org>',
                   "mary@gmail.example <mary.jones@example.org>"):
        fwd = outlook_forward(constituent=sender)
        raw_id, _ = pipeline.receive(world, fwd.as_bytes(), source="ingest", now=FRIDAY)
        o = pipeline.process(world, raw_id, FRIDAY)
        assert o and o.disposition == "case_opened"
        with world.session() as s:
            c = s.exec(select(models.Case).where(models.Case.reference == o.case)).one()
            person = s.get(models.Constituent, c.constituent_id)
            assert person and person.email == "mary.jones@example.org", sender
            assert person.name in (None, "Mary Jones"), person.name
    # attached as message/rfc822: the header's real address, never its display name
    inner = message('"mary@gmail.example" <mary.jones@example.org>', JANE, "Pothole",
                    "A pothole again.")
    outer = message(JANE, CASEWORK, "FW: Pothole", "Please look at this.")
    outer.add_attachment(inner)
    raw_id, _ = pipeline.receive(world, outer.as_bytes(), source="ingest", now=FRIDAY)
    o = pipeline.process(world, raw_id, FRIDAY)
    assert o and o.disposition == "case_opened", o
    with world.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == o.case)).one()
        person = s.get(models.Constituent, c.constituent_id)
        assert person and person.email == "mary.jones@example.org"


# -- the Authentication-Results reader ---------------------------------------------------------
def _verdict(*headers: str, frm: str = "roads@council.example") -> authresults.Verdict:
    raw = "".join(f"{h}\r\n" for h in headers) + f"From: {frm}\r\nSubject: x\r\n\r\nbody\r\n"
    p = parse(raw.encode())
    return authresults.check(p.msg.raw_items(), [MX], p.sender)


def test_authentication_results() -> None:
    ar = "Authentication-Results: "
    assert _verdict(f"{ar}{MX}; {DMARC_PASS}").passed
    assert _verdict(f"{ar}{MX.upper()} 1; dmarc=pass header.from=council.example").passed
    # comments, quoted strings, folding and versions
    assert _verdict(f'{ar}{MX} (our MX);\r\n dkim=pass (2048-bit key) header.d="council.example"'
                    ' header.s=sel (sig) ; spf=none').passed
    assert _verdict(f"{ar}{MX}; spf=pass smtp.mailfrom=<bounce@mail.council.example>").passed
    assert not _verdict(f"{ar}{MX}; dkim=pass header.d=example").passed  # no alignment with TLDs
    assert _verdict(f"{ar}{MX}; none").state == "none"
    assert _verdict(f"{ar}other.example; {DMARC_PASS}").state == "none"
    # DMARC decides where it was evaluated; a fail is a fail
    assert _verdict(f"{ar}{MX}; dkim=fail header.d=council.example; spf=pass "
                    "smtp.mailfrom=council.example; dmarc=pass header.from=council.example").passed
    assert _verdict(f"{ar}{MX}; dkim=pass header.d=council.example; "
                    "dmarc=fail header.from=council.example").failed
    assert _verdict(f"{ar}{MX}; dkim=fail header.d=council.example; spf=pass "
                    "smtp.mailfrom=council.example").failed
    # the topmost trusted result counts: a forgery under the MTA's own header is ignored
    assert _verdict(f"{ar}{MX}; dmarc=fail header.from=council.example",
                    f"{ar}{MX}; {DMARC_PASS}").failed
    assert _verdict("Received: from a by b", f"{ar}{MX}; dmarc=fail header.from=council.example",
                    "Received: from attacker by relay", f"{ar}{MX}; {DMARC_PASS}").failed
    assert _verdict(f"{ar}{MX}; spf=none", "Received: from attacker by relay",
                    f"{ar}{MX}; {DMARC_PASS}").state == "none"
    # Microsoft 365 without an authserv-id: nothing to trust it by
    h = authresults.parse("spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=council.example; "
                          "dkim=pass (signature was verified) header.d=council.example;"
                          "dmarc=pass action=none header.from=council.example;compauth=pass")
    assert h.authserv_id == "" and [r.method for r in h.results][:3] == ["spf", "dkim", "dmarc"]
    h = authresults.parse("spf.protection.outlook.com; dmarc=fail action=quarantine "
                          "header.from=council.example; compauth=fail reason=000")
    assert h.authserv_id == "spf.protection.outlook.com" and h.results[0].result == "fail"
    assert authresults.parse("((;;)) ;;; =").results == ()
