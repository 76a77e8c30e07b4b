"""`/livez` (the process answers), `/readyz` (database reachable, schema current, receivers
running) and `/metrics` (Prometheus text). Unauthenticated and free of personal data: counts,
ages, states and job names only.

The gauges that describe the whole system are read from the database once per scrape, each
by an index (spool and outbox by state, the holding pen by `resolved_at`, overdue requests
by state and due date), so a scrape costs the same at 200,000 cases as at 20."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, text
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailflow import clock, db, metrics, models
from mailflow.app import App

Receivers = Callable[[], dict[str, bool]]  # name -> running


class Gauges:
    """The database's figures, as Prometheus gauges, read at each scrape."""

    def __init__(self, app: App):
        self.app = app

    def collect(self) -> Iterator[Metric]:
        now = clock.now()
        today = self.app.calendar.today(now)
        with self.app.session() as s:
            waiting = s.exec(select(func.count()).select_from(models.RawMessage)
                             .where(models.RawMessage.state == "new")).one()
            unresolved = select(models.Holding).where(col(models.Holding.resolved_at).is_(None))
            held = s.exec(select(func.count()).select_from(unresolved.subquery())).one()
            oldest: datetime | None = s.exec(
                select(func.min(models.Holding.created_at))
                .where(col(models.Holding.resolved_at).is_(None))).one()
            states = {state: s.exec(select(func.count()).select_from(models.Outbox)
                                    .where(models.Outbox.state == state)).one()
                      for state in ("queued", "sending", "held", "failed")}
            overdue = s.exec(select(func.count()).select_from(models.Request)
                             .where(models.Request.state == "sent",
                                    col(models.Request.due) < today)).one()
        yield GaugeMetricFamily("mailflow_spool_waiting",
                                "Stored messages the pipeline has not taken yet", value=waiting)
        yield GaugeMetricFamily("mailflow_holding_pen_items",
                                "Unresolved items in the holding pen", value=held)
        age = (now - clock.to_utc(oldest)).total_seconds() if oldest else 0
        yield GaugeMetricFamily("mailflow_holding_pen_oldest_age_seconds",
                                "Age of the oldest unresolved holding-pen item", value=age)
        box = GaugeMetricFamily("mailflow_outbox_messages",
                                "Outbound mail not yet delivered, by state (sent mail is "
                                "counted by mailflow_mail_sent_total)", labels=["state"])
        for state, n in states.items():
            box.add_metric([state], n)
        yield box
        yield GaugeMetricFamily("mailflow_requests_overdue",
                                "Requests to services past their due date and unanswered",
                                value=overdue)


def create(app: App, receivers: Receivers = dict) -> Starlette:
    registry = CollectorRegistry()
    registry.register(Gauges(app))  # type: ignore[arg-type]
    head = db.schema_revisions(app.url)[1]

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    def ready() -> tuple[bool, dict[str, str]]:
        checks: dict[str, str] = {}
        try:
            with db.engine(app.url).connect() as conn:
                conn.execute(text("SELECT 1"))
            current = db.schema_revisions(app.url)[0]
            checks["database"] = "ok"
            checks["schema"] = "ok" if current == head else \
                f"at {current or 'nothing'}, needs {head}: run mailflow init"
        except Exception as e:  # noqa: BLE001 - any failure is "not ready", said in one line
            checks["database"] = f"unreachable: {type(e).__name__}"
        for name, running in receivers().items():
            checks[name] = "ok" if running else "stopped"
        return all(v == "ok" for v in checks.values()), checks

    async def readyz(request: Request) -> Response:
        ok, checks = await _in_thread(ready)
        return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                            status_code=200 if ok else 503)

    async def metrics_(request: Request) -> Response:
        body = await _in_thread(lambda: generate_latest(metrics.REGISTRY)
                                + generate_latest(registry))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    from mailflow.web import pages  # the member and staff pages share the app and port

    return Starlette(routes=[Route("/livez", livez), Route("/readyz", readyz),
                             Route("/metrics", metrics_), *pages.routes(app)])


async def _in_thread(fn: Callable[[], object]) -> object:
    """Database work off the event loop, so a slow query never stalls /livez."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn)
