"""Keeping time, with a moving clock on a real database: working-day deadlines, holding
replies, the chase chain, escalation, closing after the answer and digests. The clock moves;
nothing sleeps."""

from __future__ import annotations

import email
from datetime import date, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailflow import clock, models, settings
from mailflow.app import App
from mailflow.casework import cases, commands, dates
from mailflow.casework.calendar import Calendar
from mailflow.inbound import pipeline
from mailflow.jobs import tick
from mailflow.reports import stats
from tests.conftest import COUNCIL, run_cli
from tests.mail import CASEWORK, JANE, message, outlook_forward, reply_to

WASTE = "waste@council.example"
HEAD = "head.waste@council.example"
# Waste answers in 5 working days. Received Monday 2 November 2026 (GMT): day 1 is Tuesday
# 3 November, due Monday 9 November; chase Tuesday 10, second chase Friday 13, escalation
# Monday 16 November.
MON = clock.parse("2026-11-02T10:00:00Z")
DUE = date(2026, 11, 9)


def at(day: str, hhmm: str = "10:00") -> datetime:
    return clock.parse(f"{day}T{hhmm}:00Z")


def ingest(app: App, msg: EmailMessage | bytes, now: datetime) -> pipeline.Outcome:
    raw = msg if isinstance(msg, bytes) else msg.as_bytes()
    raw_id, _ = pipeline.receive(app, raw, source="ingest", now=now)
    out = pipeline.process(app, raw_id, now)
    assert out is not None
    return out


def bins(app: App, now: datetime = MON, subject: str = "Bins not collected") -> str:
    out = ingest(app, outlook_forward(subject=subject, body="My bins were missed again.\n"),
                 now)
    assert out.disposition == "case_opened", out
    return out.case or ""


def outbox(app: App, kind: str | None = None) -> list[models.Outbox]:
    with app.session() as s:
        q = select(models.Outbox).order_by(col(models.Outbox.id))
        if kind:
            q = q.where(models.Outbox.kind == kind)
        return list(s.exec(q))


def mail(row: models.Outbox) -> EmailMessage:
    return email.message_from_bytes(row.raw, policy=policy.default)  # type: ignore[return-value]


def body(row: models.Outbox) -> str:
    return mail(row).get_body(("plain",)).get_content()  # type: ignore[union-attr]


def request_of(app: App, ref: str) -> models.Request:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return s.exec(select(models.Request).where(models.Request.case_id == case.id)).one()


def case_of(app: App, ref: str) -> models.Case:
    with app.session() as s:
        return s.exec(select(models.Case).where(models.Case.reference == ref)).one()


def kinds(app: App, ref: str) -> list[str]:
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        return [e.kind for e in s.exec(select(models.Event).where(models.Event.case_id == case.id)
                                       .order_by(col(models.Event.id)))]


def officer_reply(app: App, ref: str, text: str, sender: str = WASTE) -> EmailMessage:
    """The contact pressing Reply on the request we sent."""
    req = request_of(app, ref)
    [row] = [o for o in outbox(app, "request") if o.request_id == req.id]
    return reply_to(mail(row), sender, text)


def member_reply(app: App, to_kind: str, text: str) -> EmailMessage:
    """The member pressing Reply on the latest mail of this kind we sent them."""
    row = outbox(app, to_kind)[-1]
    return message(JANE, CASEWORK, f"RE: {row.subject}", text, In_Reply_To=row.message_id)


def with_config(app: App, old: str, new: str) -> App:
    path = app.settings.path
    path.write_text(path.read_text().replace(old, new, 1))
    a = App(settings.load(path))
    a.start(clock.now())  # as `serve` or `tick` would after the change
    return a


# -- the calendar -------------------------------------------------------------------------------
def council(**kw: object) -> settings.Council:
    return settings.Council(name="T", casework_address="casework@t.example", **kw)  # type: ignore


def test_friday_before_scottish_bank_holiday_monday() -> None:
    friday = clock.parse("2026-07-31T09:00:00Z")  # 10:00 BST
    sct, eng = Calendar(council(nation="SCT")), Calendar(council(nation="ENG"))
    # Monday 3 August is the Scottish summer bank holiday, not England's.
    assert sct.due(friday, 1) == date(2026, 8, 4)
    assert eng.due(friday, 1) == date(2026, 8, 3)
    assert sct.due(friday, 5) == date(2026, 8, 10)
    assert eng.due(friday, 5) == date(2026, 8, 7)


def test_nations_differ() -> None:
    sct, eng, nir = (Calendar(council(nation=n)) for n in ("SCT", "ENG", "NIR"))
    assert not sct.is_working_day(date(2026, 11, 30)) and eng.is_working_day(date(2026, 11, 30))
    assert not sct.is_working_day(date(2026, 1, 2)) and eng.is_working_day(date(2026, 1, 2))
    assert not nir.is_working_day(date(2026, 7, 13)) and sct.is_working_day(date(2026, 7, 13))


def test_christmas_closure_days() -> None:
    cal = Calendar(council(nation="SCT", closure_days=["2026-12-29", "2026-12-30",
                                                       "2026-12-31"]))
    christmas_eve = clock.parse("2026-12-24T10:00:00Z")
    # 25 and 28 Dec bank holidays, 29-31 closed, 1 Jan and 4 Jan (2 Jan observed) holidays.
    assert cal.due(christmas_eve, 1) == date(2027, 1, 5)
    assert cal.due(christmas_eve, 5) == date(2027, 1, 11)


def test_cutoff_and_working_hours_across_the_october_clock_change() -> None:
    cal = Calendar(council(nation="SCT"))
    # Friday 23 October is BST: 16:30 UTC is 17:30 local, after the cut-off.
    assert cal.received_day(clock.parse("2026-10-23T15:59:00Z")) == date(2026, 10, 23)
    assert cal.received_day(clock.parse("2026-10-23T16:30:00Z")) == date(2026, 10, 26)
    # Monday 26 October is GMT: 16:30 UTC is 16:30 local, before the cut-off.
    assert cal.received_day(clock.parse("2026-10-26T16:30:00Z")) == date(2026, 10, 26)
    assert cal.in_working_hours(clock.parse("2026-10-23T07:45:00Z"))  # 08:45 BST
    assert not cal.in_working_hours(clock.parse("2026-10-26T07:45:00Z"))  # 07:45 GMT
    assert cal.in_working_hours(clock.parse("2026-10-26T08:30:00Z"))
    assert not cal.in_working_hours(clock.parse("2026-10-24T10:00:00Z"))  # Saturday


def test_chase_waits_for_working_hours_after_the_clock_change(app: App) -> None:
    # Received Friday 16 October (BST), due Friday 23 October; first chase Monday 26 (GMT).
    ref = bins(app, clock.parse("2026-10-16T09:00:00Z"))
    assert request_of(app, ref).due == date(2026, 10, 23)
    assert tick.tick(app, clock.parse("2026-10-26T08:00:00Z"))["chase"] == {
        "in_working_hours": False}
    assert outbox(app, "chase") == []
    assert tick.tick(app, clock.parse("2026-10-26T08:31:00Z"))["chase"]["chase"] == 1
    assert len(outbox(app, "chase")) == 1


# -- targets -------------------------------------------------------------------------------------
def test_request_stores_due_rule_and_acknowledgement_target(app: App) -> None:
    ref = bins(app)
    r = request_of(app, ref)
    assert r.due == DUE and r.target_due == DUE and r.due_days == 5
    assert r.due_rule == "5 working days (service Waste; SCT) from 2026-11-02"
    assert r.ack_due == date(2026, 11, 3)
    assert (r.next_step, r.next_step_on) == ("chase", date(2026, 11, 10))
    [req] = outbox(app, "request")
    text = body(req)
    assert "acknowledge it by the end of Tuesday 3 November 2026" in text
    assert "by Monday 9 November 2026 (5 working days)" in text


def test_enquiry_type_and_category_targets_override_the_service(app: App) -> None:
    app = with_config(app, "[[wards]]", '[targets]\ncategories = { Waste = 3 }\n'
                      'enquiry_types = { direct = 2 }\n\n[[wards]]')
    r = request_of(app, bins(app))
    assert r.due == date(2026, 11, 4) and "enquiry type direct" in r.due_rule
    app = with_config(app, "direct = 2", "complaint = 20")
    r = request_of(app, bins(app, subject="Bins again"))
    assert r.due == date(2026, 11, 5) and "category Waste" in r.due_rule


def test_calendar_change_recomputes_open_deadlines(app: App) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    clock.pin(at("2026-11-03"))
    moved = with_config(app, 'secret = "test-secret"',
                        'secret = "test-secret"\nclosure_days = ["2026-11-05"]')
    r = request_of(moved, ref)
    assert r.due == date(2026, 11, 10) and "calendar changed" in r.due_rule
    assert r.next_step_on == date(2026, 11, 11)
    assert kinds(moved, ref)[-1] == "deadline_changed"
    # The same calendar again changes nothing.
    App(settings.load(moved.settings.path)).start(clock.now())
    assert kinds(moved, ref).count("deadline_changed") == 1


# -- the chase chain -----------------------------------------------------------------------------
CHAIN = [("2026-11-10", "chase"), ("2026-11-13", "chase_again"), ("2026-11-16", "escalate")]


def run_days(app: App, days: list[str]) -> None:
    for d in days:
        for hhmm in ("07:00", "09:00", "09:00", "16:59", "18:00"):  # twice at the same moment
            tick.tick(app, at(d, hhmm))


def test_full_chain_each_step_once(app: App) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    days = [f"2026-11-{d:02d}" for d in range(3, 21)]
    run_days(app, days)
    assert len(outbox(app, "reminder")) == 0  # off by default
    chases = outbox(app, "chase")
    assert [c.created_at.date().isoformat() for c in chases] == ["2026-11-10", "2026-11-13"]
    assert "Second chase" in chases[1].subject and "4 working days overdue" in body(chases[1])
    assert all(c.created_at.hour == 9 for c in chases)  # working hours, never 07:00 or 18:00
    [esc] = outbox(app, "escalation")
    assert esc.created_at.date() == date(2026, 11, 16)
    assert esc.recipients == [HEAD, WASTE]
    [told] = outbox(app, "update")  # the member is told of the escalation at once
    assert told.recipients == [JANE] and "escalated" in body(told)
    assert kinds(app, ref).count("chased") == 2 and kinds(app, ref).count("escalated") == 1
    r = request_of(app, ref)
    assert r.chase_step == "escalated" and r.next_step is None
    # The chase job brings only the escalation count of the statistics in step (not the
    # whole case): what a full rewrite of the case's statistics gives.
    with app.session() as s:
        stat = s.exec(select(models.RequestStat).where(models.RequestStat.request_id == r.id)
                      ).one()
        assert stat.escalations == 1 and stat.state == "sent"
        before = stat.model_dump()
        stats.record(s, app.calendar, s.get(models.Case, r.case_id))
        s.flush()
        s.refresh(stat)
        assert stat.model_dump() == before
    # Replies to a chase land on the request (threaded under it, with its reply address).
    req = request_of(app, ref)
    assert mail(chases[0])["Reply-To"].startswith(f"casework+{ref.lower()}.{req.token}@")
    [first] = [o for o in outbox(app, "request")]
    assert mail(chases[0])["In-Reply-To"] == first.message_id


@pytest.mark.parametrize("answered_after", [0, 1, 2, 3])
def test_an_answer_stops_the_chain(app: App, answered_after: int) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    days = [f"2026-11-{d:02d}" for d in range(3, 21)]
    stop = "2026-11-09" if answered_after == 0 else CHAIN[answered_after - 1][0]
    run_days(app, [d for d in days if d <= stop])
    ingest(app, officer_reply(app, ref, "The crew will collect tomorrow."), at(stop, "12:00"))
    run_days(app, [d for d in days if d > stop])
    steps = [k for k in kinds(app, ref) if k in ("chased", "escalated")]
    assert len(steps) == answered_after
    assert request_of(app, ref).state == "answered"
    told = [o for o in outbox(app, "escalation_answered")]
    if answered_after == 3:  # answered after escalation: the head of service hears too
        assert [t.recipients for t in told] == [[HEAD]]
        assert "crew will collect" in body(told[0])
    else:
        assert told == []


def test_out_of_office_copies_the_next_chase_to_escalation(app: App) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    run_days(app, ["2026-11-10"])
    [chase] = outbox(app, "chase")
    assert chase.recipients == [WASTE]
    oof = reply_to(mail(chase), WASTE, "I am on leave until 23 November.",
                   subject=f"Automatic reply: {chase.subject}")
    oof["Auto-Submitted"] = "auto-replied"
    assert "not an answer" in ingest(app, oof, at("2026-11-10", "09:05")).reason
    run_days(app, ["2026-11-11", "2026-11-12", "2026-11-13"])
    second = outbox(app, "chase")[1]
    assert second.recipients == [WASTE, HEAD]
    assert mail(second)["Cc"] == HEAD
    assert request_of(app, ref).state == "sent"


def test_reminder_before_due_when_enabled(app: App) -> None:
    app = with_config(app, "[[wards]]", "[chasing]\nreminder = true\n\n[[wards]]")
    ref = bins(app)
    assert request_of(app, ref).next_step_on == date(2026, 11, 5)  # 2 working days before
    run_days(app, ["2026-11-04", "2026-11-05", "2026-11-06"])
    [rem] = outbox(app, "reminder")
    assert rem.created_at.date() == date(2026, 11, 5) and rem.recipients == [WASTE]
    assert "Monday 9 November 2026" in body(rem)


# -- holding replies -----------------------------------------------------------------------------
def test_holding_reply_within_the_limit_moves_the_date(app: App) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    out = ingest(app, officer_reply(app, ref, "#holding 2026-11-16\nThe crew is short this "
                                    "week; we will collect on Friday and confirm."),
                 at("2026-11-05"))
    assert "due date moved from 2026-11-09 to 2026-11-16" in out.reason
    r = request_of(app, ref)
    assert r.state == "sent" and r.due == date(2026, 11, 16) and r.target_due == DUE
    assert r.next_step_on == date(2026, 11, 17) and "holding reply" in r.due_rule
    [told] = outbox(app, "update")
    assert told.recipients == [JANE] and "crew is short" in body(told)
    assert "Kind regards" not in body(told)
    run_days(app, ["2026-11-10", "2026-11-16"])
    assert outbox(app, "chase") == []  # the old date no longer counts
    run_days(app, ["2026-11-17"])
    assert len(outbox(app, "chase")) == 1


def test_forgiving_fallback_for_a_promised_date(app: App) -> None:
    ref = bins(app)
    out = ingest(app, officer_reply(app, ref, "Thanks for this. I am waiting for the crew's "
                                    "report and I will reply by 12 November."),
                 at("2026-11-05"))
    assert "#holding" in out.reason and "2026-11-12" in out.reason
    r = request_of(app, ref)
    assert r.state == "sent" and r.due == date(2026, 11, 12)


@pytest.mark.parametrize("decision", ["agree", "refuse"])
def test_holding_reply_beyond_the_limit_needs_the_member(app: App, decision: str) -> None:
    ref = bins(app)
    tick.tick(app, MON)
    # 9 Nov + 10 working days = 23 Nov; 4 December is beyond it.
    out = ingest(app, officer_reply(app, ref, "#holding 4 December\nThe bin lorry is off the "
                                    "road; a new one arrives on 1 December."), at("2026-11-05"))
    assert "asked the member to agree" in out.reason
    r = request_of(app, ref)
    assert r.due == DUE and r.proposed_due == date(2026, 12, 4)
    [ask] = outbox(app, "agreement")
    assert ask.recipients == [JANE] and "lorry is off the road" in body(ask)
    assert "#agree" in body(ask) and "#refuse" in body(ask)

    out = ingest(app, member_reply(app, "agreement", f"#{decision}\nOK, but keep me posted."),
                 at("2026-11-06"))
    assert f"#{decision}:" in out.reason and "refused" not in out.reason
    r = request_of(app, ref)
    assert r.proposed_due is None
    [notice] = outbox(app, f"extension_{decision}d")
    assert notice.recipients == [WASTE]
    if decision == "agree":
        assert r.due == date(2026, 12, 4) and "agreed" in body(notice)
    else:
        assert r.due == DUE and "still due by Monday 9 November 2026" in body(notice)
        run_days(app, ["2026-11-10"])
        assert len(outbox(app, "chase")) == 1


def test_a_second_agree_is_refused_and_told(app: App) -> None:
    ref = bins(app)
    out = ingest(app, member_reply(app, "acknowledgement", "#agree"), at("2026-11-06"))
    assert "refused: #agree: no extension" in out.reason
    assert kinds(app, ref)[-1] == "command_refused"
    [told] = outbox(app, "command_reply")  # the one answer to a message of commands
    assert "Refused" in body(told) and "no extension" in body(told)


def test_officer_may_not_close_a_case(app: App) -> None:
    ref = bins(app)
    out = ingest(app, officer_reply(app, ref, "#close"), at("2026-11-04"))
    assert "refused: #close: #close is for" in out.reason
    assert case_of(app, ref).status == "open"


# -- after the answer ----------------------------------------------------------------------------
def answered(app: App) -> str:
    ref = bins(app)
    tick.tick(app, MON)
    ingest(app, officer_reply(app, ref, "Collected this morning."), at("2026-11-04"))
    return ref


def test_answered_case_closes_itself_after_five_working_days(app: App) -> None:
    ref = answered(app)
    c = case_of(app, ref)
    assert c.status == "answered" and c.open_until == date(2026, 11, 11)
    run_days(app, ["2026-11-05", "2026-11-11"])
    assert case_of(app, ref).status == "answered"
    run_days(app, ["2026-11-12"])
    c = case_of(app, ref)
    assert c.status == "closed" and c.closed_at == at("2026-11-12", "09:00")
    [told] = [o for o in outbox(app, "update") if "closed" in o.subject]
    assert told.recipients == [JANE] and "#reopen" in body(told)


def test_member_rejects_the_answer(app: App) -> None:
    ref = answered(app)
    out = ingest(app, member_reply(app, "alert", "#reject The bins are still there."),
                 at("2026-11-05"))
    assert "rejected" in out.reason
    r = request_of(app, ref)
    assert r.state == "sent" and r.due == date(2026, 11, 12)  # 5 working days from today
    assert case_of(app, ref).status == "open" and case_of(app, ref).open_until is None
    [back] = outbox(app, "answer_rejected")
    assert back.recipients == [WASTE] and "still there" in body(back)
    assert "Thursday 12 November 2026" in body(back)


def test_member_reopens_and_closes(app: App) -> None:
    ref = answered(app)
    out = ingest(app, member_reply(app, "alert", "#close resolved"), at("2026-11-05"))
    assert "case closed" in out.reason
    assert case_of(app, ref).status == "closed"
    out = ingest(app, member_reply(app, "acknowledgement", "#reopen\nShe phoned again."),
                 at("2026-11-06"))
    assert "reopened" in out.reason and case_of(app, ref).status == "open"


def test_closing_withdraws_open_requests_so_nobody_is_chased(app: App) -> None:
    ref = bins(app)
    ingest(app, member_reply(app, "acknowledgement", "#close constituent moved away"),
           at("2026-11-04"))
    assert request_of(app, ref).state == "withdrawn"
    run_days(app, ["2026-11-10"])
    assert outbox(app, "chase") == []


# -- digests -------------------------------------------------------------------------------------
def test_member_digest_drops_stale_items_and_empty_ones_are_not_sent(app: App) -> None:
    ref = bins(app)
    other = bins(app, subject="Bins overflowing")
    tick.tick(app, at("2026-11-10", "08:00"))  # the day's digest, before chasing hours
    tick.tick(app, at("2026-11-10", "09:00"))  # both chased
    ingest(app, officer_reply(app, ref, "Collected at noon."), at("2026-11-10", "12:00"))
    tick.tick(app, at("2026-11-11", "08:00"))
    digests = [o for o in outbox(app, "member_digest") if o.created_at.date() == date(2026, 11,
                                                                                        11)]
    [d] = digests
    text = body(d)
    assert d.recipients == [JANE]
    assert f"{ref}  [answered]  Reply from Waste: Collected at noon." in text
    assert f"{other}  [open]  Chase sent to Waste" in text
    assert f"{ref}  [answered]  Chase sent" not in text  # answered since: dropped
    assert f"{other}  [overdue]" in text and f"{ref}  [overdue]" not in text
    assert mail(d).get_body(("html",)) is not None
    # Tom has no cases: no digest for him, ever.
    assert all(o.recipients != ["tom.brown@council.example"]
               for o in outbox(app, "member_digest"))
    # The same moment again, and later that day: nothing more.
    tick.tick(app, at("2026-11-11", "08:00"))
    tick.tick(app, at("2026-11-11", "15:00"))
    assert len([o for o in outbox(app, "member_digest")
                if o.created_at.date() == date(2026, 11, 11)]) == 1


def test_member_digest_counts_the_overdue_it_does_not_list(app: App) -> None:
    refs = [bins(app, subject=f"Bins not collected, street {n}") for n in range(3)]
    small = with_config(app, "[outbound]", "[digests]\nmax_items = 1\n\n[outbound]")
    tick.tick(small, at("2026-11-11", "08:00"))  # all three overdue since Monday
    [d] = outbox(small, "member_digest")
    text = body(d)
    assert sum(f"{r}  [overdue]" in text for r in refs) == 1
    assert "and 2 more" in text


def test_missed_digest_run_loses_nothing(app: App) -> None:
    ref = bins(app)
    # No tick on Tuesday or Wednesday; the first tick is Thursday afternoon.
    tick.tick(app, at("2026-11-05", "15:00"))
    [d] = outbox(app, "member_digest")
    assert f"{ref}  [open]  Case opened" in body(d)
    assert "New cases acknowledged (1)" in body(d)


def test_staff_and_service_digests(app: App) -> None:
    ref = bins(app)
    ingest(app, message("stranger@example.net", CASEWORK, "hello", "who are you"), MON)
    run_days(app, [f"2026-11-{d:02d}" for d in range(3, 17)])
    staff = outbox(app, "staff_digest")
    text = body(staff[-1])
    assert staff[-1].recipients == ["member.services@council.example"]
    assert "Holding pen (1)" in text and "stranger@example.net" in text
    assert "Waste  [1 overdue]" in text
    assert f"{ref}  [open]  The request to Waste is 5 working days overdue" in text
    service = outbox(app, "service_digest")
    # Weekly from Monday: nothing ticked on Monday 2 November, so that week's went on the
    # Tuesday; then Mondays 9 and 16. Only contacts with open requests get one.
    assert [(s.created_at.date(), s.recipients) for s in service] == [
        (date(2026, 11, 3), [WASTE]), (date(2026, 11, 9), [WASTE]),
        (date(2026, 11, 16), [WASTE])]
    assert f"{ref}  [overdue]  due 2026-11-09" in body(service[-1])


def test_weekly_and_off_digests(app: App) -> None:
    app = with_config(app, 'ward = "Linlithgow"\n', 'ward = "Linlithgow"\ndigest = "weekly"\n'
                      'immediate_updates = false\n')
    ref = bins(app)
    tick.tick(app, MON)
    ingest(app, officer_reply(app, ref, "Done."), at("2026-11-04"))
    assert outbox(app, "alert") == []  # no updates at once: they wait for the digest
    run_days(app, [f"2026-11-{d:02d}" for d in range(3, 10)])
    weekly = outbox(app, "member_digest")
    assert [w.created_at.date() for w in weekly] == [date(2026, 11, 2), date(2026, 11, 9)]
    assert "Reply from Waste: Done." in body(weekly[-1])
    app = with_config(app, 'digest = "weekly"', 'digest = "off"')
    tick.tick(app, at("2026-11-16", "09:00"))
    assert len(outbox(app, "member_digest")) == 2


# -- exactly once, with two processes --------------------------------------------------------------
def test_two_processes_ticking_at_once_send_each_chase_once(app: App, config_file: Path) -> None:
    import subprocess
    import sys

    n = 120  # more than two claim batches, so the two processes interleave
    with app.session() as s:
        jane, waste = app.settings.member(JANE), app.settings.service("Waste")
        refs = [cases.open_case(app.context, s, cases.NewCase(
            member=jane, subject=f"Bins {i}", issue="Missed again.", member_note="",  # type: ignore[arg-type]
            constituent_name=None, constituent_email=None, service=waste, received_at=MON),
            MON).reference for i in range(n)]
        s.commit()
    tick.tick(app, MON)
    before = {o.id for o in outbox(app)}
    args = [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "tick",
            "--now", "2026-11-10T09:00:00Z", "--json"]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    import json
    print("chases per process:", [json.loads(o)["chase"]["chase"] for o, _ in outs])
    chases = outbox(app, "chase")
    assert len(chases) == n
    assert sorted(c.case_id for c in chases) == sorted(case_of(app, r).id for r in refs)
    # And a third tick at the same moment sends nothing new.
    done = run_cli(config_file, "tick", "--now", "2026-11-10T09:00:00Z")
    assert done.returncode == 0, done.stderr
    assert len(outbox(app, "chase")) == n
    new = sorted(o.kind for o in outbox(app) if o.id not in before)
    assert new == ["chase"] * n + ["member_digest", "service_digest", "staff_digest"]


# -- commands ------------------------------------------------------------------------------------
def test_commands_parse_only_at_the_top() -> None:
    cmds, rest = commands.parse("#holding 2026-12-10\nWaiting for the contractor.\nThen repair."
                                "\n#close done")
    assert [(c.name, c.args) for c in cmds] == [("holding", "2026-12-10"), ("close", "done")]
    assert cmds[0].body == "Waiting for the contractor.\nThen repair." and rest == ""
    assert commands.parse("Thanks!\n#close")[0] == []
    assert commands.parse("Thanks\n#hashtag not a command")[0] == []
    assert commands.parse("\n  #AGREE  \n")[0][0].name == "agree"


@pytest.mark.parametrize("text,expected", [
    ("2026-12-10", date(2026, 12, 10)), ("10/12/2026", date(2026, 12, 10)),
    ("10 December", date(2026, 12, 10)), ("Thursday 10th December 2026", date(2026, 12, 10)),
    ("December 10", date(2026, 12, 10)), ("3 Jan", date(2027, 1, 3)), ("soon", None),
    ("31 February", None),
])
def test_dates_as_officers_write_them(text: str, expected: date | None) -> None:
    assert dates.parse_date(text, date(2026, 11, 20)) == expected


def test_promised_date() -> None:
    today = date(2026, 11, 20)
    assert dates.promised_date("I will reply by 10 December.", today) == date(2026, 12, 10)
    assert dates.promised_date("We aim to send a full response by Friday 4th December",
                                  today) == date(2026, 12, 4)
    assert dates.promised_date("The road was resurfaced on 10 December 2019.", today) is None


# -- config --------------------------------------------------------------------------------------
def test_time_settings_are_validated(tmp_path: Path) -> None:
    bad = (COUNCIL.format(db_url="sqlite:///x.db")
           .replace("[[wards]]", '[chasing]\nfirst_chase_days_after = 0\n\n[digests]\n'
                    'member_time = "8am"\n\n[targets]\nenquiry_types = { gripe = 3 }\n\n'
                    '[[wards]]', 1)
           .replace('ward = "Bathgate"', 'ward = "Bathgate"\ndigest = "hourly"'))
    p = tmp_path / "council.toml"
    p.write_text(bad)
    with pytest.raises(settings.ConfigError) as err:
        settings.load(p)
    text = str(err.value)
    assert "chasing.first_chase_days_after" in text
    assert "digests.member_time: not a time of day like 08:30: '8am'" in text
    assert "unknown enquiry type 'gripe'" in text
    assert "members[2] (Cllr Tom Brown).digest: unknown digest 'hourly'" in text
    done = run_cli(p, "check")
    assert done.returncode == 78 and "council.toml: members[2]" in done.stderr


def test_bench_tick_smoke(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_tick.py"), "--cases",
                           "100", "--requests", "400", "--members", "2", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["due"] > 0 and figures["results"]["member_digests"]["sent"] == 2
    assert sum(figures["results"]["chase"].values()) == figures["due"]  # each due step taken
