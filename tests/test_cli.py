"""The commands as a user (or an MTA) runs them, in a child process, with their JSON."""

from __future__ import annotations

import json
from pathlib import Path

from mailflow import clock
from mailflow.app import App
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, read_sent
from tests.rules import cli
from tests.test_loop import ours


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_init_twice_is_safe(app: App, config_file: Path) -> None:
    for _ in range(2):
        done = run_cli(config_file, "init")
        assert done.returncode == 0, done.stderr


def test_ingest_files_and_stdin_with_json(app: App, config_file: Path, tmp_path: Path) -> None:
    fwd = tmp_path / "fwd.eml"
    fwd.write_bytes(outlook_forward().as_bytes())
    stranger = tmp_path / "stranger.eml"
    stranger.write_bytes(message("who@example.com", CASEWORK, "hi", "hello").as_bytes())
    done = run_cli(config_file, "ingest", "--json", "--now", "2026-11-20T10:00:00Z",
                   str(fwd), str(stranger), str(fwd))
    assert done.returncode == 0, done.stderr
    first, second, third = jsonl(done.stdout)
    assert set(first) >= {"message_id", "disposition", "case", "reason"}
    assert first["disposition"] == "case_opened" and first["case"] == "CW-2026-00001"
    assert first["message_id"].endswith("@test.example>")
    assert (second["disposition"], second["case"]) == ("holding_pen", None)
    assert (third["disposition"], third["case"]) == ("duplicate_delivery", "CW-2026-00001")

    piped = run_cli(config_file, "ingest", "--json", "--now", "2026-11-23T10:00:00Z",
                    stdin=message(JANE, CASEWORK, "Re: [CW-2026-00001]", "Any news?",
                                  **ours(app, "CW-2026-00001")).as_bytes())
    assert jsonl(piped.stdout)[0]["disposition"] == "update"


def test_time_of_receipt_is_the_clock_not_the_date_header(app: App, config_file: Path) -> None:
    run_cli(config_file, "ingest", "--now", "2026-12-24T16:00:00Z",
            stdin=outlook_forward().as_bytes())
    data = json.loads(run_cli(config_file, "case", "CW-2026-00001", "--json").stdout)
    assert data["received_at"] == "2026-12-24T16:00:00Z"
    # Thu 24 Dec before the cut-off. Out in Scotland: Fri 25 Dec, Mon 28 Dec (for Boxing Day),
    # Fri 1 Jan, Mon 4 Jan (for 2 January). Day 1 is Tue 29 Dec; day 10 is Wed 13 Jan.
    assert data["requests"][0]["due"] == "2027-01-13"


def test_case_json_shape(app: App, config_file: Path) -> None:
    run_cli(config_file, "ingest", "--now", "2026-11-20T10:00:00Z",
            stdin=outlook_forward().as_bytes())
    # `case` has no --now: run in this process, whose clock is pinned (what is overdue).
    clock.pin(clock.parse("2026-12-07T12:00:00Z"))
    data = json.loads(cli(app, "case", "cw-2026-1", "--json").stdout)
    assert data["reference"] == "CW-2026-00001"
    assert data["status"] == "open"
    assert data["member"] == {"name": "Cllr Jane Smith", "email": JANE}
    assert data["ward"] == "Linlithgow"
    assert data["constituent"]["name"] == "Mary Jones"
    assert data["category"] == "Roads"
    [req] = data["requests"]
    assert {k: req[k] for k in ("service", "contact", "state", "due")} == {
        "service": "Roads", "contact": ROADS, "state": "sent", "due": "2026-12-07"}
    assert all(set(e) >= {"at", "kind", "from", "text"} for e in data["timeline"])
    assert [e["kind"] for e in data["timeline"]] == ["opened", "request_sent", "acknowledged"]
    clock.pin(clock.parse("2026-12-08T12:00:00Z"))  # the day after it was due
    [req] = json.loads(cli(app, "case", "cw-2026-1", "--json").stdout)["requests"]
    assert req["state"] == "overdue"
    text = run_cli(config_file, "case", "CW-2026-00001")
    assert "Mary Jones" in text.stdout and "request_sent" in text.stdout
    missing = run_cli(config_file, "case", "CW-2026-00099")
    assert missing.returncode == 1 and "no case" in missing.stderr


def test_listings(app: App, config_file: Path) -> None:
    now = ("--now", "2026-11-20T10:00:00Z")  # the reference's year
    run_cli(config_file, "ingest", *now, stdin=outlook_forward().as_bytes())
    run_cli(config_file, "ingest", *now,
            stdin=message("x@example.com", CASEWORK, "s", "b").as_bytes())
    cases = json.loads(run_cli(config_file, "cases", "--json").stdout)
    assert [c["reference"] for c in cases] == ["CW-2026-00001"]
    mine = json.loads(run_cli(config_file, "cases", "--member", "jane@home.example",
                              "--json").stdout)
    assert len(mine) == 1
    assert json.loads(run_cli(config_file, "cases", "--member", "tom.brown@council.example",
                              "--json").stdout) == []
    assert json.loads(run_cli(config_file, "cases", "--status", "closed", "--json").stdout) == []
    [held] = json.loads(run_cli(config_file, "holding", "--json").stdout)
    assert held["kind"] == "unknown_sender" and held["from"] == "x@example.com"
    outbox = json.loads(run_cli(config_file, "outbox", "--json").stdout)
    assert sorted(o["kind"] for o in outbox) == ["acknowledgement", "request"]
    assert {o["state"] for o in outbox} == {"queued"}

    # A Sunday, long after: the outbox is due, but no digests or chases on a Sunday.
    tick = run_cli(config_file, "tick", "--now", "2036-11-23T12:00:00Z", "--json")
    assert json.loads(tick.stdout)["deliver_outbox"]["sent"] == 2
    assert len(read_sent(app.settings.maildir)) == 2
    outbox = json.loads(run_cli(config_file, "outbox", "--json").stdout)
    assert {o["state"] for o in outbox} == {"sent"}
    again = run_cli(config_file, "tick", "--now", "2036-11-23T12:00:00Z", "--json")
    assert json.loads(again.stdout)["deliver_outbox"]["sent"] == 0


def test_bad_now_is_a_usage_error(app: App, config_file: Path) -> None:
    done = run_cli(config_file, "tick", "--now", "next tuesday")
    assert done.returncode == 64 and "--now" in done.stderr


def test_an_unusable_database_at_start_is_one_line_and_a_retry_for_an_mta(
        tmp_path: Path) -> None:
    """The loop's commands start by bringing the directory in step; a database that cannot
    be reached is one line on stderr, exit 75 where an MTA or a service manager retries."""
    from tests.conftest import COUNCIL

    config = tmp_path / "mailflow.toml"
    config.write_text(COUNCIL.format(db_url="postgresql://postgres@127.0.0.1:1/nowhere"))
    forward = outlook_forward().as_bytes()
    for args, code in ((["ingest", "--now", "2026-11-20T10:00:00Z"], 75),
                       (["tick", "--now", "2026-11-20T10:00:00Z"], 1)):
        done = run_cli(config, *args, stdin=forward)
        assert done.returncode == code, (args, done.stderr)
        assert "cannot be used" in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_bad_arguments_exit_64(config_file: Path) -> None:
    for args in (["cases", "--frobnicate"], ["frobnicate"], []):
        done = run_cli(config_file, *args)
        assert done.returncode == 64, (args, done.stderr)
        assert "usage: mailflow" in done.stderr and "Traceback" not in done.stderr


def test_output_piped_into_a_reader_that_stops_is_quiet(config_file: Path) -> None:
    """`mailflow inspect … | head -1`: no BrokenPipeError, no traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    eml = config_file.parent / "forward.eml"
    eml.write_bytes(outlook_forward().as_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "inspect",
         "--json", *[str(eml)] * 400], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["forwarded"] is True
    proc.stdout.close()  # the reader has what it wanted (head -1)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
