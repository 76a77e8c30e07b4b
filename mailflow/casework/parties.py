"""Who is a party to a case, and in what role: the one definition, used by matching (may
this sender's mail change the case?), dispatch and the command matrix (casework/authz.py).

- `member`: the case's member (any of their addresses);
- `contact`: the contact, an alias or the escalation contact of one of the case's requests
  (with that request);
- `staff`: member services;
- `officer`: anyone else in a trusted domain who proves they received our mail about a
  request (our Message-ID or its signed reply address): the contact passed it on; they act
  for the contact of that request;
- `colleague`: another member the case is shared with (casework/sharing.py);
- `constituent`: the case's constituent, by address. Not a party: their mail is recorded,
  never obeyed.
`member`, `contact` and `staff` are the parties whose plain word counts on the case.

A `From` is a claim: a message changes a case only with proof (`proven`): that its sender
received our mail (our Message-ID in In-Reply-To/References, or the signed reply address),
or that a trusted MTA authenticated the From domain. A subject tag or a guess proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import directory, sharing
from mailflow.settings import Settings

PARTIES = ("member", "contact", "staff")
PROOF = ("in-reply-to", "token")  # evidence that the sender received our mail


@dataclass
class Loaded:
    """What the match read of its case along with it, so that nothing reads it again: all
    the case's requests (by id) and, when known, the members whose cases were merged into
    it (the reply's alert goes to them too)."""

    requests: list[models.Request]
    merged_members: list[int] | None = None  # None: not read


def proven(evidence: str | None, authenticated: bool) -> bool:
    """May a party's message with this evidence change the case?"""
    return authenticated or evidence in PROOF


def requests_of(session: Session, case: models.Case) -> list[models.Request]:
    """All the case's requests, by id."""
    return list(session.exec(_REQUESTS, params={"case": case.id}).all())


def party_role(session: Session, s: Settings, case: models.Case, sender: str | None, *,
               requests: list[models.Request] | None = None
               ) -> tuple[str | None, models.Request | None]:
    """`member`, `contact` (with their request), `staff`, or (None, None). `requests`: all
    the case's requests, when the caller has them (read here otherwise)."""
    if not sender:
        return None, None
    member_row = directory.get(session, models.Member, case.member_id)
    member = s.member(member_row.email) if member_row else None
    if member and sender in (member.email, *member.aliases):
        return "member", None
    for req in requests_of(session, case) if requests is None else requests:
        service_row = directory.get(session, models.Service, req.service_id)
        service = s.service(service_row.name) if service_row else None
        addresses = {req.contact, *(service and [service.contact, *service.contact_aliases] or [])}
        if service and service.escalation:
            addresses.add(service.escalation)
        if sender in addresses:
            return "contact", req
    if s.is_staff(sender):
        return "staff", None
    return None, None


# Built once: a reply asks this for every party it checks (building it cost more than running).
_REQUESTS = (select(models.Request).where(models.Request.case_id == bindparam("case"))
             .order_by(col(models.Request.id)))


def role_of(session: Session, s: Settings, case: models.Case, sender: str | None, *,
            evidence: str | None = None, request: models.Request | None = None,
            requests: list[models.Request] | None = None
            ) -> tuple[str | None, models.Request | None]:
    """The sender's role on this case (see the module doc) and the request it concerns.
    `evidence`/`request`: how the message was matched and the request it proved receipt of;
    `requests`: all the case's requests, when the caller has them."""
    sender = (sender or "").strip().lower() or None
    role, own = party_role(session, s, case, sender, requests=requests)
    if role is not None:
        return role, own
    if not sender:
        return None, None
    if evidence in PROOF and s.is_trusted(sender):
        return "officer", request
    if s.member_for(sender) and sharing.can_see(session, s, case, sender):
        return "colleague", None
    constituent = session.get(models.Constituent, case.constituent_id) \
        if case.constituent_id else None
    if constituent is not None and constituent.email == sender:
        return "constituent", None
    return None, None
