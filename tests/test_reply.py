import json
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailflow.inbound.reply import visible_text
from mailflow.inbound.text import body_text

CORPUS = Path(__file__).parent / "corpus" / "replies"
CASES = sorted(CORPUS.glob("*.eml"))


def _normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 80


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_corpus(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    visible = visible_text(body_text(msg))
    assert _normalise(visible) == _normalise(expected["visible"])
    if expected["quoted"]:
        assert expected["quoted"] not in visible


# -- quoted history ------------------------------------------------------------------------


def test_message_without_quote_is_unchanged() -> None:
    body = "Hello,\n\nThe light on Elm Road is out.\n\nIt has been out for a week.\n"
    assert visible_text(body) == body.strip()


@pytest.mark.parametrize(
    "intro",
    [
        "On Mon, 23 Nov 2026 at 16:40, Casework <casework@anytown.gov.uk> wrote:",
        "On 23 Nov 2026, at 16:40, Casework <casework@anytown.gov.uk> wrote:",
        "On 23/11/2026 16:40, Casework wrote:",
        "Ar Llun, 23 Tach 2026 am 16:40, Casework <casework@anytown.gov.uk> ysgrifennodd:",
        "Le lun. 23 nov. 2026 à 16:40, Casework <casework@anytown.gov.uk> a écrit :",
        "Am Mo., 23. Nov. 2026 um 16:40 Uhr schrieb Casework <casework@anytown.gov.uk>:",
        "Casework <casework@anytown.gov.uk> schrieb am Mo., 23. Nov. 2026, 16:40:",
        "El lun, 23 nov 2026 a las 16:40, Casework (<casework@anytown.gov.uk>) escribió:",
        "pon., 23 lis 2026 o 16:40 Casework <casework@anytown.gov.uk> napisał(a):",
        "W dniu 23.11.2026 o 16:40, Casework pisze:",
    ],
)
def test_reply_introductions(intro: str) -> None:
    body = f"My answer.\n\n{intro}\n\nOld text that is not quoted with a prefix.\n"
    assert visible_text(body) == "My answer."


@pytest.mark.parametrize(
    "block",
    [
        "From: Casework <c@anytown.gov.uk>\nSent: 23 November 2026 16:40\nTo: a@b.c\nSubject: x",
        "*From:* Casework <c@anytown.gov.uk>\n*Sent:* 23 November 2026\n*To:* a@b.c",
        "Von: Casework <c@anytown.gov.uk>\nGesendet: Montag\nAn: a@b.c\nBetreff: x",
        "De : Casework <c@anytown.gov.uk>\nEnvoyé : lundi\nÀ : a@b.c\nObjet : x",
        "Od: Casework <c@anytown.gov.uk>\nWysłano: poniedziałek\nDo: a@b.c\nTemat: x",
        "De: Casework <c@anytown.gov.uk>\nEnviado: lunes\nPara: a@b.c\nAsunto: x",
        "Oddi wrth: Casework <c@anytown.gov.uk>\nAnfonwyd: Dydd Llun\nAt: a@b.c\nPwnc: x",
        "-----Original Message-----\nOld text",
        "________________________________\nOld text",
        "-------- Original message --------\nOld text",
        "-----Ursprüngliche Nachricht-----\nOld text",
        "---------- Forwarded message ---------\nOld text",
    ],
)
def test_outlook_blocks_and_separators(block: str) -> None:
    assert visible_text(f"My answer.\n\n{block}\n\nOld text.\n") == "My answer."


def test_inline_answers_keep_the_question_they_answer() -> None:
    body = (
        "On 23/11/2026 16:40, Casework wrote:\n> Dear Jane,\n>\n> Which side of the road?\n"
        "North side.\n> Any photos?\nYes, attached.\n>\n> Casework team\n"
    )
    assert visible_text(body) == (
        "> Which side of the road?\nNorth side.\n> Any photos?\nYes, attached.")


def test_a_bottom_posted_answer_drops_the_quote() -> None:
    body = "On 23/11/2026 16:40, Casework wrote:\n> Which side of the road?\n\nNorth side.\n"
    assert visible_text(body) == "North side."


def test_a_person_writing_wrote_is_not_an_introduction() -> None:
    body = "In 2019 my neighbour wrote:\n\nPlease trim the hedge.\n\nNothing happened.\n"
    assert visible_text(body) == body.strip()


def test_only_quoted_text_gives_empty() -> None:
    assert visible_text("> old\n> text\n") == ""


# -- signatures and disclaimers ------------------------------------------------------------


def test_sign_off_with_name_block_is_removed() -> None:
    body = "The bins were missed.\n\nKind regards,\n\nJane Smith\nFlat 2\n07700 900123\n"
    assert visible_text(body) == "The bins were missed."


@pytest.mark.parametrize("closing", ["Thanks, Alex", "Thanks,\nAlex", "Kind regards,\nAlex Young",
                                     "Diolch,\nAlex", "Met vriendelijke groet,\nAlex"])
def test_a_short_sign_off_stays(closing: str) -> None:
    assert visible_text(f"Job done.\n\n{closing}\n") == f"Job done.\n\n{closing}"


def test_the_council_signature_block_goes() -> None:
    body = ("Repaired today.\n\nThanks, Mark\nStreet Lighting Officer\nAnytown Borough Council\n"
            "Tel: 01632 960 411\nwww.anytown.gov.uk\n")
    assert visible_text(body) == "Repaired today."


def test_the_council_block_without_a_sign_off_goes_a_resident_s_details_stay() -> None:
    block = "Mark Ellis\nStreet Lighting Officer\nAnytown Borough Council\nTel: 01632 960 411\n"
    assert visible_text(f"Repaired today.\n\n{block}") == "Repaired today."
    mine = "Please ring first.\n\nJane Smith\n12 Elm Road\n07700 900123"
    assert visible_text(mine) == mine


def test_sign_off_without_name_block_stays() -> None:
    assert visible_text("The bins were missed.\n\nThanks!\n") == "The bins were missed.\n\nThanks!"


def test_sign_off_followed_by_sentences_stays() -> None:
    body = "First point.\n\nThanks\nI will send the photos of the damage tomorrow morning.\n"
    assert visible_text(body) == body.strip()


def test_too_long_block_after_sign_off_is_content() -> None:
    tail = "\n".join(f"line {i}" for i in range(12))
    body = f"Hello.\n\nRegards\n{tail}\n"
    assert visible_text(body) == body.strip()


def test_dash_dash_signature_is_removed() -> None:
    assert visible_text("Fine by me.\n\n-- \nJane\nChair, RA\n") == "Fine by me."


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my iPhone",
        "Sent from my Galaxy",
        "Sent from Outlook for Android",
        "Get Outlook for iOS<https://aka.ms/o0ukef>",
        "Sent from Yahoo Mail on Android",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPhone",
        "Enviado desde mi iPhone",
        "Wysłane z iPhone'a",
    ],
)
def test_device_lines_are_removed(line: str) -> None:
    assert visible_text(f"On my way.\n\n{line}\n") == "On my way."


@pytest.mark.parametrize(
    "disclaimer",
    [
        "This email and any attachments are confidential and may be privileged.",
        "The information in this message is intended only for the addressee.",
        "Any views or opinions expressed are solely those of the author.",
        "This e-mail has been scanned for all known viruses.",
        "Please consider the environment before printing this e-mail.",
        "Emails sent to and from this council may be monitored.",
    ],
)
def test_trailing_disclaimers_are_removed(disclaimer: str) -> None:
    body = f"Please fix the fence.\n\n{disclaimer}\n\nwww.anytown.gov.uk\n"
    assert visible_text(body) == "Please fix the fence."


def test_disclaimer_words_followed_by_content_are_kept() -> None:
    body = (
        "The letter said: this email and any attachments are confidential.\n\n"
        "Why would a planning notice be confidential?\n"
    )
    assert visible_text(body) == body.strip()


def test_never_empty_when_there_was_unquoted_text() -> None:
    assert visible_text("Kind regards\nJane Smith\n") == "Kind regards\nJane Smith"
    assert visible_text("Sent from my iPhone\n") == "Sent from my iPhone"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab >-_:\n@1On wrote From Sent To")), max_size=300))
def test_visible_text_is_robust(body: str) -> None:
    out = visible_text(body)
    has_unquoted = any(
        line.strip() and not line.lstrip(" \t").startswith(">") for line in body.splitlines()
    )
    assert bool(out) == has_unquoted
