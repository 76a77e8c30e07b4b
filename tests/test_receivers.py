"""The receivers of `mailflow serve` beyond plain SMTP: LMTP for Postfix's `lmtp:` transport,
the refusal at RCPT of addresses mailflow does not serve, the size limit and its 552, and the
spool writer's group commit under concurrent senders."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from mailflow import models
from mailflow.app import App
from tests.conftest import ROOT
from tests.mail import CASEWORK, JANE, outlook_forward, wire
from tests.test_serve import free_port, listening, references, wait_for


def start(config_file: Path, *extra: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "serve",
         "--port", str(port), *extra], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)

    wait_for("serve to listen", lambda: listening(port, proc))
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


def lmtp_send(port: int, recipients: list[str], raw: bytes) -> tuple[list[int], list[int]]:
    """(the RCPT answers, the DATA answers): LMTP answers DATA once per accepted recipient."""
    with smtplib.LMTP("127.0.0.1", port) as client:
        client.ehlo_or_helo_if_needed()  # smtplib's LMTP says LHLO
        client.mail(JANE)
        rcpt = [client.rcpt(r)[0] for r in recipients]
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(raw + b".\r\n")
        data = [client.getreply()[0] for code in rcpt if code == 250]
    return rcpt, data


def test_lmtp_answers_once_per_recipient(lmtp: int, app: App) -> None:
    plus = "Casework+Roads@Council.Example"  # a plus-address, in any case, is ours too
    rcpt, data = lmtp_send(lmtp, [CASEWORK, "other@council.example", plus],
                           wire(outlook_forward()))
    assert rcpt == [250, 550, 250]  # RFC 2033: the refused one leaves the others
    assert data == [250, 250]
    wait_for("the case", lambda: references(app))
    with app.session() as s:
        [row] = s.exec(select(models.RawMessage)).all()  # two recipients, stored once
    assert row.envelope_to == [CASEWORK, plus.lower()]


def test_lmtp_with_no_recipient_of_ours_stores_nothing(lmtp: int, app: App) -> None:
    with smtplib.LMTP("127.0.0.1", lmtp) as client:
        client.ehlo_or_helo_if_needed()
        client.mail(JANE)
        code, text = client.rcpt("casework@elsewhere.example")
        assert (code, text[:5]) == (550, b"5.1.1")
        assert client.rcpt("caseworker@council.example")[0] == 550
        client.putcmd("data")
        assert client.getreply()[0] == 503  # no DATA without an accepted recipient
    assert spool_count(app) == 0


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


def test_smtp_refuses_an_address_it_does_not_serve(app: App, config_file: Path) -> None:
    port, proc = start(config_file)
    raw = wire(outlook_forward())
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
                smtp.sendmail(JANE, ["other@council.example"], raw)
            [(code, text)] = err.value.recipients.values()
            assert (code, text[:5]) == (550, b"5.1.1")
            refused = smtp.sendmail(JANE, ["other@council.example", CASEWORK,
                                           "casework@council.example.evil.example"], raw)
            assert {r: code for r, (code, _) in refused.items()} == {
                "other@council.example": 550, "casework@council.example.evil.example": 550}
            assert smtp.sendmail(JANE, ["casework+x@council.example"], raw) == {}
        wait_for("the case", lambda: references(app))
        with app.session() as s:
            rows = s.exec(select(models.RawMessage)).all()
        assert [r.envelope_to for r in rows] == [[CASEWORK]]  # stored once; the retry is known
    finally:
        proc.kill()
        proc.wait()


def test_one_store_for_a_batch_knows_its_repeats(app: App) -> None:
    from mailflow import clock, db
    from mailflow.inbound import spool

    first, second = wire(outlook_forward()), wire(outlook_forward(subject="Bins"))
    with db.session(app.url) as s:
        [(first_id, duplicate)] = spool.store(s, [spool.Incoming(first, "smtp")], clock.now())
    assert not duplicate
    batch = [spool.Incoming(r, "lmtp") for r in (first, second, second)]
    with db.session(app.url) as s:
        stored = spool.store(s, batch, clock.now())
    assert stored[0] == (first_id, True)
    assert [duplicate for _, duplicate in stored] == [True, False, True]
    assert stored[1][0] == stored[2][0] != first_id
    assert spool_count(app) == 2


def test_a_store_racing_another_receiver_returns_the_first_row(app: App) -> None:
    """Two receivers store the same message at the same moment: the one that loses the insert
    recognises the duplicate instead of failing (which would answer 451 for stored mail)."""
    from mailflow import clock, db
    from mailflow.inbound import spool

    if not db.is_postgres(db.engine(app.url)):
        pytest.skip("SQLite takes the write lock at BEGIN: two stores never overlap")
    raw, now = wire(outlook_forward()), clock.now()
    results: list[tuple[int, bool]] = []

    def second() -> None:
        with db.session(app.url) as s:
            results.extend(spool.store(s, [spool.Incoming(raw, "smtp")], now))

    with db.session(app.url) as first, db.engine(app.url).connect() as watch:
        message_id, digest = spool.identify(raw)
        known, _ = spool._insert_new(first, [(message_id, digest, spool.Incoming(raw, "imap"))],
                                     now)  # inserted, not yet committed
        pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def blocked() -> int:
            try:  # pg_stat_activity is read once per transaction: a new one for each look
                return watch.execute(text("SELECT count(*) FROM pg_stat_activity "
                                          "WHERE :pid = ANY(pg_blocking_pids(pid))"),
                                     {"pid": pid}).scalar_one()
            finally:
                watch.rollback()

        thread = threading.Thread(target=second)
        thread.start()
        wait_for("the second store to wait on the first", blocked)
        first.commit()
        thread.join()
    assert results == [(known[digest], True)]
    assert spool_count(app) == 1
