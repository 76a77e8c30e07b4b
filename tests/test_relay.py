"""Delivered once, or told: a relay of our own (aiosmtpd) that refuses chosen recipients,
answers 4xx, waits, hangs or disappears, with the clock moved. Each recipient gets each mail
at most once (beyond the one mail in flight when `tick` is killed), failures reach `failed`
and staff, and a relay that never answers costs a tick seconds, not minutes."""

from __future__ import annotations

import asyncio
import email
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import col, select

from mailflow import clock, models, settings
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs import tick
from mailflow.outbound import outbox
from tests.conftest import ROOT, run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outgoing, outlook_forward

NOW = clock.parse("2026-11-22T10:00:00Z")  # a Sunday: no digests due, only the case mail


class Relay:
    """Refuses the addresses in `refuse` at RCPT with their answer (550 or 451); the RCPT of
    `stall` and the `hold_nth` DATA wait until the test sets `release`."""

    def __init__(self) -> None:
        self.refuse: dict[str, str] = {}
        self.hold_nth: int | None = None
        self.stall: str | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.datas = 0
        self.got: list[tuple[str, str]] = []  # (Message-ID, recipient) for each copy taken

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address == self.stall:  # answers only when the test releases it: too slow
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.datas += 1
        mid = str(email.message_from_bytes(envelope.content)["Message-ID"])
        # Taken before the answer, as a relay that queues the mail and then answers slowly:
        # the worst case for a sender that dies before it hears the 250.
        self.got.extend((mid, r) for r in envelope.rcpt_tos)
        if self.datas == self.hold_nth:
            self.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 OK"

    def copies(self) -> Counter[tuple[str, str]]:
        return Counter(self.got)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


def relay_app(config_file: Path, port: int, command_timeout: float = 1) -> App:
    text = config_file.read_text().replace(
        'transport = "maildir"',
        f'transport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\n'
        f'connect_timeout = 1\ncommand_timeout = {command_timeout}')
    config_file.write_text(text)
    return App(settings.load(config_file))


@pytest.fixture
def relay(port: int) -> Iterator[tuple[Relay, Controller]]:
    r = Relay()
    controller = Controller(r, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield r, controller
    finally:
        r.release.set()
        if not controller.loop.is_closed():  # unless the test stopped it (the relay vanished)
            controller.stop()


def open_case(app: App) -> None:
    """A member's forward: queues the acknowledgement to Jane and the request to Roads."""
    raw_id, _ = pipeline.receive(app, outlook_forward().as_bytes(), source="ingest", now=NOW)
    pipeline.process(app, raw_id, NOW)


def queue(app: App, to: list[str], now: datetime = NOW) -> int:
    with app.session() as s:
        row = outbox.queue(s, outgoing(message(CASEWORK, ", ".join(to), "Notice", "Hello.")),
                           kind="update", now=now, limit=None)
        s.commit()
        assert row.id is not None
        return row.id


def mails(app: App) -> dict[str, models.Outbox]:
    """Each outbox row by kind (update rows by their first recipient)."""
    with app.session() as s:
        rows = s.exec(select(models.Outbox).order_by(col(models.Outbox.id))).all()
    return {r.kind if r.kind != "update" else r.recipients[0]: r for r in rows}


def outcome(row: models.Outbox) -> dict[str, str]:
    return {r["address"]: r["state"] for r in row.outcomes()}


def told_staff(app: App) -> tuple[list[models.Holding], list[models.Notification],
                                  list[models.Request]]:
    with app.session() as s:
        return (list(s.exec(select(models.Holding).where(models.Holding.kind == "undeliverable"))),
                list(s.exec(select(models.Notification)
                            .where(models.Notification.kind == "undeliverable"))),
                list(s.exec(select(models.Request))))


def test_a_refused_recipient_fails_alone_and_the_others_get_the_mail_once(
        app: App, config_file: Path, port: int, relay: tuple[Relay, Controller]) -> None:
    r, _ = relay
    app = relay_app(config_file, port)
    open_case(app)
    queue(app, ["a@example.org", "b@example.org", "c@example.org", "d@example.org"])
    r.refuse = {ROADS: "550 5.1.1 <roads.enquiries@council.example>: no such user",
                "c@example.org": "550 5.1.1 no such user",
                "d@example.org": "451 4.2.0 mailbox busy, try later"}

    first = tick.deliver_outbox(app, NOW)
    assert first == {"sent": 1, "retrying": 1, "failed": 1, "deferred": 0}
    m = mails(app)
    assert m["request"].state == "failed"  # its only recipient refused: failed at once
    assert "550 5.1.1" in m["request"].outcomes()[0]["answer"]
    assert outcome(m["a@example.org"]) == {"a@example.org": "sent", "b@example.org": "sent",
                                           "c@example.org": "failed", "d@example.org": "pending"}

    r.refuse.pop("d@example.org")  # the busy mailbox recovers
    for minutes in (1, 2, 30, 120, 600):  # the 550s are never tried again
        tick.deliver_outbox(app, NOW + timedelta(minutes=minutes))
    m = mails(app)
    assert m["a@example.org"].state == "sent" and m["acknowledgement"].state == "sent"
    assert outcome(m["a@example.org"])["d@example.org"] == "sent"
    copies = r.copies()
    assert max(copies.values()) == 1
    assert sorted(rcpt for _, rcpt in copies) == sorted(
        [JANE, "a@example.org", "b@example.org", "d@example.org"])

    holding, notices, requests = told_staff(app)
    assert [h.case_id for h in holding] == [m["request"].case_id]  # only the request's failure
    assert "550 5.1.1" in holding[0].reason and ROADS in holding[0].reason
    assert [n.audience for n in notices] == ["staff"]
    assert [q.state for q in requests] == ["undeliverable"]
    assert "550 5.1.1" in (requests[0].undeliverable_reason or "")  # why, for `case --json`

    shown = run_cli(config_file, "outbox", "--json", "--state", "failed")
    assert shown.returncode == 0, shown.stderr
    [failed] = json.loads(shown.stdout)
    assert failed["kind"] == "request" and failed["state"] == "failed"
    assert failed["recipients_status"] == [
        {"address": ROADS, "state": "failed",
         "answer": "550 5.1.1 <roads.enquiries@council.example>: no such user"}]


def test_temporary_failures_retry_until_give_up_hours_then_fail_and_tell_staff(
        app: App, config_file: Path, port: int, relay: tuple[Relay, Controller]) -> None:
    r, controller = relay
    app = relay_app(config_file, port)
    open_case(app)
    r.refuse = {ROADS: "451 4.3.0 try again later", JANE: "452 4.2.2 mailbox full"}
    assert tick.deliver_outbox(app, NOW)["retrying"] == 2
    assert tick.deliver_outbox(app, NOW + timedelta(hours=1))["retrying"] == 2
    controller.stop()  # the relay disappears for good
    deadline = NOW + timedelta(hours=48)
    assert tick.deliver_outbox(app, deadline - timedelta(minutes=1))["retrying"] == 2
    m = mails(app)
    assert {x.next_attempt_at for x in m.values()} == {deadline}  # one last try, on time
    assert {x.attempts for x in m.values()} == {3}
    assert tick.deliver_outbox(app, deadline - timedelta(seconds=1))["retrying"] == 0

    assert tick.deliver_outbox(app, deadline) == {"sent": 0, "retrying": 0, "failed": 2,
                                                  "deferred": 0}
    m = mails(app)
    assert {x.state for x in m.values()} == {"failed"}
    answer = m["request"].outcomes()[0]["answer"]
    assert answer.startswith("gave up after 48 h: ConnectionRefusedError")
    holding, notices, requests = told_staff(app)
    assert len(holding) == 2 and len(notices) == 2  # the request and the acknowledgement
    assert [q.state for q in requests] == ["undeliverable"]
    assert "gave up after 48 h" in (requests[0].undeliverable_reason or "")
    assert requests[0].undeliverable_at == deadline
    assert tick.deliver_outbox(app, deadline + timedelta(hours=5))["failed"] == 0
    assert r.got == []
    shown = run_cli(config_file, "outbox", "--state", "failed")
    assert shown.returncode == 0 and "gave up after 48 h" in shown.stdout


def test_the_breaker_stops_a_flush_and_nothing_is_lost_or_doubled(
        app: App, config_file: Path, port: int) -> None:
    app = relay_app(config_file, port)
    ids = [queue(app, [f"p{n}@example.org"]) for n in range(5)]
    assert tick.deliver_outbox(app, NOW) == {"sent": 0, "retrying": 3, "failed": 0,
                                             "deferred": 2}
    with app.session() as s:
        assert [s.get(models.Outbox, i).attempts for i in ids] == [1, 1, 1, 0, 0]  # type: ignore[union-attr]
    r = Relay()
    controller = Controller(r, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert tick.deliver_outbox(app, NOW + timedelta(seconds=10))["sent"] == 2
        assert tick.deliver_outbox(app, NOW + timedelta(minutes=1))["sent"] == 3
        assert tick.deliver_outbox(app, NOW + timedelta(hours=2))["sent"] == 0
    finally:
        controller.stop()
    assert sorted(rcpt for _, rcpt in r.got) == [f"p{n}@example.org" for n in range(5)]


def test_a_relay_too_slow_to_answer_is_tried_again_and_sends_once(
        app: App, config_file: Path, port: int, relay: tuple[Relay, Controller]) -> None:
    r, _ = relay
    app = relay_app(config_file, port)  # command_timeout = 1
    queue(app, ["slow@example.org"])
    r.stall = "slow@example.org"
    assert tick.deliver_outbox(app, NOW)["retrying"] == 1
    assert "SMTPServerDisconnected" in (mails(app)["slow@example.org"].last_error or "")
    r.stall = None
    r.release.set()
    assert tick.deliver_outbox(app, NOW + timedelta(minutes=1))["sent"] == 1
    assert [rcpt for _, rcpt in r.got] == ["slow@example.org"]


def test_a_relay_that_never_answers_costs_a_tick_three_connect_timeouts(
        app: App, config_file: Path, port: int) -> None:
    # The greeting is part of connecting (connect_timeout = 1), whatever command_timeout is.
    app = relay_app(config_file, port, command_timeout=60)
    for n in range(8):
        queue(app, [f"h{n}@example.org"])
    with socket.socket() as hung:  # listens, so connections open, but never says a word
        hung.bind(("127.0.0.1", port))
        hung.listen(16)
        started = time.monotonic()
        result = tick.deliver_outbox(app, NOW)
        took = time.monotonic() - started
    assert result == {"sent": 0, "retrying": 3, "failed": 0, "deferred": 5}
    assert took < 8  # 3 timeouts of 1 s; before: 30 s for each of the 8 mails (242 s)
    assert "SMTPServerDisconnected" in (mails(app)["h0@example.org"].last_error or "")


def test_kill_9_during_tick_repeats_at_most_the_mail_in_flight(
        app: App, config_file: Path, port: int, relay: tuple[Relay, Controller]) -> None:
    r, _ = relay
    app = relay_app(config_file, port, command_timeout=30)
    open_case(app)
    queue(app, ["third@example.org"])
    r.hold_nth = 2  # the second mail's DATA arrives, and the relay says nothing yet
    proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--config", str(config_file),
                             "tick", "--now", NOW.isoformat()], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert r.arrived.wait(30), "the relay never received the second mail"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r.release.set()

    states = sorted(x.state for x in mails(app).values())
    assert states == ["queued", "sending", "sent"]
    in_flight = next(x for x in mails(app).values() if x.state == "sending")
    assert tick.deliver_outbox(app, NOW + timedelta(minutes=5))["sent"] == 1  # claim still held
    assert tick.deliver_outbox(app, NOW + timedelta(minutes=11))["sent"] == 1  # stale: resent
    assert {x.state for x in mails(app).values()} == {"sent"}

    copies = r.copies()  # the relay had taken the mail in flight: that one is repeated
    assert len(copies) == 3 and sum(copies.values()) == 4
    assert [mid for (mid, _), n in copies.items() if n > 1] == [in_flight.message_id]
