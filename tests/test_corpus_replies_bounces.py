"""Issue 12's figures for replies and bounces, pinned on tests/corpus/replies and
tests/corpus/bounces and read the way `mailflow inspect --json` reads a message
(`reply_text`, `classification`, `bounce.recipients`), so they cannot regress.

Targets: the visible text of a reply exactly right >= 88 %; a delivery report recognised as a
bounce (and a look-alike as not one) >= 96 %; the failed address of a bounce >= 93 %."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mailflow import settings
from mailflow.inbound.inspect import inspect
from tests.conftest import COUNCIL

CORPUS = Path(__file__).parent / "corpus"
REPLIES = sorted((CORPUS / "replies").glob("*.eml"))
BOUNCES = sorted((CORPUS / "bounces").glob("*.eml"))


@pytest.fixture(scope="module")
def council(tmp_path_factory: pytest.TempPathFactory) -> settings.Settings:
    path = tmp_path_factory.mktemp("council") / "mailflow.toml"
    return settings.from_dict(tomllib.loads(COUNCIL.format(db_url="sqlite:///x.db")), path)


def _normalise(text: str | None) -> str:
    lines = [line.rstrip() for line in (text or "").strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _expected(path: Path) -> dict[str, Any]:
    return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))


def _seen(path: Path, s: settings.Settings) -> dict[str, Any]:
    return inspect(path.read_bytes(), s, None, path.name)


def test_the_corpora_are_big_enough() -> None:
    assert len(REPLIES) >= 80 and len(BOUNCES) >= 40
    assert sum(_expected(p)["is_bounce"] for p in BOUNCES) >= 35  # and some look-alikes
    assert sum(not _expected(p)["is_bounce"] for p in BOUNCES) >= 5


def test_visible_text_of_replies(council: settings.Settings) -> None:
    right = [p.stem for p in REPLIES
             if _normalise(_seen(p, council)["reply_text"]) == _normalise(_expected(p)["visible"])]
    assert len(right) / len(REPLIES) >= 0.88, sorted({p.stem for p in REPLIES} - set(right))


def test_delivery_reports_recognised(council: settings.Settings) -> None:
    wrong = [p.stem for p in BOUNCES
             if (_seen(p, council)["classification"] == "bounce") != _expected(p)["is_bounce"]]
    assert 1 - len(wrong) / len(BOUNCES) >= 0.96, wrong


def test_failed_addresses_of_bounces(council: settings.Settings) -> None:
    bounces = [p for p in BOUNCES if _expected(p)["is_bounce"]]
    wrong = []
    for p in bounces:
        seen = _seen(p, council)["bounce"] or {}
        if sorted(seen.get("recipients") or []) != sorted(_expected(p)["failed"]):
            wrong.append(p.stem)
    assert 1 - len(wrong) / len(bounces) >= 0.93, wrong


@pytest.mark.parametrize("path", BOUNCES, ids=[p.stem for p in BOUNCES])
def test_each_delivery_report(path: Path, council: settings.Settings) -> None:
    expected, seen = _expected(path), _seen(path, council)
    assert (seen["classification"] == "bounce") == expected["is_bounce"], seen[
        "classification_reason"]
    if expected["is_bounce"]:
        assert sorted(seen["bounce"]["recipients"]) == sorted(expected["failed"])


# -- the failed address of an RFC 3464 report ------------------------------------------------


def _dsn(*fields: str) -> bytes:
    block = "\n".join(fields)
    return ("From: MAILER-DAEMON@mx.partner.example\nTo: casework@council.example\n"
            "Subject: Undelivered Mail Returned to Sender\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nDelivery to Jane Doe (jane@partner.example) "
            "failed.\n\n--b\nContent-Type: message/delivery-status\n\n"
            f"Reporting-MTA: dns; mx.partner.example\n\n{block}\nAction: failed\n"
            "Status: 5.1.1\n\n--b--\n").encode()


@pytest.mark.parametrize(("fields", "failed"), [
    (["Original-Recipient: rfc822;roads@council.example",
      "Final-Recipient: rfc822;r.smith@store.council.example"], ["roads@council.example"]),
    (["Original-Recipient: rfc822;casework@council.example",
      "Final-Recipient: rfc822;old@moved.example"], ["old@moved.example"]),
    (["Final-Recipient: rfc822; SMTP:Jane@Partner.Example"], ["jane@partner.example"]),
    (["Final-Recipient: rfc822; smtp=jane@partner.example"], ["jane@partner.example"]),
    (["Final-Recipient: rfc822; <jane@partner.example>"], ["jane@partner.example"]),
    (["Final-Recipient: rfc822; IMCEASMTP-jane+40partner+2Eexample@ex.local"],
     ["jane@partner.example"]),
    (["Final-Recipient: X400; /O=PARTNER/OU=EXCHANGE/CN=RECIPIENTS/CN=JDOE"],
     ["jane@partner.example"]),  # no mailbox in X.400: the report's text names it
])
def test_the_failed_address(fields: list[str], failed: list[str],
                            council: settings.Settings) -> None:
    seen = inspect(_dsn(*fields), council, None, "dsn.eml")
    assert seen["classification"] == "bounce"
    assert seen["bounce"]["recipients"] == failed
