"""The CLI keeps its word (issue 13, item 9): every exit code in the README's table, asserted
through the real command in a child process, on SQLite and PostgreSQL; expected errors are
one line on standard error, never a traceback. The table is read from the README, so a code
added there without a test here fails `test_every_code_in_the_readme_is_tested`."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailflow.app import App
from mailflow.cli import main
from tests.conftest import COUNCIL, ROOT, run_cli
from tests.mail import CASEWORK, message, outlook_forward

NOW = ("--now", "2026-11-20T10:00:00Z")
TESTED: set[int] = set()


def exit_code(code: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        TESTED.add(code)
        return test
    return mark


def mf(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line (`cli.main`) in this process: a child process per command costs
    seconds on a loaded machine; those that need one (stdin, serve, argparse) use `run_cli`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--config", str(config), *args])
        except SystemExit as e:
            code = int(e.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def one_line(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Exit `code`, one line on stderr naming `words`, no traceback."""
    assert done.returncode == code, (done.args, done.returncode, done.stderr)
    err = done.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert all(w in err for w in words), err
    return err


def readme_codes() -> set[int]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| code | when |"):].split("\n\n", 1)[0]
    return {int(c) for c in re.findall(r"^\| `(\d+)` \|", table, re.M)}


def with_config(config_file: Path, old: str, new: str) -> Path:
    text = config_file.read_text()
    assert old in text
    config_file.write_text(text.replace(old, new, 1))
    return config_file


# -- 0 -----------------------------------------------------------------------------------------
@exit_code(0)
def test_0_done(app: App, config_file: Path) -> None:
    for args in (["check"], ["init"], ["cases"], ["tick", *NOW]):
        assert mf(config_file, *args).returncode == 0, args


# -- 1 -----------------------------------------------------------------------------------------
@exit_code(1)
def test_1_not_found(app: App, config_file: Path) -> None:
    one_line(mf(config_file, "case", "CW-2026-00099"), 1, "no case CW-2026-00099")
    # an unknown id is not found, not "not held" (2)
    one_line(mf(config_file, "outbox", "--release", "999"), 1, "no outbox message 999")
    one_line(mf(config_file, "holding", "--retry", "999", *NOW), 1, "999")


@exit_code(1)
def test_1_a_database_never_initialised_says_run_init(config_file: Path, db_url: str) -> None:
    """SQLite: the file is not there (and asking does not create it); PostgreSQL: an empty
    schema. Every reading command, and `tick`, says what to do."""
    for args in (["cases"], ["case", "CW-2026-00001"], ["search", "pothole"], ["holding"],
                 ["outbox"], ["report"], ["audit"], ["tick", *NOW]):
        one_line(mf(config_file, *args), 1, "run `mailflow init`")
    if db_url.startswith("sqlite"):
        assert not (config_file.parent / "mailflow.db").exists()
    assert mf(config_file, "init").returncode == 0
    assert mf(config_file, "cases").returncode == 0


@exit_code(1)
def test_1_a_database_in_a_folder_that_does_not_exist(tmp_path: Path) -> None:
    config = tmp_path / "mailflow.toml"
    config.write_text(COUNCIL.format(db_url=f"sqlite:///{tmp_path}/nowhere/mailflow.db"))
    err = one_line(mf(config, "cases"), 1, "does not exist", "run `mailflow init`")
    assert "nowhere/mailflow.db" in err
    assert not (tmp_path / "nowhere").exists()  # a read creates nothing
    assert mf(config, "init").returncode == 0  # init makes the folder
    assert mf(config, "cases").returncode == 0


@exit_code(1)
def test_1_a_folder_that_cannot_be_written(app: App, config_file: Path, tmp_path: Path) -> None:
    """A file where a folder should be fails even for root, whom permission bits do not stop."""
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "report.html"
    one_line(mf(config_file, "report", "--period", "2026-11", "--html", str(out)), 1,
             "report.html")
    with_config(config_file, 'maildir = "sent"', 'maildir = "afile/sent"')
    for args in (["tick", *NOW], ["serve", "--port", "1"]):
        one_line(mf(config_file, *args), 1, "[outbound] maildir", "afile/sent",
                 "cannot be written")


# -- 2 -----------------------------------------------------------------------------------------
@exit_code(2)
def test_2_not_in_a_state_for_that(app: App, config_file: Path, tmp_path: Path) -> None:
    (tmp_path / "m.eml").write_bytes(outlook_forward().as_bytes())
    assert mf(config_file, "ingest", *NOW, str(tmp_path / "m.eml")).returncode == 0
    [queued] = json.loads(mf(config_file, "outbox", "--json", "--state", "queued").stdout
                          )[:1]
    one_line(mf(config_file, "outbox", "--release", str(queued["id"])), 2, "not held")
    one_line(mf(config_file, "poll", "--once"), 2, "IMAP is not configured")


# -- 77 ----------------------------------------------------------------------------------------
@exit_code(77)
def test_77_refused(app: App, config_file: Path, tmp_path: Path) -> None:
    """A stranger's mail waits in the holding pen; someone who is not staff may not work it."""
    (tmp_path / "m.eml").write_bytes(message("stranger@example.net", CASEWORK, "Hello",
                                             "Please help.").as_bytes())
    assert mf(config_file, "ingest", *NOW, str(tmp_path / "m.eml")).returncode == 0
    [item] = json.loads(mf(config_file, "holding", "--json").stdout)
    one_line(mf(config_file, "holding", "dismiss", str(item["id"]), "--reason", "spam",
                "--as", "stranger@example.net"), 77)


# -- 64 ----------------------------------------------------------------------------------------
@exit_code(64)
def test_64_bad_arguments(app: App, config_file: Path) -> None:
    for args in (["cases", "--frobnicate"], ["frobnicate"], ["audit", "--case"]):
        done = mf(config_file, *args)
        assert done.returncode == 64 and "usage: mailflow" in done.stderr, args
        assert "Traceback" not in done.stderr
    one_line(mf(config_file, "tick", "--now", "next tuesday"), 64, "--now")
    one_line(mf(config_file, "audit", "--since", "2026-13-01"), 64, "--since")
    one_line(mf(config_file, "cases", "--as", "someone@gmail.example"), 64, "--as")


# -- 65 ----------------------------------------------------------------------------------------
@exit_code(65)
def test_65_a_message_over_the_size_limit(app: App, config_file: Path) -> None:
    with_config(config_file, "port = 8025\n", "port = 8025\nmax_message_size = 2000\n")
    big = message("x@example.com", CASEWORK, "big", "x" * 5000).as_bytes()
    one_line(run_cli(config_file, "ingest", *NOW, stdin=big), 65, "552 5.3.4")


# -- 66 ----------------------------------------------------------------------------------------
@exit_code(66)
def test_66_an_unreadable_file_after_the_others(app: App, config_file: Path,
                                               tmp_path: Path) -> None:
    good, missing = tmp_path / "a.eml", tmp_path / "missing.eml"
    good.write_bytes(outlook_forward().as_bytes())
    other = tmp_path / "b.eml"
    other.write_bytes(message("x@example.com", CASEWORK, "hi", "hello").as_bytes())
    done = mf(config_file, "ingest", "--json", *NOW, str(good), str(missing), str(other))
    one_line(done, 66, "missing.eml")
    assert [(r["file"], r["disposition"]) for r in map(json.loads, done.stdout.splitlines())] == [
        (str(good), "case_opened"), (str(other), "holding_pen")]  # both ingested
    assert json.loads(mf(config_file, "cases", "--json").stdout)[0]["reference"] == \
        "CW-2026-00001"
    done = mf(config_file, "inspect", "--json", str(missing), str(good))
    one_line(done, 66, "missing.eml")
    assert json.loads(done.stdout)["forwarded"] is True
    one_line(mf(config_file, "import", str(tmp_path / "missing.csv")), 66, "missing.csv")


# -- 75 ----------------------------------------------------------------------------------------
@exit_code(75)
def test_75_the_database_unusable_when_ingest_starts(config_file: Path, tmp_path: Path) -> None:
    """Never initialised: the MTA keeps the message and retries while someone runs init."""
    forward = outlook_forward().as_bytes()
    one_line(run_cli(config_file, "ingest", *NOW, stdin=forward), 75, "run `mailflow init`")
    unreachable = tmp_path / "pg.toml"
    unreachable.write_text(COUNCIL.format(db_url="postgresql://postgres@127.0.0.1:1/nowhere"))
    one_line(run_cli(unreachable, "ingest", *NOW, stdin=forward), 75, "cannot be used")
    one_line(mf(unreachable, "cases"), 1, "cannot be used")  # a reader just fails


@exit_code(75)
def test_75_serve_on_a_busy_port(app: App, config_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(config_file, "serve", "--port", str(port))
    one_line(done, 75, f"127.0.0.1:{port}", "address already in use")


# -- 78 ----------------------------------------------------------------------------------------
@exit_code(78)
def test_78_the_config_missing_or_invalid(config_file: Path, tmp_path: Path) -> None:
    done = run_cli(tmp_path / "nowhere.toml", "cases")
    assert done.returncode == 78 and "nowhere.toml" in done.stderr
    assert "Traceback" not in done.stderr
    with_config(config_file, 'ward = "Bathgate"', 'ward = "Bathgat"')
    one_line(mf(config_file, "cases"), 78, "unknown ward 'Bathgat'")


def test_every_code_in_the_readme_is_tested() -> None:
    assert readme_codes() == TESTED, "README's exit-code table and these tests differ"


# -- quiet when the reader stops; one line per job that did something -------------------------
def test_a_real_pipe_into_head_is_quiet(app: App, config_file: Path, tmp_path: Path) -> None:
    """`mailflow inspect … | head -1` through a shell's pipe: no BrokenPipeError."""
    eml = tmp_path / "f.eml"
    eml.write_bytes(outlook_forward().as_bytes())
    cmd = (f"{sys.executable} -m mailflow.cli --config {config_file} inspect --json "
           + " ".join([str(eml)] * 300) + " | head -1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and json.loads(done.stdout)["forwarded"] is True


def test_serve_logs_one_line_per_job_run_that_did_something(app: App, config_file: Path
                                                            ) -> None:
    """Jobs run every second here ([scheduler] outbox_seconds = 1): those that find nothing
    to do say nothing; one that did something says so once, by its name."""
    import signal
    import smtplib
    import time

    from tests.mail import JANE, read_sent, wire
    from tests.test_serve import PATIENCE, start, wait_for

    port, proc = start(config_file)
    try:
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail(JANE, [CASEWORK], wire(outlook_forward()))
        maildir = app.settings.maildir
        wait_for("the acknowledgement and the request",
                 lambda: len(read_sent(maildir)) >= 2 if maildir.exists() else False)
        # serve runs on the wall clock, not ours: three runs of every job with nothing to do
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=PATIENCE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stdout is not None
    lines = proc.stdout.read().decode().splitlines()
    jobs = [line.split("mailflow.serve: ", 1)[1].split(":", 1)[0] for line in lines
            if "INFO mailflow.serve: " in line and "{" in line]
    # On the wall clock's day a digest or report job may find work: once, by its name; the
    # mail it makes is one more delivery run (on the 1st after 07:00, the monthly report).
    others = [j for j in jobs if j != "deliver_outbox"]
    assert 1 <= jobs.count("deliver_outbox") <= 1 + len(others), lines
    assert all(others.count(j) == 1 for j in others), lines
    assert set(jobs) <= {"deliver_outbox", "member_digests", "staff_digest", "service_digests",
                         "send_reports", "process_spool"}, lines
    assert not [line for line in lines if "apscheduler" in line or "_run" in line], lines
    assert "Traceback" not in "\n".join(lines)
