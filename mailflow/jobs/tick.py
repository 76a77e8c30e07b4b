"""The jobs, each taking `now`. `mailflow tick` runs them all once; `serve` schedules them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.jobs.reports import send_reports
from mailflow.outbound import outbox


def process_spool(app: App, now: datetime) -> dict[str, Any]:
    return {"processed": pipeline.drain(app, now)}


def deliver_outbox(app: App, now: datetime) -> dict[str, Any]:
    with app.session() as session:
        return outbox.flush(session, app.transport, now)


# In order: what the spool turns into mail should go out in the same tick.
JOBS: dict[str, Callable[[App, datetime], dict[str, Any]]] = {
    "process_spool": process_spool,
    "send_reports": send_reports,
    "deliver_outbox": deliver_outbox,
}


def tick(app: App, now: datetime) -> dict[str, dict[str, Any]]:
    return {name: job(app, now) for name, job in JOBS.items()}
