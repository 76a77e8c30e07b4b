"""A report as one self-contained HTML page (templates/report.html): the table, bars per
group, the monthly trend and on-time % per service against the target. The same page is the
HTML part of a scheduled report's email."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from markupsafe import Markup
from sqlmodel import Session

from mailflow.app import App
from mailflow.reports import charts, formats, report
from mailflow.reports.period import Period, between, month_of

MAX_BARS = 40  # more groups than this and a bar chart stops being readable


def _label(row: dict[str, Any], by: Sequence[str]) -> str:
    names = ["group"] if len(by) <= 1 else list(by)
    return " / ".join("(none)" if row[n] is None else str(row[n]) for n in names)


def context(app: App, session: Session, period: Period, by: Sequence[str],
            rows: list[dict[str, Any]], total: dict[str, Any], today: date,
            title: str | None = None, services: Sequence[str] | None = None
            ) -> dict[str, Any]:
    """`services`: only these services on the on-time chart (a head of service's report)."""
    target = app.settings.reports.target
    shown = sorted(rows, key=lambda r: -(r["opened"] + r["requests"]))[:MAX_BARS] \
        if len(rows) > MAX_BARS else rows
    group_chart = charts.bars(
        f"Cases opened and requests sent by {', '.join(by) or 'council'}",
        [_label(r, by) for r in shown],
        {"cases opened": [r["opened"] for r in shown],
         "requests": [r["requests"] for r in shown]}, per=" / ".join(by) or "council")
    # The trend covers at least a year, so a monthly report still shows where things go.
    first = month_of(period.end)
    for _ in range(11):
        first = first.previous()
    span = between(min(first.start, period.start), period.end)
    months = report.report(session, span, ["month"], today)
    trend_chart = charts.trend(
        "Cases opened and requests sent per month", [m["group"] for m in months],
        {"cases opened": [m["opened"] for m in months],
         "requests": [m["requests"] for m in months],
         "answered on time": [m["answered_on_time"] for m in months]})
    services = [r for r in report.report(session, period, ["service"], today)
                if r["requests"] and (services is None or r["group"] in services)]
    on_time_chart = charts.on_time(
        f"Requests answered on time, by service, against the {target:g}% target",
        [_label(r, ["service"]) for r in services] + ["Council"],
        [r["on_time_pct"] for r in services] + [total["on_time_pct"]], target)
    names = ["group"] if len(by) <= 1 else list(by)
    return {
        "council": app.settings.council,
        "title": title or f"{app.settings.council.name} casework report: {period.label}",
        "period": period, "previous": period.previous(), "today": today, "target": target,
        "by": list(by), "group_columns": names, "rows": rows, "total": total,
        "headings": {n: (by[0] if n == "group" and by else n) for n in names},
        "shown_groups": len(shown), "label": lambda r: _label(r, by),
        "num": formats._num, "signed": formats._signed,
        "charts": [Markup(group_chart), Markup(trend_chart), Markup(on_time_chart)],
        "text_table": formats.to_text(rows, by, period, total),
    }


def page(app: App, session: Session, period: Period, by: Sequence[str],
         rows: list[dict[str, Any]], total: dict[str, Any], today: date,
         title: str | None = None) -> str:
    ctx = context(app, session, period, by, rows, total, today, title)
    return app.templates.get_template("report.html").render(**ctx)
