"""Digests: one email per member (daily or weekly), one to staff (daily) and one to each
service contact (weekly), each from the notifications not yet carried by a digest plus what
is true now (overdue requests, cases about to close, the holding pen).

Inserting the `digest` row for (recipient, period) claims the run, so two ticks or two nodes
never send one twice; the notifications it carries point at it, so a missed run loses nothing.
A notification that is no longer true when the digest goes out is dropped, and an empty
digest is recorded but not sent. A digest's Reply-To is its own signed address
(casework+digest-<id>.<token>@…): replies to it run the commands that name a case, and
nothing else of them opens or changes a case (inbound/dispatch.py rule `digest_reply`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from mailflow import db, models, tokens
from mailflow.app import App
from mailflow.casework import notify
from mailflow.outbound import mail
from mailflow.settings import WEEKDAYS, Member

# Notices about a request that stop being true once it is answered (or withdrawn).
_WHILE_WAITING = {"chased", "escalated", "extension", "bounce"}
_FAILED = ("bounce", "undeliverable")  # the staff digest's "Bounced requests"


@dataclass
class Section:
    title: str
    lines: list[dict[str, str]] = field(default_factory=list)
    more: int = 0  # lines left out beyond [digests] max_items
    holding: bool = False  # the holding pen: its lines are `#ID`, worked by #file/#open/#dismiss

    @property
    def total(self) -> int:
        return len(self.lines) + self.more


def period(app: App, now: datetime, frequency: str, at: str) -> str | None:
    """The digest period `now` falls in, or None when no digest is due yet: working days
    from the given local time; weekly ones from [digests] weekly_day (or the next working
    day that week)."""
    cal = app.calendar
    today = cal.today(now)
    if frequency == "off" or not cal.is_working_day(today) or \
            not cal.at_or_after(now, time.fromisoformat(at)):
        return None
    if frequency == "daily":
        return today.isoformat()
    if today.weekday() < WEEKDAYS.index(app.settings.digests.weekly_day):
        return None
    year, week, _ = today.isocalendar()
    return f"{year}-W{week:02d}"


def claim(session: Session, audience: str, recipient: str, period_: str, now: datetime
          ) -> int | None:
    key = {"audience": audience, "recipient": recipient, "period": period_}
    if not db.insert_once(session, models.Digest, {**key, "created_at": now, "items": 0,
                                                   "sent": False}, list(key)):
        return None
    return session.exec(select(models.Digest.id).where(
        *(getattr(models.Digest, k) == v for k, v in key.items()))).one()


def _done(session: Session, audience: str, periods: set[str]) -> set[tuple[str, str]]:
    rows = session.exec(select(models.Digest.recipient, models.Digest.period)
                        .where(models.Digest.audience == audience)
                        .where(col(models.Digest.period).in_(periods))).all()
    return {(r, p) for r, p in rows}


def _take_notifications(session: Session, audience: str, recipient: str, digest_id: int,
                        now: datetime) -> list[dict[str, str]]:
    """Attach every waiting notification to this digest; returns the lines of those still
    true, each `{reference, state, text, kind}`."""
    rows = list(session.exec(
        select(models.Notification).where(models.Notification.audience == audience)
        .where(models.Notification.recipient == recipient)
        .where(col(models.Notification.digest_id).is_(None))
        .where(col(models.Notification.created_at) <= now).order_by(col(models.Notification.id))
    ))
    if not rows:
        return []
    session.execute(update(models.Notification)
                    .where(col(models.Notification.id).in_([n.id for n in rows]))
                    .values(digest_id=digest_id).execution_options(synchronize_session=False))
    # Their cases and requests in two queries, not two per notification.
    cases = {c.id: c for c in session.exec(select(models.Case).where(
        col(models.Case.id).in_({n.case_id for n in rows if n.case_id})))}
    requests = {r.id: r for r in session.exec(select(models.Request).where(
        col(models.Request.id).in_({n.request_id for n in rows if n.request_id})))}
    out = []
    for n in rows:
        case, request = cases.get(n.case_id), requests.get(n.request_id)
        if still_true(n, case, request):
            out.append({**_line(case, case.status if case else None, n.text), "kind": n.kind,
                        "request_state": request.state if request else ""})
    return out


def still_true(n: models.Notification, case: models.Case | None,
               request: models.Request | None) -> bool:
    if n.kind in _WHILE_WAITING and request is not None and request.state != "sent":
        return False  # answered (or withdrawn) since
    if n.kind == "extension" and request is not None and request.proposed_due is None:
        return False  # agreed or refused since
    if case is not None:
        if n.kind == "closed":
            return case.status == "closed"  # not if reopened since
        if case.status == "closed" and n.kind != "opened":
            return False  # closed since
    return True


def _line(case: models.Case | None, state: str | None, text: str) -> dict[str, str]:
    """One digest line: the notice's first line (160 characters); what it leaves out (the
    rest of a service's reply, a holding reply's reason) below it as `detail`, 500 more
    characters and where the whole is. "Reply from Waste: Hi," alone told nobody anything."""
    reference = case.reference if case else "-"
    text = text.strip()
    head = text.partition("\n")[0].strip()[:160]
    line = {"reference": reference, "state": state or "", "text": head}
    rest = text[text.find(head) + len(head):].strip() if head else text
    if rest:
        line["detail"] = notify.excerpt(rest, reference)
    return line


def clusters(lines: list[dict[str, str]]) -> list[dict[str, str]]:
    """Possible duplicates named once per cluster (their notices share the cluster's label,
    the place they are about), where the first of them stood: twenty similar forwards about
    one street are one line, not twenty."""
    out: list[dict[str, str]] = []
    seen: dict[str, tuple[dict[str, str], list[str]]] = {}
    for n in lines:
        if n["kind"] != "duplicate":
            out.append(n)
            continue
        if n["text"] not in seen:
            seen[n["text"]] = (dict(n), [])
            out.append(seen[n["text"]][0])
        line, refs = seen[n["text"]]
        refs.append(n["reference"])
        yours = ", ".join(dict.fromkeys(refs))
        line["reference"] = n["reference"]
        line["text"] = (f"{n['text']}: {len(refs)} new case{'s' if len(refs) != 1 else ''} "
                        f"of ward colleagues like your {yours}")[:300]
    return out


def _cap(section: Section, lines: list[dict[str, str]], total: int, limit: int) -> Section:
    section.lines = lines[:limit]
    section.more = max(total - len(section.lines), 0)
    return section


def _send(app: App, session: Session, template: str, to: list[str], sections: list[Section],
          now: datetime, digest_id: int, **context: Any) -> int:
    items = sum(s.total for s in sections)
    session.execute(update(models.Digest).where(col(models.Digest.id) == digest_id)
                    .values(items=items, sent=bool(items and to)))
    if not items or not to:
        return 0
    # Its own reply address: a reply to a digest is known for one and never opens a case.
    casework = app.settings.council.casework_address
    reply_to = tokens.digest_address(casework, digest_id,
                                     tokens.digest_token(app.settings.secret, digest_id))
    mail.send(app.context, session, template,
              {"sections": [s for s in sections if s.total],
               "holding_pen": any(s.holding and s.total for s in sections),
               "day_text": notify.date_text(app.calendar.today(now)), **context},
              to=to, now=now, reply_to=reply_to)
    return 1


# -- member digests ---------------------------------------------------------------------------
def member_digests(app: App, now: datetime) -> dict[str, Any]:
    s = app.settings
    wanted = [(m, p) for m in s.members
              if (p := period(app, now, m.digest, s.digests.member_time))]
    if not wanted:
        return {"sent": 0}
    with app.session() as session:
        done = _done(session, "member", {p for _, p in wanted})
    sent = empty = 0
    for m, p in wanted:
        if (m.email, p) in done:
            continue
        with app.session() as session:
            digest_id = claim(session, "member", m.email, p, now)
            if digest_id is None:
                session.rollback()
                continue
            n = _send(app, session, "member_digest", [m.email],
                      member_sections(app, session, m, now, digest_id), now, digest_id,
                      member=m, weekly=m.digest == "weekly")
            session.commit()
            sent += n
            empty += not n
    return {"sent": sent, "empty": empty}


def member_sections(app: App, session: Session, m: Member, now: datetime, digest_id: int
                    ) -> list[Section]:
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    member_row = session.exec(select(models.Member).where(models.Member.email == m.email)).one()
    notes = _take_notifications(session, "member", m.email, digest_id, now)
    new_cases = Section("New cases acknowledged", [n for n in notes if n["kind"] == "opened"])
    updates = Section("Updates since your last digest",
                      clusters([n for n in notes if n["kind"] != "opened"]))

    # Requests of this member's cases, as `case_id IN (…)` so that SQLite, without
    # statistics, walks ix_case_member_id then ix_request_case_open instead of scanning every
    # open request of the council.
    R = models.Request
    theirs = select(models.Case.id).where(models.Case.member_id == member_row.id)
    mine = (select(R).where(col(R.case_id).in_(theirs)).where(col(R.state) == "sent")
            .where(col(R.due) < today))
    # Counted per case and summed, so the cost follows the member's cases: counted as one
    # join, PostgreSQL hashed every overdue request of the council (0.5 s a member at 1M).
    per_case = (select(func.count()).select_from(R).where(col(R.case_id) == models.Case.id)
                .where(col(R.state) == "sent").where(col(R.due) < today)
                .correlate(models.Case).scalar_subquery())
    total = int(session.exec(select(func.coalesce(func.sum(per_case), 0))
                             .where(models.Case.member_id == member_row.id)).one())
    rows = session.exec(mine.order_by(col(R.due), col(R.id)).limit(limit)).all()
    services = {sv.id: sv.name for sv in session.exec(select(models.Service))}
    their_cases = {c.id: c for c in session.exec(
        select(models.Case).where(col(models.Case.id).in_({r.case_id for r in rows})))}
    overdue = _cap(Section("Overdue requests on your cases"), [
        _line(c, "overdue", f"{services.get(r.service_id, '')}: due {r.due.isoformat()}, "
              f"{cal.working_days_between(r.due, today)} working days late - {c.subject}")
        for r in rows if (c := their_cases.get(r.case_id))], total, limit)

    closing_by = cal.next_working_day(today)
    soon = (select(models.Case).where(models.Case.member_id == member_row.id)
            .where(col(models.Case.status) == "answered")
            .where(col(models.Case.open_until) <= closing_by))
    total = session.exec(select(func.count()).select_from(soon.subquery())).one()
    closing = _cap(Section("Answered cases about to close"), [
        _line(c, c.status, f"closes after {c.open_until.isoformat() if c.open_until else ''}"
              f" unless you reply #reopen or #reject - {c.subject}")
        for c in session.exec(soon.order_by(col(models.Case.open_until)).limit(limit))],
        total, limit)

    addresses = [m.email, *m.aliases]
    pen = (select(models.Holding).where(col(models.Holding.resolved_at).is_(None))
           .where(col(models.Holding.sender).in_(addresses)))
    total = session.exec(select(func.count()).select_from(pen.subquery())).one()
    holding = _cap(Section("Your mail waiting in the holding pen", holding=True), [
        {"reference": f"#{h.id}", "state": h.kind, "text": f"{h.subject or ''} - {h.reason}"}
        for h in session.exec(pen.order_by(col(models.Holding.id)).limit(limit))], total, limit)
    return [new_cases, updates, overdue, closing, holding]


# -- the staff digest -------------------------------------------------------------------------
def staff_digest(app: App, now: datetime) -> dict[str, Any]:
    s = app.settings
    p = period(app, now, "daily", s.digests.staff_time)
    if p is None or not s.staff:
        return {"sent": 0}
    with app.session() as session:
        if _done(session, "staff", {p}):
            return {"sent": 0}
        digest_id = claim(session, "staff", "staff", p, now)
        if digest_id is None:
            session.rollback()
            return {"sent": 0}
        sent = _send(app, session, "staff_digest", [st.email for st in s.staff],
                     staff_sections(app, session, now, digest_id), now, digest_id)
        session.commit()
    return {"sent": sent}


def staff_sections(app: App, session: Session, now: datetime, digest_id: int) -> list[Section]:
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    pen_q = select(models.Holding).where(col(models.Holding.resolved_at).is_(None))
    total = session.exec(select(func.count()).select_from(pen_q.subquery())).one()
    pen = _cap(Section("Holding pen", holding=True), [
        {"reference": f"#{h.id}", "state": h.kind,
         "text": f"{h.sender or '?'}: {h.subject or ''} - {h.reason}"}
        for h in session.exec(pen_q.order_by(col(models.Holding.id)).limit(limit))],
        total, limit)
    triage_q = select(models.Case).where(col(models.Case.status) == "triage")
    total = session.exec(select(func.count()).select_from(triage_q.subquery())).one()
    triage = _cap(Section("Triage queue: cases waiting for a service"), [
        _line(c, c.status, c.subject)
        for c in session.exec(triage_q.order_by(col(models.Case.id)).limit(limit))],
        total, limit)
    by_service = []
    for sv in session.exec(select(models.Service).order_by(models.Service.name)):
        # One range of ix_request_service_open per service: an index-only count.
        n, oldest = session.exec(
            select(func.count(), func.min(models.Request.due))
            .where(models.Request.service_id == sv.id)
            .where(col(models.Request.state) == "sent").where(col(models.Request.due) < today)
        ).one()
        if n:
            by_service.append((sv.name, n, oldest))
    overdue = Section("Overdue by service", [
        {"reference": name, "state": f"{n} overdue", "text": f"oldest due {oldest.isoformat()}"}
        for name, n, oldest in by_service])
    notes = _take_notifications(session, "staff", "staff", digest_id, now)
    # Failed requests from what is true now, in every digest until resent, re-addressed or
    # withdrawn; a notice of a request's bounce or failure adds only a delay still waiting.
    lost_q = (select(models.Request, models.Case).join(models.Case)
              .where(col(models.Request.state) == "undeliverable"))
    total = session.exec(select(func.count()).select_from(
        select(models.Request.id).where(col(models.Request.state) == "undeliverable")
        .subquery())).one()
    services = {sv.id: sv.name for sv in session.exec(select(models.Service))}
    lost = [_line(c, "undeliverable", f"{services.get(r.service_id, '?')} <{r.contact}>: "
                  f"{(r.undeliverable_reason or 'undeliverable')[:60]}; "
                  "#resend, or #contact ADDRESS")
            for r, c in session.exec(lost_q.order_by(col(models.Request.id)).limit(limit))]
    about_request = [n for n in notes if n["kind"] in _FAILED and n["request_state"]]
    delayed = [{**n, "state": "delayed"} for n in about_request if n["request_state"] == "sent"
               and n["kind"] == "bounce"]
    bounced = _cap(Section("Bounced requests"), lost + delayed, total + len(delayed),
                   limit + len(delayed))
    review = Section("Mail for staff to review", [n for n in notes if n["kind"] == "review"])
    escalated = Section("Escalations since the last digest",
                        [n for n in notes if n["kind"] == "escalated"])
    others = Section("Other notices", [n for n in notes if n["kind"] not in ("escalated", "review")
                                       and n not in about_request])
    return [pen, triage, overdue, bounced, review, escalated, others]


# -- service digests --------------------------------------------------------------------------
def service_digests(app: App, now: datetime) -> dict[str, Any]:
    s = app.settings
    p = period(app, now, "weekly", s.digests.service_time)
    if p is None:
        return {"sent": 0}
    contacts: dict[str, list[str]] = {}
    for sv in s.services:
        contacts.setdefault(sv.contact, []).append(sv.name)
    with app.session() as session:
        done = _done(session, "service", {p})
    sent = 0
    for contact, names in contacts.items():
        if (contact, p) in done:
            continue
        with app.session() as session:
            digest_id = claim(session, "service", contact, p, now)
            if digest_id is None:
                session.rollback()
                continue
            sent += _send(app, session, "service_digest", [contact],
                          service_sections(app, session, names, now), now, digest_id,
                          services=names)
            session.commit()
    return {"sent": sent}


def service_sections(app: App, session: Session, names: list[str], now: datetime
                     ) -> list[Section]:
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    out = []
    for name in names:
        sv = session.exec(select(models.Service).where(models.Service.name == name)).one()
        open_q = (select(models.Request, models.Case).join(models.Case)
                  .where(models.Request.service_id == sv.id)
                  .where(col(models.Request.state) == "sent"))
        total = session.exec(select(func.count()).select_from(
            select(models.Request.id).where(models.Request.service_id == sv.id)
            .where(col(models.Request.state) == "sent").subquery())).one()
        rows = session.exec(open_q.order_by(col(models.Request.due), col(models.Request.id))
                            .limit(limit)).all()
        out.append(_cap(Section(f"{name}: open requests, overdue first"), [
            _line(c, "overdue" if r.due < today else "open",
                  f"due {r.due.isoformat()} - {c.subject}") for r, c in rows], total, limit))
    return out
