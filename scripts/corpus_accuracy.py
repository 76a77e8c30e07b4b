"""Accuracy of forward detection and reply trimming on the test corpus.

A corpus file counts as correct when every expected field in its sidecar JSON matches.
Usage: python scripts/corpus_accuracy.py [-v]   (-v lists the mismatches)
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from mailflow.inbound.forwards import Forward, find_forward
from mailflow.inbound.reply import visible_text
from mailflow.inbound.text import body_text

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"


def load(path: Path) -> tuple[EmailMessage, dict]:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return msg, expected  # type: ignore[return-value]


def internal_predicate(expected: dict) -> Callable[[str], bool]:
    domains = tuple("@" + d for d in expected.get("internal_domains", []))
    return lambda address: bool(domains) and address.endswith(domains)


def forward_mismatches(found: Forward | None, expected: dict) -> list[str]:
    """Names of the expected fields that the detected forward gets wrong."""
    if not expected["is_forward"]:
        return [] if found is None else ["is_forward"]
    if found is None:
        return ["is_forward"]
    original = found.original
    sender = original.sender
    actual = {
        "attached": found.attached,
        "sender_name": sender.name if sender else None,
        "sender_address": sender.address if sender else None,
        "subject": original.subject,
        "date": original.date.isoformat() if original.date else None,
        "note": found.note,
        "to": [p.address for p in original.to],
        "cc": [p.address for p in original.cc],
    }
    wrong = [key for key, value in actual.items() if key in expected and expected[key] != value]
    if "body_starts" in expected and not original.body.startswith(expected["body_starts"]):
        wrong.append("body_starts")
    return wrong


def normalise(text: str) -> str:
    """Compare texts modulo trailing spaces and the number of blank lines."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def reply_mismatches(visible: str, expected: dict) -> list[str]:
    return [] if normalise(visible) == normalise(expected["visible"]) else ["visible"]


def evaluate(kind: str, verbose: bool) -> tuple[int, int]:
    paths = sorted((CORPUS / kind).glob("*.eml"))
    good = 0
    for path in paths:
        msg, expected = load(path)
        if kind == "forwards":
            wrong = forward_mismatches(find_forward(msg, internal_predicate(expected)), expected)
        else:
            wrong = reply_mismatches(visible_text(body_text(msg)), expected)
        good += not wrong
        if wrong and verbose:
            print(f"  {kind}/{path.name}: {', '.join(wrong)}")
    return good, len(paths)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    for kind in ("forwards", "replies"):
        good, total = evaluate(kind, verbose)
        share = good / total if total else 0.0
        print(f"{kind}: {good}/{total} correct ({share:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
