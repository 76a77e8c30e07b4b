"""`mailflow import FILE.csv [--dry-run]` with good and bad rows, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import select

from mailflow import clock, models
from mailflow.app import App
from mailflow.casework import imports
from tests.conftest import ROOT, run_cli
from tests.rules import FRIDAY, JANE, cli, rules_app

__all__ = ["rules_app"]

HEADER = ("member,ward,constituent_name,constituent_email,constituent_address,category,service,"
          "type,opened,closed,status,subject,notes")
GOOD = [
    # row 2: a closed case, UK date order, member by name without the title
    "Jane Smith,,Mary Jones,mary.jones@example.org,\"12 Main Street, Linlithgow\",Roads,,"
    "complaint,05/03/2024,2024-03-20,closed,Pothole,\"Filled, after a complaint\"",
    # row 3: open, by address, service gives the category, type from the notes' keywords
    "alan.reid@council.example,Linlithgow,Peter Grant,,,,waste,,2025-01-10,,,Bins missed,"
    "Neighbour wants to complain about missed bins",
]
BAD = [
    "Cllr Nobody,,,,,,,,2024-01-01,,,Subject,",  # row 4: unknown member
    "Jane Smith,,,not-an-email,,Parks,,,31/02/2024,,,Subject,",  # row 5: three problems
    "Jane Smith,,,,,,,,2024-05-01,2024-04-01,closed,Subject,",  # row 6: closed before opened
    "Jane Smith,,,,,,,,2024-05-01,,closed,,",  # row 7: closed without a date; no subject
    "Jane Smith,,,,,,,,2030-01-01,,,Future,",  # row 8: in the future
    "Jane Smith,Bathgate,,,,,,sideways,2024-05-01,,,Subject,",  # row 9: unknown type
    "Jane Smith,,,,,,,,2024-05-01",  # row 10: short row
]


def _csv(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "casework.csv"
    p.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return p


def _cases(app: App) -> list[models.Case]:
    with app.session() as s:
        return list(s.exec(select(models.Case).order_by(models.Case.id)))


def test_dry_run_reports_every_bad_row_and_changes_nothing(rules_app: App,
                                                           tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD + BAD)
    done = cli(rules_app, "import", str(path), "--dry-run")
    assert done.returncode == 1
    problems = [line.removeprefix("casework.csv: ") for line in done.stderr.splitlines()]
    assert problems == [
        "row 4, column member: no member 'Cllr Nobody' in the council directory",
        "row 5, column constituent_email: 'not-an-email' is not an email address",
        "row 5, column category: unknown category 'Parks'; choose one of Roads or Waste",
        "row 5, column opened: cannot read '31/02/2024' as a date (write 2024-03-05 or "
        "05/03/2024)",
        "row 6, column closed: is before the opened date",
        "row 7, column closed: is empty, but the status is closed",
        "row 7, column subject: is empty",
        "row 8, column opened: 2030-01-01 is in the future",
        "row 9, column type: unknown type 'sideways'; choose one of direct, indirect, complaint, "
        "service-request or community",
        "row 10, column (row): has 9 cells; the header has 13",
    ]
    assert "2 row(s) can be imported, 10 problem(s)" in done.stdout
    assert _cases(rules_app) == []
    clean = cli(rules_app, "import", str(_csv(tmp_path, GOOD)), "--dry-run")
    assert clean.returncode == 0, clean.stderr


def test_import_keeps_original_dates_and_is_safe_to_repeat(rules_app: App,
                                                           tmp_path: Path) -> None:
    path = _csv(tmp_path, GOOD + BAD)
    cfg = rules_app.settings.path
    done = run_cli(cfg, "import", str(path))  # once as a user runs it, in a child process
    assert done.returncode == 1  # the bad rows are reported, the good ones taken
    assert "imported 2 case(s); 0 already imported; 10 problem(s)" in done.stdout
    first, second = _cases(rules_app)
    assert first.reference == "CW-2024-00001" and second.reference == "CW-2025-00001"
    data = json.loads(cli(rules_app, "case", first.reference, "--json").stdout)
    assert data["received_at"] == data["opened_at"] == "2024-03-05T12:00:00Z"
    assert data["closed_at"] == "2024-03-20T12:00:00Z"
    assert (data["status"], data["category"], data["enquiry_type"]) == ("closed", "Roads",
                                                                        "complaint")
    assert data["member"]["email"] == JANE and data["ward"] == "Linlithgow"
    assert data["constituent"]["address"] == "12 Main Street, Linlithgow"
    assert data["requests"] == []
    assert [e["kind"] for e in data["timeline"]] == ["opened", "closed", "imported"]
    assert data["timeline"][-1]["data"]["row"] == 2
    b = json.loads(cli(rules_app, "case", second.reference, "--json").stdout)
    assert (b["status"], b["category"], b["enquiry_type"]) == ("open", "Waste", "complaint")
    with rules_app.session() as s:
        assert s.exec(select(models.Outbox)).all() == []  # an import sends no mail

    fixed = _csv(tmp_path, [*GOOD, "Jane Smith,,,,,,,,2024-05-01,,,Fixed row,"])
    again = cli(rules_app, "import", str(fixed))
    assert again.returncode == 0, again.stderr
    assert "imported 1 case(s); 2 already imported; 0 problem(s)" in again.stdout
    assert len(_cases(rules_app)) == 3


def test_header_problems_and_unreadable_file(rules_app: App, tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("Member,Opened,Colour\nJane Smith,2024-01-01,red\n")
    done = cli(rules_app, "import", str(p), "--dry-run")
    assert done.returncode == 1
    assert "row 1, column colour: unknown column" in done.stderr
    assert "row 1, column subject: required column is missing" in done.stderr
    assert cli(rules_app, "import", str(tmp_path / "missing.csv")).returncode == 66


def test_readme_documents_the_header() -> None:
    readme = (ROOT / "README.md").read_text()
    assert ",".join(imports.COLUMNS) in readme


def test_progress_bar_on_a_terminal(rules_app: App, tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    path = _csv(tmp_path, GOOD)
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    done = subprocess.run([sys.executable, "-m", "mailflow.cli", "--config",
                           str(rules_app.settings.path), "import", str(path)],
                          stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, env=env, timeout=120)
    os.close(slave)
    shown = os.read(master, 4096).decode()
    os.close(master)
    assert done.returncode == 0
    assert "[" + "#" * 30 + "] 2/2" in shown
    assert b"imported 2 case(s)" in done.stdout


def test_iso_dates_are_year_month_day(rules_app: App, tmp_path: Path) -> None:
    """Issue 10: 2024-03-05 was read day-first (3 May) and a valid row refused."""
    clock.pin(FRIDAY)
    rows = [
        "Jane Smith,,,,,,,,2024-03-05,2024-03-20,closed,Closed in March,",  # was "closed before"
        "Jane Smith,,,,,,,,2024-03-05,,,Opened 5 March,",  # was 3 May
        "Jane Smith,,,,,,,,2024-02-03 14:30,,,Opened with a time,",  # GMT
        "Jane Smith,,,,,,,,04/06/2024 09:15,,,UK order with a time,",  # BST
        "Jane Smith,,,,,,,,3 Feb 2024,,,In words,",
    ]
    checked = cli(rules_app, "import", str(_csv(tmp_path, rows)), "--dry-run")
    assert (checked.returncode, checked.stderr) == (0, "")
    done = cli(rules_app, "import", str(_csv(tmp_path, rows)))
    assert done.returncode == 0, done.stderr
    assert "imported 5 case(s)" in done.stdout
    shown = [json.loads(cli(rules_app, "case", c.reference, "--json").stdout)
             for c in _cases(rules_app)]
    assert [(c["opened_at"], c["closed_at"]) for c in shown] == [
        ("2024-03-05T12:00:00Z", "2024-03-20T12:00:00Z"),
        ("2024-03-05T12:00:00Z", None),
        ("2024-02-03T14:30:00Z", None),
        ("2024-06-04T08:15:00Z", None),
        ("2024-02-03T12:00:00Z", None),
    ]


def test_dates_the_import_cannot_take(rules_app: App, tmp_path: Path) -> None:
    clock.pin(FRIDAY)  # 2026-11-20
    rows = [
        "Jane Smith,,,,,,,,2024-02-30,,,Impossible,",
        "Jane Smith,,,,,,,,2024-03-05 25:00,,,No such hour,",
        "Jane Smith,,,,,,,,2026-11-21,,,Tomorrow,",
        "Jane Smith,,,,,,,,2024-03-20,2024-03-05,closed,Closed before opened,",
    ]
    done = cli(rules_app, "import", str(_csv(tmp_path, rows)), "--dry-run")
    assert done.returncode == 1
    assert [line.removeprefix("casework.csv: ") for line in done.stderr.splitlines()] == [
        "row 2, column opened: cannot read '2024-02-30' as a date (write 2024-03-05 or "
        "05/03/2024)",
        "row 3, column opened: cannot read '2024-03-05 25:00' as a date (write 2024-03-05 or "
        "05/03/2024)",
        "row 4, column opened: 2026-11-21 is in the future",
        "row 5, column closed: is before the opened date",
    ]
