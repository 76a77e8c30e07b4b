"""Outbound delivery through a real SMTP relay (aiosmtpd), including an outage: mail waits in
the outbox with backoff and goes once the relay is back. Nothing is lost or sent twice."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from mailflow import clock, models, settings
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs import tick
from tests.mail import JANE, ROADS, outlook_forward

NOW = clock.parse("2026-11-22T10:00:00Z")  # a Sunday: no digests due, only the case mail


class Relay:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def relay_app(config_file: Path, app: App) -> Iterator[tuple[App, int]]:
    port = free_port()
    text = config_file.read_text().replace(
        'transport = "maildir"', f'transport = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}')
    config_file.write_text(text)
    yield App(settings.load(config_file)), port


def test_relay_outage_delays_and_loses_nothing(relay_app: tuple[App, int]) -> None:
    app, port = relay_app
    raw_id, _ = pipeline.receive(app, outlook_forward().as_bytes(), source="ingest", now=NOW)
    pipeline.process(app, raw_id, NOW)

    down = tick.tick(app, NOW)["deliver_outbox"]  # nothing listens on the port yet
    assert down == {"sent": 0, "retrying": 2, "failed": 0, "deferred": 0}
    with app.session() as s:
        rows = s.exec(select(models.Outbox)).all()
        assert {r.state for r in rows} == {"queued"}
        assert all(r.attempts == 1 and r.last_error for r in rows)
        assert all(r.next_attempt_at == NOW + timedelta(minutes=1) for r in rows)

    relay = Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert tick.tick(app, NOW + timedelta(seconds=30))["deliver_outbox"]["sent"] == 0
        assert tick.tick(app, NOW + timedelta(minutes=1))["deliver_outbox"]["sent"] == 2
        assert tick.tick(app, NOW + timedelta(minutes=5))["deliver_outbox"]["sent"] == 0
    finally:
        controller.stop()

    assert sorted(rcpts[0] for _, rcpts, _ in relay.received) == [JANE, ROADS]
    assert {sender for sender, _, _ in relay.received} == {"casework@council.example"}
    request = next(email.message_from_bytes(raw, policy=policy.default)
                   for _, rcpts, raw in relay.received if rcpts == [ROADS])
    assert request["X-Mailflow-Kind"] == "request"
    with app.session() as s:
        assert {r.state for r in s.exec(select(models.Outbox))} == {"sent"}


def test_backoff_grows_and_is_capped() -> None:
    from mailflow.outbound.outbox import backoff

    assert [backoff(n).total_seconds() / 60 for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff(30) == timedelta(hours=1)
