"""`mailflow holding --retry` (Mailman's unshunt) and `mailflow outbox --release`, as a user
runs them. The pipeline failure is real: the council's template folder holds a broken
acknowledgement, so opening a case raises; fixing the folder and retrying opens it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select

from mailflow import db, models
from mailflow.app import App
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, message, outlook_forward
from tests.test_cli import jsonl

NOW = "2026-11-20T10:00:00Z"


def holding(config: Path, *args: str) -> list[dict]:
    done = run_cli(config, "holding", "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def break_templates(config: Path) -> Path:
    folder = config.parent / "council-templates"
    folder.mkdir()
    (folder / "acknowledgement.txt").write_text("no subject line: rendering fails\n")
    config.write_text(config.read_text() + '\n[templates]\ndir = "council-templates"\n')
    return folder / "acknowledgement.txt"


def test_a_failed_message_is_retried_once_the_cause_is_fixed(app: App, config_file: Path,
                                                             tmp_path: Path) -> None:
    broken = break_templates(config_file)
    fwd = tmp_path / "fwd.eml"
    fwd.write_bytes(outlook_forward().as_bytes())
    [out] = jsonl(run_cli(config_file, "ingest", "--json", "--now", NOW, str(fwd)).stdout)
    assert out["disposition"] == "holding_pen"
    assert "could not be processed: ValueError" in out["reason"]
    [item] = holding(config_file)
    assert item["kind"] == "failed" and item["message_id"] == out["message_id"]

    # Still broken: it fails again and is quarantined again, as a new item.
    again = run_cli(config_file, "holding", "--retry", str(item["id"]), "--json",
                    "--now", "2026-11-20T10:05:00Z")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["disposition"] == "holding_pen"
    [item2] = holding(config_file)
    assert item2["id"] != item["id"] and item2["kind"] == "failed"

    broken.unlink()  # the fix: the shipped template is used again
    done = run_cli(config_file, "holding", "--retry", str(item2["id"]), "--json",
                   "--now", "2026-11-20T10:10:00Z")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # On PostgreSQL a case number is taken in its own transaction (so pipeline workers do not
    # queue behind the counter): the two failed attempts each used one.
    ref = "CW-2026-00003" if db.is_postgres(db.engine(app.url)) else "CW-2026-00001"
    assert result == {"file": None, "message_id": out["message_id"],
                      "disposition": "case_opened", "case": ref,
                      "reason": result["reason"], "rule": "members_mail"}
    assert holding(config_file) == []
    resolved = holding(config_file, "--all")
    assert [h["id"] for h in resolved] == [item["id"], item2["id"]]
    assert (resolved[1]["resolution"], resolved[1]["resolved_at"]) == (
        "retried", "2026-11-20T10:10:00Z")
    case = json.loads(run_cli(config_file, "case", ref, "--json").stdout)
    assert case["received_at"] == "2026-11-20T10:00:00Z"  # when it arrived, not the retry
    with app.session() as s:
        raw = s.exec(select(models.RawMessage)).one()
        assert (raw.state, raw.disposition) == ("done", "case_opened")

    # Retried already, or gone: refused, and nothing changes.
    twice = run_cli(config_file, "holding", "--retry", str(item2["id"]))
    assert twice.returncode == 2 and "already retried" in twice.stderr
    missing = run_cli(config_file, "holding", "--retry", "999")
    assert missing.returncode == 1 and "no holding item 999" in missing.stderr
    assert len(json.loads(run_cli(config_file, "cases", "--json").stdout)) == 1


def test_only_failed_items_are_retried(app: App, config_file: Path) -> None:
    run_cli(config_file, "ingest", "--now", NOW,
            stdin=message("who@example.com", CASEWORK, "hi", "hello").as_bytes())
    [item] = holding(config_file)
    assert item["kind"] != "failed"
    done = run_cli(config_file, "holding", "--retry", str(item["id"]))
    assert done.returncode == 2 and "not a failed message" in done.stderr
    assert holding(config_file) == [item]


def test_release_is_a_conditional_update(app: App, config_file: Path) -> None:
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    with app.session() as s:
        row = models.Outbox(created_at=now, kind="alert", message_id="<held@council.example>",
                            sender=CASEWORK, recipients=[JANE], subject="Held", raw=b"x",
                            next_attempt_at=now, state="held", held_reason="rate limit: test")
        s.add(row)
        s.commit()
        row_id = row.id
    missing = run_cli(config_file, "outbox", "--release", "999")
    assert missing.returncode == 1 and "no outbox message 999" in missing.stderr
    released = run_cli(config_file, "outbox", "--release", str(row_id))
    assert released.returncode == 0, released.stderr
    with app.session() as s:
        row = s.get(models.Outbox, row_id)
        assert row is not None and (row.state, row.held_reason) == ("queued", None)
    again = run_cli(config_file, "outbox", "--release", str(row_id))
    assert again.returncode == 2 and "is not held" in again.stderr
