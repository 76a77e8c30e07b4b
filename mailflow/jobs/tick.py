"""The jobs, each taking `now`. `mailflow tick` runs them all once; `serve` schedules them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from mailflow import models
from mailflow.app import App
from mailflow.casework import filing
from mailflow.inbound import pipeline
from mailflow.jobs import chase, digests, retention
from mailflow.jobs.reports import send_reports
from mailflow.outbound import outbox


def process_spool(app: App, now: datetime) -> dict[str, Any]:
    return {"processed": pipeline.drain(app, now)}


# Mail whose failure staff must hear of (besides any mail about a request).
TELL_STAFF = ("request", "acknowledgement", "constituent_acknowledgement")


def deliver_outbox(app: App, now: datetime) -> dict[str, Any]:
    give_up = timedelta(hours=app.settings.outbound.give_up_hours)
    with app.session() as session:
        return outbox.flush(session, app.transport, now, give_up=give_up,
                            on_failed=undeliverable)


def undeliverable(session: Session, row: models.Outbox, lost: list[dict[str, Any]],
                  now: datetime) -> None:
    """A request, acknowledgement or other mail about a request that some recipient will
    never get: casework puts it in front of staff (the outbox does not know casework)."""
    if row.case_id is None or not (row.request_id or row.kind in TELL_STAFF):
        return
    case = session.get(models.Case, row.case_id)
    if case is None:
        return
    request = session.get(models.Request, row.request_id) if row.request_id else None
    answers = "; ".join(f"{r['address']}: {r['answer']}" for r in lost)
    reason = (f"the {row.kind.replace('_', ' ')} about {case.reference} could not be "
              f"delivered ({answers})")
    filing.mail_failed(session, case, request, reason, now,
                       recipients=[r["address"] for r in lost], sender=row.sender,
                       subject=row.subject)


Job = Callable[[App, datetime], dict[str, Any]]

# In order: what the spool and the time jobs turn into mail goes out in the same tick, and
# digests see the chases and closures of this tick.
JOBS: dict[str, Job] = {
    "process_spool": process_spool,
    "chase": chase.chase,
    "close_answered": chase.close_answered,
    "member_digests": digests.member_digests,
    "staff_digest": digests.staff_digest,
    "service_digests": digests.service_digests,
    "send_reports": send_reports,
    "deliver_outbox": deliver_outbox,
    "retention": retention.daily,  # once a council-local day
}


def tick(app: App, now: datetime) -> dict[str, dict[str, Any]]:
    return {name: job(app, now) for name, job in JOBS.items()}
