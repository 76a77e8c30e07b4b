"""Working the holding pen (issue 13, item 1): `mailflow holding file|open|dismiss` and
`#file`/`#open`/`#dismiss` in a reply to a digest. Each action does what matching would have
done (an answer answers its request, a member's command runs as the member's), is audited
with who did it, leaves the queue and the digests, and is refused to anyone else; on a
moving clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime
from email.message import EmailMessage

from sqlmodel import col, select

from mailflow import clock, models
from mailflow.app import App
from mailflow.jobs import tick
from tests.conftest import run_cli
from tests.mail import CASEWORK, JANE, ROADS, message, outlook_forward, sent_of_kind
from tests.rules import STAFF, STRANGER, TOM, cli, get_case, ingest, open_case, rules_app

__all__ = ["rules_app"]  # a fixture

FRI = clock.parse("2026-11-20T10:00:00Z")
MON = clock.parse("2026-11-23T10:00:00Z")
TUE_8 = clock.parse("2026-11-24T08:05:00Z")  # after [digests] staff_time
TUE = clock.parse("2026-11-24T11:00:00Z")
WED_8 = clock.parse("2026-11-25T08:05:00Z")


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def pen(app: App, *flags: str) -> list[dict]:
    done = cli(app, "holding", "--json", *flags)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def audit_rows(app: App, what: str | None = None) -> list[models.AuditEntry]:
    """The holding-pen actions of the audit trail (reads of the pen are audited too)."""
    with app.session() as s:
        q = select(models.AuditEntry).order_by(col(models.AuditEntry.id)).where(
            col(models.AuditEntry.what).startswith("holding."))
        if what:
            q = q.where(models.AuditEntry.what == what)
        return list(s.exec(q))


def timeline(app: App, ref: str) -> list[dict]:
    done = cli(app, "case", ref, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["timeline"]


def tagged(sender: str, ref: str, body: str) -> EmailMessage:
    """Names its case by the subject tag only: proves nothing, so it is held."""
    return message(sender, CASEWORK, f"RE: [{ref}] Pothole on Main Street", body)


def held_id(app: App, kind: str | None = None) -> int:
    rows = [r for r in pen(app) if kind is None or r["kind"] == kind]
    assert rows, pen(app, "--all")
    return rows[-1]["id"]


# -- the command line --------------------------------------------------------------------------
def test_filing_an_officers_held_answer_answers_the_request(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    out = ingest(app, tagged(ROADS, ref, "The pothole was filled this morning."), MON)
    assert (out.disposition, out.rule) == ("holding_pen", "not_proven")
    [item] = pen(app)
    assert (item["kind"], item["case"], item["resolution"]) == ("not_proven", ref, None)
    assert item["received_at"] == iso(MON)

    done = cli(app, "holding", "file", str(item["id"]), ref.lower(), "--as", STAFF,
               "--now", iso(TUE), "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert (row["resolution"], row["resolved_by"], row["resolved_at"], row["case"]) == (
        "filed", STAFF, iso(TUE), ref)
    assert get_case(app, ref).status == "answered"
    with app.session() as s:
        [req] = s.exec(select(models.Request)).all()
        assert (req.state, req.answered_by) == ("answered", ROADS)
    kinds = {e["kind"]: e for e in timeline(app, ref)}
    assert kinds["service_reply"]["data"]["evidence"] == "filed"
    assert kinds["service_reply"]["data"]["filed_by"] == STAFF
    assert kinds["holding_filed"]["from"] == STAFF
    [a] = audit_rows(app, "holding.file")
    assert (a.actor, a.action, a.case_ref, a.via, a.at) == (STAFF, "change", ref, "cli", TUE)
    assert a.detail == {"holding": item["id"], "kind": "not_proven",
                        "outcome": a.detail["outcome"]}
    assert pen(app) == []
    [gone] = pen(app, "--all")
    assert gone["resolution"] == "filed"

    again = cli(app, "holding", "file", str(item["id"]), ref, "--as", STAFF)
    assert again.returncode == 2 and "already filed by" in again.stderr, again.stderr


def test_filing_a_members_held_command_runs_it_as_the_member(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, tagged(JANE, ref, "#close resolved by phone"), MON)
    hid = held_id(app, "not_proven")
    # Jane is the member concerned: her own mail, onto her own case.
    done = cli(app, "holding", "file", str(hid), ref, "--as", JANE, "--now", iso(TUE))
    assert done.returncode == 0, done.stderr
    assert f"holding {hid}: filed {ref}" in done.stdout
    assert get_case(app, ref).status == "closed"
    kinds = [e["kind"] for e in timeline(app, ref)]
    assert "closed" in kinds and kinds[-1] == "holding_filed"
    with app.session() as s:
        replies = s.exec(select(models.Outbox).where(models.Outbox.kind == "command_reply")).all()
        assert [r.recipients for r in replies] == [[JANE]]


def test_filing_a_strangers_mail_attaches_it_for_review(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, tagged(STRANGER, ref, "I live next door, it is still there."), MON)
    hid = held_id(app)
    done = cli(app, "holding", "file", str(hid), ref, "--now", iso(TUE))  # the OS user
    assert done.returncode == 0, done.stderr
    e = next(e for e in timeline(app, ref) if e["kind"] == "unverified_update")
    assert (e["from"], e["data"]["review"], e["data"]["verified"]) == (STRANGER, True, False)
    assert get_case(app, ref).status == "open"  # it answers nothing
    [a] = audit_rows(app, "holding.file")
    assert a.actor.endswith(" (os user)")


def test_opening_a_case_from_a_strangers_mail(rules_app: App) -> None:
    app = rules_app
    out = ingest(app, message(f"Pat Doyle <{STRANGER}>", CASEWORK, "Pothole on Elm Road",
                              "There is a deep pothole outside 4 Elm Road."), MON)
    assert (out.disposition, out.rule) == ("holding_pen", "unknown_sender")
    hid = held_id(app)
    done = cli(app, "holding", "open", str(hid), "--member", JANE, "--as", STAFF,
               "--now", iso(TUE), "--json")
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    ref = row["case"]
    assert (row["resolution"], row["resolved_by"]) == ("opened", STAFF)
    case = json.loads(cli(app, "case", ref, "--json").stdout)
    assert case["constituent"]["email"] == STRANGER
    assert case["constituent"]["name"] == "Pat Doyle"
    assert case["member"]["email"] == JANE
    assert [r["service"] for r in case["requests"]] == ["Roads"]  # routed by its words
    assert "holding_opened" in [e["kind"] for e in case["timeline"]]
    with app.session() as s:
        kinds = [o.kind for o in s.exec(select(models.Outbox)
                                        .where(col(models.Outbox.case_id).is_not(None)))]
    assert "request" in kinds and "acknowledgement" in kinds
    [a] = audit_rows(app, "holding.open")
    assert (a.actor, a.case_ref) == (STAFF, ref)


def test_opening_a_staff_forward_takes_the_original_sender_and_the_named_service(
        rules_app: App) -> None:
    app = rules_app
    fwd = outlook_forward(member=f"Member Services <{STAFF}>",
                          constituent="Mary Jones <mary.jones@example.org>",
                          note="This one was held: for Jane please")
    out = ingest(app, fwd, MON)
    assert out.disposition == "holding_pen"
    hid = held_id(app)
    done = cli(app, "holding", "open", str(hid), "--member", JANE, "--service", "waste",
               "--as", STAFF, "--now", iso(TUE), "--json")
    assert done.returncode == 0, done.stderr
    case = json.loads(cli(app, "case", json.loads(done.stdout)["case"], "--json").stdout)
    assert case["constituent"]["email"] == "mary.jones@example.org"
    assert [r["service"] for r in case["requests"]] == ["Waste"]


def test_dismissing_and_every_refusal(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, message(STRANGER, CASEWORK, "Cheap pills", "Buy now"), MON)
    spam = held_id(app)
    ingest(app, tagged(JANE, ref, "Any news on this?"), MON)
    janes = held_id(app)

    def run(*args: str) -> tuple[int, str]:
        d = cli(app, "holding", *args, "--now", iso(TUE))
        return d.returncode, d.stderr

    code, err = run("dismiss", str(spam), "--reason", "spam", "--as", STRANGER)
    assert code == 77 and "not member services or a member" in err
    code, err = run("dismiss", str(spam), "--reason", "spam", "--as", TOM)
    assert code == 77 and "only member services may work it" in err
    code, err = run("file", str(janes), ref, "--as", TOM)
    assert code == 77, err
    code, err = run("open", str(janes), "--member", TOM, "--as", JANE)
    assert code == 77 and "only for themselves" in err
    code, err = run("dismiss", "999", "--reason", "x", "--as", STAFF)
    assert code == 1 and "no holding item 999" in err
    code, err = run("file", str(spam), "CW-2026-09999", "--as", STAFF)
    assert code == 1 and "no case CW-2026-09999" in err
    code, err = run("open", str(spam), "--member", "nobody@council.example", "--as", STAFF)
    assert code == 1 and "no member" in err
    code, err = run("open", str(spam), "--member", JANE, "--service", "Parks", "--as", STAFF)
    assert code == 1 and "no service 'Parks'" in err
    # Bad arguments, in a real process: 64 with the usage line.
    no_reason = run_cli(app.settings.path, "holding", "dismiss", str(spam), "--as", STAFF)
    assert no_reason.returncode == 64 and "--reason" in no_reason.stderr
    assert run_cli(app.settings.path, "holding", "bury", str(spam)).returncode == 64
    assert len(pen(app)) == 2  # nothing changed
    assert [(a.actor, a.action, a.what) for a in audit_rows(app)] == [
        (STRANGER, "refused", "holding.dismiss"), (TOM, "refused", "holding.dismiss"),
        (TOM, "refused", "holding.file"), (JANE, "refused", "holding.open")]

    code, err = run("dismiss", str(janes), "--reason", "asked again by phone", "--as", JANE)
    assert code == 0, err
    done = cli(app, "holding", "--json", "dismiss", str(spam), "--reason", "spam",
               "--as", STAFF, "--now", iso(TUE))
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert (row["resolution"], row["resolution_note"], row["case"]) == ("dismissed", "spam",
                                                                        None)
    assert pen(app) == []
    assert [r["resolution"] for r in pen(app, "--all")] == ["dismissed", "dismissed"]
    assert "holding_dismissed" in [e["kind"] for e in timeline(app, ref)]
    code, err = run("dismiss", str(spam), "--reason", "again", "--as", STAFF)
    assert code == 2 and "already dismissed" in err
    with app.session() as s:  # kept: the item and its message
        assert s.get(models.Holding, spam) is not None
        assert s.exec(select(models.RawMessage)).all()


# -- by email: replies to digests, on a moving clock -------------------------------------------
def staff_digest(app: App) -> EmailMessage:
    return sent_of_kind(app.settings.maildir, "staff_digest")[-1]


def body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()


def answer(digest: EmailMessage, sender: str, text: str) -> EmailMessage:
    return message(sender, str(digest["Reply-To"]), f"RE: {digest['Subject']}",
                   f"{text}\n\n> {digest['Subject']}", In_Reply_To=str(digest["Message-ID"]))


def test_staff_work_the_pen_by_replying_to_the_digest(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, tagged(ROADS, ref, "Filled today."), MON)
    answer_id = held_id(app)
    ingest(app, message(STRANGER, CASEWORK, "Cheap pills", "Buy now"), MON)
    spam = held_id(app)
    ingest(app, outlook_forward(member=f"Member Services <{STAFF}>",
                                constituent="Ann Lee <ann.lee@example.org>",
                                subject="Street light out", body="The street light is out."),
           MON)
    forward = held_id(app)
    tick.tick(app, TUE_8)
    digest = staff_digest(app)
    text = body(digest)
    for i in (answer_id, spam, forward):
        assert f"#{i} " in text
    assert "#file 17" in text  # how to work it, said in the digest

    # A member not concerned, and a stranger, are refused; nothing moves.
    out = ingest(app, answer(digest, TOM, f"#dismiss {spam} spam"), TUE)
    assert out.disposition == "holding_pen"
    out = ingest(app, answer(digest, STRANGER, f"#dismiss {spam} spam"), TUE)
    assert out.disposition == "holding_pen"
    assert [(a.actor, a.action) for a in audit_rows(app)] == [(TOM, "refused"),
                                                              (STRANGER, "refused")]
    with app.session() as s:
        replies = s.exec(select(models.Outbox).where(models.Outbox.kind == "holding_reply")
                         ).all()
        assert [r.recipients for r in replies] == [[TOM]]  # no answer to a stranger

    # Staff: one reply, three commands, each naming its item.
    out = ingest(app, answer(digest, STAFF, f"#file {answer_id} {ref}\n#dismiss {spam} spam\n"
                             f"#open {forward} {JANE}"), TUE)
    assert (out.disposition, out.rule) == ("update", "digest_reply"), out.reason
    assert get_case(app, ref).status == "answered"
    rows = {r["id"]: r for r in pen(app, "--all")}
    assert (rows[answer_id]["resolution"], rows[answer_id]["case"]) == ("filed", ref)
    assert (rows[spam]["resolution"], rows[spam]["resolution_note"]) == ("dismissed", "spam")
    opened = rows[forward]["case"]
    assert rows[forward]["resolution"] == "opened" and opened not in (None, ref)
    case = json.loads(cli(app, "case", opened, "--json").stdout)
    assert case["constituent"]["email"] == "ann.lee@example.org"
    assert case["member"]["email"] == JANE
    changes = [(a.actor, a.what, a.via, a.at) for a in audit_rows(app)
               if a.action == "change"]
    assert changes == [(STAFF, "holding.file", "email", TUE),
                       (STAFF, "holding.dismiss", "email", TUE),
                       (STAFF, "holding.open", "email", TUE)]
    with app.session() as s:
        last = s.exec(select(models.Outbox).where(models.Outbox.kind == "holding_reply")
                      .order_by(col(models.Outbox.id).desc())).first()
        assert last is not None and last.recipients == [STAFF]

    # The next day's digest lists only what is still waiting: Tom's and the stranger's
    # refused replies, not the three items worked.
    tick.tick(app, WED_8)
    text = body(staff_digest(app))
    assert staff_digest(app)["Message-ID"] != digest["Message-ID"]
    for i in (answer_id, spam, forward):
        assert f"#{i} " not in text
    assert {r["id"] for r in pen(app)} == {i for i in rows if i > forward}


def test_a_member_works_their_own_held_mail_from_their_digest(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, tagged(JANE, ref, "Resident called again: it is getting worse."), MON)
    hid = held_id(app)
    tick.tick(app, TUE_8)
    digest = sent_of_kind(app.settings.maildir, "member_digest")[-1]
    assert f"#{hid} " in body(digest) and "#file 17" in body(digest)
    out = ingest(app, answer(digest, JANE, f"#file {hid} {ref}"), TUE)
    assert out.disposition == "update", out.reason
    assert any(e["kind"] == "member_update" and e["data"]["evidence"] == "filed"
               for e in timeline(app, ref))
    [a] = audit_rows(app, "holding.file")
    assert (a.actor, a.via) == (JANE, "email")
    # `#open` with no address is for the member the item names: Jane, who sent it.
    ingest(app, message(JANE, CASEWORK, f"RE: [{ref}] Another one",
                        "Name: Ann Brown\nEmail: brown@example.org\n\n"
                        "The bins at 3 Elm Road were not collected."), TUE)
    other = held_id(app)
    out = ingest(app, answer(digest, STAFF, f"#open {other}"), TUE)
    assert out.disposition == "update", out.reason
    [row] = [r for r in pen(app, "--all") if r["id"] == other]
    case = json.loads(cli(app, "case", row["case"], "--json").stdout)
    assert (case["member"]["email"], case["constituent"]["email"]) == (JANE, "brown@example.org")
    assert [r["service"] for r in case["requests"]] == ["Waste"]
    tick.tick(app, WED_8)
    later = [m for m in sent_of_kind(app.settings.maildir, "member_digest")
             if m["Message-ID"] != digest["Message-ID"]]
    assert all(f"#{hid} " not in body(m) for m in later)


def test_a_command_naming_no_item_means_the_only_one_waiting(rules_app: App) -> None:
    app = rules_app
    ref = open_case(app, now=FRI)
    ingest(app, tagged(ROADS, ref, "Filled today."), MON)
    only = held_id(app)
    ingest(app, message(STRANGER, CASEWORK, "Cheap pills", "Buy now"), MON)
    tick.tick(app, TUE_8)
    digest = staff_digest(app)
    # Two items wait: a command that names none is refused, with the way to write it.
    out = ingest(app, answer(digest, STAFF, f"#file {ref}"), TUE)
    assert out.disposition == "holding_pen"
    assert "name the item first" in out.reason
    assert get_case(app, ref).status == "open"
    with app.session() as s:  # the staff's refused reply is the third item; clear two
        for h in s.exec(select(models.Holding).where(models.Holding.id != only)):
            h.resolved_at, h.resolution = TUE, "dismissed"
            s.add(h)
        s.commit()
    out = ingest(app, answer(digest, STAFF, f"#file {ref}"), TUE)
    assert out.disposition == "update", out.reason
    assert get_case(app, ref).status == "answered"
    assert [r["resolution"] for r in pen(app, "--all") if r["id"] == only] == ["filed"]


def test_filing_a_held_out_of_office_records_it_and_nothing_more(rules_app: App) -> None:
    """A stranger's automatic reply is held; filed by hand it is recorded on the case like
    any matched out-of-office (it raised TypeError before)."""
    app = rules_app
    ref = open_case(app, now=FRI)
    ooo = message(STRANGER, CASEWORK, "Automatic reply: Pothole", "I am out of the office.")
    ooo["Auto-Submitted"] = "auto-replied"
    out = ingest(app, ooo, MON)
    assert out.disposition == "holding_pen", out
    hid = held_id(app)
    done = cli(app, "holding", "file", str(hid), ref, "--as", STAFF, "--now", iso(TUE),
               "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resolution"] == "filed"
    assert get_case(app, ref).status == "open"  # an out-of-office answers nothing
    assert pen(app) == []
