"""Every forward style in the corpus, sent by a member through the whole pipeline, opens a case
whose constituent is the original sender, with the original subject and the member's note."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mailflow import settings
from mailflow.app import App
from mailflow.inbound import pipeline
from mailflow.inbound.dispatch import SUBJECT_PREFIX
from tests.test_loop import FRIDAY, case

CORPUS = Path(__file__).parent / "corpus" / "forwards"
ALL_FORWARDS = sorted(
    p for p in CORPUS.glob("*.eml") if json.loads(p.with_suffix(".json").read_text())["is_forward"]
)
# The generated corpus (g_*) repeats six client layouts in 25 languages; scripts/
# corpus_accuracy.py (test_corpus_accuracy.py) reads every one through inspect. Here, through
# the whole pipeline: every hand-written forward, every special form, and each layout and
# each language at least once.
_LAYOUTS = ("g_outlook_", "g_gmail_", "g_apple_mac_", "g_apple_ios_", "g_thunderbird_",
            "g_yahoo_", "g_outlook2019_", "g_owa_")


def _sample(paths: list[Path]) -> list[Path]:
    chosen: list[Path] = []
    languages: set[str] = set()
    layouts: set[str] = set()
    for p in paths:
        layout = next((x for x in _LAYOUTS if p.stem.startswith(x)), None)
        language = json.loads(p.with_suffix(".json").read_text())["language"]
        if layout is None or language not in languages or layout not in layouts:
            chosen.append(p)
            languages.add(language)
            layouts.add(layout or "")
    return chosen


FORWARDS = _sample(ALL_FORWARDS)


def as_member(raw: bytes) -> bytes:
    """The corpus was written for another council: re-address it to ours, from Jane."""
    head, sep, body = (
        raw.partition(b"\n\n") if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
    )
    head = re.sub(
        rb"(?m)^From:.*(\r?\n[ \t].*)*",
        b"From: Cllr Jane Smith <jane.smith@council.example>",
        head,
        count=1,
    )
    head = re.sub(rb"(?m)^To:.*(\r?\n[ \t].*)*", b"To: casework@council.example", head, count=1)
    return head + sep + body


@pytest.fixture
def corpus_app(app: App, config_file: Path) -> App:
    # The corpus council's officers are internal: never the constituent of a forward.
    text = config_file.read_text().replace(
        'trusted_domains = ["council.example"]',
        'trusted_domains = ["council.example", "anytown.gov.uk"]',
    )
    config_file.write_text(text)
    return App(settings.load(config_file))


@pytest.mark.parametrize("path", FORWARDS, ids=[p.stem for p in FORWARDS])
def test_forward_style_opens_case(corpus_app: App, path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    raw_id, _ = pipeline.receive(
        corpus_app, as_member(path.read_bytes()), source="ingest", now=FRIDAY
    )
    out = pipeline.process(corpus_app, raw_id, FRIDAY)
    assert out is not None and out.disposition == "case_opened", out
    c = case(corpus_app, out.case)
    with corpus_app.session() as s:
        from mailflow.models import Constituent

        who = s.get(Constituent, c.constituent_id)
    assert who.email == expected["sender_address"]
    assert who.name == expected["sender_name"]
    assert c.subject == SUBJECT_PREFIX.sub("", expected["subject"])  # the case drops "Fwd:"
    assert c.issue.startswith(expected["body_starts"])
    if expected.get("note"):
        assert c.member_note.startswith(expected["note"].splitlines()[0])
