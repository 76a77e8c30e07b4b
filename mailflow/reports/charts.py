"""Charts as inline SVG: no scripts, no fonts or files to fetch, so a report opens in any
browser and travels as an email attachment. Each chart carries `data-chart` so tests (and
anyone scraping a report) can find it."""

from __future__ import annotations

from html import escape
from typing import Any

FONT = 'font-family="Arial, Helvetica, sans-serif"'
COLOURS = ("#1d70b8", "#f47738", "#00703c", "#d4351c")  # GOV.UK blue, orange, green, red
GOOD, BAD, TARGET = "#00703c", "#d4351c", "#0b0c0c"


def _svg(kind: str, width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{kind}" role="img" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f"<title>{escape(title)}</title>{''.join(body)}</svg>")


def _text(x: float, y: float, s: Any, anchor: str = "start", extra: str = "",
          size: int = 12) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} font-size="{size}"'
            f'{" " + extra if extra else ""}>'
            f"{escape(str(s))}</text>")


def _nice(top: float) -> float:
    """A round axis maximum at or above `top`."""
    if top <= 0:
        return 1
    step = 10 ** (len(str(int(top))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= top:
            return m * step
    return 10 * step


def bars(title: str, labels: list[str], series: dict[str, list[float]], per: str = "group"
         ) -> str:
    """Horizontal bars, one bar per series for each label (e.g. cases opened, requests)."""
    names = list(series)
    label_w, bar_h, gap, width = 180, 12, 10, 720
    plot_w = width - label_w - 60
    top = _nice(max([v for vals in series.values() for v in vals] or [0]))
    group_h = bar_h * len(names) + gap
    height = 40 + group_h * len(labels) + 20
    body = [_text(label_w, 16, " / ".join(names) + f" per {per}", extra='font-weight="bold"')]
    for i, name in enumerate(names):
        x = width - 200 + i * 100
        body.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{COLOURS[i]}"/>')
        body.append(_text(x + 14, 16, name))
    for j, label in enumerate(labels):
        y0 = 34 + j * group_h
        body.append(_text(label_w - 6, y0 + group_h / 2, label[:28], "end"))
        for i, name in enumerate(names):
            v = series[name][j] or 0
            w = plot_w * v / top
            y = y0 + i * bar_h
            body.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" '
                        f'height="{bar_h - 2}" fill="{COLOURS[i]}" data-value="{v}"/>')
            body.append(_text(label_w + w + 4, y + bar_h - 3, f"{v:g}", size=10))
    body.append(f'<line x1="{label_w}" y1="30" x2="{label_w}" y2="{height - 16}" '
                f'stroke="#b1b4b6"/>')
    return _svg("bars", width, height, title, body)


def trend(title: str, months: list[str], series: dict[str, list[float | None]]) -> str:
    """A line per series over the months (e.g. cases opened and requests sent per month)."""
    width, height, left, right, top_pad, bottom = 720, 260, 50, 40, 30, 40
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = _nice(max([v for vals in series.values() for v in vals if v is not None] or [0]))
    step = plot_w / max(len(months) - 1, 1)
    body = []
    for k in range(5):  # horizontal grid lines with their values
        v = top * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                    f'stroke="#e5e5e5"/>')
        body.append(_text(left - 6, y + 4, f"{v:g}", "end"))
    for i, m in enumerate(months):
        if len(months) <= 12 or i % max(len(months) // 12, 1) == 0:
            body.append(_text(left + i * step, height - bottom + 16, m, "middle"))
    for s, (name, vals) in enumerate(series.items()):
        pts = [(left + i * step, top_pad + plot_h - plot_h * v / top)
               for i, v in enumerate(vals) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        body.append(f'<polyline class="trend" points="{path}" fill="none" '
                    f'stroke="{COLOURS[s]}" stroke-width="2" data-series="{escape(name)}"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[s]}"/>' for x, y in pts]
        lx = left + s * 140
        body.append(f'<rect x="{lx}" y="6" width="10" height="10" fill="{COLOURS[s]}"/>')
        body.append(_text(lx + 14, 16, name))
    return _svg("trend", width, height, title, body)


def on_time(title: str, labels: list[str], pcts: list[float | None], target: float) -> str:
    """On-time % per service as bars against the target line: green at or above it."""
    label_w, bar_h, width = 180, 18, 720
    plot_w = width - label_w - 60
    height = 40 + bar_h * len(labels) + 30
    body = []
    for j, (label, pct) in enumerate(zip(labels, pcts, strict=True)):
        y = 30 + j * bar_h
        body.append(_text(label_w - 6, y + bar_h - 5, label[:28], "end"))
        if pct is None:
            body.append(_text(label_w + 4, y + bar_h - 5, "no answers due", extra='fill="#505a5f"'))
            continue
        w = plot_w * pct / 100
        body.append(f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" '
                    f'height="{bar_h - 4}" fill="{GOOD if pct >= target else BAD}" '
                    f'data-value="{pct}"/>')
        body.append(_text(label_w + w + 4, y + bar_h - 5, f"{pct:g}%"))
    tx = label_w + plot_w * target / 100
    body.append(f'<line class="target" x1="{tx:.1f}" y1="24" x2="{tx:.1f}" y2="{height - 20}" '
                f'stroke="{TARGET}" stroke-width="2" stroke-dasharray="6 3" '
                f'data-target="{target:g}"/>')
    body.append(_text(tx, 16, f"target {target:g}%", "middle", 'font-weight="bold"'))
    for pct in (0, 50, 100):
        x = label_w + plot_w * pct / 100
        body.append(_text(x, height - 6, f"{pct}%", "middle", 'fill="#505a5f"'))
    return _svg("on-time", width, height, title, body)
