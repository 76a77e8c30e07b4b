"""The whole loop over real sockets: `mailflow serve` in its own process, smtplib as the
member's and the officer's mail client, `mailflow tick` and the maildir as the relay."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from mailflow import db, models
from mailflow.app import App
from tests.conftest import ROOT, run_cli
from tests.mail import CASEWORK, JANE, ROADS, outlook_forward, read_sent, reply_to, wire


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How long to wait for another process or thread before calling it stuck: generous, since a
# wait returns as soon as its condition holds, and a loaded machine can be slow to get there.
PATIENCE = 120.0


def wait_for(what: str, check: Callable[[], object], timeout: float = PATIENCE) -> object:
    """Wait for another process to get somewhere; this waits on it, it does not move time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def listening(port: int, proc: subprocess.Popen[bytes]) -> bool:
    """`serve` answers on `port`; if it died, its output says why."""
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    try:
        smtplib.SMTP("127.0.0.1", port, timeout=1).quit()
        return True
    except OSError:
        return False


@pytest.fixture
def server(app: App, config_file: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port, proc = start(config_file)
    yield port, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def start(config_file: Path) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "serve",
         "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def accepting() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_for("serve to listen", accepting)
    return port, proc


def case_json(config: Path, ref: str) -> dict:
    done = run_cli(config, "case", ref, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def references(app: App) -> list[str]:
    """Read the database directly: polling a child process would cost a second a look."""
    with app.session() as s:
        return list(s.exec(select(models.Case.reference)))


def request_state(app: App) -> str | None:
    with app.session() as s:
        return s.exec(select(models.Request.state)).first()


def test_loop_over_smtp(server: tuple[int, subprocess.Popen[bytes]], app: App,
                        config_file: Path) -> None:
    port, proc = server
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        refused = smtp.sendmail(JANE, [CASEWORK], wire(outlook_forward()))
    assert refused == {}
    [ref] = wait_for("the case", lambda: references(app))  # type: ignore[misc]

    done = run_cli(config_file, "tick")
    assert done.returncode == 0, done.stderr
    maildir = app.settings.maildir
    request = next(m for m in read_sent(maildir) if m["X-Mailflow-Kind"] == "request")
    reply = reply_to(request, f"Bob Roads <{ROADS}>", "Pothole filled this morning.")
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.sendmail(ROADS, [str(request["Reply-To"])], wire(reply))

    wait_for("the reply to land", lambda: request_state(app) == "answered")
    data = case_json(config_file, ref)
    assert data["status"] == "answered"
    assert data["member"] == {"name": "Cllr Jane Smith", "email": JANE}
    assert data["ward"] == "Linlithgow"
    assert data["constituent"]["email"] == "mary.jones@example.org"
    assert data["category"] == "Roads"
    assert data["requests"][0]["service"] == "Roads"
    assert data["requests"][0]["contact"] == ROADS
    kinds = [e["kind"] for e in data["timeline"]]
    assert kinds[0] == "opened" and "service_reply" in kinds and "alert" in kinds
    reply_event = next(e for e in data["timeline"] if e["kind"] == "service_reply")
    assert reply_event["from"] == ROADS
    assert reply_event["text"].startswith("Pothole filled this morning.")

    run_cli(config_file, "tick")
    # serve runs on the wall clock: on the day, the scheduled jobs (digests, the monthly
    # report) may send mail too; the case's own mail carries its tag.
    kinds_sent = sorted(m["X-Mailflow-Kind"] for m in read_sent(maildir)
                        if f"[{ref}]" in str(m["Subject"]))
    assert kinds_sent == ["acknowledgement", "alert", "request"]
    assert all(p.suffix == ".eml" for p in maildir.iterdir())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=PATIENCE) == 0


def _rename_spool(url: str, back: bool = False) -> None:
    """Break the store for real: the spool table disappears under the running server."""
    old, new = ("rawmessage_away", "rawmessage") if back else ("rawmessage", "rawmessage_away")
    # The server's own 30 s for the write lock: on a loaded machine 5 s were not always enough.
    eng = create_engine(db.normalise_url(url),
                        connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    with eng.begin() as c:
        c.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
    eng.dispose()


def test_store_failure_answers_451_and_loses_nothing(
        server: tuple[int, subprocess.Popen[bytes]], app: App, config_file: Path) -> None:
    port, _ = server
    raw = wire(outlook_forward())
    _rename_spool(app.url)
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as err:
            smtp.sendmail(JANE, [CASEWORK], raw)
    assert err.value.smtp_code == 451
    _rename_spool(app.url, back=True)
    with smtplib.SMTP("127.0.0.1", port) as smtp:  # the sending MTA retries
        assert smtp.sendmail(JANE, [CASEWORK], raw) == {}
    wait_for("the retried message", lambda: references(app))


def test_ingest_store_failure_exits_75(app: App, config_file: Path) -> None:
    raw = wire(outlook_forward())
    _rename_spool(app.url)
    done = run_cli(config_file, "ingest", "--json", "--now", "2026-11-20T10:00:00Z",
                   stdin=raw)
    assert done.returncode == 75, done.stderr
    assert "try again" in done.stderr
    _rename_spool(app.url, back=True)
    done = run_cli(config_file, "ingest", "--json", "--now", "2026-11-20T10:00:00Z",
                   stdin=raw)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["disposition"] == "case_opened"


def spool_states(app: App) -> dict[str, int]:
    with app.session() as s:
        rows = s.exec(select(models.RawMessage.state)).all()
    return {state: rows.count(state) for state in set(rows)}


def test_sigterm_finishes_the_message_in_hand_and_leaves_the_rest(
        app: App, config_file: Path) -> None:
    n = 150
    port, proc = start(config_file)
    try:
        # Stored at once, processed behind them (the worker waits while mail arrives): when
        # the last 250 comes, most are still queued.
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            for i in range(n):
                assert smtp.sendmail(JANE, [CASEWORK],
                                     wire(outlook_forward(subject=f"Pothole {i}"))) == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    states = spool_states(app)
    print("after SIGTERM:", states)
    # Every message was stored; the one in hand was finished and the queue left `new` in the
    # spool (before, the worker drained the whole queue first); nothing half done.
    assert states.get("new", 0) > 0 and sum(states.values()) == n
    assert set(states) <= {"done", "new"}
    assert len(references(app)) == states.get("done", 0)
    # The next start takes what stayed in the spool.
    _, proc = start(config_file)
    try:
        wait_for("the rest", lambda: spool_states(app) == {"done": n}, timeout=120)
        assert len(references(app)) == n
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
