"""Possible duplicates across a ward, found when a case opens.

In a multi-member ward three councillors may take up the same pothole. A new case is a
possible duplicate of an open case of *another* member of the same ward opened in the last
`[casework] duplicate_days` days when it has the same constituent (email or postal address),
or the same street or postcode and a similar issue: the same category, or a rapidfuzz
similarity of the two issues (place names and filler words left out) of at least
`[casework] duplicate_similarity`. Both cases are linked (`CaseLink`, kind `duplicate`).

Each case's keys (places, constituent id, email and address) are stored in `CaseKey` as it
opens; candidates are looked up by those keys, never by scanning the ward's open cases.

Without noise (casework/cases.py): the new case's acknowledgement lists its possible
duplicates, newest first, at most NOTICE_LIMIT; another member hears by mail only the first
time a case of theirs gets one, and from then on in their digest, once per place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from rapidfuzz import fuzz
from sqlalchemy import bindparam, insert
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.settings import Settings

_STREET_WORDS = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|dr|place|pl|crescent|cres|court|ct|way|"
    "terrace|gardens|gdns|close|row|park|square|sq|wynd|brae|grove|view|walk|hill|green|"
    "loan|vennel|gate|mews|rise|parade|circle|crossway|boulevard"
)
# Capitalised words before a street word: `12 Main Street`, `Mill Road`, `St John's Court`.
# As written: \b((?:[A-Z][\w'’]*\s+){1,3}(?:Street|…|STREET|…))\b. It starts by consuming its
# capital (`\b` before it as "no word character before"), so the engine skips every other
# position in C: 2-4x faster on a 20 KB forward (tests/test_typed_and_routing.py checks the
# two agree).
_STREET = re.compile(rf"([A-Z](?<!\w[A-Z])[\w'’]*\s+(?:[A-Z][\w'’]*\s+){{0,2}}"
                     rf"(?:{_STREET_WORDS.title()}|{_STREET_WORDS.upper()}))\b")
_POSTCODE = re.compile(r"\b([A-Z]{1,2}\d[A-Z\d]?)\s*(\d[A-Z]{2})\b", re.IGNORECASE)
_FILLER = frozenset(
    "the and for are was were been has have had its this that there their our his her your "
    "they them not near outside number from with again very yesterday today week weeks days "
    "please can could would will still also just about into some been being any all who".split()
)


NOTICE_LIMIT = 5  # possible duplicates one notice lists; the rest are counted


@dataclass
class Similar:
    case: models.Case
    reason: str
    place: str | None = None  # the street or postcode both name; None for the same person


# A new case compares itself with each candidate found. Small: the key holds the case's
# whole text (2-40 KB), and 8,192 of them grew a serve node by 20 KB a message up to
# ~160 MB (scripts/soak.py's RSS check).
@lru_cache(maxsize=256)
def places(address: str | None, *texts: str) -> frozenset[str]:
    """Streets and postcodes named in an address or a text, normalised."""
    found = set()
    for text in (address or "", *texts):
        for m in _STREET.finditer(text):
            found.add("street:" + " ".join(m.group(1).lower().split()))
        for m in _POSTCODE.finditer(text):
            found.add(f"postcode:{m.group(1).upper()} {m.group(2).upper()}")
    if address:  # a typed address is lower-case as often as not
        for m in re.finditer(rf"\b([a-z][\w']*(?:\s+[a-z][\w']*){{0,2}}\s+(?:{_STREET_WORDS}))\b",
                             address.lower()):
            found.add("street:" + " ".join(m.group(1).split()))
    return frozenset(found)


def _words(text: str, place_words: set[str] | frozenset[str]) -> str:
    words = re.findall(r"[a-z]{3,}", text.lower())
    return " ".join(w for w in words if w not in _FILLER and w not in place_words)


def similarity(a: str, b: str, place_words: set[str] | frozenset[str] = frozenset()) -> float:
    return fuzz.token_set_ratio(_words(a, place_words), _words(b, place_words))


def _same_person(a: models.Constituent | None, b: models.Constituent | None) -> str | None:
    if a is None or b is None:
        return None
    if a.id == b.id or (a.email and b.email and a.email.lower() == b.email.lower()):
        return "the same constituent"
    if a.address and b.address and _squash(a.address) == _squash(b.address):
        return "the same constituent address"
    return None


def _squash(s: str) -> str:
    return re.sub(r"[^0-9a-z]", "", s.lower())


def keys(constituent: models.Constituent | None, subject: str, issue: str) -> set[str]:
    """What a case can be found by: its places, and the constituent's identity (id, email,
    address), the two things a duplicate must share with it."""
    found = set(places(constituent.address if constituent else None, subject, issue))
    if constituent is not None:
        found.add(f"constituent:{constituent.id}")
        if constituent.email:
            found.add("email:" + constituent.email.lower())
        if constituent.address and _squash(constituent.address):
            found.add("address:" + _squash(constituent.address))
    return found


def hashed(found: set[str]) -> list[str]:
    """Keys as stored and looked up: hashed, so the index keeps no personal data in the
    clear (a constituent's email or address, a street) beyond what the case itself holds."""
    return sorted(hashlib.blake2b(k.encode(), digest_size=12).hexdigest() for k in found)


def index(session: Session, case: models.Case) -> None:
    """Store the keys of a case as it opens, so later cases find it by lookup, not by a scan
    of the ward's open cases (the cost of a message must not grow with the cases open)."""
    if case.ward_id is None:
        return
    me = session.get(models.Constituent, case.constituent_id) if case.constituent_id else None
    rows = [{"case_id": case.id, "ward_id": case.ward_id, "key": key,
             "opened_at": case.opened_at} for key in hashed(keys(me, case.subject, case.issue))]
    if rows:  # one statement for all of them, on the connection: it needs no flush first
        session.connection().execute(_INSERT_KEYS, rows)


_INSERT_KEYS = insert(models.CaseKey.__table__)  # type: ignore[attr-defined]


def candidates(session: Session, settings: Settings, case: models.Case, now: datetime
               ) -> list[models.Case]:
    """The open cases of other members of the ward, recent enough, that share a place or the
    constituent with `case`: found by the (ward, key, opened_at) index, so the cost is the
    number of cases that share a key, not the number open in the ward."""
    if case.ward_id is None:
        return []
    since = now - timedelta(days=settings.casework.duplicate_days)
    me = session.get(models.Constituent, case.constituent_id) if case.constituent_id else None
    mine = keys(me, case.subject, case.issue)
    if not mine:
        return []
    return list(session.exec(_CANDIDATES, params={
        "ward": case.ward_id, "keys": hashed(mine), "since": since, "case": case.id,
        "member": case.member_id}).all())


# Built once: building this statement cost more than running it (about 0.5 ms a case).
_CANDIDATES = (
    select(models.Case).where(col(models.Case.id).in_(
        select(models.CaseKey.case_id).where(models.CaseKey.ward_id == bindparam("ward"))
        .where(col(models.CaseKey.key).in_(bindparam("keys", expanding=True)))
        .where(col(models.CaseKey.opened_at) >= bindparam("since"))))
    .where(models.Case.ward_id == bindparam("ward"))
    .where(col(models.Case.id) != bindparam("case"))
    .where(col(models.Case.member_id) != bindparam("member"))
    .where(col(models.Case.status) != "closed")
    .where(col(models.Case.merged_into_id).is_(None))
    .where(col(models.Case.opened_at) >= bindparam("since"))
    .order_by(col(models.Case.id)))


def find(session: Session, settings: Settings, case: models.Case, now: datetime
         ) -> list[Similar]:
    """The candidates that are possible duplicates (the module's rule), with the reason."""
    others = candidates(session, settings, case, now)
    if not others:
        return []
    me = session.get(models.Constituent, case.constituent_id) if case.constituent_id else None
    mine = places(me.address if me else None, case.subject, case.issue)
    found = []
    for other in others:
        them = session.get(models.Constituent, other.constituent_id) \
            if other.constituent_id else None
        why, where = _same_person(me, them), None
        if why is None:
            shared = mine & places(them.address if them else None, other.subject, other.issue)
            if not shared:
                continue
            where = sorted(p.partition(":")[2] for p in shared)[0]
            place_words = {w for p in shared for w in p.partition(":")[2].lower().split()}
            if case.category and case.category == other.category:
                why = f"{where}, both {case.category}"
            else:
                score = similarity(f"{case.subject} {case.issue}",
                                   f"{other.subject} {other.issue}", place_words)
                if score < settings.casework.duplicate_similarity:
                    continue
                why = f"{where}, issues {score:.0f}% similar"
        found.append(Similar(other, why, where))
    # Newest first: a notice lists the few most recent (NOTICE_LIMIT), the rest counted.
    found.sort(key=lambda d: (d.case.opened_at, d.case.id or 0), reverse=True)
    return found


def told_before(session: Session, ids: list[int]) -> set[int]:
    """Which of these cases already had a possible duplicate: their member has heard of
    this cluster, so a new case joining it goes to their digest, not to a mail of its own.
    One indexed query (ix_caselink_case_id), whatever the size of the cluster."""
    if not ids:
        return set()
    return set(session.exec(
        select(models.CaseLink.case_id).where(col(models.CaseLink.case_id).in_(ids))
        .where(models.CaseLink.kind == "duplicate")).all())


def link(session: Session, a: models.Case, b: models.Case, reason: str, now: datetime) -> None:
    for x, y in ((a, b), (b, a)):
        session.add(models.CaseLink(case_id=x.id, other_id=y.id, kind="duplicate",  # type: ignore[arg-type]
                                    reason=reason, created_at=now))


def earlier_cases(session: Session, case: models.Case) -> int:
    """How many earlier cases this constituent raised with this member (repeat constituent)."""
    if case.constituent_id is None:
        return 0
    return len(session.exec(_EARLIER, params={
        "constituent": case.constituent_id, "member": case.member_id, "case": case.id,
        "received": case.received_at}).all())


_EARLIER = (  # built once, as _CANDIDATES
    select(models.Case.id).where(models.Case.constituent_id == bindparam("constituent"))
    .where(models.Case.member_id == bindparam("member"))
    .where(col(models.Case.id) != bindparam("case"))
    .where(col(models.Case.received_at) <= bindparam("received")))
