"""A report's rows as CSV and as a readable text table."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from mailflow.reports.period import Period
from mailflow.reports.report import columns


def to_csv(rows: list[dict[str, Any]], by: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(by), extrasaction="ignore",
                            lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}".removesuffix(".0") if v == int(v) else f"{v:.1f}"
    return str(v)


def _signed(v: Any, unit: str = "") -> str:
    return "" if v is None else f"{'+' if v > 0 else ''}{_num(v)}{unit}"


def to_text(rows: list[dict[str, Any]], by: Sequence[str], period: Period,
            total: dict[str, Any] | None = None) -> str:
    prev = period.previous()
    title = (f"{period.label}: {period.start} to {period.end}, compared with {prev.label} "
             f"({prev.start} to {prev.end})")
    groups = ["group"] if len(by) <= 1 else list(by)
    headers = [*(g.upper() for g in (by or ["group"])), "OPENED", "CLOSED", "REQUESTS",
               "ON TIME", "ON TIME %", "CHANGE", "MEDIAN", "P90", "OVERDUE", "ESCALATED"]

    def line(r: dict[str, Any], names: list[str]) -> list[str]:
        return [*names, _num(r["opened"]), _num(r["closed"]), _num(r["requests"]),
                _num(r["answered_on_time"]), _num(r["on_time_pct"]),
                _signed(r["on_time_pct_change"], " pts"), _num(r["median_days"]),
                _num(r["p90_days"]), _num(r["overdue_now"]), _num(r["escalations"])]

    body = [line(r, ["(none)" if r[g] is None else str(r[g]) for g in groups]) for r in rows]
    if total is not None and by:
        body.append(line(total, ["TOTAL"] + [""] * (len(groups) - 1)))
    widths = [max(len(x) for x in c) for c in zip(headers, *body, strict=True)]
    text_cols = len(groups)

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < text_cols else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [title, "", fmt(headers), *(fmt(b) for b in body)]
    out += ["", "ON TIME: requests answered by their due date; ON TIME %: of those answered or "
                "past due;", "MEDIAN, P90: working days to answer; OVERDUE: unanswered and "
                "past due today."]
    return "\n".join(out)
