"""Scheduled reports: the monthly service-performance report (to staff, and to each head of
service with their own service against the council), and the six-monthly enquiry-types
report (to staff). Each is HTML email with the CSV and the HTML page attached.

A report is due at `[reports] send_at` (council-local) on the first day after its period and
is sent by the first tick after that, up to a week late (a server that was down catches up;
a new install does not mail old periods). Each (report, period, recipient) is claimed by
inserting a `sent_report` row in the transaction that queues the mail, so a double tick or
a second node never sends it twice.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta
from typing import Any

from sqlmodel import Session, select

from mailflow import db, models
from mailflow.app import App
from mailflow.outbound import mail
from mailflow.reports import formats, html, report
from mailflow.reports.period import Period, half_of, month_of

CATCH_UP = timedelta(days=7)


def due_period(app: App, now: datetime, current: Period) -> Period | None:
    """The period before `current`, if its report is due at `now`."""
    at = datetime.combine(current.start, time.fromisoformat(app.settings.reports.send_at),
                          app.calendar.tz)
    return current.previous() if at <= now < at + CATCH_UP else None


def send_reports(app: App, now: datetime) -> dict[str, Any]:
    cfg = app.settings.reports
    today = app.calendar.local(now).date()
    sent = 0
    month = due_period(app, now, month_of(today)) if cfg.monthly else None
    if month:
        sent += _service_performance(app, now, month)
    half = due_period(app, now, half_of(today)) if cfg.six_monthly else None
    if half:
        sent += _enquiry_types(app, now, half)
    return {"sent": sent}


def _staff(app: App) -> list[str]:
    s = app.settings
    return list(dict.fromkeys([st.email for st in s.staff] + s.reports.to))


def _heads(app: App) -> dict[str, list[str]]:
    """Each escalation contact (head of service) and the services they answer for."""
    s = app.settings
    heads: dict[str, list[str]] = defaultdict(list)
    for svc in s.services if s.reports.escalation_contacts else []:
        if svc.escalation:
            heads[svc.escalation].append(svc.name)
    return heads


def _pending(app: App, kind: str, p: Period, recipients: list[str]) -> set[str]:
    """Who has not had this report yet: most ticks find no one and compute nothing."""
    with app.session() as session:
        done = set(session.exec(select(models.SentReport.recipient).where(
            models.SentReport.kind == kind, models.SentReport.period == p.label)))
    return set(recipients) - done


def _service_performance(app: App, now: datetime, p: Period) -> int:
    heads = _heads(app)
    pending = _pending(app, "service_performance", p, _staff(app) + list(heads))
    if not pending:
        return 0
    council = app.settings.council.name
    today = app.calendar.local(now).date()
    mail: dict[str, tuple[dict[str, Any], str]] = {}
    with app.session() as session:
        rows, total = report.with_total(session, p, ["service"], today)
        council_row = {**total, "group": "Council"}
        if pending & set(_staff(app)):
            ctx = html.context(app, session, p, ["service"], rows, total, today,
                               f"{council} casework: service performance, {p.label}")
            data = formats.to_csv(rows + [council_row], ["service"])
            mail.update({to: (ctx, data) for to in _staff(app)})
        have = {r["group"]: r for r in rows}
        for head, names in heads.items():
            if head not in pending:
                continue
            own = [have.get(n) or report.empty_row(n, p) for n in names]
            title = f"{council} casework: {', '.join(names)} against the council, {p.label}"
            mail[head] = (html.context(app, session, p, ["service"], own, total, today, title,
                                       services=names),
                          formats.to_csv(own + [council_row], ["service"]))
    return sum(_send(app, now, "service_performance", p, to, *mail[to])
               for to in mail if to in pending)


def _enquiry_types(app: App, now: datetime, p: Period) -> int:
    pending = _pending(app, "enquiry_types", p, _staff(app))
    if not pending:
        return 0
    today = app.calendar.local(now).date()
    with app.session() as session:
        rows, total = report.with_total(session, p, ["type"], today)
        ctx = html.context(app, session, p, ["type"], rows, total, today,
                           f"{app.settings.council.name} casework: enquiry types, {p.label}")
    data = formats.to_csv(rows + [{**total, "group": "Council"}], ["type"])
    return sum(_send(app, now, "enquiry_types", p, to, ctx, data) for to in sorted(pending))


def _claim(session: Session, kind: str, p: Period, to: str, now: datetime) -> int | None:
    """Insert the claim for this report; None when it is already someone else's."""
    key = {"kind": kind, "period": p.label, "recipient": to}
    if not db.insert_once(session, models.SentReport, {**key, "created_at": now}, list(key)):
        return None
    return session.exec(select(models.SentReport.id).where(
        *(getattr(models.SentReport, k) == v for k, v in key.items()))).one()


def _send(app: App, now: datetime, kind: str, p: Period, to: str, ctx: dict[str, Any],
          data: str) -> int:
    with app.session() as session:
        claim = _claim(session, kind, p, to, now)
        if claim is None:
            session.rollback()
            return 0
        name = f"{kind.replace('_', '-')}-{p.label}"
        html_report = app.templates.get_template("report.html").render(**ctx)
        row = mail.send(app.context, session, "report", ctx, to=[to], now=now, files=(
            mail.Attachment(f"{name}.csv", "text/csv", data.encode("utf-8")),
            mail.Attachment(f"{name}.html", "text/html", html_report.encode("utf-8"))))
        session.flush()
        session.get(models.SentReport, claim).outbox_id = row.id  # type: ignore[union-attr]
        session.commit()
        return 1
