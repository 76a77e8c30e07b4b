"""How well mailflow reads the test corpus, scored on exactly what `mailflow inspect --json`
prints (inbound/inspect.py, built on the pipeline's own understand()).

Rows (issue 12): the original sender of an English-language forward; the original sender of a
forward in any language (and every expected field right); "is this a forward?"; the visible
text of a reply, exactly; a delivery report recognised as a bounce; the failed address(es)
of a bounce. A folder that is missing or empty gives n/a.

Usage: python scripts/corpus_accuracy.py [-v] [--json] [--corpus DIR]
  -v lists every miss (file and the fields it gets wrong); --json prints the table as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailflow import settings
from mailflow.inbound.inspect import inspect

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
CONFIG = ROOT / "config" / "mailflow.toml"


@dataclass
class Row:
    key: str
    what: str
    target: float  # share, 0..1
    good: int = 0
    total: int = 0
    misses: list[str] = field(default_factory=list)

    def score(self, right: bool, miss: str) -> None:
        self.total += 1
        self.good += right
        if not right:
            self.misses.append(miss)

    @property
    def share(self) -> float | None:
        return self.good / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "what": self.what, "good": self.good, "total": self.total,
                "share": None if self.share is None else round(self.share, 4),
                "target": self.target, "misses": self.misses}


@functools.cache
def _settings(internal: tuple[str, ...]) -> settings.Settings:
    """The sample council, with the corpus council's domains as its own (internal)."""
    s = settings.load(CONFIG)
    s.council.trusted_domains = sorted(set(s.council.trusted_domains) | set(internal))
    return s


def _read(path: Path, internal: list[str]) -> dict[str, Any]:
    return inspect(path.read_bytes(), _settings(tuple(internal)), None, path.name)


def _iso(value: str | None) -> str | None:
    """An expected date in inspect's form: UTC with Z when it has an offset, else as is."""
    if value is None:
        return None
    d = datetime.fromisoformat(value)
    if d.tzinfo is None:
        return d.isoformat()
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def forward_misses(got: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The expected fields that inspect's JSON gets wrong (is_forward first)."""
    if got["forwarded"] != expected["is_forward"]:
        return ["is_forward"]
    if not expected["is_forward"]:
        return []
    o = got["original"]
    sender = o["from"] or {}
    actual = {
        "sender_address": sender.get("address") or None,
        "sender_name": sender.get("name"),
        "subject": o["subject"],
        "date": o["date"],
        "note": got["note"],
        "attached": o["attached"],
        "to": [p["address"] for p in o["to"]],
        "cc": [p["address"] for p in o["cc"]],
    }
    want = dict(expected)
    if "date" in want:
        want["date"] = _iso(want["date"])
    wrong = [k for k, v in actual.items() if k in want and want[k] != v]
    if "body_starts" in want and not (o["body"] or "").startswith(want["body_starts"]):
        wrong.append("body_starts")
    return wrong


def normalise(text: str) -> str:
    """Compare texts modulo trailing spaces and the number of blank lines."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _cases(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.eml")):
        sidecar = path.with_suffix(".json")
        if sidecar.exists():
            out.append((path, json.loads(sidecar.read_text(encoding="utf-8"))))
    return out


def measure(corpus: Path = CORPUS) -> list[Row]:
    en = Row("forward_sender_en", "original sender of an English-language forward", 0.97)
    every = Row("forward_sender_all", "original sender of a forward, all languages", 0.92)
    fields = Row("forward_all_fields", "  (all fields right)", 0.0)
    is_fwd = Row("is_forward", '"is this a forward?" answered right', 0.97)
    reply = Row("reply_visible", "visible text of a reply, exactly", 0.88)
    bounce = Row("bounce_recognised", "delivery report recognised as a bounce", 0.96)
    failed = Row("bounce_failed_address", "failed address of a bounce", 0.93)

    for path, want in _cases(corpus / "forwards"):
        got = _read(path, want.get("internal_domains", []))
        wrong = forward_misses(got, want)
        miss = f"forwards/{path.name}: {', '.join(wrong)}"
        is_fwd.score("is_forward" not in wrong, miss)
        if want["is_forward"]:
            sender_ok = not ({"is_forward", "sender_address"} & set(wrong))
            every.score(sender_ok, miss)
            fields.score(not wrong, miss)
            if want.get("language", "en") == "en":
                en.score(sender_ok, miss)
    for path, want in _cases(corpus / "replies"):
        got = _read(path, [])
        reply.score(normalise(got["reply_text"]) == normalise(want["visible"]),
                    f"replies/{path.name}: visible")
    for path, want in _cases(corpus / "bounces"):
        got = _read(path, [])
        is_bounce = got["classification"] == "bounce"
        bounce.score(is_bounce == bool(want.get("is_bounce")), f"bounces/{path.name}: is_bounce")
        if want.get("is_bounce") and want.get("failed") is not None:
            found = sorted(a.lower() for a in ((got["bounce"] or {}).get("recipients") or []))
            expected = sorted(a.lower() for a in want["failed"])
            failed.score(found == expected, f"bounces/{path.name}: failed {found}")
    return [en, every, fields, is_fwd, reply, bounce, failed]


def table(rows: list[Row]) -> str:
    out = ["| what | right | share | target |", "| --- | --- | --- | --- |"]
    for r in rows:
        share = "n/a" if r.share is None else f"{r.share:.1%}"
        target = f"≥ {r.target:.0%}" if r.target else ""
        out.append(f"| {r.what.strip()} "
                   f"| {r.good}/{r.total} | {share} | {target} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-v", action="store_true", help="list every miss")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus folder")
    args = ap.parse_args(argv)
    rows = measure(args.corpus)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    print(table(rows))
    if args.v:
        for r in rows:
            for miss in r.misses:
                print(f"  {r.key}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
