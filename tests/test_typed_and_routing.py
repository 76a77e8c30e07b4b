"""Typed cases and routing (issue 12, items 5 and 6), through real mail on a real database:
labels in any common wording, multi-line addresses, UK postcodes anywhere; the member's note
naming a service wins; keywords never match inside a street address; ties go to triage."""

from __future__ import annotations

import re

import hypothesis
import pytest
from hypothesis import strategies as st

from mailflow import models, settings
from mailflow.app import App
from mailflow.casework import duplicates, routing
from mailflow.casework.intake import postcode, typed_case
from mailflow.casework.routing import route, without_addresses
from tests.mail import CASEWORK, JANE, message, outlook_forward
from tests.test_time import MON, case_of, ingest, mail, outbox, request_of, with_config

ENV_HEALTH = """[[services]]
name = "Environmental Health"
contact = "env.health@council.example"
response_days = 10
keywords = ["noise", "dog fouling", "pest"]
categories = ["Pest control"]

[[staff]]"""


def constituent(app: App, ref: str) -> models.Constituent:
    c = case_of(app, ref)
    with app.session() as s:
        who = s.get(models.Constituent, c.constituent_id)
    assert who is not None
    return who


# -- typed cases -----------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("Name: Peter Grant\nPhone: 07700 900123\nAddress: 4 Mill Road, Linlithgow\n\nBins.",
     ("Peter Grant", None, "07700 900123", "4 Mill Road, Linlithgow")),
    ("CONSTITUENT NAME - Mary Jones\nTel no: 01506 123456\naddress:\n12 Station Road\n"
     "Linlithgow\nEH49 7AB\nMobile: 07700 900999\nEMAIL: Mary@Example.org\n\nBins missed.",
     ("Mary Jones", "mary@example.org", "01506 123456; 07700 900999",
      "12 Station Road, Linlithgow, EH49 7AB")),
    ("constituent: A. Smith\ntel. - 0131 555 0000\nPostcode: eh48 1aa\n\nBins missed.",
     ("A. Smith", None, "0131 555 0000", "EH48 1AA")),
    ("Resident: Jo Bloggs\nAddress: 3 High St, Bathgate\n\nJo (EH48 1AA) says bins missed.",
     ("Jo Bloggs", None, None, "3 High St, Bathgate, EH48 1AA")),
    ("Constituent name: Ann Lee\nE-mail - ann@example.org\n\nBins missed at EH49 7AB.",
     ("Ann Lee", "ann@example.org", None, "EH49 7AB")),
    ("The phone-in was about bins. Name the street later.",
     (None, None, None, None)),
])
def test_typed_case_labels(text: str, expected: tuple[str | None, ...]) -> None:
    t = typed_case(text)
    assert (t.name, t.email, t.phone, t.address) == expected
    assert "bins" in t.text.lower() and "Tel" not in t.text and "Address" not in t.text


def test_postcodes() -> None:
    assert postcode("at SW1A 1AA today") == "SW1A 1AA"
    assert postcode("EH497AB") == "EH49 7AB"
    assert postcode("g1 1xq") == "G1 1XQ"
    assert postcode("flat 2b, 2nd floor") is None and postcode("call 0131 555 0000") is None
    assert postcode("meet at a1 today") is None


def test_typed_case_through_the_pipeline(app: App) -> None:
    body = ("Constituent name: Mary Jones\nTel no: 01506 123456\nAddress:\n12 Station Road\n"
            "Linlithgow\n\nHer bins have not been collected for three weeks.\n")
    out = ingest(app, message(JANE, CASEWORK, "Missed collection", body), MON)
    assert out.disposition == "case_opened", out
    who = constituent(app, out.case or "")
    assert (who.name, who.phone, who.address) == ("Mary Jones", "01506 123456",
                                                  "12 Station Road, Linlithgow")
    c = case_of(app, out.case or "")
    # Routed by the words, not the address (no Roads); the case keeps the text as typed, the
    # address too, for the officer (issue 13: a typed address was stripped).
    assert c.category == "Waste" and "12 Station Road" in c.issue
    assert "three weeks" in c.issue and "Tel no: 01506 123456" in c.issue
    # The request to the service is written from a context that has the constituent.
    assert request_of(app, out.case or "").contact == "waste@council.example"
    assert outbox(app, "request")


# -- routing ---------------------------------------------------------------------------------
def services(app: App) -> list[settings.Service]:
    return with_config(app, "[[staff]]", ENV_HEALTH).settings.services


def test_addresses_are_not_keywords() -> None:
    text = "Dog mess at 4 Road End, Roads Lane, Station Road and 12 mill lane; the road is fine"
    assert without_addresses(text).count("Road") == 0
    assert "the road is fine" in without_addresses(text)
    assert "The Road is flooded" in without_addresses("The Road is flooded")


# routing._ADDRESS as first written; the module's starts by consuming a digit or a capital.
_READABLE = re.compile(
    rf"(?:\b\d+[A-Za-z]?,?\s+)?{routing._UP}{{1,3}}(?:{routing._STREET})\b"
    rf"|\b\d+[A-Za-z]?,?\s+{routing._LOW}{{1,3}}(?:{routing._STREET.lower()})\b")
_PIECES = ["The", "A", "An", "Anne", "Theo", "Road", "Rd", "road", "St", "Station", "mill",
           "lane", "Lane", "12", "3b", "4,", "\u0663", "x1", "O'Brien", "o\u2019neil", "-", "End",
           "Roads", "Busy", "busyRoad", "eBay", "Near", "near", "Hill", "_", "\u00d6", "A1"]


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.tuples(st.sampled_from(_PIECES),
                                     st.sampled_from([" ", "", "\n", ", ", "  "])),
                           max_size=14))
def test_addresses_found_as_first_written(pieces: list[tuple[str, str]]) -> None:
    text = "".join(a + b for a, b in pieces)
    assert without_addresses(text) == _READABLE.sub(" ", text)


_W = duplicates._STREET_WORDS
_STREET_READABLE = re.compile(  # duplicates._STREET as first written
    rf"\b((?:[A-Z][\w'\u2019]*\s+){{1,3}}(?:{_W.title()}|{_W.upper()}))\b")


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(st.lists(st.tuples(st.sampled_from(
    ["Mill", "Road", "ROAD", "Street", "St", "st", "x", "_", "O'Neil", "12", "\u00e9",
     "\u00c9lan", "Court", "aB", "Ab"]), st.sampled_from([" ", "", "\n", ", ", "  "])),
    max_size=12))
def test_streets_found_as_first_written(pieces: list[tuple[str, str]]) -> None:
    text = "".join(a + b for a, b in pieces)
    assert ([m.group(1) for m in duplicates._STREET.finditer(text)]
            == [m.group(1) for m in _STREET_READABLE.finditer(text)])


def test_routing_rules(app: App) -> None:
    svc = services(app)
    r = route(svc, "Noise", "Loud music every night at 12 Station Road.", "for env health")
    assert r.service and r.service.name == "Environmental Health"
    assert "note names" in r.reason
    # The note wins over the constituent's keywords.
    r = route(svc, "Pothole", "A pothole and a burst tyre.", "For Environmental Health please")
    assert r.service and r.service.name == "Environmental Health"
    r = route(svc, "Rats", "Rats in the garden", "pest control team please")
    assert r.service and r.service.name == "Environmental Health"
    # An address is no keyword: noise on Station Road is not a tie with Roads.
    r = route(svc, "Noise from Station Road", "Noise from 12 Station Road, Road End", "")
    assert r.service and r.service.name == "Environmental Health"
    r = route(svc, "Dog fouling", "Dog fouling all along Roads Lane", "Can you help?")
    assert r.service and r.service.name == "Environmental Health"
    # Whole words only: "binoculars" is no bin, "roadside" no road.
    assert route(svc, "Birds", "Seen with binoculars from the roadside", "").service is None
    # Ties go to triage, naming both.
    r = route(svc, "Noise and a pothole", "", "")
    assert r.service is None and "Roads" in r.reason and "Environmental Health" in r.reason
    r = route(svc, "x", "noise", "Roads or Waste?")
    assert r.service is None and "Roads" in r.reason and "Waste" in r.reason


def test_note_routes_a_forward(app: App) -> None:
    app = with_config(app, "[[staff]]", ENV_HEALTH)
    out = ingest(app, outlook_forward(
        subject="Noise and a pothole", note="For env health please - the noise is the issue.",
        body="Noise from the pub at 3 Station Road every night, and a pothole outside.\n"),
        MON)
    assert out.disposition == "case_opened", out
    assert case_of(app, out.case or "").category == "Environmental Health"
    [req] = outbox(app, "request")
    assert mail(req)["To"] == "env.health@council.example"
