"""The jobs, each taking `now`. `mailflow tick` runs them all once; `serve` schedules them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs import chase, digests
from mailflow.jobs.reports import send_reports
from mailflow.outbound import outbox


def process_spool(app: App, now: datetime) -> dict[str, Any]:
    return {"processed": pipeline.drain(app, now)}


def deliver_outbox(app: App, now: datetime) -> dict[str, Any]:
    with app.session() as session:
        return outbox.flush(session, app.transport, now)


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
}


def tick(app: App, now: datetime) -> dict[str, dict[str, Any]]:
    return {name: job(app, now) for name, job in JOBS.items()}
