"""Forms of forward from issue 12, one rule each: Yahoo's run-together block, Outlook 2019's
attribution, GroupWise, quoted bodies, message/global, the first level of a nested forward,
and the strictness of the original's address."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailflow.inbound.forwards import Party, find_forward, header_field, is_separator
from tests.test_forwards import _message


def test_yahoo_block_on_one_line() -> None:
    body = ("Please look.\n\n   ----- Weitergeleitete Nachricht ----- Von: Jürgen Müller "
            "<j.mueller@example.de>An: \"b@x.example\" <b@x.example>Cc: C <c@x.example>; "
            "D <d@x.example>Gesendet: Dienstag, 3. März 2026, 15:47:00 GMT+1Betreff: Loch\n"
            " Ein Loch.\n")
    found = find_forward(_message("Fw: Loch", body))
    assert found is not None
    o = found.original
    assert o.sender == Party("Jürgen Müller", "j.mueller@example.de")
    assert [p.address for p in o.to] == ["b@x.example"]
    assert [p.address for p in o.cc] == ["c@x.example", "d@x.example"]
    assert o.subject == "Loch"
    assert o.date is not None and o.date.isoformat() == "2026-03-03T15:47:00+01:00"
    assert o.body == "Ein Loch."
    assert found.note == "Please look."


@pytest.mark.parametrize(("line", "name"), [
    ('On 23/11/2026 10:02, "Jane Smith" <jane@example.com> wrote:', "Jane Smith"),
    ("Op 23-11-2026 10:02 heeft Jan de Vries <jane@example.com> geschreven:", "Jan de Vries"),
    ("Dne 23.11.2026 10:02, Tomáš Dvořák <jane@example.com> napsal(a):", "Tomáš Dvořák"),
    ("23.11.2026 10:02 používateľ Ján Kováč (<jane@example.com>) napísal:", "Ján Kováč"),
    ("Mikko Virtanen <jane@example.com> kirjoitti 23.11.2026 10:02:", "Mikko Virtanen"),
    ("Dnia 23.11.2026 10:02 „Ewa Nowak” <jane@example.com> napisał:", "Ewa Nowak"),
    ("Le 23/11/2026 10:02, « Élodie Durand » <jane@example.com> a écrit :", "Élodie Durand"),
])
def test_outlook_2019_attribution_in_any_language(line: str, name: str) -> None:
    found = find_forward(_message("FW: Bins", f"Note\n\n{line}\n\n    The bins.\n"))
    assert found is not None
    assert found.original.sender == Party(name, "jane@example.com")
    assert found.original.subject == "Bins"  # the forward's, less its prefix
    assert found.original.date is not None
    assert (found.original.date.day, found.original.date.hour) == (23, 10)
    assert found.original.body == "The bins."


def test_an_attribution_without_a_forward_subject_is_a_reply() -> None:
    body = 'Done.\n\nOn 23/11/2026 10:02, "Jane" <jane@example.com> wrote:\n\n    Bins.\n'
    assert find_forward(_message("Bins", body)) is None
    assert find_forward(_message("Re: Bins", body)) is None


def test_the_attribution_address_is_the_bracketed_one() -> None:
    # Strict addresses: a display name that shows an address is only text.
    body = ('On 23/11/2026 10:02, "roads@anytown.gov.uk" <mallory@evil.example> wrote:\n\n'
            "    Pay here.\n")
    found = find_forward(_message("FW: Invoice", body))
    assert found is not None
    assert found.original.sender is not None
    assert found.original.sender.address == "mallory@evil.example"


def test_groupwise_header_is_not_a_quote() -> None:
    found = find_forward(_message("Fwd: Hedge", ">>> Priti Shah <p@example.org> 23/11/2026 "
                                                "10:02 >>>\nThe hedge.\n"))
    assert found is not None
    assert found.original.sender == Party("Priti Shah", "p@example.org")
    assert found.original.body == "The hedge."


def test_quoted_body_loses_one_level() -> None:
    body = ("---------- Forwarded message ----------\nFrom: A <a@example.org>\n"
            "Date: November 23, 2026 at 10:02 AM\nTo: b@example.org\nSubject: S\n\n"
            "> Line one\n>\n> > an older quote\n")
    found = find_forward(_message("Fwd: S", body))
    assert found is not None
    assert found.original.body == "Line one\n\n> an older quote"


def test_message_global_attachment() -> None:
    inner = EmailMessage()
    inner["From"] = "Siân Llewelyn <sian@example.cymru>"
    inner["Subject"] = "Goleuadau"
    inner.set_content("Mae'r goleuadau wedi torri.\n")
    msg = _message("Fwd: Goleuadau", "See attached.\n")
    msg.add_attachment(inner.as_bytes(), maintype="message", subtype="global",
                       filename="original.u8msg", cte="8bit")
    found = find_forward(msg)
    assert found is not None and found.attached
    assert found.original.sender == Party("Siân Llewelyn", "sian@example.cymru")
    assert found.original.body.startswith("Mae'r goleuadau")


def test_first_level_of_a_nested_forward_wins() -> None:
    body = ("Note\n\n---------- Forwarded message ---------\nFrom: Resident <r@example.org>\n"
            "Date: Mon, 23 Nov 2026 at 10:02\nSubject: Fwd: Fence\nTo: <b@example.org>\n\n"
            "See my landlord's answer.\n\n---------- Forwarded message ---------\n"
            "From: Landlord <l@example.net>\nDate: Sun, 22 Nov 2026 at 09:00\nSubject: Fence\n"
            "To: <r@example.org>\n\nNo.\n")
    found = find_forward(_message("Fwd: Fwd: Fence", body))
    assert found is not None
    assert found.original.sender == Party("Resident", "r@example.org")
    assert "From: Landlord <l@example.net>" in found.original.body  # kept, not lost


def test_a_forward_subject_alone_is_not_a_forward() -> None:
    assert find_forward(_message("Fwd: Planning", "Dear Cllr,\n\nMy objection.\n")) is None
    assert find_forward(_message("FW: x", "From: 9am\nTo: 5pm\n")) is None


@pytest.mark.parametrize("line", [
    "-----Ursprüngliche Nachricht-----", "-----Oorspronkelijk bericht-----",
    "---------- Message transféré ---------", "-------- Пересылаемое сообщение --------",
    "Začátek přeposílané zprávy:", "---------- 転送されたメッセージ ---------",
    "-----Neges Wreiddiol-----", "Début du message réexpédié :", "Forwarded message:",
])
def test_separators(line: str) -> None:
    assert is_separator(line)


@pytest.mark.parametrize("line", ["-----------------", "Kind regards:", "Note: call me",
                                  "I have forwarded this to Roads:",
                                  "Here is the original message:"])
def test_not_separators(line: str) -> None:
    assert not is_separator(line)


@pytest.mark.parametrize(("line", "field"), [
    ("De : Élodie <e@x.fr>", "from"), ("Envoyé : lundi", "date"), ("Objet : x", "subject"),
    ("Feladó: a", "from"), ("Kimden: a", "from"), ("Від: a", "from"), ("件名：x", "subject"),
    ("Oddi wrth: a", "from"), ("Bho: a", "from"), ("Saatja: a", "from"), ("Šalje: a", "from"),
    ("Lähettäjä: a", "from"), ("Kópia: a", "cc"), ("Adressaat: a", "to"), ("Konu: x", "subject"),
])
def test_labels(line: str, field: str) -> None:
    parsed = header_field(line)
    assert parsed is not None and parsed[0] == field


def test_yandex_line_and_its_end_marker() -> None:
    body = ("-------- Пересылаемое сообщение --------\n"
            '23.11.2026, 10:02, "Иван Петров" <ivan@example.ru>:\n\nЯма на дороге.\n\n'
            "-------- Конец пересылаемого сообщения --------\n\nBob\n")
    found = find_forward(_message("Fwd: Яма", body))
    assert found is not None
    assert found.original.sender == Party("Иван Петров", "ivan@example.ru")
    assert found.original.date is not None and found.original.date.hour == 10
    assert found.original.body == "Яма на дороге."


@pytest.mark.parametrize(("subject", "separator", "forward"), [
    ("RE: Bins", "-----Original Message-----", False),
    ("AW: Bins", "-----Ursprüngliche Nachricht-----", False),
    ("SV: Bins", "-----Oprindelig meddelelse-----", False),
    ("Re: Bins", "---------- Forwarded message ---------", True),
    ("AW: Bins", "---------- Weitergeleitete Nachricht ----------", True),
])
def test_under_a_reply_subject_only_a_forward_separator_makes_a_forward(
        subject: str, separator: str, forward: bool) -> None:
    body = (f"Done.\n\n{separator}\nFrom: Jane <jane@example.com>\n"
            "Sent: 23 November 2026 10:02\nTo: x@y.z\nSubject: Bins\n\nThe bins.\n")
    assert (find_forward(_message(subject, body)) is not None) is forward
