"""What a message is and where it belongs, without changing anything.

`understand` is the one place that classifies a message and matches it to a case: the
pipeline acts on its answer (dispatch.py) and `mailflow inspect` prints it, so what staff see
when they ask "why did this go to the holding pen?" is exactly what the pipeline did. It only
reads the database, and works without one (then nothing matches).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlmodel import Session

from mailflow import clock, models
from mailflow.casework import parties
from mailflow.casework.attachments import File
from mailflow.inbound import attachments, authresults, bounces, match, replykind
from mailflow.inbound.classify import AUTO_REPLY, BOUNCE, NORMAL, Classification, classify
from mailflow.inbound.forwards import Forward, find_forward
from mailflow.inbound.parse import Parsed
from mailflow.inbound.reply import visible_text
from mailflow.settings import Settings


@dataclass
class Candidate:
    """An open case the message might belong to, and why we think so."""

    case: models.Case
    why: list[str] = field(default_factory=list)
    evidence: set[str] = field(default_factory=set)  # thread | constituent | reference

    def as_dict(self) -> dict[str, object]:
        return {"case": self.case.reference, "why": self.why}


@dataclass
class Understanding:
    parsed: Parsed
    sender: str | None
    classification: Classification
    bounce: bounces.Bounce | None
    forward: Forward | None
    reply_text: str
    files: list[File]
    match: match.Match | None = None  # strong evidence: in-reply-to, token or tag
    problem: str | None = None  # e.g. a reply address whose token does not verify
    role: str | None = None  # the sender's part in the matched (or guessed) case
    request: models.Request | None = None  # the sender's request, when a contact
    guess: Candidate | None = None  # the one confident guess, when there is exactly one
    digest: str | None = None  # how it shows it replies to one of our digests
    auth: authresults.Verdict = authresults.NONE  # what a trusted MTA says of the From domain
    reply_kind: str | None = None  # replykind.py; None when it is no reply to a request
    # What finds the candidates (`candidates`); None: there are none to find.
    find_candidates: Callable[[], list[Candidate]] | None = field(default=None, repr=False)
    _candidates: list[Candidate] | None = field(default=None, repr=False)

    @property
    def candidates(self) -> list[Candidate]:
        """The open cases it might belong to, looked up when first asked: a matched reply
        that is filed never asks, so it costs no query."""
        if self._candidates is None:
            self._candidates = self.find_candidates() if self.find_candidates else []
        return self._candidates

    @property
    def authenticated(self) -> bool:
        return self.auth.passed

    @property
    def proven(self) -> bool:
        """Proof that the sender received our mail (our Message-ID, a token) or is who they
        say (authenticated); a party's `From` is still needed (casework/parties.py)."""
        return parties.proven(self.evidence, self.authenticated)

    @property
    def kind(self) -> str:
        return self.classification.kind

    @property
    def case(self) -> models.Case | None:
        if self.match:
            return self.match.case
        return self.guess.case if self.guess else None

    @property
    def evidence(self) -> str:
        if self.match:
            return self.match.evidence
        return "guess" if self.guess else "none"


def understand(p: Parsed, s: Settings, session: Session | None, *,
               envelope_from: str | None = None, envelope_to: list[str] | None = None,
               today: date | None = None) -> Understanding:
    """`today` (the council's local day) reads "I will reply by Friday"; without it, the
    message's own Date."""
    u = _understand(p, s, session, envelope_from, envelope_to)
    if _replies_to_request(u, s):
        day = today or (p.date or clock.now()).date()
        u.reply_kind = replykind.of(u.reply_text, u.classification, day)
    return u


# Re:, AW:, SV:, Antw:, RIF:, Odp:, YNT:, Ответ: … a reply's subject, when nothing matched.
_REPLY_SUBJECT = re.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:re|aw|sv|vs|antw|antwort|rif|r|odp|ynt|"
                            r"res|ref|atb|отв|ответ|re\[\d+\])\s*:", re.IGNORECASE)


def _replies_to_request(u: Understanding, s: Settings) -> bool:
    """A reply to one of our requests: from its contact, or an officer with proof, on a
    matched case; with no case known (no database, or none matches), a reply that is not a
    member's or staff's own (its In-Reply-To, References or subject say it replies)."""
    if u.kind not in (NORMAL, AUTO_REPLY) or u.forward is not None or u.digest:
        return False
    if u.case is not None:
        if u.role == "contact":
            return True
        return (u.role is None and u.match is not None and u.match.evidence in parties.PROOF
                and s.is_trusted(u.sender))  # an officer: casework/parties.py
    if not u.sender or s.member_for(u.sender) or s.is_staff(u.sender):
        return False
    p = u.parsed
    return u.kind == AUTO_REPLY or bool(p.header("In-Reply-To") or p.header("References")
                                        or _REPLY_SUBJECT.match(p.subject))


def _understand(p: Parsed, s: Settings, session: Session | None, envelope_from: str | None,
                envelope_to: list[str] | None) -> Understanding:
    sender = p.sender  # never the envelope sender: anyone sets it (parse.read_from)
    c = classify(p, s, envelope_from)
    bounce = bounces.read(p.msg, ignore=s.is_ours) if c.kind == BOUNCE else None
    fwd = find_forward(p.msg, is_internal=s.is_internal) if c.kind == NORMAL else None
    u = Understanding(p, sender, c, bounce, fwd, visible_text(p.text) if p.text else "",
                      attachments.extract(p.msg) if c.kind == NORMAL else [])
    u.auth = authresults.check(p.msg.raw_items(), s.authentication.trusted_authserv_ids, sender)
    if session is None:
        return u
    addrs = match.recipients(p, envelope_to)
    if bounce:  # the returned message names the case: its Message-ID or our reply address
        addrs += match.addresses_in(bounce.returned)
    u.match = match.by_message_id(session, p, bounce.original_message_id if bounce else None)
    if not u.match:
        u.match, u.problem = match.by_token(session, s, addrs)
    if not u.match:
        u.match = match.by_tag(session, s, p)
    if u.match:
        loaded = u.match.loaded
        u.role, u.request = parties.party_role(session, s, u.match.case, sender,
                                               requests=loaded.requests if loaded else None)
    if not (u.match and u.match.evidence in parties.PROOF):  # a case's own thread comes first
        u.digest, problem = match.by_digest(session, s, p, addrs)
        u.problem = u.problem or (None if u.match else problem)
        if u.digest:  # a digest names many cases: none of them is a candidate
            return u
    if c.kind == NORMAL:
        u.find_candidates = lambda: _candidates(u, s, session)
        if not u.match and not u.problem:
            u.guess, role, request = _confident(u, s, session)
            if u.guess:
                u.role, u.request = role, request
    return u


def _candidates(u: Understanding, s: Settings, session: Session) -> list[Candidate]:
    found: dict[int, Candidate] = {}
    loaded: dict[str, models.Case] = {}  # the cases met so far, closed ones too, by reference

    def add(case: models.Case, evidence: str, why: str) -> None:
        loaded[case.reference] = case
        if case.status == "closed":
            return
        cand = found.setdefault(case.id or 0, Candidate(case))
        cand.evidence.add(evidence)
        if why not in cand.why:
            cand.why.append(why)

    if u.match:
        add(u.match.case, u.match.evidence, f"{u.match.evidence}: {u.match.detail}")
    for case, message_id in match.by_thread(session, u.parsed):
        add(case, "thread", f"replies to {message_id}, filed on this case")
    if not s.member_for(u.sender):
        for case in match.by_constituent(session, u.sender):
            add(case, "constituent", f"from the case's constituent {u.sender}")
    prefix = s.council.reference_prefix
    for ref in match.body_references(u.parsed.text, prefix):
        # A reply usually quotes its own case's reference: a case met above is the one the
        # query would return (the session's identity map), so it is not asked for again.
        case = loaded[ref] if ref in loaded else match.case_by_reference(session, ref)
        if case is not None:
            add(case, "reference", f"quotes {ref} in the body")
    return list(found.values())


def _confident(u: Understanding, s: Settings, session: Session
               ) -> tuple[Candidate | None, str | None, models.Request | None]:
    """Exactly one candidate, and evidence this sender may use (see README, triage), with
    the sender's role there (parties.party_role). Only a party's or the constituent's mail
    is ever a guess: a stranger's waits in the holding pen, whatever thread it replies in."""
    if len(u.candidates) != 1 or not u.sender or u.parsed.from_problem:
        return None, None, None
    cand = u.candidates[0]
    role, request = parties.party_role(session, s, cand.case, u.sender)
    if s.member_for(u.sender):
        # A member's mail that names no case opens a new one; only their own case's thread,
        # or a reference in a message of their own (not a forward), files it on an old one.
        if role != "member":
            return None, None, None
        sure = "thread" in cand.evidence or ("reference" in cand.evidence and u.forward is None)
        return (cand, role, request) if sure else (None, None, None)
    constituent = session.get(models.Constituent, cand.case.constituent_id) \
        if cand.case.constituent_id else None
    is_constituent = bool(constituent and constituent.email == u.sender)
    return (cand, role, request) if role or is_constituent else (None, None, None)
