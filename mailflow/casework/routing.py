"""Which service an enquiry goes to.

1. A service or category named in the member's note wins ("for env health": each word of a
   name of two or more words may be shortened to its first three letters or more).
2. Else the best match of the services' keywords, as whole words, the subject's counted
   twice. Street addresses are left out first (`Station Road`, `Road End`, `Roads Lane`,
   `12 mill lane`), so an address never matches the Roads keyword.
3. A tie (in names or keywords) is not a match: a person decides rather than the request
   going to the wrong officer, and the reason names the candidates.
Work per message is a few regular expressions over its text: nothing grows with the cases.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from mailflow.settings import Service


@dataclass
class Route:
    service: Service | None
    scores: dict[str, int]
    reason: str


def route(services: list[Service], subject: str, text: str, note: str = "") -> Route:
    named = _named(services, without_addresses(note)) if note.strip() else []
    if len(named) == 1:
        return Route(named[0], {named[0].name: 1}, f"the member's note names {named[0].name}")
    if named:
        return Route(None, {s.name: 1 for s in named}, "the member's note names several "
                     "services: " + ", ".join(s.name for s in named))
    return _by_keywords(services, without_addresses(subject),
                        without_addresses(f"{text}\n{note}"))


def _by_keywords(services: list[Service], subject: str, text: str) -> Route:
    """Keyword hits, the subject's counted twice."""
    scores: dict[str, int] = {}
    subject, text = subject.lower(), text.lower()
    in_subject, in_text = _Words(subject), _Words(text)
    for s in services:
        score = sum(2 * in_subject.hits(k) + in_text.hits(k) for k in s.keywords)
        if score:
            scores[s.name] = score
    if not scores:
        return Route(None, {}, "no service's keywords match")
    best = max(scores.values())
    winners = [name for name, sc in scores.items() if sc == best]
    if len(winners) > 1:
        return Route(None, scores, "keywords match several services equally: " + ", ".join(winners))
    service = next(s for s in services if s.name == winners[0])
    return Route(service, scores, f"keywords matched {service.name}")


class _Words:
    """A lowered text's words, counted once: a one-word keyword's hits are the words equal to
    it, its plural in -s or -es (exactly what its pattern, whole words, would find); a longer
    keyword runs its pattern only when its first word is there at all."""

    def __init__(self, lowered: str):
        self.text = lowered
        self.counts = Counter(_WORD.findall(lowered))

    def hits(self, keyword: str) -> int:
        first, single, pattern = _pattern(keyword)
        if single:
            return self.counts[first] + self.counts[first + "s"] + self.counts[first + "es"]
        return len(pattern.findall(self.text)) if first in self.text else 0


_WORD = re.compile(r"\w+")


def _hits(keyword: str, lowered: str) -> int:
    return _Words(lowered).hits(keyword)


@lru_cache(maxsize=1024)
def _pattern(keyword: str) -> tuple[str, bool, re.Pattern[str]]:
    """(first word, whether the keyword is one word of word characters, its pattern)."""
    parts = keyword.lower().split()
    words = r"\s+".join(re.escape(w) for w in parts)
    first = parts[0] if parts else ""
    return (first, len(parts) == 1 and _WORD.fullmatch(first) is not None,
            re.compile(rf"\b{words}(?:e?s)?\b"))


# -- a service named in the note ---------------------------------------------------------------
def _named(services: list[Service], note: str) -> list[Service]:
    words = re.findall(r"[a-z0-9&]+", note.lower())
    return [s for s in services
            if any(_names(words, _words(alias)) for alias in (s.name, *s.categories))]


@lru_cache(maxsize=1024)
def _words(alias: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z0-9&]+", alias.lower()))


def _names(words: list[str], alias: tuple[str, ...]) -> bool:
    """`words` contain `alias`: whole words; in a name of two or more words each may be
    shortened to three letters or more (`env health`, `enviro health`)."""
    n = len(alias)
    if not n:
        return False
    for i in range(len(words) - n + 1):
        if all(w == a or (n > 1 and len(w) >= 3 and a.startswith(w))
               for w, a in zip(words[i:i + n], alias, strict=True)):
            return True
    return False


# -- street addresses ----------------------------------------------------------------------------
_STREET = (r"Road|Rd|Street|St|Lane|Ln|Avenue|Ave|Drive|Dr|Close|Crescent|Cres|Way|Place|Pl|"
           r"Terrace|Terr|Gardens|Gdns|Court|Ct|Row|Hill|End|Park|Square|Sq|Grove|Walk|Mews|"
           r"Green|Brae|Wynd|Vale|View|Rise|Parade|Boulevard|Circus|Gate|Loan|Loaning|Brow|"
           r"Wharf|Quay|Yard|Croft|Vennel|Causeway|Broadway|Heights|Cottages|Bypass")
# Words that start a sentence or a phrase, not a street's name ("The Road is closed").
_NOT_A_NAME = (r"The|A|An|This|That|These|Those|Our|My|Your|His|Her|Their|Its|On|In|At|Outside|"
               r"Near|By|From|To|For|Of|Off|And|Or|But|Is|Was|Are|Were|Please|Can|Could|Would|"
               r"Will|I|We|It|There|Every|Each|Any|Some|No|Busy")
# `Station Road`, `Road End`, `Roads Lane`, `12 High St`: capitalised words before a street
# word; or a house number and lower-case words before one (`12 mill lane`). As written:
#
#   (?:\b\d+[A-Za-z]?,?\s+)?{_UP}{{1,3}}(?:{_STREET})\b
#   | \b\d+[A-Za-z]?,?\s+{_LOW}{{1,3}}(?:{_STREET.lower()})\b
#
# (tests/test_typed_and_routing.py keeps that form and checks this one finds the same). Every
# match starts with a digit or a capital, so the pattern starts by consuming one: the regular
# expression engine then skips every other position in C (5x faster on a 20 KB forward, where
# it tried every character), and what followed the start is checked just after it (`\b`
# before a house number as "no word character before the digit"; the first word is not one
# of _NOT_A_NAME, with its first letter looked back at).
_UP = rf"(?:(?=[A-Z])(?!(?:{_NOT_A_NAME})\b)[A-Z][A-Za-z'\u2019-]*\s+)"
_LOW = rf"(?:(?=[a-z])(?!(?:{_NOT_A_NAME.lower()})\b)[a-z][a-z'\u2019-]*\s+)"
_NUMBER_REST = r"\d*[A-Za-z]?,?\s+"  # after its first digit
_NOT_A_NAME_AFTER_FIRST = "|".join(rf"(?<={w[0]}){w[1:]}\b" for w in _NOT_A_NAME.split("|"))
_ADDRESS = re.compile(
    rf"[\dA-Z](?:(?<=\d)(?<!\w\d)(?:{_NUMBER_REST}{_UP}{{1,3}}(?:{_STREET})\b"
    rf"|{_NUMBER_REST}{_LOW}{{1,3}}(?:{_STREET.lower()})\b)"
    rf"|(?<=[A-Z])(?!{_NOT_A_NAME_AFTER_FIRST})[A-Za-z'\u2019-]*\s+{_UP}{{0,2}}(?:{_STREET})\b)")


def without_addresses(text: str) -> str:
    """`text` with its street addresses blanked, so no keyword matches inside one."""
    return _ADDRESS.sub(" ", text)
