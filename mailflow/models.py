"""The tables. All datetimes are aware UTC (see clock.py); due dates are council-local dates.

Schema changes go through Alembic (alembic/versions); `tests/test_migrations.py` fails when
these models and the migrations disagree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    Index,
    LargeBinary,
    UniqueConstraint,
    and_,
    or_,
)
from sqlalchemy.orm.attributes import set_attribute
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Field, SQLModel, col


# -- the directory, synchronised from the config file ---------------------------------------
class Ward(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)


class Member(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    name: str
    ward_id: int | None = Field(default=None, foreign_key="ward.id")
    party: str | None = None
    active: bool = True


class Service(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    contact: str
    escalation: str | None = None
    response_days: int = 10
    active: bool = True


# -- casework ------------------------------------------------------------------------------
class Constituent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str | None = None
    email: str | None = Field(default=None, index=True)
    phone: str | None = None
    address: str | None = None


class Counter(SQLModel, table=True):
    """Per-year case numbers, claimed with an UPDATE so two nodes never hand out one twice."""

    name: str = Field(primary_key=True)
    value: int = 0


class Case(SQLModel, table=True):
    __table_args__ = (
        Index("ix_case_closing", "status", "open_until"),
        # Retention: closed cases, oldest closure first (casework/retention.py).
        Index("ix_case_closed", "status", "closed_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True)
    status: str = Field(default="open", index=True)  # triage | open | answered | closed
    member_id: int = Field(foreign_key="member.id", index=True)
    ward_id: int | None = Field(default=None, foreign_key="ward.id")
    constituent_id: int | None = Field(default=None, foreign_key="constituent.id", index=True)
    category: str | None = None
    enquiry_type: str = "direct"
    subject: str = ""
    issue: str = ""  # the constituent's own words
    member_note: str = ""
    received_at: datetime
    opened_at: datetime
    closed_at: datetime | None = None
    open_until: date | None = None  # answered: closes itself after this working day
    source_message_id: int | None = Field(default=None, foreign_key="rawmessage.id",
                                          index=True)
    # Sharing (casework/sharing.py): effective only with the constituent's consent.
    share: str = "private"  # private | ward | party
    consent: bool | None = None  # None: not recorded
    priority: str = "normal"  # normal | high
    deadline: date | None = None  # the member's own deadline for the case
    merged_into_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    import_key: str | None = Field(default=None, unique=True)  # set on imported cases


class CaseKey(SQLModel, table=True):
    """What a case can be found by in the duplicate search (casework/duplicates.py): a
    street, a postcode or the constituent, per ward, so a new case finds its candidates by
    lookup instead of scanning the ward's open cases."""

    __table_args__ = (Index("ix_casekey_lookup", "ward_id", "key", "opened_at"),)
    id: int | None = Field(default=None, primary_key=True)
    # Goes with its case: deleting a case (retention) needs no step for its keys.
    case_id: int = Field(foreign_key="case.id", index=True, ondelete="CASCADE")
    ward_id: int = Field(foreign_key="ward.id")
    key: str  # a hash: the table holds no street, postcode or address in the clear
    opened_at: datetime


class Request(SQLModel, table=True):
    # The chase job's one query: open requests whose next step falls due.
    __table_args__ = (
        Index("ix_request_next_step", "state", "next_step_on"),
        # A service's digest: its open requests, oldest due first.
        Index("ix_request_service_open", "service_id", "state", "due"),
        # A member's digest: the overdue requests of their cases (case -> requests).
        Index("ix_request_case_open", "case_id", "state", "due"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    service_id: int = Field(foreign_key="service.id")
    contact: str
    state: str = Field(default="sent", index=True)  # sent | answered | undeliverable | withdrawn
    token: str
    sent_at: datetime
    due: date = Field(index=True)
    due_rule: str = ""
    # How `due` was worked out, so a calendar change can work it out again: `due_days`
    # working days from `due_from`; None when a person named the date (a holding reply).
    due_from: datetime | None = None
    due_days: int | None = None
    target_due: date | None = None  # the due date before any holding reply
    proposed_due: date | None = None  # a holding reply waiting for the member's agreement
    ack_due: date | None = None  # the service's acknowledgement target
    acknowledged_at: datetime | None = None  # its first acknowledgement, holding reply or answer
    chase_step: str = "none"  # reached: none | reminded | chased | chased_again | escalated
    next_step: str | None = None  # reminder | chase | chase_again | escalate
    next_step_on: date | None = None  # the council-local day the next step is due
    stepped_at: datetime | None = None
    answered_at: datetime | None = None
    answered_by: str | None = None
    target_days: int | None = None  # working days allowed (casework/enquiry.py target_days)
    # A follow-up after `#reopen`: the member's words ("" for none) and the request whose
    # answer it quotes (None when the case had no answer); both None for a first request.
    follow_up_reason: str | None = None
    follow_up_of: int | None = Field(default=None, foreign_key="request.id", index=True)
    chased_at: datetime | None = None  # the last chase (the chain's, or a member's #chase)
    # Why and when the request became `undeliverable` (a bounce, or the relay gave up).
    undeliverable_reason: str | None = None
    undeliverable_at: datetime | None = None


class CaseLink(SQLModel, table=True):
    """Two cases that belong together: `duplicate` (found at opening; one row each way),
    `merge_proposed` (case_id's member asks to merge with other_id) and `merged`."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    other_id: int = Field(foreign_key="case.id", index=True)
    kind: str
    reason: str = ""
    by: str | None = None
    created_at: datetime


class AuditEntry(SQLModel, table=True):
    """Who read or did what, for the controller: reads of lists, searches, the holding pen, the
    outbox and reports; refused reads; holding-pen actions, legal holds, retention deletions,
    subject access and erasure. `case_ref` is a reference, not a key, so the row outlives the
    case; a row that must outlive the case's deletion keeps personal data out of `detail`."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str = Field(index=True)  # the person's address, or "mailflow" for jobs
    action: str  # read | refused | change
    what: str  # cases | case | search | holding | outbox | report | hold | retention | ...
    case_ref: str | None = Field(default=None, index=True)
    via: str = "cli"  # cli | email | web | job
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class AuditCase(SQLModel, table=True):
    """A case a listing showed (cases, search, holding, outbox): one row per case per read, so
    "who saw this case" is an index lookup (`mailflow audit --case REF`), not a scan of every
    listing's detail. The reference, like AuditEntry's, outlives the case."""

    __table_args__ = (Index("ix_auditcase_case_ref", "case_ref", "audit_id"),)

    audit_id: int = Field(foreign_key="auditentry.id", primary_key=True)  # a row's cases
    case_ref: str = Field(primary_key=True)


class LegalHold(SQLModel, table=True):
    """A case that must not be deleted (casework/holds.py): placed by hand (`mailflow hold`)
    or by a subject access request, until `until` (inclusive) or until released."""

    __tablename__ = "legal_hold"
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    source: str = "manual"  # manual | sar:<id>: who may release it
    reason: str
    placed_by: str
    placed_at: datetime
    until: date | None = None  # None: until released
    released_at: datetime | None = None
    released_by: str | None = None

    @staticmethod
    def in_force(today: date) -> ColumnElement[bool]:
        """Not released, and `until` (inclusive, council-local) not passed."""
        return and_(col(LegalHold.released_at).is_(None),
                    or_(col(LegalHold.until).is_(None), col(LegalHold.until) >= today))


class Event(SQLModel, table=True):
    """The case timeline: updates (inbound mail) and events (what mailflow did)."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    request_id: int | None = Field(default=None, foreign_key="request.id", index=True)
    at: datetime
    kind: str  # opened | acknowledged | request_sent | update | service_reply | alert | ...
    sender: str | None = Field(default=None, index=True)  # a SAR finds what someone wrote
    text: str = ""
    raw_message_id: int | None = Field(default=None, foreign_key="rawmessage.id", index=True)
    data: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class Notification(SQLModel, table=True):
    """Something a member or staff should hear about, kept until a digest has carried it, so a
    missed digest run loses nothing."""

    __table_args__ = (Index("ix_notification_pending", "audience", "recipient", "digest_id"),)
    id: int | None = Field(default=None, primary_key=True)
    audience: str  # member | staff
    recipient: str  # the member's email; "staff" for the staff digest
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    request_id: int | None = Field(default=None, foreign_key="request.id", index=True)
    kind: str  # opened | reply | holding | extension | chased | escalated | closed | bounce ...
    text: str = ""
    created_at: datetime
    digest_id: int | None = Field(default=None, foreign_key="digest.id")


class Digest(SQLModel, table=True):
    """One digest per recipient and period: inserting the row claims the run, so two nodes or
    two ticks never send the same digest twice. An empty digest is recorded, not sent."""

    __table_args__ = (UniqueConstraint("audience", "recipient", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    audience: str  # member | staff | service
    recipient: str
    period: str  # 2026-11-23 (daily) or 2026-W48 (weekly)
    created_at: datetime
    items: int = 0
    sent: bool = False


class Setting(SQLModel, table=True):
    """Small facts the database must remember between runs (the calendar's fingerprint)."""

    name: str = Field(primary_key=True)
    value: str


# -- mail in ---------------------------------------------------------------------------------
class RawMessage(SQLModel, table=True):
    """The spool: every inbound message exactly as it arrived, stored before anything else."""

    # The pipeline's claim (inbound/claiming.py): the first `new` message of each thread key.
    __table_args__ = (UniqueConstraint("digest"),
                      Index("ix_rawmessage_thread", "thread_key", "state", "id"))
    id: int | None = Field(default=None, primary_key=True)
    message_id: str | None = Field(default=None, index=True)
    digest: str  # sha256 of Message-ID and content, without the relays' trace headers
    received_at: datetime = Field(index=True)  # retention: raw_message_days
    source: str  # smtp | lmtp | imap | ingest
    envelope_from: str | None = None
    envelope_to: list[str] | None = Field(default=None, sa_column=Column(JSON))
    size: int
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="new", index=True)  # new | done | failed
    disposition: str | None = None
    case_id: int | None = Field(default=None, index=True)  # no FK: case points back here
    reason: str | None = None
    processed_at: datetime | None = None
    # The case reference its headers name (inbound/threadkey.py): one key, one at a time.
    thread_key: str | None = None


class ImapState(SQLModel, table=True):
    """How far the IMAP receiver got in one mailbox folder, so a restart neither misses nor
    repeats a message. UIDs and UIDVALIDITY are unsigned 32-bit: too big for INTEGER."""

    host: str = Field(primary_key=True)
    username: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime


class Holding(SQLModel, table=True):
    """The holding pen: what could not be placed with confidence, waiting for staff."""

    id: int | None = Field(default=None, primary_key=True)
    raw_message_id: int | None = Field(default=None, foreign_key="rawmessage.id", index=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    kind: str  # unknown_sender | unmatched | stranger | needs_service | bounce | failed | ...
    reason: str
    sender: str | None = None
    subject: str | None = None
    created_at: datetime
    resolved_at: datetime | None = Field(default=None, index=True)
    # The open cases it might belong to: [{"case": "CW-2026-00042", "why": ["..."]}, ...]
    candidates: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    # How a person worked it (casework/holding.py): filed | opened | dismissed | retried,
    # who (an address, or "NAME (os user)"), and the dismissal's reason. `case_id` is then the
    # case it was filed on or opened as.
    resolution: str | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None


class Blob(SQLModel, table=True):
    """Attachment bytes, stored once however often they arrive (content-addressed)."""

    sha256: str = Field(primary_key=True)
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Attachment(SQLModel, table=True):
    """A file that came with an inbound message filed on a case."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    raw_message_id: int | None = Field(default=None, foreign_key="rawmessage.id", index=True)
    name: str
    content_type: str
    size: int
    sha256: str = Field(index=True)
    stored: bool = True  # False: over [attachments] max_size, kept only in the raw message
    created_at: datetime


# -- mail out --------------------------------------------------------------------------------
class Outbox(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime
    kind: str  # acknowledgement | request | alert | ...
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    # Indexed: chases and notices thread under the request's first mail (notify.py).
    request_id: int | None = Field(default=None, foreign_key="request.id", index=True)
    message_id: str = Field(unique=True)
    sender: str
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    subject: str
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default="queued", index=True)  # queued | sending | sent | held | failed
    held_reason: str | None = None  # why automatic mail was held back (loops, rate limit)
    attempts: int = 0
    next_attempt_at: datetime
    claimed_at: datetime | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    # Each recipient's outcome, so a retry goes only to those still pending:
    # [{"address", "state": pending | sent | failed, "answer": the relay's last words}]
    recipients_status: list[dict[str, Any]] | None = Field(default=None,
                                                           sa_column=Column(JSON))

    def outcomes(self) -> list[dict[str, Any]]:
        """Each recipient's outcome; rows from before it was recorded are all pending (or
        all sent, once the mail was)."""
        if self.recipients_status is not None:
            return self.recipients_status
        state = "sent" if self.state == "sent" else "pending"
        return [{"address": a, "state": state, "answer": None} for a in self.recipients]


# -- statistics and scheduled reports ---------------------------------------------------------
# Anonymised copies of what reports count: no constituent, no text, no FK to the case, so a
# retention policy can delete or anonymise cases without changing past reports. Written by
# reports/stats.py whenever a case or its requests change; dates are council-local.
# Reports read these tables by date ranges only: the covering indexes hold every column a
# report reads, so a report scans one index in date order and never touches the table.
_GROUPS = ("ward", "member", "category", "service", "enquiry_type")


class CaseStat(SQLModel, table=True):
    __tablename__ = "case_stat"
    __table_args__ = (
        Index("ix_case_stat_opened", "opened_on", *_GROUPS, "opened_month"),
        Index("ix_case_stat_closed", "closed_on", *_GROUPS, "closed_month"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(unique=True)  # no FK: the statistic outlives the case
    ward: str | None = None
    member_id: int | None = None
    member: str | None = None
    category: str | None = None
    service: str | None = None  # the service of the case's first request
    enquiry_type: str = "direct"
    opened_on: date
    opened_month: str  # YYYY-MM, for grouping by month on any database
    closed_on: date | None = None
    closed_month: str | None = None


class RequestStat(SQLModel, table=True):
    __tablename__ = "request_stat"
    __table_args__ = (
        Index("ix_request_stat_sent", "sent_on", *_GROUPS, "sent_month", "working_days",
              "on_time", "answered_on", "state", "due", "escalations"),
    )
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(unique=True)  # no FK: the statistic outlives the request
    case_id: int = Field(index=True)
    ward: str | None = None
    member_id: int | None = None
    member: str | None = None
    category: str | None = None
    service: str | None = None
    enquiry_type: str = "direct"
    state: str = "sent"  # sent | answered | undeliverable
    sent_on: date
    sent_month: str
    due: date
    answered_on: date | None = None
    # from the day the request's due date counts from (its case's arrival, for the first) to
    # the answer
    working_days: int | None = None
    on_time: bool | None = None
    escalations: int = 0


class SentReport(SQLModel, table=True):
    """A scheduled report claimed for one period and recipient: inserted once, so a double
    tick or a second node never sends it twice."""

    __tablename__ = "sent_report"
    __table_args__ = (UniqueConstraint("kind", "period", "recipient"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # service_performance | enquiry_types
    period: str  # 2026-10, 2026H2
    recipient: str
    created_at: datetime
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id", index=True)


class SignInLink(SQLModel, table=True):
    """A sign-in link sent by mail (web/auth.py): only the SHA-256 of its token and of its
    6-digit code are kept. Every request for a link is a row, so the rate limits are counts."""

    __tablename__ = "sign_in_link"
    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True)  # as typed, lower-cased (a member, alias or staff)
    client: str = Field(index=True)  # the client's IP address
    token_hash: str = Field(unique=True)
    code_hash: str
    created_at: datetime = Field(index=True)
    expires_at: datetime
    used_at: datetime | None = None  # used, superseded or spent by wrong codes
    outcome: str | None = None  # signed_in | superseded | too_many_codes
    code_failures: int = 0


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the database its SHA-256."""

    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True)
    actor: str = Field(index=True)  # the member's main address, or the staff address
    created_at: datetime
    last_seen: datetime
    ended_at: datetime | None = None


# -- privacy: subject access and end of term ---------------------------------------------------
class SarRequest(SQLModel, table=True):
    """The register of subject access requests (casework/sar.py): due one calendar month after
    receipt, extendable by up to two months with a reason. Its cases are held (legal hold,
    source `sar:<id>`) until it is answered plus four months."""

    __tablename__ = "sar_request"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True)  # the data subject
    name: str | None = None
    phone: str | None = None
    received_at: datetime
    due: date  # council-local, after any extension
    extended_months: int = 0
    extend_reason: str | None = None
    answered_at: datetime | None = None
    requested_by: str  # who ran it (a member with --as, or the OS user)
    scope: str | None = None  # a member's address when run --as that member
    cases: int = 0
    files: int = 0


class EndOfTerm(SQLModel, table=True):
    """A member whose term ends (casework/endterm.py): from `on` no new case opens for them;
    consented cases pass to `successor`, the rest close and go after end_of_term_days."""

    __tablename__ = "end_of_term"
    id: int | None = Field(default=None, primary_key=True)
    member_email: str = Field(unique=True)
    successor: str | None = None
    on: date
    declared_at: datetime
    declared_by: str
    done_at: datetime | None = None  # when the open cases were handed over or closed


# -- building rows --------------------------------------------------------------------------
_Row = TypeVar("_Row", bound=SQLModel)
_DEFAULTS: dict[type, list[tuple[str, Any, Any]]] = {}


def new_row(cls: type[_Row], **values: Any) -> _Row:
    """`cls(**values)` for the rows the pipeline builds by the dozen (events, outgoing mail):
    the same object, its attributes set through SQLAlchemy's instrumentation, without
    SQLModel's constructor setting each one twice (SQLAlchemy, then pydantic's __setattr__;
    about 3x the time). Like the constructor, it does not validate; only fields, no
    relationships."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS[cls] = [
            (name, f.default_factory, None if f.default_factory else f.get_default())
            for name, f in cls.model_fields.items() if not f.is_required()]
    unknown = values.keys() - cls.model_fields.keys()
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
    row = manager_of_class(cls).new_instance()  # SQLModel.__new__, and the ORM's state
    for name, factory, default in defaults:
        if name not in values:
            set_attribute(row, name, factory() if factory else default)
    for name, value in values.items():
        set_attribute(row, name, value)
    object.__setattr__(row, "__pydantic_fields_set__", set(values))
    return row  # type: ignore[no-any-return]
