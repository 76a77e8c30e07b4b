"""Matching a message to its case, strongest evidence first (DESIGN.md):
In-Reply-To/References naming a message we sent; the signed plus-address; the subject tag.
This module only finds the case; whether the sender may change it is dispatch's decision."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import bindparam, exists
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from mailflow import models, tokens
from mailflow.casework import parties
from mailflow.inbound.parse import Parsed
from mailflow.settings import Settings


@dataclass
class Match:
    case: models.Case
    request: models.Request | None
    evidence: str  # in-reply-to | token | tag | guess
    detail: str = ""
    # What the match read of the case with it (in-reply-to, token): who is a party, what a
    # reply answers and whom it alerts are worked out from it without reading it again.
    loaded: parties.Loaded | None = None


def recipients(p: Parsed, envelope_to: list[str] | None) -> list[str]:
    extra = [p.header(h).strip("<> ").lower() for h in ("Delivered-To", "X-Original-To")]
    return [a for a in [*p.recipients, *(envelope_to or []), *extra] if a]


def by_message_id(session: Session, p: Parsed, first: str | None = None) -> Match | None:
    """`first`: a Message-ID to try before the headers' (the one a bounce returns)."""
    ids = list(dict.fromkeys([*([first] if first else []), *p.in_reply_to,
                              *reversed(p.references)]))
    if not ids:
        return None
    rows = session.execute(_SENT, {"ids": ids}).all()
    if not rows:
        return None
    # In-Reply-To before older References
    message_id, request_id, case, _, merged = min(rows, key=lambda row: ids.index(row[0]))
    requests = [r for m, _, _, r, _ in rows if m == message_id and r is not None]
    request = next((r for r in requests if r.id == request_id), None)
    return Match(case, request, "in-reply-to", message_id,
                 parties.Loaded(requests, None if merged else []))


# The mail we sent with its case, all the case's requests and whether any case was merged
# into it, in one query, without the mail itself; built once.
_Out, _C, _R = models.Outbox, models.Case, models.Request
_MERGED = aliased(_C)
_SENT = (core_select(_Out.message_id, _Out.request_id, _C, _R,
                     exists().where(col(_MERGED.merged_into_id) == col(_C.id)))
         .join(_C, col(_C.id) == col(_Out.case_id))
         .outerjoin(_R, col(_R.case_id) == col(_C.id))
         .where(col(_Out.message_id).in_(bindparam("ids", expanding=True)))
         .order_by(col(_R.id)))


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
        requests = parties.requests_of(session, case)
        for req in requests:
            if tokens.verify(s.secrets, case.reference, req.id, tok):  # type: ignore[arg-type]
                return Match(case, req, "token", addr, parties.Loaded(requests)), None
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


# -- guesses: weaker evidence, for triage (a case is only filed on exactly one) ---------------
def body_references(text: str, prefix: str, limit: int = 20) -> list[str]:
    """Case references quoted anywhere in a body (`CW-2026-00042`, `cw 2026 42`)."""
    found = re.findall(rf"\b({re.escape(prefix)}[-\s]?\d{{4}}[-\s]?\d{{1,7}})\b", text, re.I)
    refs = [tokens.normalise_reference(re.sub(r"\s", "-", r), prefix) for r in found[:limit]]
    return list(dict.fromkeys(r for r in refs if r))


def by_thread(session: Session, p: Parsed) -> list[tuple[models.Case, str]]:
    """Cases on which an earlier inbound message of this thread was filed (a reply to the
    member's forward, or to the constituent's own message)."""
    ids = list(dict.fromkeys([*p.in_reply_to, *p.references]))
    if not ids:
        return []
    rows = session.exec(
        select(models.RawMessage.message_id, models.RawMessage.case_id)
        .where(col(models.RawMessage.message_id).in_(ids))
        .where(col(models.RawMessage.case_id).is_not(None))
        .where(col(models.RawMessage.disposition).in_(("case_opened", "update")))
    ).all()
    out = []
    for message_id, case_id in rows:
        case = session.get(models.Case, case_id)
        if case is not None:
            out.append((case, message_id or ""))
    return out


def by_constituent(session: Session, sender: str | None) -> list[models.Case]:
    if not sender:
        return []
    return list(session.exec(
        select(models.Case).join(models.Constituent,
                                 col(models.Case.constituent_id) == col(models.Constituent.id))
        .where(models.Constituent.email == sender)
        .where(col(models.Case.status) != "closed")
        .order_by(col(models.Case.id))
    ))


_ADDRESS = re.compile(r"[\w.+=-]+@[\w-]+(?:\.[\w-]+)+")


def addresses_in(text: str, limit: int = 200) -> list[str]:
    """Addresses written anywhere in a text (a bounce's copy of our message)."""
    return list(dict.fromkeys(a.lower() for a in _ADDRESS.findall(text or "")))[:limit]


# -- digests: a reply to one names no case ----------------------------------------------------
DIGESTS = ("member_digest", "staff_digest", "service_digest")


def by_digest(session: Session, s: Settings, p: Parsed, addrs: list[str]
              ) -> tuple[str | None, str | None]:
    """(evidence, problem): how the message shows it replies to one of our digests (its
    signed reply address, or In-Reply-To/References naming a digest we sent), or why a
    digest address does not verify."""
    problem = None
    for addr in addrs:
        parsed = tokens.parse_digest_address(addr, s.council.casework_address)
        if parsed is None:
            continue
        digest_id, tok = parsed
        if tokens.verify(s.secrets, "DIGEST", digest_id, tok):
            return f"sent to the reply address of digest {digest_id}", None
        problem = f"digest reply address {addr} has a token that does not verify"
    ids = list(dict.fromkeys([*p.in_reply_to, *p.references]))
    if ids:
        sent = session.exec(select(models.Outbox.message_id)
                            .where(col(models.Outbox.message_id).in_(ids))
                            .where(col(models.Outbox.kind).in_(DIGESTS))).first()
        if sent:
            return f"replies to our digest {sent}", None
    return None, problem
