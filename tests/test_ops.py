"""What a council's IT team runs: `check --connect` says in one line per part what works
(database, IMAP login, relay login), and `backup --out` makes a copy that restores."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from mailflow import clock, db, tokens
from mailflow.app import App
from mailflow.ops import logs
from tests.conftest import CI, run_cli
from tests.dovecot import Dovecot
from tests.mail import CASEWORK, ROADS, message, outlook_forward, read_sent, wire
from tests.test_imap import dovecot, dovecot_server, with_imap  # noqa: F401 - fixtures
from tests.test_relay_tls import PASSWORD, USER, Sink, cert, start  # noqa: F401 - fixture
from tests.test_serve import free_port
from tests.test_serve import start as serve_start

NOW = "2026-11-20T10:00:00Z"


def lines(out: str, part: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"{part}: "))


def test_connect_before_init_names_the_missing_schema(config_file: Path) -> None:
    done = run_cli(config_file, "check", "--connect")
    assert done.returncode == 1, done.stderr
    assert "config OK" in done.stdout
    assert lines(done.stdout, "database").startswith("database: FAILED:")
    assert "mailflow init" in lines(done.stdout, "database")
    assert lines(done.stdout, "outbound").startswith("outbound: ok: writing to ")
    assert "imap:" not in done.stdout  # no [imap]: not tried


def test_connect_after_init(app: App, config_file: Path) -> None:
    done = run_cli(config_file, "check", "--connect")
    assert done.returncode == 0, done.stdout + done.stderr
    current, head = db.schema_revisions(app.url)
    assert current == head
    assert lines(done.stdout, "database") .startswith("database: ok:")
    assert f"schema {head}" in done.stdout


def test_connect_tries_the_imap_login(app: App, config_file: Path, dovecot: Dovecot  # noqa: F811
                                      ) -> None:
    with_imap(config_file, dovecot)
    done = run_cli(config_file, "check", "--connect")
    assert done.returncode == 0, done.stdout
    assert lines(done.stdout, "imap") == f"imap: ok: logged in as {dovecot.user}@127.0.0.1:" \
                                         f"{dovecot.port}/INBOX"
    with_imap(config_file, dovecot, password="wrong")
    done = run_cli(config_file, "check", "--connect")
    assert done.returncode == 1
    assert lines(done.stdout, "imap").startswith("imap: FAILED: LoginError")
    assert lines(done.stdout, "database").startswith("database: ok")  # the others still tried


@pytest.fixture
def relay(cert: tuple[Path, Path]) -> Iterator[Controller]:  # noqa: F811
    controller = start(Sink(), cert, "starttls")
    yield controller
    controller.stop()


@pytest.mark.parametrize("password, ok", [(PASSWORD, True), ("wrong", False)])
def test_connect_tries_the_relay_login(app: App, config_file: Path, relay: Controller,
                                       cert: tuple[Path, Path], password: str,  # noqa: F811
                                       ok: bool) -> None:
    config_file.write_text(config_file.read_text().replace(
        'transport = "maildir"',
        f'transport = "smtp"\nsmtp_host = "localhost"\nsmtp_port = {relay.port}\n'
        f'tls = "starttls"\nca_file = "{cert[0]}"\nsmtp_user = "{USER}"\n'
        f'smtp_password = "{password}"'))
    done = run_cli(config_file, "check", "--connect")
    line = lines(done.stdout, "outbound")
    if ok:
        assert done.returncode == 0
        assert line == f"outbound: ok: relay localhost:{relay.port} (starttls) as {USER}"
    else:
        assert done.returncode == 1
        assert line.startswith("outbound: FAILED: SMTPAuthenticationError: (535")


def test_backup_of_a_running_sqlite_database_restores(app: App, config_file: Path,
                                                      tmp_path: Path) -> None:
    if not app.url.startswith("sqlite"):
        pytest.skip("the SQLite backup; PostgreSQL's is below")
    done = run_cli(config_file, "ingest", "--now", NOW, stdin=wire(outlook_forward()))
    assert done.returncode == 0, done.stderr
    # A reader holds the database open, as `serve` would: the online backup copes.
    live = sqlite3.connect(app.url.removeprefix("sqlite:///"))
    live.execute("BEGIN")
    live.execute("SELECT count(*) FROM 'case'").fetchone()
    out = tmp_path / "backup.db"
    done = run_cli(config_file, "backup", "--out", str(out))
    live.rollback()
    live.close()
    assert done.returncode == 0, done.stderr
    assert "SQLite online backup" in done.stdout and not list(tmp_path.glob(".*partial"))

    # Restore: the copy in place of the database, and the case is there.
    shutil.copy(out, app.url.removeprefix("sqlite:///"))
    done = run_cli(config_file, "cases", "--json")
    assert [c["reference"] for c in json.loads(done.stdout)] == ["CW-2026-00001"]


def test_backup_of_postgresql_uses_pg_dump(app: App, config_file: Path,
                                           tmp_path: Path) -> None:
    if not app.url.startswith("postgresql"):
        pytest.skip("the PostgreSQL backup")
    if not shutil.which("pg_dump"):
        if CI:
            pytest.fail("CI=true but pg_dump is not installed")
        pytest.skip("pg_dump is not installed")
    clock.pin(clock.parse(NOW))
    out = tmp_path / "backup.dump"
    done = run_cli(config_file, "backup", "--out", str(out))
    assert done.returncode == 0, done.stderr
    listing = subprocess.run(["pg_restore", "--list", str(out)], capture_output=True,
                             text=True, check=True).stdout
    assert " TABLE " in listing and " case " in listing
    # The suite keeps each test's council in its own schema of one database, as a shared
    # service may: the dump holds that schema alone.
    from mailflow.ops.backup import _schemas

    [schema] = _schemas(app.url.replace("postgresql+psycopg://", "postgresql://"))
    tables = [line for line in listing.splitlines() if " TABLE " in line]
    assert tables and all(f" {schema} " in line for line in tables), tables[:3]


def test_backup_into_a_missing_folder_is_one_line(app: App, config_file: Path,
                                                  tmp_path: Path) -> None:
    done = run_cli(config_file, "backup", "--out", str(tmp_path / "nowhere" / "b.db"))
    assert done.returncode == 1
    assert done.stderr.strip().endswith("no such folder") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_json_logs_are_one_object_per_line(app: App, config_file: Path) -> None:
    config_file.write_text(config_file.read_text() + '\n[logging]\nformat = "json"\n')
    port, proc = serve_start(config_file)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    objects = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert objects, out
    assert all({"time", "level", "logger", "event", "message"} <= set(o) for o in objects)
    serving = next(o for o in objects if o["event"].startswith("mailflow serving"))
    assert serving["level"] == "info" and f":{port} " in serving["message"]
    assert any(o["message"] == "mailflow stopped" for o in objects)


def test_a_job_line_names_its_job() -> None:
    record = logging.LogRecord("mailflow.serve", logging.INFO, __file__, 1, "%s: %s",
                               ("chase", {"chased": 2}), None)
    record.job = "chase"
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["job"] == "chase" and line["event"] == "%s: %s"
    assert line["message"] == "chase: {'chased': 2}"


def test_an_unknown_log_format_names_the_field(config_file: Path) -> None:
    config_file.write_text(config_file.read_text() + '\n[logging]\nformat = "xml"\n')
    done = run_cli(config_file, "check")
    assert done.returncode == 78 and "logging.format" in done.stderr


def _reply_by_token(config_file: Path, ref: str, token: str) -> str:
    address = tokens.reply_address(CASEWORK, ref, token)
    done = run_cli(config_file, "ingest", "--json", "--now", NOW,
                   stdin=wire(message(ROADS, address, "about your enquiry", "Filled today.")))
    return json.loads(done.stdout)["disposition"]


def test_a_rotated_secret_still_verifies_until_it_is_removed(app: App,
                                                             config_file: Path) -> None:
    done = run_cli(config_file, "ingest", "--json", "--now", NOW, stdin=wire(outlook_forward()))
    ref = json.loads(done.stdout)["case"]
    run_cli(config_file, "tick", "--now", NOW)
    [request] = [m for m in read_sent(app.settings.maildir) if m["X-Mailflow-Kind"] == "request"]
    token = str(request["Reply-To"]).split("@")[0].rsplit(".", 1)[1]  # as the officer has it
    text = config_file.read_text()
    rotated = text.replace('secret = "test-secret"',
                           'secret = "a-new-secret"\nprevious_secrets = ["test-secret"]')
    assert rotated != text
    config_file.write_text(rotated)
    assert _reply_by_token(config_file, ref, token) == "update"
    config_file.write_text(rotated.replace('previous_secrets = ["test-secret"]', ""))
    assert _reply_by_token(config_file, ref, token) == "holding_pen"


def test_serve_tells_systemd_ready_watchdog_and_stopping(app: App, config_file: Path,
                                                         tmp_path: Path) -> None:
    import os
    import socket
    import sys

    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sd:
        sd.bind(path)
        sd.settimeout(120)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--config",
                                 str(config_file), "serve", "--port", str(free_port())], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            said = [sd.recv(100).decode() for _ in range(3)]
            assert said[0] == "READY=1" or said[:2] == ["WATCHDOG=1", "READY=1"], said
            assert "WATCHDOG=1" in said
            proc.send_signal(signal.SIGTERM)
            while (state := sd.recv(100).decode()) == "WATCHDOG=1":
                pass
            assert state == "STOPPING=1"
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
