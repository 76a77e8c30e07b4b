"""Which service an enquiry goes to: the best match of the services' keywords."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mailflow.settings import Service


@dataclass
class Route:
    service: Service | None
    scores: dict[str, int]
    reason: str


def route(services: list[Service], subject: str, text: str) -> Route:
    """Keyword hits, the subject's counted twice. A tie between services is not a match:
    a person decides rather than the request going to the wrong officer."""
    scores: dict[str, int] = {}
    subject, text = subject.lower(), text.lower()
    for s in services:
        score = sum(2 * _hits(k, subject) + _hits(k, text) for k in s.keywords)
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


def _hits(keyword: str, lowered: str) -> int:
    return len(_pattern(keyword).findall(lowered))


@lru_cache(maxsize=1024)
def _pattern(keyword: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(w) for w in keyword.lower().split())
    return re.compile(rf"\b{words}(?:e?s)?\b")
