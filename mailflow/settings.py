"""The config file and the environment, validated into one Settings object.

Every problem in a config file is reported at once, each naming the file, the entry and
the field, so a clerk editing the council directory can fix them in one pass.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import tomllib
import zoneinfo
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NATIONS = ("ENG", "SCT", "WLS", "NIR")
# As members type them (`#type service-request`); config keys may use the long names too.
ENQUIRY_TYPES = ("direct", "indirect", "complaint", "service-request", "community")
_TYPE_ALIASES = {"service_request": "service-request", "service request": "service-request",
                 "community_issue": "community", "community issue": "community",
                 "community-issue": "community"}


def enquiry_type(name: str) -> str:
    """The one spelling of an enquiry type; ValueError for an unknown one."""
    key = _TYPE_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in ENQUIRY_TYPES:
        raise ValueError(f"unknown enquiry type {name!r}; use one of {', '.join(ENQUIRY_TYPES)}")
    return key
DIGEST_FREQUENCIES = ("daily", "weekly", "off")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
DEFAULT_CONFIG = Path("config/mailflow.toml")


class ConfigError(Exception):
    """A config file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _hhmm(value: str) -> str:
    try:
        time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a time of day like 08:30: {value!r}") from None
    return value


def _iso_day(value: str) -> str:
    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a date like 2026-12-29: {value!r}") from None
    return value


def _address(value: str) -> str:
    value = value.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value:
        raise ValueError(f"not an email address: {value!r}")
    return value


class Council(_Strict):
    name: str
    casework_address: str
    reference_prefix: str = "CW"
    timezone: str = "Europe/London"
    nation: str = "ENG"
    trusted_domains: list[str] = Field(default_factory=list)
    secret: str = "change-me"
    # Secrets replaced by `secret`: tokens signed with them still verify, so replies to mail
    # sent before a rotation still match. Remove one once its mail is answered (docs/deploy.md).
    previous_secrets: list[str] = Field(default_factory=list)
    closure_days: list[str] = Field(default_factory=list)
    working_hours: tuple[str, str] = ("08:30", "17:00")
    cutoff: str = "17:00"
    templates: str | None = None  # the council's own template folder, searched first

    _addr = field_validator("casework_address")(classmethod(lambda cls, v: _address(v)))
    _cut = field_validator("cutoff")(classmethod(lambda cls, v: _hhmm(v)))
    _days = field_validator("closure_days")(classmethod(lambda cls, v: [_iso_day(d) for d in v]))

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, v: tuple[str, str]) -> tuple[str, str]:
        start, end = (_hhmm(x) for x in v)
        if start >= end:
            raise ValueError(f"working hours must start before they end: {start}-{end}")
        return start, end

    @field_validator("nation")
    @classmethod
    def _nation(cls, v: str) -> str:
        if v.upper() not in NATIONS:
            raise ValueError(f"unknown nation {v!r}; use one of {', '.join(NATIONS)}")
        return v.upper()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("reference_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v.isalpha() or not v.isupper():
            raise ValueError("must be upper-case letters, like CW")
        return v

    @field_validator("trusted_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        out = [d.strip().lower().lstrip("@") for d in v]
        for d in out:
            name = d.removeprefix("*.")
            if "." not in name or "*" in name or "@" in name or " " in name:
                raise ValueError(f"not a domain like council.example or *.council.example: {d!r}")
        return out


class Database(_Strict):
    url: str = "sqlite:///data/mailflow.db"


class Smtp(_Strict):
    host: str = "127.0.0.1"
    port: int = 8025
    protocol: str = "smtp"  # or "lmtp", for Postfix's lmtp: transport
    max_message_size: int = 25 * 1024 * 1024  # bytes; advertised as SIZE, 552 above it
    allowed_clients: list[str] = Field(default_factory=list)  # addresses, networks; [] = all

    @field_validator("allowed_clients")
    @classmethod
    def _clients(cls, v: list[str]) -> list[str]:
        for c in v:
            try:
                ipaddress.ip_network(c.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network like 10.0.0.0/8: {c!r}") from None
        return [c.strip() for c in v]

    def allows(self, host: str | None) -> bool:
        """May a client at this address hand mail to `serve`?"""
        if not self.allowed_clients:
            return True
        try:
            ip = ipaddress.ip_address((host or "").split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in ipaddress.ip_network(c, strict=False) for c in self.allowed_clients)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: str) -> str:
        if v not in ("smtp", "lmtp"):
            raise ValueError(f"unknown protocol {v!r}; use smtp or lmtp")
        return v


class Authentication(_Strict):
    """Whose RFC 8601 Authentication-Results headers to believe (inbound/authresults.py)."""

    trusted_authserv_ids: list[str] = Field(default_factory=list)

    @field_validator("trusted_authserv_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        out = [i.strip().lower() for i in v]
        if any(not i or " " in i or ";" in i for i in out):
            raise ValueError("an authserv-id is one word, like mx.council.example")
        return out


class OAuth2(_Strict):
    """Where an XOAUTH2 access token comes from: a command that prints one, or Microsoft 365
    client credentials (msal, the `m365` extra). `[imap.oauth2]` and `[outbound.oauth2]`."""

    section: ClassVar[str] = "imap.oauth2"
    secret_env: ClassVar[str] = "MAILFLOW_IMAP_CLIENT_SECRET"
    token_command: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = None  # the secret_env variable overrides
    scope: str = "https://outlook.office365.com/.default"
    authority: str = "https://login.microsoftonline.com"

    @property
    def secret(self) -> str | None:
        return os.environ.get(self.secret_env) or self.client_secret

    @model_validator(mode="after")
    def _one_source(self) -> OAuth2:
        m365 = [self.tenant_id, self.client_id]
        if self.token_command and any(m365):
            raise ValueError("use token_command or tenant_id/client_id/client_secret, not both")
        if not self.token_command and not all(m365):
            raise ValueError("needs token_command, or tenant_id and client_id (and a "
                             f"client_secret or {self.secret_env})")
        return self


ImapOAuth2 = OAuth2


class OutboundOAuth2(OAuth2):
    section: ClassVar[str] = "outbound.oauth2"
    secret_env: ClassVar[str] = "MAILFLOW_OUTBOUND_CLIENT_SECRET"


class Outbound(_Strict):
    transport: str = "maildir"
    maildir: str = "data/sent"
    smtp_host: str = "localhost"
    smtp_port: int | None = Field(default=None, ge=1, le=65535)  # 465 with tls = "ssl", else 25
    smtp_user: str | None = None
    smtp_password: str | None = None  # MAILFLOW_SMTP_PASSWORD overrides
    # How the relay is reached: "ssl" (implicit TLS, port 465), "starttls" (port 587 or 25),
    # "none". `starttls = true` is the older spelling of tls = "starttls".
    tls: Literal["ssl", "starttls", "none"] | None = None
    starttls: bool = False
    ca_file: str | None = None  # trust this CA (a council's own) besides the system's
    oauth2: OutboundOAuth2 | None = None  # XOAUTH2 (Microsoft 365) instead of a password
    max_per_recipient_per_hour: int = 20
    # Temporary failures (4xx, no connection) are retried until the mail is this old.
    give_up_hours: float = Field(default=48, gt=0)
    connect_timeout: float = Field(default=10, gt=0)  # seconds to connect and be greeted
    command_timeout: float = Field(default=60, gt=0)  # seconds for each answer of the relay

    @field_validator("transport")
    @classmethod
    def _transport(cls, v: str) -> str:
        if v not in ("maildir", "smtp"):
            raise ValueError(f"unknown transport {v!r}; use maildir or smtp")
        return v

    @model_validator(mode="after")
    def _login(self) -> Outbound:
        if self.oauth2 and not self.smtp_user:
            raise ValueError("oauth2 needs smtp_user (the mailbox the token is for)")
        if self.tls == "none" and (self.smtp_password or self.oauth2):
            raise ValueError('a password or token would cross the network in clear text: '
                             'set tls = "starttls" or "ssl"')
        return self

    @property
    def security(self) -> str:
        return self.tls or ("starttls" if self.starttls else "none")

    @property
    def port(self) -> int:
        return self.smtp_port or (465 if self.security == "ssl" else 25)

    @property
    def password(self) -> str | None:
        return os.environ.get("MAILFLOW_SMTP_PASSWORD") or self.smtp_password


class Imap(_Strict):
    """The IMAP receiver (`serve`, `poll`). No host: IMAP is off."""

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)  # 993 with ssl, else 143
    tls: Literal["ssl", "starttls", "none"] = "ssl"
    ca_file: str | None = None  # trust this CA (a council's own) besides the system's
    username: str | None = None
    password: str | None = None  # MAILFLOW_IMAP_PASSWORD overrides
    oauth2: ImapOAuth2 | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"  # "": leave messages in place, flagged \Seen $Mailflow
    failed_folder: str = "Failed"
    idle: bool = True
    poll_seconds: int = Field(default=60, ge=1, le=86400)  # when the server has no IDLE
    idle_seconds: int = Field(default=25 * 60, ge=1, le=29 * 60)  # servers drop IDLE at 30 min
    max_message_size: int | None = Field(default=None, ge=1)  # default: [smtp] max_message_size

    @model_validator(mode="after")
    def _login(self) -> Imap:
        if not self.host:
            return self
        if not self.username:
            raise ValueError("username is missing")
        password = self.password or os.environ.get("MAILFLOW_IMAP_PASSWORD")
        if password and self.oauth2:
            raise ValueError("use password or [imap.oauth2], not both")
        if not password and not self.oauth2:
            raise ValueError("needs a password (or MAILFLOW_IMAP_PASSWORD) or an "
                             "[imap.oauth2] table")
        return self

    @property
    def secret(self) -> str | None:
        return os.environ.get("MAILFLOW_IMAP_PASSWORD") or self.password

    @property
    def port_number(self) -> int:
        return self.port or (993 if self.tls == "ssl" else 143)


class Ward(_Strict):
    name: str


def _type_keys(v: dict[str, int]) -> dict[str, int]:
    return {enquiry_type(k): days for k, days in v.items()}


class Targets(_Strict):
    """Response targets in working days: an enquiry type's target wins over a category's,
    which wins over the service's `response_days`."""

    acknowledge_days: int = Field(default=1, ge=1, le=20)
    categories: dict[str, int] = Field(default_factory=dict)
    enquiry_types: dict[str, int] = Field(default_factory=dict)

    _t = field_validator("enquiry_types")(classmethod(lambda cls, v: _type_keys(v)))

    @field_validator("categories", "enquiry_types")
    @classmethod
    def _days(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if not 1 <= n <= 200:
                raise ValueError(f"{k}: {n} is not between 1 and 200 working days")
        return v


class Chasing(_Strict):
    """When a request's contact is reminded, chased and escalated, in working days."""

    reminder: bool = False
    reminder_days_before: int = Field(default=2, ge=1, le=20)
    first_chase_days_after: int = Field(default=1, ge=1, le=60)
    second_chase_days_after: int = Field(default=3, ge=1, le=60)  # after the first chase
    escalate_days_after: int = Field(default=5, ge=1, le=120)  # after the due date


class AfterAnswer(_Strict):
    keep_open_days: int = Field(default=5, ge=0, le=60)


class Holding(_Strict):
    """A holding reply may move a due date this many working days on its own; further
    needs the member's agreement."""

    max_extension_days: int = Field(default=10, ge=0, le=120)


class Digests(_Strict):
    member_time: str = "08:00"
    staff_time: str = "08:00"
    service_time: str = "08:00"
    weekly_day: str = "monday"  # weekly digests: the first working day from this weekday
    max_items: int = Field(default=50, ge=1, le=10000)  # lines per section; the rest counted

    _t = field_validator("member_time", "staff_time", "service_time")(
        classmethod(lambda cls, v: _hhmm(v)))

    @field_validator("weekly_day")
    @classmethod
    def _day(cls, v: str) -> str:
        if v.lower() not in WEEKDAYS:
            raise ValueError(f"unknown weekday {v!r}; use one of {', '.join(WEEKDAYS)}")
        return v.lower()


class Member(_Strict):
    name: str
    email: str
    aliases: list[str] = Field(default_factory=list)
    ward: str
    party: str | None = None
    constituent_mail: bool = False  # this member lets mailflow write to their constituents
    digest: str = "daily"  # daily | weekly | off
    immediate_updates: bool = True  # updates also by email at once, not only in the digest

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if v not in DIGEST_FREQUENCIES:
            raise ValueError(f"unknown digest {v!r}; use one of {', '.join(DIGEST_FREQUENCIES)}")
        return v

    _a = field_validator("email")(classmethod(lambda cls, v: _address(v)))
    _b = field_validator("aliases")(classmethod(lambda cls, v: [_address(a) for a in v]))


class Service(_Strict):
    name: str
    contact: str
    contact_aliases: list[str] = Field(default_factory=list)
    escalation: str | None = None
    response_days: int = Field(default=10, ge=1, le=200)
    acknowledge_days: int | None = Field(default=None, ge=1, le=20)  # else [targets]
    keywords: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)  # the drop-down subjects it deals with
    complaint_response_days: int | None = Field(default=None, ge=1, le=200)

    _a = field_validator("contact")(classmethod(lambda cls, v: _address(v)))
    _b = field_validator("contact_aliases")(classmethod(lambda cls, v: [_address(a) for a in v]))
    _c = field_validator("escalation")(classmethod(lambda cls, v: v and _address(v)))


class Staff(_Strict):
    name: str
    email: str

    _a = field_validator("email")(classmethod(lambda cls, v: _address(v)))


class Casework(_Strict):
    """The rules of casework (issue 5): duplicates, enquiry types, mail to constituents."""

    duplicate_days: int = Field(default=30, ge=1, le=3650)
    duplicate_similarity: int = Field(default=70, ge=1, le=100)  # rapidfuzz score, 0-100
    constituent_mail: bool = False  # the council allows mail to constituents at all
    type_keywords: dict[str, list[str]] = Field(default_factory=lambda: {
        "complaint": ["complaint", "complain", "complaining"],
    })

    @field_validator("type_keywords")
    @classmethod
    def _types(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {enquiry_type(t): words for t, words in v.items()}


class Complaints(_Strict):
    response_days: int | None = Field(default=None, ge=1, le=200)  # None: the service's own


class Templates(_Strict):
    dir: str | None = None  # the older name of [council] templates, still read


class Scheduler(_Strict):
    outbox_seconds: int = 30


class Pipeline(_Strict):
    """`serve`'s pipeline: on PostgreSQL, `workers` processes per node, each claiming spool
    rows in the database (mailflow/inbound/claiming.py); SQLite always runs one."""

    workers: int = Field(default=1, ge=1, le=32)


class Web(_Strict):
    """The web server of `serve` and `mailflow web`: health, metrics (and the pages)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (printed at start)
    base_url: str | None = None  # how people reach it (behind a proxy): links in mail
    # Local HTTP only: the sign-in cookie without `Secure` (and so without the `__Host-`
    # prefix, which browsers refuse on a cookie that is not Secure).
    insecure_cookies: bool = False

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        # It goes into every digest and acknowledgement: a plain http(s) address, nothing else.
        if v is None:
            return v
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment \
                or any(c.isspace() or ord(c) < 32 for c in v):
            raise ValueError(f"not an http or https address like "
                             f"https://casework.council.example: {v!r}")
        return v

    @property
    def url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class Logging(_Strict):
    format: Literal["text", "json"] = "text"  # json: one object per line (ops/logs.py)


class Attachments(_Strict):
    # Larger files are not copied out of the message: they stay in the raw message only.
    max_size: int = Field(default=10 * 1024 * 1024, ge=0)
class Retention(_Strict):
    """How long casework is kept (casework/retention.py): a closed case for
    `closed_case_months` after closing, or its category's or enquiry type's own period
    (the longest that applies wins); holding-pen items for `holding_pen_days`."""

    closed_case_months: int = Field(default=12, ge=1, le=1200)
    categories: dict[str, int] = Field(default_factory=dict)  # months, by category
    types: dict[str, int] = Field(default_factory=dict)  # months, by enquiry type
    holding_pen_days: int = Field(default=90, ge=1, le=36500)
    raw_message_days: int | None = Field(default=None, ge=1, le=36500)  # None: with the case
    end_of_term_days: int = Field(default=30, ge=0, le=36500)

    _t = field_validator("types")(classmethod(lambda cls, v: _type_keys(v)))

    @field_validator("categories", "types")
    @classmethod
    def _months(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 1200:
                raise ValueError(f"{k}: {n!r} is not a whole number of months from 1 to 1200")
        return v


class Reports(_Strict):
    """Scheduled reports, sent as HTML email with the CSV attached."""

    monthly: bool = True  # service performance for the last month: staff + escalation contacts
    six_monthly: bool = True  # enquiry types for the last half-year (Jan-Jun, Jul-Dec): staff
    send_at: str = "07:00"  # council-local time on the 1st (or the first tick after it)
    target: float = Field(default=95, ge=0, le=100)  # on-time target (%), the charts' line
    to: list[str] = Field(default_factory=list)  # more recipients of the staff reports
    escalation_contacts: bool = True  # each head of service gets their own service's report

    _a = field_validator("to")(classmethod(lambda cls, v: [_address(a) for a in v]))

    @field_validator("send_at")
    @classmethod
    def _time(cls, v: str) -> str:
        try:
            time.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not a time of day (HH:MM): {v!r}") from None
        return v


class FileModel(_Strict):
    council: Council
    database: Database = Field(default_factory=Database)
    outbound: Outbound = Field(default_factory=Outbound)
    smtp: Smtp = Field(default_factory=Smtp)
    authentication: Authentication = Field(default_factory=Authentication)
    imap: Imap = Field(default_factory=Imap)
    templates: Templates = Field(default_factory=Templates)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    pipeline: Pipeline = Field(default_factory=Pipeline)
    logging: Logging = Field(default_factory=Logging)
    web: Web = Field(default_factory=Web)
    attachments: Attachments = Field(default_factory=Attachments)
    casework: Casework = Field(default_factory=Casework)
    complaints: Complaints = Field(default_factory=Complaints)
    targets: Targets = Field(default_factory=Targets)
    chasing: Chasing = Field(default_factory=Chasing)
    after_answer: AfterAnswer = Field(default_factory=AfterAnswer)
    holding: Holding = Field(default_factory=Holding)
    digests: Digests = Field(default_factory=Digests)
    reports: Reports = Field(default_factory=Reports)
    retention: Retention = Field(default_factory=Retention)
    wards: list[Ward] = Field(default_factory=list)
    members: list[Member] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    staff: list[Staff] = Field(default_factory=list)


@dataclass
class Party:
    """Who an address belongs to in the council directory."""

    role: str  # member | contact | escalation | staff | casework
    name: str
    key: str  # the member's email, the service's name or the staff email


@dataclass
class Settings:
    path: Path
    council: Council
    database: Database
    outbound: Outbound
    smtp: Smtp
    authentication: Authentication
    imap: Imap
    templates: Templates
    scheduler: Scheduler
    pipeline: Pipeline
    logging: Logging
    web: Web
    attachments: Attachments
    casework: Casework
    complaints: Complaints
    targets: Targets
    chasing: Chasing
    after_answer: AfterAnswer
    holding: Holding
    digests: Digests
    reports: Reports
    retention: Retention
    wards: list[Ward]
    members: list[Member]
    services: list[Service]
    staff: list[Staff]

    def __post_init__(self) -> None:
        self.directory: dict[str, list[Party]] = {}
        for m in self.members:
            for a in [m.email, *m.aliases]:
                self.directory.setdefault(a, []).append(Party("member", m.name, m.email))
        for s in self.services:
            for a in [s.contact, *s.contact_aliases]:
                self.directory.setdefault(a, []).append(Party("contact", s.name, s.name))
            if s.escalation:
                self.directory.setdefault(s.escalation, []).append(
                    Party("escalation", s.name, s.name)
                )
        for st in self.staff:
            self.directory.setdefault(st.email, []).append(Party("staff", st.name, st.email))

    # -- lookups --------------------------------------------------------------
    def parties(self, address: str | None) -> list[Party]:
        return self.directory.get((address or "").lower(), [])

    def member_for(self, address: str | None) -> Member | None:
        for p in self.parties(address):
            if p.role == "member":
                return self.member(p.key)
        return None

    def member(self, email: str) -> Member | None:
        return next((m for m in self.members if m.email == email), None)

    def service(self, name: str | None) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def is_staff(self, address: str | None) -> bool:
        return any(p.role == "staff" for p in self.parties(address))

    def constituent_mail(self, member_email: str) -> bool:
        """Mail to a member's constituents needs both the council's and the member's yes."""
        m = self.member(member_email)
        return bool(self.casework.constituent_mail and m and m.constituent_mail)

    def is_trusted(self, address: str | None) -> bool:
        """In a trusted domain: exactly a listed domain, or a subdomain where `*.domain` is
        listed (anyone can name a host `evil.council.example` in a From)."""
        domain = (address or "").rpartition("@")[2].lower()
        if not domain:
            return False
        for d in self.council.trusted_domains:
            if d.startswith("*."):
                if domain.endswith(d[1:]):
                    return True
            elif domain == d:
                return True
        return False

    def is_internal(self, address: str | None) -> bool:
        """A member or council officer: never the constituent of a forward."""
        return bool(self.parties(address)) or self.is_trusted(address) or self.is_ours(address)

    def is_ours(self, address: str | None) -> bool:
        local, _, domain = (address or "").lower().partition("@")
        ours_local, _, ours_domain = self.council.casework_address.partition("@")
        return domain == ours_domain and local.split("+")[0] == ours_local

    @property
    def secret(self) -> str:
        return os.environ.get("MAILFLOW_SECRET") or self.council.secret

    @property
    def secrets(self) -> list[str]:
        """The secret that signs, then the ones that still verify (MAILFLOW_PREVIOUS_SECRETS:
        comma-separated, overrides the file's)."""
        env = os.environ.get("MAILFLOW_PREVIOUS_SECRETS")
        previous = [x for x in env.split(",") if x] if env else self.council.previous_secrets
        return [self.secret, *previous]

    @property
    def database_url(self) -> str:
        url = os.environ.get("MAILFLOW_DATABASE_URL") or self.database.url
        return _resolve_sqlite(url, self.path.parent)

    @property
    def templates_dir(self) -> Path | None:
        """The council's own templates, searched before the ones mailflow ships."""
        d = self.council.templates or self.templates.dir
        return self.resolve(d) if d else None

    @property
    def maildir(self) -> Path:
        return self.resolve(self.outbound.maildir)

    @property
    def data_dir(self) -> Path:
        """Where files beside the database live (attachments, quarantine)."""
        url = self.database_url
        if url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///")).parent
        return self.resolve("data")

    def resolve(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def summary(self) -> str:
        c = self.council
        lines = [
            f"{c.name} <{c.casework_address}> ({c.nation}, {c.timezone})",
            f"  config:   {self.path}",
            f"  database: {_redact(self.database_url)}",
            f"  outbound: {self.outbound.transport}"
            + (f" -> {self.maildir}" if self.outbound.transport == "maildir" else
               f" -> {self.outbound.smtp_host}:{self.outbound.smtp_port}"),
            f"  wards:    {len(self.wards)}",
            f"  members:  {len(self.members)}",
            f"  services: {len(self.services)}",
            f"  staff:    {len(self.staff)}",
        ]
        for s in self.services:
            lines.append(f"    {s.name}: {s.contact}, {s.response_days} working days")
        r = self.retention
        overrides = [f"{k} {v}" for k, v in {**r.categories, **r.types}.items()]
        lines.append(f"  retention: closed cases {r.closed_case_months} months"
                     + (f" ({', '.join(overrides)})" if overrides else "")
                     + f", holding pen {r.holding_pen_days} days, raw messages "
                     + (f"{r.raw_message_days} days" if r.raw_message_days else "with the case"))
        return "\n".join(lines)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def _resolve_sqlite(url: str, base: Path) -> str:
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url.removeprefix("sqlite:///")
        if rel and rel != ":memory:":
            # Asked twice a message, and resolve() is system calls; a relative base
            # depends on the working directory, so it is not kept.
            return _resolved(base, rel) if base.is_absolute() else _resolved.__wrapped__(base, rel)
    return url


@functools.lru_cache(maxsize=64)
def _resolved(base: Path, rel: str) -> str:
    return "sqlite:///" + str((base / rel).resolve())


def config_path(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("MAILFLOW_CONFIG") or DEFAULT_CONFIG)


def load(path: str | Path | None = None) -> Settings:
    p = config_path(str(path) if path else None)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(p, ["file not found"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(p, [f"not valid TOML: {e}"]) from None
    return from_dict(data, p)


def from_dict(data: dict[str, Any], path: Path) -> Settings:
    try:
        model = FileModel.model_validate(data)
        problems = []
    except ValidationError as e:
        problems = [_describe(err, data) for err in e.errors()]
        model = _valid_parts(data)
    # Cross-checks run on whatever entries are valid, so one pass reports every problem.
    problems += _cross_check(model)
    problems += _template_folder(data, path.resolve().parent)
    if not data.get("members"):
        problems.append("members: no members; add at least one [[members]] entry")
    if problems:
        raise ConfigError(path, problems)
    return Settings(path=path.resolve(), **{k: getattr(model, k) for k in FileModel.model_fields})


def _valid_parts(data: dict[str, Any]) -> FileModel:
    """The entries of a config that failed validation that are valid on their own."""
    lists = {"wards": Ward, "members": Member, "services": Service, "staff": Staff}
    parts: dict[str, Any] = {}
    for key, cls in lists.items():
        items = data.get(key) if isinstance(data.get(key), list) else []
        parts[key] = [m for m in (_try(cls, i) for i in items) if m is not None]
    raw = data.get("council") if isinstance(data.get("council"), dict) else {}
    council = _try(Council, raw) or Council.model_construct(**raw)
    return FileModel.model_construct(council=council, **parts)


def _try(cls: type[BaseModel], value: Any) -> Any:
    try:
        return cls.model_validate(value)
    except ValidationError:
        return None


def _describe(err: Any, data: dict[str, Any]) -> str:
    loc = list(err["loc"])
    where = _where(loc, data)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "is missing"
    elif err["type"] == "extra_forbidden":
        msg = "is not a known setting"
    return f"{where}: {msg}"


def _where(loc: list[Any], data: dict[str, Any]) -> str:
    """`members[2] (Cllr Jane Smith).ward` from a pydantic location."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part + 1}]"
            try:
                node = node[part]
                name = node.get("name") if isinstance(node, dict) else None
                if name:
                    out += f" ({name})"
            except (IndexError, KeyError, TypeError):
                node = None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _template_folder(data: dict[str, Any], base: Path) -> list[str]:
    """[council] templates (or its older name [templates] dir) names a folder that exists."""
    given: dict[str, Path] = {}
    for section, key in (("council", "templates"), ("templates", "dir")):
        table = data.get(section)
        value = table.get(key) if isinstance(table, dict) else None
        if isinstance(value, str):
            given[f"{section}.{key}"] = (base / value).resolve()
    if len(given) > 1:
        return ["templates.dir: the older name of council.templates; set only council.templates"]
    return [f"{field}: no folder {folder}" for field, folder in given.items()
            if not folder.is_dir()]


def _cross_check(m: FileModel) -> list[str]:
    problems: list[str] = []
    wards = [w.name for w in m.wards]
    for i, w in enumerate(m.wards):
        if wards.count(w.name) > 1 and wards.index(w.name) < i:
            problems.append(f"wards[{i + 1}] ({w.name}).name: ward listed twice")
    casework = str(getattr(m.council, "casework_address", "")).lower()
    seen: dict[str, str] = {casework: "council.casework_address"}

    def claim(addr: str, where: str, shareable: bool = False) -> None:
        if addr in seen and not shareable:
            problems.append(f"{where}: address {addr} is already used by {seen[addr]}")
        seen.setdefault(addr, where)

    for i, mem in enumerate(m.members, 1):
        here = f"members[{i}] ({mem.name})"
        if mem.ward not in wards:
            problems.append(f"{here}.ward: unknown ward {mem.ward!r}")
        claim(mem.email, f"{here}.email")
        for a in mem.aliases:
            claim(a, f"{here}.aliases")
    names = [s.name for s in m.services]
    for i, s in enumerate(m.services, 1):
        here = f"services[{i}] ({s.name})"
        if names.count(s.name) > 1 and names.index(s.name) < i - 1:
            problems.append(f"{here}.name: service listed twice")
        # One officer may be the contact for several services; an escalation head often is.
        for a in [s.contact, *s.contact_aliases]:
            if a in seen and not seen[a].startswith("services["):
                problems.append(f"{here}.contact: address {a} is already used by {seen[a]}")
            seen.setdefault(a, f"{here}.contact")
    for i, st in enumerate(m.staff, 1):
        here = f"staff[{i}] ({st.name}).email"
        if st.email in seen and not seen[st.email].startswith("staff"):
            problems.append(f"{here}: address {st.email} is already used by {seen[st.email]}")
        seen.setdefault(st.email, here)
    return problems
