"""Matching a message to its case, strongest evidence first (DESIGN.md):
In-Reply-To/References naming a message we sent; the signed plus-address; the subject tag.
This module only finds the case; whether the sender may change it is dispatch's decision."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import tokens
from mailflow.inbound.parse import Parsed
from mailflow.settings import Settings


@dataclass
class Match:
    case: models.Case
    request: models.Request | None
    evidence: str  # in-reply-to | token | tag
    detail: str = ""


def recipients(p: Parsed, envelope_to: list[str] | None) -> list[str]:
    extra = [p.header(h).strip("<> ").lower() for h in ("Delivered-To", "X-Original-To")]
    return [a for a in [*p.recipients, *(envelope_to or []), *extra] if a]


def by_message_id(session: Session, p: Parsed) -> Match | None:
    ids = list(dict.fromkeys([*p.in_reply_to, *reversed(p.references)]))
    if not ids:
        return None
    sent = session.exec(
        select(models.Outbox).where(col(models.Outbox.message_id).in_(ids))
        .where(col(models.Outbox.case_id).is_not(None))
    ).all()
    if not sent:
        return None
    sent.sort(key=lambda o: ids.index(o.message_id))  # In-Reply-To before older References
    out = sent[0]
    case = session.get(models.Case, out.case_id)
    request = session.get(models.Request, out.request_id) if out.request_id else None
    return Match(case, request, "in-reply-to", out.message_id) if case else None


def by_token(session: Session, s: Settings, addrs: list[str]) -> tuple[Match | None, str | None]:
    """(match, problem): a plus-address whose token does not verify is a problem, not a match."""
    problem = None
    for addr in addrs:
        parsed = tokens.parse_plus_address(addr, s.council.casework_address,
                                           s.council.reference_prefix)
        if not parsed:
            continue
        reference, tok = parsed
        case = case_by_reference(session, reference)
        if case is None:
            problem = f"reply address names unknown case {reference}"
            continue
        for req in session.exec(select(models.Request).where(models.Request.case_id == case.id)):
            if tokens.verify(s.secret, case.reference, req.id, tok):  # type: ignore[arg-type]
                return Match(case, req, "token", addr), None
        problem = f"reply address for {reference} has a token that does not verify"
    return None, problem


def tag_reference(subject: str, prefix: str) -> str | None:
    m = re.search(rf"\[\s*({re.escape(prefix)}[-\s]?\w{{4}}[-\s]?\w{{1,7}})\s*\]", subject, re.I)
    return tokens.normalise_reference(m.group(1).replace(" ", "-"), prefix) if m else None


def by_tag(session: Session, s: Settings, p: Parsed) -> Match | None:
    reference = tag_reference(p.subject, s.council.reference_prefix)
    case = case_by_reference(session, reference) if reference else None
    return Match(case, None, "tag", reference or "") if case else None


def case_by_reference(session: Session, reference: str) -> models.Case | None:
    return session.exec(select(models.Case).where(models.Case.reference == reference)).first()
