"""The receivers of `mailflow serve` beyond plain SMTP: LMTP for Postfix's `lmtp:` transport,
the size limit and its 552, and the spool writer's group commit under concurrent senders."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import func, select

from mailflow import models
from mailflow.app import App
from tests.conftest import ROOT
from tests.mail import CASEWORK, JANE, outlook_forward, wire
from tests.test_serve import free_port, references, wait_for


def start(config_file: Path, *extra: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "serve",
         "--port", str(port), *extra], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            smtplib.SMTP("127.0.0.1", port, timeout=1).close()
            return True
        except OSError:
            return False

    wait_for("serve to listen", listening)
    return port, proc


@pytest.fixture
def small_limit(config_file: Path) -> Path:
    text = config_file.read_text()
    config_file.write_text(text.replace("[smtp]\n", "[smtp]\nmax_message_size = 100000\n", 1))
    return config_file


@pytest.fixture
def lmtp(app: App, small_limit: Path) -> Iterator[int]:  # app: the schema exists first
    port, proc = start(small_limit, "--lmtp")
    yield port
    proc.kill()
    proc.wait()


def spool_count(app: App) -> int:
    with app.session() as s:
        return s.exec(select(func.count()).select_from(models.RawMessage)).one()


def test_lmtp_answers_once_per_recipient(lmtp: int, app: App) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp) as client:
        client.ehlo_or_helo_if_needed()  # smtplib's LMTP says LHLO
        client.mail(JANE)
        for rcpt in (CASEWORK, "other@council.example"):
            assert client.rcpt(rcpt)[0] == 250
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(wire(outlook_forward()) + b".\r\n")
        replies = [client.getreply(), client.getreply()]
    assert [code for code, _ in replies] == [250, 250]
    assert all(b"Stored as" in text for _, text in replies)
    wait_for("the case", lambda: references(app))
    assert spool_count(app) == 1  # one message for two recipients, stored once


def test_lmtp_refuses_helo(lmtp: int) -> None:
    with smtplib.SMTP("127.0.0.1", lmtp) as client:
        assert client.helo()[0] == 500


def test_size_limit_is_advertised_and_answered_with_a_clear_552(lmtp: int, app: App) -> None:
    big = wire(outlook_forward(body="x" * 150_000))
    with smtplib.LMTP("127.0.0.1", lmtp) as client:
        client.ehlo_or_helo_if_needed()
        assert client.esmtp_features["size"] == "100000"
        # A client that declares the size is refused at MAIL FROM...
        code, text = client.mail(JANE, [f"SIZE={len(big)}"])
        assert code == 552 and b"the limit is" in text
        client.rset()
        # ...one that does not is refused after the data, with the same words.
        client.mail(JANE)
        client.rcpt(CASEWORK)
        client.putcmd("data")
        client.getreply()
        client.send(big + b".\r\n")
        code, text = client.getreply()
    assert code == 552
    assert b"Message too big for mailflow" in text and b"100000 bytes" in text
    assert spool_count(app) == 0


def test_concurrent_senders_are_each_stored_once(app: App, small_limit: Path) -> None:
    port, proc = start(small_limit)
    messages = [wire(outlook_forward(constituent=f"Resident {i} <r{i}@example.org>",
                                     subject=f"Pothole {i} on Main Street"))
                for i in range(24)]
    answers: list[tuple[int, bytes]] = []

    def send(share: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.ehlo()
            for raw in share + share[:1]:  # the first one twice: a sender's retry
                smtp.mail(JANE)
                smtp.rcpt(CASEWORK)
                answers.append(smtp.data(raw))

    senders = [threading.Thread(target=send, args=(messages[i::4],)) for i in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    try:
        assert [code for code, _ in answers] == [250] * 28
        assert sum(b"already had it" in text for _, text in answers) == 4
        assert spool_count(app) == 24
        wait_for("every case", lambda: len(references(app)) == 24)
    finally:
        proc.kill()
        proc.wait()


def test_group_commit_stores_a_batch_once_and_knows_its_repeats(app: App) -> None:
    from mailflow import clock
    from mailflow.inbound import spool

    first, second = wire(outlook_forward()), wire(outlook_forward(subject="Bins"))
    with app.session() as s:
        spool.store(s, first, source="smtp", now=clock.now())
    batch = [spool.Incoming(r, "lmtp") for r in (first, second, second)]
    with app.session() as s:
        stored = spool.store_many(s, batch, clock.now())
    assert [duplicate for _, duplicate in stored] == [True, False, True]
    assert stored[1][0] == stored[2][0] != stored[0][0]
    assert spool_count(app) == 2
