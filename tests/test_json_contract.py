"""The JSON the commands print is a stable interface: every field the README documents is
there, nested ones too, and nothing undocumented. The field lists are read from the README,
so a field added to both passes and a field lost from either fails (as `open_until` once was
from `cases --json`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mailflow import clock
from mailflow.app import App
from mailflow.jobs import tick
from tests.conftest import ROOT
from tests.mail import CASEWORK, message, sent_of_kind
from tests.rules import ALAN, FRIDAY, JANE, cli, ingest, open_case, rules_app
from tests.test_attachments import forward_with_files
from tests.test_automatic import corpus_bytes
from tests.test_cli import jsonl

__all__ = ["rules_app"]  # a fixture

README = (ROOT / "README.md").read_text(encoding="utf-8")
FLAT = " ".join(README.split())  # prose lists wrap across lines
ALAN_FROM = f"Cllr Alan Reid <{ALAN}>"
PETER = "Peter Grant <peter.grant@example.org>"
SIMILAR = "A big pothole on Main Street near the school gates. Someone will get hurt.\n\nPeter"
NOW = clock.parse("2026-12-15T12:00:00Z")  # a Tuesday, after the requests were due

# The listings leave the constituent's phone and address out: only `case`, whose every read
# is recorded, shows them (the README says so below the `cases --json` line).
SUMMARY_CONSTITUENT_OMITS = {"phone", "address"}


# -- the README, parsed ------------------------------------------------------------------------
def braces(text: str) -> set[str] | None:
    """The names in the first `{a, b, c}` of `text`, or None when there is none."""
    m = re.search(r"\{([^{}]*)\}", text)
    return {n.strip(" `") for n in m.group(1).split(",")} if m else None


def braces_after(anchor: str) -> set[str]:
    found = braces(FLAT[FLAT.index(anchor) + len(anchor):])
    assert found, f"README: no {{…}} field list after {anchor!r}"
    return found


def table_after(anchor: str) -> dict[str, str]:
    """The `| field | meaning |` table after `anchor`: each field name to its meaning."""
    lines = README[README.index(anchor):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| field"))
    rows: dict[str, str] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        names, meaning = line.strip("| ").split(" | ", 1)
        for name in re.findall(r"`([^`]+)`", names):
            rows[name] = meaning
            # a companion field told of in the same row (`classification_reason`)
            rows.update({n: meaning for n in backticked(meaning) if n.startswith(name + "_")})
    assert rows, f"README: an empty field table after {anchor!r}"
    return rows


def nested(table: dict[str, str], field: str) -> set[str]:
    found = braces(table[field])
    assert found, f"README: no {{…}} list for {field!r}"
    return found


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


CASE = table_after("`mailflow case REF --json` prints one object:")
CASES_WITHOUT = set(backticked(FLAT.split("`mailflow cases --json` prints", 1)[1]
                               .split("without", 1)[1].split(".", 1)[0]))


def summary_keys() -> set[str]:
    return set(CASE) - CASES_WITHOUT


def report_columns() -> tuple[set[str], set[str], set[str]]:
    """(grouping columns, measures, the period's columns) of `report --json`."""
    text = FLAT.split("`mailflow report --json` prints", 1)[1].split("What each counts", 1)[0]
    groups = set(backticked(text.split("one column each:", 1)[1].split(")", 1)[0]))
    measures = set(backticked(text.split(")", 1)[1].split(", then", 1)[0]))
    period = set(backticked(text.split("for each of those", 1)[1]))
    assert groups and measures and period, "README: the report's columns moved"
    return groups, measures, period


def check(obj: dict[str, Any], expected: set[str], what: str) -> None:
    assert set(obj) == expected, (f"{what}: missing {sorted(expected - set(obj))}, "
                                  f"undocumented {sorted(set(obj) - expected)}")


def check_summary(row: dict[str, Any], what: str, extra: frozenset[str] = frozenset()) -> None:
    check(row, summary_keys() | extra, what)
    check(row["member"], nested(CASE, "member"), f"{what}.member")
    check(row["constituent"], nested(CASE, "constituent") - SUMMARY_CONSTITUENT_OMITS,
          f"{what}.constituent")


# -- a council with something in every field ---------------------------------------------------
@pytest.fixture
def world(rules_app: App) -> tuple[App, str]:
    """Jane's case with files, a request and a ward colleague's duplicate; the requests sent;
    a stranger's message quoting her case in the holding pen. Returns the app and her case."""
    app = rules_app
    ref = ingest(app, forward_with_files()).case
    assert ref
    open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    ingest(app, message("who@example.net", CASEWORK, "hi", f"About {ref}"))
    tick.tick(app, FRIDAY)
    clock.pin(NOW)
    return app, ref


def run_json(app: App, *args: str) -> Any:
    done = cli(app, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_readme_lists_are_found() -> None:
    assert {"reference", "open_until", "requests", "timeline"} <= set(CASE)
    assert CASES_WITHOUT == {"issue", "member_note", "requests", "links", "attachments",
                             "timeline", "legal_hold"}
    assert "open_until" in summary_keys()


def test_ingest(world: tuple[App, str], tmp_path: Path) -> None:
    app, _ = world
    (tmp_path / "m.eml").write_bytes(message(JANE, CASEWORK, "More", "Another one").as_bytes())
    [row] = jsonl(cli(app, "ingest", "--json", "--now", "2026-12-15T12:00:00Z",
                      str(tmp_path / "m.eml")).stdout)
    check(row, set(table_after("`mailflow ingest --json` prints")), "ingest")


def test_case(world: tuple[App, str]) -> None:
    app, ref = world
    data = run_json(app, "case", ref)
    check(data, set(CASE), "case")
    check(data["member"], nested(CASE, "member"), "case.member")
    check(data["constituent"], nested(CASE, "constituent"), "case.constituent")
    for field in ("requests", "links", "attachments", "timeline"):
        assert data[field], f"the world has no {field}: the test checks nothing"
        for i, item in enumerate(data[field]):
            check(item, nested(CASE, field), f"case.{field}[{i}]")
    assert data["requests"][0]["state"] == "overdue"  # due 7 Dec, seen on the 15th


def test_cases_and_search(world: tuple[App, str]) -> None:
    app, ref = world
    rows = run_json(app, "cases")
    assert len(rows) == 2
    for row in rows:
        check_summary(row, f"cases[{row['reference']}]")
    hits = run_json(app, "search", "pothole")
    assert hits
    for hit in hits:
        check_summary(hit, f"search[{hit['reference']}]", frozenset({"score", "snippet"}))
    assert "`score`" in FLAT.split("`mailflow search --json` prints", 1)[1].split(".")[0]


def test_audit(world: tuple[App, str]) -> None:
    app, ref = world
    cli(app, "case", ref)
    trail = run_json(app, "case", ref, "--audit")
    assert {t["action"] for t in trail} == {"change", "read"}
    for i, t in enumerate(trail):
        check(t, braces_after("`mailflow case REF --audit --json` prints a list of"),
              f"audit[{i}]")
    # the same rows as `mailflow audit --case REF --json`, whose table documents them
    assert braces_after("`mailflow case REF --audit --json` prints a list of") == set(
        table_after("`mailflow audit --json` prints"))


def test_holding(world: tuple[App, str]) -> None:
    app, ref = world
    rows = run_json(app, "holding")
    assert any(r["candidates"] for r in rows)
    anchor = "`mailflow holding --json` prints a list of"
    for row in rows:
        check(row, braces_after(anchor), f"holding[{row['id']}]")
        for c in row["candidates"]:
            check(c, braces_after("might belong to, each"), f"holding[{row['id']}].candidates")


def test_outbox(world: tuple[App, str]) -> None:
    app, _ = world
    rows = run_json(app, "outbox")
    assert {r["state"] for r in rows} >= {"sent"}
    for row in rows:
        check(row, braces_after("`mailflow outbox --json` prints a list of"),
              f"outbox[{row['id']}]")


def test_inspect(world: tuple[App, str], tmp_path: Path) -> None:
    app, ref = world
    [request] = [m for m in sent_of_kind(app.settings.maildir, "request")
                 if ref in str(m["Subject"])]
    files = {
        "forward.eml": forward_with_files().as_bytes(),
        "bounce.eml": corpus_bytes("dsn_postfix.eml", str(request["Message-ID"]),
                                   str(request["Reply-To"])),
        "stranger.eml": message("who@example.net", CASEWORK, "hi", f"About {ref}").as_bytes(),
    }
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    done = cli(app, "inspect", "--json", *(str(tmp_path / n) for n in files))
    assert done.returncode == 0, done.stderr
    out = {Path(d["file"]).name: d for d in jsonl(done.stdout)}
    table = table_after("`mailflow inspect FILE… --json` prints")
    person = nested(table, "from")
    for name, d in out.items():
        check(d, set(table), f"inspect {name}")
        check(d["from"], person, f"inspect {name}.from")
        for field in ("to", "cc"):
            for p in d[field]:
                check(p, nested(table, "to"), f"inspect {name}.{field}")
        check(d["match"], nested(table, "match"), f"inspect {name}.match")
        for field in ("candidates", "attachments"):
            for item in d[field]:
                check(item, nested(table, field), f"inspect {name}.{field}")
    original = out["forward.eml"]["original"]
    check(original, nested(table, "original"), "inspect original")
    check(original["from"], nested(table, "to"), "inspect original.from")  # {name, address}
    assert out["forward.eml"]["attachments"] and out["stranger.eml"]["candidates"]
    check(out["bounce.eml"]["bounce"], nested(table, "bounce"), "inspect bounce")


@pytest.mark.parametrize("by", ["service", "ward,member"])
def test_report(world: tuple[App, str], by: str) -> None:
    app, _ = world
    groups, measures, period = report_columns()
    rows = run_json(app, "report", "--period", "2026-11", "--by", by,
                    "--now", "2026-12-15T12:00:00Z")
    assert rows
    keys = set(by.split(",")) if "," in by else {"group"}
    assert keys <= groups | {"group"}
    expected = (keys | measures | {f"{m}_prev" for m in measures}
                | {f"{m}_change" for m in measures} | period)
    for i, row in enumerate(rows):
        check(row, expected, f"report --by {by} [{i}]")


def test_audit_command(world: tuple[App, str]) -> None:
    app, ref = world
    assert cli(app, "cases").returncode == 0  # a listing that showed the case
    assert cli(app, "case", ref, "--as", ALAN).returncode == 1  # a refused read
    table = table_after("`mailflow audit --json` prints")
    for args in ((), ("--case", ref)):
        trail = run_json(app, "audit", *args)
        assert {t["action"] for t in trail} >= {"read", "refused"}
        for i, t in enumerate(trail):
            check(t, set(table), f"audit{list(args)}[{i}]")
    assert {t["action"] for t in trail} == {"change", "read", "refused"}
