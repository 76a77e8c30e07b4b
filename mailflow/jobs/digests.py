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

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import bindparam, case, func, literal, union_all, update
from sqlmodel import Session, col, select

from mailflow import db, models, tokens
from mailflow.app import App
from mailflow.casework import directory, notify
from mailflow.outbound import mail
from mailflow.settings import WEEKDAYS, Member

# Notices about a request that stop being true once it is answered (or withdrawn).
_WHILE_WAITING = {"chased", "escalated", "extension", "bounce"}
_FAILED = ("bounce", "undeliverable")  # the staff digest's "Bounced requests"
BATCH = 50  # digests per transaction: short write transactions, statements per batch


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
    return claim_all(session, audience, [(recipient, period_)], now).get(recipient)


def claim_all(session: Session, audience: str, keys: list[tuple[str, str]], now: datetime
              ) -> dict[str, int]:
    """Claim the runs of many recipients in one INSERT: recipient -> digest id for the rows
    this call inserted (a row another tick or node inserted first is not ours)."""
    rows = db.insert_new(session, models.Digest, [
        {"audience": audience, "recipient": r, "period": p, "created_at": now, "items": 0,
         "sent": False} for r, p in keys], ["audience", "recipient", "period"],
        models.Digest.recipient, models.Digest.id)
    return {r: i for r, i in rows}


def _done(session: Session, audience: str, periods: set[str]) -> set[tuple[str, str]]:
    rows = session.exec(select(models.Digest.recipient, models.Digest.period)
                        .where(models.Digest.audience == audience)
                        .where(col(models.Digest.period).in_(periods))).all()
    return {(r, p) for r, p in rows}


def _take_notifications(session: Session, audience: str, digests: dict[str, int],
                        now: datetime) -> dict[str, list[dict[str, str]]]:
    """Attach every waiting notification of each recipient to their digest (recipient ->
    digest id) in one UPDATE, then read what each digest now carries: the lines of those still
    true, each `{reference, state, text, kind}`, per recipient. Attached first and read by
    digest, so a notification that arrives meanwhile waits for the next digest whole."""
    out: dict[str, list[dict[str, str]]] = {r: [] for r in digests}
    if not digests:
        return out
    N = models.Notification
    session.execute(update(N).where(col(N.audience) == audience)
                    .where(col(N.recipient).in_(list(digests)))
                    .where(col(N.digest_id).is_(None)).where(col(N.created_at) <= now)
                    .values(digest_id=case(digests, value=col(N.recipient)))
                    .execution_options(synchronize_session=False))
    rows = list(session.exec(
        select(N).where(col(N.audience) == audience).where(col(N.recipient).in_(list(digests)))
        .where(col(N.digest_id).in_(list(digests.values()))).order_by(col(N.id))))
    if not rows:
        return out
    # Their cases and requests in two queries, not two per notification.
    cases = {c.id: c for c in session.exec(select(models.Case).where(
        col(models.Case.id).in_({n.case_id for n in rows if n.case_id})))}
    requests = {r.id: r for r in session.exec(select(models.Request).where(
        col(models.Request.id).in_({n.request_id for n in rows if n.request_id})))}
    for n in rows:
        c, request = cases.get(n.case_id), requests.get(n.request_id)
        if digests.get(n.recipient) == n.digest_id and still_true(n, c, request):
            out[n.recipient].append({**_line(c, c.status if c else None, n.text),
                                     "kind": n.kind,
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
          now: datetime, digest_id: int, **context: Any) -> dict[str, Any]:
    """Render and queue one digest; returns its row's new values (written for all digests of
    a batch in one statement by `_record`)."""
    items = sum(s.total for s in sections)
    done = {"id": digest_id, "items": items, "sent": bool(items and to)}
    if not done["sent"]:
        return done
    # Its own reply address: a reply to a digest is known for one and never opens a case.
    casework = app.settings.council.casework_address
    reply_to = tokens.digest_address(casework, digest_id,
                                     tokens.digest_token(app.settings.secret, digest_id))
    mail.send(app.context, session, template,
              {"sections": [s for s in sections if s.total],
               "holding_pen": any(s.holding and s.total for s in sections),
               "day_text": notify.date_text(app.calendar.today(now)), **context},
              to=to, now=now, reply_to=reply_to)
    return done


def _record(session: Session, done: list[dict[str, Any]]) -> int:
    """Each digest's item count and whether it went, in one statement; returns how many went."""
    if done:
        table = models.Digest.__table__  # type: ignore[attr-defined]
        session.connection().execute(  # Core executemany: one statement for the batch
            update(table).where(table.c.id == bindparam("d_id"))
            .values(items=bindparam("d_items"), sent=bindparam("d_sent")),
            [{"d_id": d["id"], "d_items": d["items"], "d_sent": d["sent"]} for d in done])
    return sum(d["sent"] for d in done)


def _chunks(items: list[Any], size: int = BATCH) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- member digests ---------------------------------------------------------------------------
def member_digests(app: App, now: datetime) -> dict[str, Any]:
    """Each due member's digest. Members go in batches, one transaction each: the runs are
    claimed in one INSERT and every section is one query for the whole batch, so the
    statements do not grow with the number of members (only the mail each one gets)."""
    s = app.settings
    wanted = [(m, p) for m in s.members
              if (p := period(app, now, m.digest, s.digests.member_time))]
    if not wanted:
        return {"sent": 0}
    with app.session() as session:
        done = _done(session, "member", {p for _, p in wanted})
    todo = [(m, p) for m, p in wanted if (m.email, p) not in done]
    sent = empty = 0
    for batch in _chunks(todo):
        with app.session() as session:
            ids = claim_all(session, "member", [(m.email, p) for m, p in batch], now)
            mine = [m for m, _ in batch if m.email in ids]
            sections = member_sections(app, session, mine, now, ids)
            n = _record(session, [
                _send(app, session, "member_digest", [m.email], sections[m.email], now,
                      ids[m.email], member=m, weekly=m.digest == "weekly") for m in mine])
            session.commit()
        sent += n
        empty += len(mine) - n
    return {"sent": sent, "empty": empty}


def member_sections(app: App, session: Session, members: list[Member], now: datetime,
                    digests: dict[str, int]) -> dict[str, list[Section]]:
    """Every section of these members' digests (email -> digest id), each read in one query
    for all of them and grouped here by member."""
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    if not members:
        return {}
    directory.warm(session)
    row_of = {m.email: directory.member_row(session, m.email) for m in members}
    ids = [row.id for row in row_of.values()]
    notes = _take_notifications(session, "member", {m.email: digests[m.email] for m in members},
                                now)
    services = directory.service_names(session)
    C, R = models.Case, models.Request

    # Overdue requests of their cases: each member's count and first page in (due, id) order.
    counted, pages = _overdue(session, ids, today, limit)
    totals = counted or {}
    overdue: dict[int, list[dict[str, str]]] = {}
    if pages is not None:
        for r in session.execute(
                select(pages.c.member_id, pages.c.due, R.service_id, C.reference, C.subject,
                       *([] if counted is not None else [pages.c.total]))
                .join(R, col(R.id) == pages.c.id).join(C, col(C.id) == col(R.case_id))
                .order_by(pages.c.member_id, pages.c.due, pages.c.id)):
            if counted is None:
                totals[r.member_id] = r.total
            overdue.setdefault(r.member_id, []).append(_line(
                r, "overdue", f"{services.get(r.service_id, '')}: due {r.due.isoformat()}, "
                f"{cal.working_days_between(r.due, today)} working days late - {r.subject}"))

    # Answered cases about to close: a short range of ix_case_closing, all of it.
    closing: dict[int, list[models.Case]] = {}
    for c in session.exec(select(C).where(col(C.status) == "answered")
                          .where(col(C.open_until) <= cal.next_working_day(today))
                          .where(col(C.member_id).in_(ids))
                          .order_by(col(C.open_until), col(C.id))):
        closing.setdefault(c.member_id, []).append(c)

    # The holding pen's unresolved mail from any of their addresses.
    owners: dict[str, list[str]] = {}
    for m in members:
        for a in dict.fromkeys([m.email, *m.aliases]):
            owners.setdefault(a, []).append(m.email)
    pen: dict[str, list[models.Holding]] = {}
    for h in session.exec(select(models.Holding).where(col(models.Holding.resolved_at).is_(None))
                          .where(col(models.Holding.sender).in_(list(owners)))
                          .order_by(col(models.Holding.id))):
        for email in owners.get(h.sender or "", []):
            pen.setdefault(email, []).append(h)

    out = {}
    for m in members:
        mid = row_of[m.email].id
        mine = notes[m.email]
        lines, total = overdue.get(mid, []), int(totals.get(mid) or 0)
        soon = closing.get(mid, [])
        held = pen.get(m.email, [])
        out[m.email] = [
            Section("New cases acknowledged", [n for n in mine if n["kind"] == "opened"]),
            Section("Updates since your last digest",
                    clusters([n for n in mine if n["kind"] != "opened"])),
            _cap(Section("Overdue requests on your cases"), lines, total, limit),
            _cap(Section("Answered cases about to close"), [
                _line(c, c.status, f"closes after "
                      f"{c.open_until.isoformat() if c.open_until else ''}"
                      f" unless you reply #reopen or #reject - {c.subject}")
                for c in soon[:limit]], len(soon), limit),
            _cap(Section("Your mail waiting in the holding pen", holding=True), [
                {"reference": f"#{h.id}", "state": h.kind,
                 "text": f"{h.subject or ''} - {h.reason}"} for h in held[:limit]],
                len(held), limit),
        ]
    return out


def _overdue(session: Session, ids: list[int], today: date, limit: int
             ) -> tuple[dict[int, int] | None, Any]:
    """Each member's number of overdue requests (member id -> count; None: the subquery's
    `total` column says) and a subquery of their first `limit` (member_id, id, due), or None
    when none has any. Each database gets the plan
    it runs well: PostgreSQL hashes the council's overdue requests with the cases once and
    ranks them by window functions; SQLite counts per case (a range of ix_request_case_open
    for each case of ix_case_member_id) and takes each member's page with its own LIMIT, all
    in one UNION ALL (ranked there, SQLite sorted every overdue request three times: 4x
    slower at 200,000 cases)."""
    C, R = models.Case, models.Request
    if db.is_postgres(session.get_bind()):  # type: ignore[arg-type]
        ranked = (select(C.member_id, R.id, R.due,
                         func.row_number().over(partition_by=C.member_id,
                                                order_by=(R.due, R.id)).label("rank"),
                         func.count().over(partition_by=C.member_id).label("total"))
                  .select_from(R).join(C, col(C.id) == col(R.case_id))
                  .where(col(R.state) == "sent").where(col(R.due) < today)
                  .where(col(C.member_id).in_(ids)).subquery())
        return None, select(ranked).where(ranked.c.rank <= limit).subquery()
    per_case = (select(func.count()).select_from(R).where(col(R.case_id) == C.id)
                .where(col(R.state) == "sent").where(col(R.due) < today)
                .correlate(C).scalar_subquery())
    totals = {m: int(n or 0) for m, n in session.exec(
        select(C.member_id, func.sum(per_case)).where(col(C.member_id).in_(ids))
        .group_by(C.member_id))}
    pages = [select(literal(i).label("member_id"), R.id, R.due)
             .where(col(R.case_id).in_(select(C.id).where(C.member_id == i)))
             .where(col(R.state) == "sent").where(col(R.due) < today)
             .order_by(col(R.due), col(R.id)).limit(limit).subquery()
             for i in ids if totals.get(i)]
    return totals, union_all(*(select(p) for p in pages)).subquery() if pages else None


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
        sent = _record(session, [_send(app, session, "staff_digest", [st.email for st in s.staff],
                                       staff_sections(app, session, now, digest_id), now,
                                       digest_id)])
        session.commit()
    return {"sent": sent}


def staff_sections(app: App, session: Session, now: datetime, digest_id: int) -> list[Section]:
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    directory.warm(session)
    services = directory.service_names(session)
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
    # Every service's overdue count and oldest due date in one grouped query (index-only on
    # ix_request_service_open), not one per service.
    R = models.Request
    per_service = {sid: (n, oldest) for sid, n, oldest in session.exec(
        select(R.service_id, func.count(), func.min(R.due)).where(col(R.state) == "sent")
        .where(col(R.due) < today).group_by(R.service_id))}
    by_service = sorted((services[sid], n, oldest) for sid, (n, oldest) in per_service.items()
                        if n and sid in services)
    overdue = Section("Overdue by service", [
        {"reference": name, "state": f"{n} overdue", "text": f"oldest due {oldest.isoformat()}"}
        for name, n, oldest in by_service])
    notes = _take_notifications(session, "staff", {"staff": digest_id}, now)["staff"]
    # Failed requests from what is true now, in every digest until resent, re-addressed or
    # withdrawn; a notice of a request's bounce or failure adds only a delay still waiting.
    lost_q = (select(models.Request, models.Case).join(models.Case)
              .where(col(models.Request.state) == "undeliverable"))
    total = session.exec(select(func.count()).select_from(
        select(models.Request.id).where(col(models.Request.state) == "undeliverable")
        .subquery())).one()
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
    todo = [(c, names) for c, names in contacts.items() if (c, p) not in done]
    sent = 0
    for batch in _chunks(todo):
        with app.session() as session:
            ids = claim_all(session, "service", [(c, p) for c, _ in batch], now)
            mine = [(c, names) for c, names in batch if c in ids]
            sections = service_sections(app, session, [n for _, names in mine for n in names],
                                        now)
            sent += _record(session, [
                _send(app, session, "service_digest", [c], [sections[n] for n in names], now,
                      ids[c], services=names) for c, names in mine])
            session.commit()
    return {"sent": sent}


def service_sections(app: App, session: Session, names: list[str], now: datetime
                     ) -> dict[str, Section]:
    """Each named service's open requests, overdue first: the counts in one grouped query and
    each service's first page as one range of ix_request_service_open, all in one UNION ALL."""
    cal, limit = app.calendar, app.settings.digests.max_items
    today = cal.today(now)
    if not names:
        return {}
    directory.warm(session)
    R, C = models.Request, models.Case
    sid = {n: directory.service_row(session, n).id for n in names}
    totals = dict(session.exec(select(R.service_id, func.count()).where(col(R.state) == "sent")
                               .where(col(R.service_id).in_(list(sid.values())))
                               .group_by(R.service_id)).all())
    pages = [select(R.service_id, R.due, R.id, R.case_id).where(R.service_id == i)
             .where(col(R.state) == "sent").order_by(col(R.due), col(R.id)).limit(limit)
             .subquery() for i in dict.fromkeys(sid.values())]
    q = union_all(*(select(p) for p in pages)).subquery()
    rows = session.execute(select(q.c.service_id, q.c.due, q.c.id, C.reference, C.subject)
                           .join(C, col(C.id) == q.c.case_id)).all()
    by_service: dict[int, list[Any]] = {}
    for r in sorted(rows, key=lambda r: (r.due, r.id)):
        by_service.setdefault(r.service_id, []).append(r)
    return {name: _cap(Section(f"{name}: open requests, overdue first"), [
        _line(r, "overdue" if r.due < today else "open", f"due {r.due.isoformat()} - {r.subject}")
        for r in by_service.get(sid[name], [])], totals.get(sid[name], 0), limit)
        for name in names}
