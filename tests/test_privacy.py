"""Subject access, erasure and end of term (issue 14, items 3 to 5), on SQLite and
PostgreSQL with a pinned clock: a constituent with three cases across two members, one held
message and one sent constituent mail; erasure leaves no trace; end of term with one
consented and one unconsented case."""

from __future__ import annotations

import email
import json
import zipfile
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from mailflow import clock, db, models
from mailflow.app import App
from mailflow.jobs import tick
from tests.mail import CASEWORK, message, outlook_forward
from tests.rules import ALAN, JANE, STAFF, cli, get_case, ingest, make_app, run
from tests.test_retention import dump, reports

OPENED = clock.parse("2026-11-02T10:00:00Z")  # a Monday
NOW = clock.parse("2026-11-16T10:00:00Z")
ALICE, NAME, PHONE = "alice.auld@example.org", "Alice Auld", "07700 900123"
BOB = "bob.bell@example.org"
FILE = b"%PDF-1.4 Alice Auld's letter from the council\n" * 30


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Any:
    a = make_app(tmp_path, db_url, "[casework]\nconstituent_mail = true\n",
                 jane="constituent_mail = true")
    yield a
    db.engine(a.url).dispose()


def forward(member: str, who: str, subject: str, body: str, files: bool = False) -> Any:
    fwd = outlook_forward(member=member, constituent=who, subject=subject, body=body)
    if files:
        fwd.add_attachment(FILE, maintype="application", subtype="pdf", filename="letter.pdf")
    return fwd


def world(app: App) -> dict[str, str]:
    """Alice: two cases with Jane (one with her letter), one with Alan, and a message she
    sent straight to the casework address (held: she is no member). Bob: one case with Jane
    that names Alice as his neighbour."""
    clock.pin(OPENED)
    alice = f"{NAME} <{ALICE}>"
    msgs = {
        "jane1": forward(JANE, alice, "Pothole on Auld Street",
                         f"A pothole outside 7 Auld Street.\nCall me on {PHONE}.\n\n{NAME}",
                         files=True),
        "jane2": forward(JANE, alice, "Streetlight out", "The streetlight on Auld Street is "
                         f"out. My neighbour Carol Cole (carol.cole@example.org, 07700 900456)"
                         f" saw it too.\n\n{NAME}"),
        "alan": forward(ALAN, alice, "Bins not collected", f"My bins were missed.\n\n{NAME}"),
        "bob": forward(JANE, f"Bob Bell <{BOB}>", "Hedge", "The hedge at number 9 blocks the "
                       "path.\n\nBob"),
    }
    refs = {}
    for key, msg in msgs.items():
        out = ingest(app, msg, OPENED)
        assert out.disposition == "case_opened", out.reason
        refs[key] = out.case
    held = ingest(app, message(alice, CASEWORK, "My cases", "Where are my cases?\n\nAlice"),
                  OPENED)
    assert held.disposition == "holding_pen"
    tick.tick(app, OPENED)  # acknowledgements (Jane mails constituents) and requests go out
    clock.pin(NOW)
    return refs


def read_zip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_subject_access_finds_everything_and_holds_the_cases(app: App, tmp_path: Path) -> None:
    refs = world(app)
    out = tmp_path / "alice.zip"
    done = cli(app, "sar", ALICE, "--name", NAME, "--phone", PHONE, "--out", str(out),
               "--json", "--now", NOW.isoformat())
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["cases"]) == sorted([refs["jane1"], refs["jane2"], refs["alan"]])
    files = read_zip(out)
    data = json.loads(files["data.json"])
    assert {c["reference"] for c in data["cases"]} == set(result["cases"])
    assert {c["member"]["email"] for c in data["cases"]} == {JANE, ALAN}
    # Every message as .eml: the three forwards and the held one, each parseable.
    emls = [n for n in files if n.startswith("messages/") and n.endswith(".eml")]
    assert len(emls) == 4
    held = [m for m in data["messages"] if m["held"]]
    assert len(held) == 1 and held[0]["file"] in files
    parsed = email.message_from_bytes(files[held[0]["file"]], policy=policy.default)
    assert parsed["Subject"] == "My cases" and ALICE in parsed["From"]
    # The acknowledgement Jane's case sent to Alice herself, and the requests to services.
    to_alice = [s for s in data["sent"] if ALICE in s["to"]]
    assert to_alice and all(s["file"] in files for s in data["sent"])
    sent = email.message_from_bytes(files[to_alice[0]["file"]], policy=policy.default)
    assert ALICE in sent["To"]
    # Her letter, byte for byte.
    [letter] = [n for n in files if n.startswith("attachments/")]
    assert files[letter] == FILE and letter.endswith("letter.pdf")
    # A page she can read: each case, its timeline, what was sent to whom.
    page = files["index.html"].decode()
    for ref in result["cases"]:
        assert f"Case {ref}" in page
    assert "What was sent, to whom" in page and ALICE in page and refs["bob"] not in page
    # Third parties in her messages listed for redaction, not dropped; she is not listed.
    review = files["review.txt"].decode()
    assert "carol.cole@example.org" in review and "07700 900456" in review
    assert f"<{ALICE}>" not in review and PHONE not in review
    assert CASEWORK not in review  # mailflow's own addresses are no one's personal data
    digests = [s for s in data["sent"] if s["kind"].endswith("digest")]
    assert digests and all(f"{d['file']}: mail about several cases" in review for d in digests)
    assert refs["bob"] not in json.dumps(data)

    # Her cases are held until the request is answered plus four months.
    for ref in result["cases"]:
        hold = json.loads(cli(app, "case", ref, "--json").stdout)["legal_hold"]
        assert hold["source"] == f"sar:{result['id']}" and hold["until"] is None
    assert json.loads(cli(app, "case", refs["bob"], "--json").stdout)["legal_hold"] is None

    # The register: received, due one calendar month later, extended, answered.
    [row] = json.loads(cli(app, "sar", "--list", "--json", "--now", NOW.isoformat()).stdout)
    assert (row["email"], row["received"], row["due"], row["answered"]) == (
        ALICE, "2026-11-16T10:00:00Z", "2026-12-16", None)
    assert cli(app, "sar", "--extend", str(row["id"]), "--months", "3", "--reason",
               "x").returncode == 2
    assert cli(app, "sar", "--extend", str(row["id"]), "--months", "2", "--reason",
               "three cases, two members").returncode == 0
    [row] = json.loads(cli(app, "sar", "--list", "--json").stdout)
    assert row["due"] == "2027-02-16" and row["extend_reason"] == "three cases, two members"
    assert cli(app, "sar", "--answered", str(row["id"]), "--now",
               "2026-12-01T10:00:00Z").returncode == 0
    hold = json.loads(cli(app, "case", refs["alan"], "--json").stdout)["legal_hold"]
    assert hold["until"] == "2027-04-01"
    with app.session() as s:
        whats = [a.what for a in s.exec(select(models.AuditEntry))]
    assert {"sar", "sar.extend", "sar.answered", "hold"} <= set(whats)


def test_a_member_answers_for_their_own_casework_only(app: App, tmp_path: Path) -> None:
    refs = world(app)
    out = tmp_path / "a.zip"
    done = cli(app, "sar", ALICE, "--out", str(out), "--as", ALAN, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cases"] == [refs["alan"]]
    assert cli(app, "sar", ALICE, "--out", str(out), "--as", "x@evil.example").returncode == 64
    assert cli(app, "sar", "--out", str(out)).returncode == 64
    assert cli(app, "sar", ALICE).returncode == 64
    assert cli(app, "sar", "--answered", "99").returncode == 2
    assert cli(app, "erase", "nobody@example.org").returncode == 1
    assert cli(app, "erase", "not-an-address").returncode == 64


def traces(app: App, needles: list[str]) -> list[str]:
    """Every text column and blob of every table (the search index's included)."""
    found = []
    for table, rows in dump(app).items():
        for row in rows:
            for value in row:
                if value is None:
                    continue
                blob = bytes(value) if isinstance(value, bytes | memoryview) else \
                    str(value).encode()
                found += [f"{table}: {n!r} in {row!r}"[:300] for n in needles
                          if n.encode().lower() in blob.lower()]
    return found


def test_erasure_leaves_no_trace_and_keeps_the_skeleton(app: App, tmp_path: Path) -> None:
    refs = world(app)
    before = reports(app)
    needles = [NAME, ALICE, PHONE, PHONE.replace(" ", ""), "7 Auld Street"]
    assert traces(app, needles)
    # A subject access request holds her cases: erasure is refused, one line, nothing lost.
    done = cli(app, "sar", ALICE, "--out", str(tmp_path / "a.zip"), "--json")
    sar_id = json.loads(done.stdout)["id"]
    rows = dump(app)
    refused = cli(app, "erase", ALICE)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "legal hold" in refused.stderr and dump(app) == rows
    assert cli(app, "sar", "--answered", str(sar_id), "--now", NOW.isoformat()).returncode == 0
    later = "2027-03-17T10:00:00Z"  # answered + 4 months has passed
    dry = cli(app, "erase", ALICE, "--dry-run", "--json", "--now", later)
    assert dry.returncode == 0, dry.stderr
    assert dump(app) == rows | {"auditentry": dump(app)["auditentry"],
                                "legal_hold": dump(app)["legal_hold"],
                                "sar_request": dump(app)["sar_request"]}
    assert sorted(json.loads(dry.stdout)["cases"]) == sorted(
        [refs["jane1"], refs["jane2"], refs["alan"]])

    done = cli(app, "erase", ALICE, "--json", "--now", later)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["constituents"] >= 1 and result["attachments"] == 1
    assert traces(app, needles) == []
    if app.url.startswith("sqlite"):  # nor in the database file's free pages or its log
        path = Path(app.url.split("///", 1)[1])
        stored = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*")).lower()
        assert not [n for n in needles if n.lower().encode() in stored]
    assert reports(app) == before
    # The skeleton stays: reference, member, dates, status; her words are [erased].
    data = json.loads(cli(app, "case", refs["jane1"], "--json").stdout)
    assert data["issue"] == "[erased]" and data["constituent"]["name"] == "[erased]"
    assert data["member"]["email"] == JANE and data["status"] == get_case(
        app, refs["jane1"]).status
    assert data["attachments"] == []
    # Bob's case is untouched; search finds her no more.
    assert "hedge" in json.loads(cli(app, "case", refs["bob"], "--json").stdout)["issue"].lower()
    assert json.loads(cli(app, "search", "Auld", "--json").stdout) == []
    with app.session() as s:
        [entry] = s.exec(select(models.AuditEntry).where(models.AuditEntry.what == "erase"))
    assert ALICE not in json.dumps(entry.detail) and NAME not in json.dumps(entry.detail)


def test_end_of_term_hands_over_with_consent_and_closes_the_rest(app: App,
                                                                 tmp_path: Path) -> None:
    from mailflow.jobs import retention

    refs = world(app)
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == refs["jane1"])).one()
        assert not run(app, s, case, STAFF, "consent", "handover", NOW).ok  # the member's
        said = run(app, s, case, JANE, "consent", "handover", NOW)
        assert said.ok, said.text
        s.commit()
    done = cli(app, "member", "end-of-term", JANE, "--successor", ALAN, "--on", "2026-11-20",
               "--json", "--now", NOW.isoformat())
    assert done.returncode == 0, done.stderr
    listed = {c["reference"]: c["action"] for c in json.loads(done.stdout)["open_cases"]}
    assert listed == {refs["jane1"]: "hand_over", refs["jane2"]: "close",
                      refs["bob"]: "close"}
    with app.session() as s:
        notes = {(n.recipient, n.kind) for n in s.exec(select(models.Notification)
                                                       .where(models.Notification.kind
                                                              == "end_of_term"))}
    assert notes == {(JANE, "end_of_term")}  # each open case in her next digest
    tick.tick(app, clock.parse("2026-11-17T08:00:00Z"))  # the digests carry them
    with app.session() as s:
        assert all(n.digest_id for n in s.exec(select(models.Notification)
                                               .where(models.Notification.kind
                                                      == "end_of_term")))
    assert cli(app, "member", "end-of-term", "nobody@example.org").returncode == 64
    assert cli(app, "member", "end-of-term", JANE, "--successor", JANE).returncode == 64

    # Her own casework, before it goes: the SAR format, every case of hers.
    out = tmp_path / "jane.zip"
    assert cli(app, "export", "--member", JANE, "--out", str(out)).returncode == 0
    data = json.loads(read_zip(out)["data.json"])
    assert {c["reference"] for c in data["cases"]} == {refs["jane1"], refs["jane2"],
                                                       refs["bob"]}

    # From the day her forwards wait in the holding pen, with the reason.
    day = clock.parse("2026-11-20T09:00:00Z")
    fwd = forward(JANE, "Dan Dee <dan.dee@example.org>", "Graffiti", "Graffiti on the wall.")
    held = ingest(app, fwd, day)
    assert held.disposition == "holding_pen" and "term ended on 2026-11-20" in held.reason
    assert "successor: alan.reid@council.example" in held.reason

    dry = {i["case"]: i["action"] for i in retention.run(app, day, dry_run=True)}
    assert dry == {refs["jane1"]: "would_hand_over", refs["jane2"]: "would_close",
                   refs["bob"]: "would_close"}
    items = retention.run(app, day)
    acted = {i["case"]: i["action"] for i in items}
    assert acted == {refs["jane1"]: "handed_over", refs["jane2"]: "closed",
                     refs["bob"]: "closed"}
    moved = json.loads(cli(app, "case", refs["jane1"], "--json").stdout)
    assert moved["member"]["email"] == ALAN and moved["status"] != "closed"
    assert any(e["kind"] == "handed_over" and "consent" in e["text"]
               for e in moved["timeline"])
    assert get_case(app, refs["jane2"]).status == "closed"
    assert retention.run(app, day) == []  # done once
    with app.session() as s:
        [note] = s.exec(select(models.Notification)
                        .where(models.Notification.kind == "handed_over")).all()
    assert note.recipient == ALAN

    # end_of_term_days (30) after the day, her closed cases go; the handed-over one stays.
    later = clock.parse("2026-12-21T09:00:00Z")
    items = retention.run(app, later)
    deleted = {i["case"] for i in items if i["action"] == "deleted"}
    assert deleted == {refs["jane2"], refs["bob"]}
    assert {i["rule"] for i in items if i["action"] == "deleted"} == {"end_of_term_days=30"}
    assert get_case(app, refs["jane1"]).status != "closed"
    assert get_case(app, refs["alan"]).status != "closed"


def test_the_json_fields_are_documented(app: App, tmp_path: Path) -> None:
    from tests.test_json_contract import table_after

    world(app)
    sar = json.loads(cli(app, "sar", ALICE, "--out", str(tmp_path / "a.zip"), "--json").stdout)
    assert set(sar) == set(table_after("`mailflow sar EMAIL --json` prints"))
    [row] = json.loads(cli(app, "sar", "--list", "--json").stdout)
    assert set(row) == set(table_after("`mailflow sar --list --json` prints"))
    assert cli(app, "sar", "--answered", str(sar["id"])).returncode == 0
    erased = json.loads(cli(app, "erase", BOB, "--json").stdout)
    assert set(erased) == set(table_after("`mailflow erase EMAIL --json` prints"))
    term = json.loads(cli(app, "member", "end-of-term", ALAN, "--json").stdout)
    documented = table_after("`mailflow member end-of-term EMAIL --json` prints")
    assert set(term) == set(documented)
    assert set(term["open_cases"][0]) == {"reference", "status", "subject",
                                          "consent_handover", "action"}


def test_a_case_she_wrote_to_is_found_as_sender(app: App, tmp_path: Path) -> None:
    from mailflow.casework import cases

    refs = world(app)
    with app.session() as s:
        bob = s.exec(select(models.Case).where(models.Case.reference == refs["bob"])).one()
        cases.event(s, bob, "update", NOW, sender=ALICE, text="I live next door.")
        s.commit()
    done = cli(app, "sar", ALICE, "--out", str(tmp_path / "a.zip"), "--json")
    assert refs["bob"] in json.loads(done.stdout)["cases"]
