"""The IMAP receiver against a real Dovecot (tests/dovecot.py) and a real database: mail in a
mailbox becomes cases and leaves the folder only after it is stored; a restart or a dropped
connection neither loses nor repeats a message."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import func, select

from mailflow import clock, db, models, oauth2, settings
from mailflow.app import App
from mailflow.inbound import imap, pipeline
from mailflow.jobs import tick
from tests.conftest import CI, ROOT, run_cli
from tests.dovecot import PASSWORD, USER, Dovecot, free_port
from tests.mail import ROADS, outlook_forward, read_sent, reply_to, wire
from tests.rules import cli
from tests.test_serve import PATIENCE, wait_for

FRIDAY = clock.parse("2026-11-20T10:00:00Z")


def start_dovecot(extra: str = "") -> Dovecot:
    try:
        return Dovecot(extra)
    except FileNotFoundError as e:
        if CI:
            pytest.fail(f"CI=true but {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[Dovecot]:
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """A new, empty mailbox for each test, on the module's server."""
    return dovecot_server.mailbox(next(_mailboxes))


_mailboxes = itertools.count(1)


def with_imap(config_file: Path, server: Dovecot | None, **settings_: object) -> App:
    """The test council with an [imap] section pointing at the test Dovecot."""
    values: dict[str, object] = {"host": "127.0.0.1", "port": server.port if server else 1,
                                 "tls": "none", "username": server.user if server else USER,
                                 "password": PASSWORD, **settings_}
    lines = [f"{k} = {_toml(v)}" for k, v in values.items() if v is not None]
    text_ = config_file.read_text().split("\n[imap]\n")[0]
    config_file.write_text(text_ + "\n[imap]\n" + "\n".join(lines) + "\n")
    return App(settings.load(config_file))


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def forwards(n: int) -> list[bytes]:
    return [wire(outlook_forward(constituent=f"Resident {i} <resident{i}@example.org>",
                                 subject=f"Pothole number {i} on Main Street"))
            for i in range(n)]


def processing(app: App) -> imap.Receiver:
    """A receiver that takes each message through the pipeline at once (as `poll` does)."""
    return imap.Receiver(app, lambda raw_id: pipeline.process(app, raw_id, clock.now()))


def count(app: App, model: type) -> int:
    with app.session() as s:
        return s.exec(select(func.count()).select_from(model)).one()


def test_forward_becomes_a_case_and_the_reply_an_update(app: App, config_file: Path,
                                                         dovecot: Dovecot) -> None:
    clock.pin(FRIDAY)
    app = with_imap(config_file, dovecot)
    dovecot.append(wire(outlook_forward()))
    assert processing(app).once() == imap.Counts(stored=1)
    with app.session() as s:
        case = s.exec(select(models.Case)).one()
        raw = s.get(models.RawMessage, case.source_message_id)
    assert case.reference == "CW-2026-00001" and case.category == "Roads"
    assert raw is not None and raw.source == "imap" and raw.state == "done"
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 1
    assert dovecot.count("Failed") == 0  # created, empty

    tick.deliver_outbox(app, FRIDAY)
    request = next(m for m in read_sent(app.settings.maildir)
                   if m["X-Mailflow-Kind"] == "request")
    dovecot.append(wire(reply_to(request, f"Bob Roads <{ROADS}>", "Filled this morning.")))
    assert processing(app).once() == imap.Counts(stored=1)
    with app.session() as s:
        assert s.exec(select(models.Request.state)).one() == "answered"
        assert s.exec(select(models.RawMessage.disposition)
                      .order_by(models.RawMessage.id)).all() == ["case_opened", "update"]
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 2


def test_the_last_uid_is_remembered_so_nothing_is_fetched_twice(
        app: App, config_file: Path, dovecot: Dovecot) -> None:
    """Without a processed folder messages stay where they are, flagged; the UID state (not
    the spool's duplicate check) keeps them from being fetched again."""
    app = with_imap(config_file, dovecot, processed_folder="")
    dovecot.append(*forwards(3))
    assert imap.Receiver(app).once() == imap.Counts(stored=3)
    assert imap.Receiver(app).once() == imap.Counts()  # not even a duplicate: not fetched
    dovecot.append(*forwards(5)[3:])
    assert imap.Receiver(app).once() == imap.Counts(stored=2)
    assert dovecot.count("INBOX") == 5 and dovecot.count("Processed") == 0
    with dovecot.client() as c:
        c.select_folder("INBOX", readonly=True)
        flags = c.get_flags(c.search("ALL"))
        assert all({b"\\Seen", b"$Mailflow"} <= set(f) for f in flags.values())
    with app.session() as s:
        state = s.exec(select(models.ImapState)).one()
    assert (state.host, state.username, state.folder, state.last_uid) == (
        "127.0.0.1", dovecot.user, "INBOX", 5)


def _break_the_spool_after(app: App, stored: int) -> None:
    """A real fault: the database refuses the next store once `stored` messages are in."""
    with db.engine(app.url).begin() as c:
        if db.is_postgres(db.engine(app.url)):
            c.execute(text(f"""CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN
                IF (SELECT count(*) FROM rawmessage) >= {stored} THEN
                  RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"""))
            c.execute(text("CREATE TRIGGER full_disk BEFORE INSERT ON rawmessage "
                           "FOR EACH ROW EXECUTE FUNCTION full_disk()"))
        else:
            c.execute(text(f"""CREATE TRIGGER full_disk BEFORE INSERT ON rawmessage
                WHEN (SELECT count(*) FROM rawmessage) >= {stored}
                BEGIN SELECT RAISE(ABORT, 'disk full'); END"""))


def _mend_the_spool(app: App) -> None:
    with db.engine(app.url).begin() as c:
        c.execute(text("DROP TRIGGER full_disk" + (
            " ON rawmessage" if db.is_postgres(db.engine(app.url)) else "")))


def test_a_restart_mid_batch_loses_and_repeats_nothing(app: App, config_file: Path,
                                                        dovecot: Dovecot) -> None:
    clock.pin(FRIDAY)
    app = with_imap(config_file, dovecot)
    dovecot.append(*forwards(10))
    _break_the_spool_after(app, 3)
    # SQLite reports a trigger's RAISE as a constraint failure, which the spool first takes
    # for a second delivery racing it; either way the store fails.
    with pytest.raises(Exception, match="disk full|No row was found"):
        processing(app).once()
    # Three stored and committed, none moved: a store failed before the batch's move.
    assert count(app, models.RawMessage) == 3
    assert dovecot.count("INBOX") == 10 and dovecot.count("Processed") == 0

    _mend_the_spool(app)
    assert processing(app).once() == imap.Counts(stored=7, duplicates=3)
    assert pipeline.drain(app, FRIDAY) == 3  # the three stored before the fault
    assert count(app, models.RawMessage) == 10 and count(app, models.Case) == 10
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 10
    with app.session() as s:
        assert set(s.exec(select(models.RawMessage.state))) == {"done"}
    assert sorted(dovecot.messages("Processed")) == sorted(forwards_in(app))


def forwards_in(app: App) -> list[bytes]:
    with app.session() as s:
        return list(s.exec(select(models.RawMessage.raw)))


def test_a_killed_poller_loses_and_repeats_nothing(app: App, config_file: Path,
                                                   dovecot: Dovecot) -> None:
    """`mailflow poll` killed with SIGKILL part-way through 40 messages, then `poll --once`."""
    with_imap(config_file, dovecot)
    dovecot.append(*forwards(40))
    proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--config",
                             str(config_file), "poll"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for("some messages stored", lambda: count(app, models.RawMessage) >= 5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = run_cli(config_file, "poll", "--once", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["failed"] == 0
    assert count(app, models.RawMessage) == 40 and count(app, models.Case) == 40
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 40


def test_a_dropped_connection_is_survived(app: App, config_file: Path, dovecot: Dovecot,
                                          caplog: pytest.LogCaptureFixture) -> None:
    app = with_imap(config_file, dovecot)
    waits: list[float] = []
    receiver = imap.Receiver(app, lambda raw_id: pipeline.process(app, raw_id, clock.now()),
                             sleep=waits.append)
    caplog.set_level(logging.INFO, logger="mailflow.inbound.imap")
    receiver.start()
    try:
        dovecot.append(forwards(1)[0])  # noticed while idling
        wait_for("the first case", lambda: count(app, models.Case) == 1)
        wait_for("the receiver to idle again", lambda: len(dovecot.doveadm(
            "who", "-1").stdout.strip().splitlines()) > 1)
        dovecot.kick()
        wait_for("a reconnection", lambda: waits)
        dovecot.append(forwards(2)[1])
        wait_for("the second case", lambda: count(app, models.Case) == 2)
    finally:
        receiver.stop()
    assert receiver.thread is not None and not receiver.thread.is_alive()
    assert waits == [1.0]  # one reconnection, at once: the server was there
    assert any("the server closed the connection: Server shutting down." in r.message
               and "connecting again in 1 s" in r.message for r in caplog.records)
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 2


def test_reconnects_back_off_and_say_why(app: App, config_file: Path, dovecot: Dovecot,
                                         tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    """XOAUTH2 with a token from token_command: refused until the token is right, with a
    doubling, capped wait in between; the wait starts again at 1 s after a success."""
    token = tmp_path / "token"
    token.write_text("expired-token\n")
    app = with_imap(config_file, dovecot, password=None, idle=False,
                    oauth2={"token_command": f"cat {token}"})
    dovecot.append(forwards(1)[0])
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # moves no clock: the receiver only counts the waits
        waits.append(seconds)
        if len(waits) == 10:
            token.write_text(PASSWORD + "\n")  # the mailbox's token, as Dovecot checks it
        if len(waits) == 11:
            receiver.stopping.set()

    receiver = imap.Receiver(app, sleep=sleep)
    caplog.set_level(logging.WARNING, logger="mailflow.inbound.imap")
    receiver.run()  # in this thread: back after the 11th wait
    # Doubling and capped; the 11th wait is the poll after the success (60 s, IDLE is off).
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 60]
    assert any("LoginError" in r.message and "AUTHENTICATIONFAILED" in r.message
               for r in caplog.records)
    assert count(app, models.RawMessage) == 1  # logged in at the 11th attempt
    assert dovecot.count("INBOX") == 0


def test_uidvalidity_change_reads_the_folder_again(app: App, config_file: Path,
                                                   dovecot: Dovecot,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The folder is rebuilt (deleted and made again): its UIDs start again from 1, below the
    last UID remembered, and the spool recognises the message it already has."""
    app = with_imap(config_file, dovecot, folder="Casework")
    first, second, third = forwards(3)
    dovecot.append(first, second, third, folder="Casework")
    assert imap.Receiver(app).once() == imap.Counts(stored=3)
    with dovecot.client() as c:
        c.delete_folder("Casework")
    dovecot.append(first, forwards(4)[3], folder="Casework")  # UIDs 1 and 2, new UIDVALIDITY
    caplog.set_level(logging.WARNING, logger="mailflow.inbound.imap")
    assert imap.Receiver(app).once() == imap.Counts(stored=1, duplicates=1)
    assert any("UIDVALIDITY changed" in r.message for r in caplog.records)
    assert count(app, models.RawMessage) == 4
    assert dovecot.count("Casework") == 0 and dovecot.count("Processed") == 5


def test_an_oversized_message_goes_to_the_failed_folder(app: App, config_file: Path,
                                                        dovecot: Dovecot) -> None:
    app = with_imap(config_file, dovecot, max_message_size=20_000)
    big = wire(outlook_forward(subject="Photos of the flooding", body="x" * 30_000))
    small_before, small_after = forwards(2)
    dovecot.append(small_before, big, small_after)
    assert imap.Receiver(app).once() == imap.Counts(stored=2, failed=1)
    assert dovecot.messages("Failed") == [big]
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 2
    with app.session() as s:
        held = s.exec(select(models.Holding)).one()
    assert held.kind == "failed" and held.subject == "FW: Photos of the flooding"
    assert held.sender == "jane.smith@council.example"
    assert "over the limit of 20000 bytes" in held.reason and "Failed" in held.reason
    assert imap.Receiver(app).once() == imap.Counts()


def test_a_server_without_move_or_idle(app: App, config_file: Path) -> None:
    """COPY, \\Deleted and UID EXPUNGE instead of MOVE; polling instead of IDLE."""
    server = start_dovecot("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS")
    try:
        app = with_imap(config_file, server, poll_seconds=5)
        server.append(*forwards(2))
        with server.client() as c:
            assert not c.has_capability("MOVE") and not c.has_capability("IDLE")
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            receiver.stopping.set()

        receiver = imap.Receiver(app, sleep=sleep)
        receiver.run()
        assert waits == [5]  # the poll interval, not a reconnection
        assert count(app, models.RawMessage) == 2
        assert server.count("INBOX") == 0 and server.count("Processed") == 2
    finally:
        server.stop()


def test_poll_once(app: App, config_file: Path, dovecot: Dovecot) -> None:
    app = with_imap(config_file, dovecot)
    dovecot.append(*forwards(2))
    # `poll` has no --now: the command runs in this process, whose clock is pinned (the year
    # of the references).
    clock.pin(FRIDAY)
    done = cli(app, "poll", "--once", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"stored": 2, "duplicates": 0, "failed": 0,
                                       "processed": 2}
    done = cli(app, "poll", "--once")
    assert (done.returncode, done.stdout.strip()) == (
        0, "stored 0, duplicates 0, failed 0, processed 0")
    cases = json.loads(run_cli(config_file, "cases", "--json").stdout)
    assert [c["reference"] for c in cases] == ["CW-2026-00001", "CW-2026-00002"]


def test_poll_says_what_is_wrong(app: App, config_file: Path, dovecot: Dovecot) -> None:
    done = run_cli(config_file, "poll", "--once")
    assert done.returncode == 2 and "IMAP is not configured" in done.stderr
    with_imap(config_file, dovecot, password="wrong")
    done = run_cli(config_file, "poll", "--once")
    assert done.returncode == 1
    assert f"IMAP {dovecot.user}@127.0.0.1:{dovecot.port}: LoginError" in done.stderr
    port = free_port()
    with_imap(config_file, None, port=port)
    done = run_cli(config_file, "poll", "--once")
    assert done.returncode == 75
    assert f"IMAP {USER}@127.0.0.1:{port}: ConnectionRefusedError" in done.stderr


def test_serve_fetches_from_imap_and_stops_on_sigterm(app: App, config_file: Path,
                                                      dovecot: Dovecot) -> None:
    with_imap(config_file, dovecot)
    proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--config",
                             str(config_file), "serve", "--port", str(free_port())],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        dovecot.append(forwards(1)[0])
        wait_for("the case", lambda: count(app, models.Case) == 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert f"IMAP {dovecot.user}@127.0.0.1:{dovecot.port}/INBOX" in output
    assert dovecot.count("Processed") == 1


@pytest.mark.parametrize(("imap_", "problem"), [
    ({"host": "mail.example"}, "imap: username is missing"),
    ({"host": "mail.example", "username": "u"}, "imap: needs a password"),
    ({"host": "m", "username": "u", "password": "p", "tls": "yes"}, "imap.tls: Input should be"),
    ({"host": "m", "username": "u", "oauth2": {}}, "imap.oauth2: needs token_command"),
    ({"host": "m", "username": "u", "password": "p", "oauth2": {"token_command": "t"}},
     "imap: use password or [imap.oauth2], not both"),
    ({"host": "m", "username": "u", "password": "p", "idle_seconds": 3600},
     "imap.idle_seconds: Input should be less than or equal to 1740"),
    ({"host": "m", "username": "u", "password": "p", "folders": "x"},
     "imap.folders: is not a known setting"),
])
def test_imap_config_errors(imap_: dict, problem: str) -> None:
    data = {"council": {"name": "C", "casework_address": "casework@c.example"},
            "wards": [{"name": "W"}],
            "members": [{"name": "M", "email": "m@c.example", "ward": "W"}], "imap": imap_}
    with pytest.raises(settings.ConfigError) as err:
        settings.from_dict(data, Path("mailflow.toml"))
    assert any(p.startswith(problem) for p in err.value.problems), err.value.problems
    assert str(err.value).startswith("mailflow.toml: ")


def test_imap_config_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"council": {"name": "C", "casework_address": "casework@c.example"},
            "wards": [{"name": "W"}],
            "members": [{"name": "M", "email": "m@c.example", "ward": "W"}]}
    assert settings.from_dict(data, Path("x.toml")).imap.host is None  # IMAP off
    monkeypatch.setenv("MAILFLOW_IMAP_PASSWORD", "from-env")
    cfg = settings.from_dict({**data, "imap": {"host": "m", "username": "u"}},
                             Path("x.toml")).imap
    assert (cfg.port_number, cfg.tls, cfg.secret, cfg.folder, cfg.processed_folder,
            cfg.failed_folder, cfg.idle) == (993, "ssl", "from-env", "INBOX", "Processed",
                                              "Failed", True)
    assert settings.from_dict({**data, "imap": {"host": "m", "username": "u", "tls": "starttls"}},
                              Path("x.toml")).imap.port_number == 143


def test_msal_missing_is_a_clear_error() -> None:
    pytest.importorskip("imapclient")
    try:
        import msal  # noqa: F401
        pytest.skip("msal is installed")
    except ImportError:
        pass
    tokens = oauth2.Tokens(settings.ImapOAuth2(tenant_id="t", client_id="c", client_secret="s"))
    with pytest.raises(oauth2.TokenError, match=r"pip install 'mailflow\[m365\]'"):
        tokens.get()


def test_bench_imap_runs() -> None:
    """scripts/bench_imap.py on a small mailbox, so it cannot rot."""
    if not shutil.which("dovecot"):
        if CI:
            pytest.fail("CI=true but dovecot is not installed")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
    done = subprocess.run([sys.executable, "scripts/bench_imap.py", "--messages", "30",
                           "--rounds", "1"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["messages"] == 30 and result["store_msgs_per_s"] > 0
    assert "case_opened" in done.stdout
