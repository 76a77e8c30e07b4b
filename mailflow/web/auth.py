"""Sign-in by a link in the mail, and the server-side sessions that follow (issue 15).

Members do not remember passwords: `/login` mails a link (and a 6-digit code for another
device) to a member, alias or staff address; anyone else gets the same answer and no mail.
Only hashes are stored; a token is used once by a conditional UPDATE, so two nodes (or two
clicks) cannot both sign in with it, and asking again supersedes the older link. Rate limits
are counts of rows, so they hold across nodes and restarts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from mailflow import clock, models
from mailflow.casework import audit
from mailflow.casework.context import Context
from mailflow.outbound import mail
from mailflow.outbound.render import is_address
from mailflow.settings import Settings

LINK_LIFE = timedelta(minutes=15)
PER_ADDRESS = (3, timedelta(minutes=15))  # links per address in that window
PER_CLIENT = (20, timedelta(hours=1))  # requests per client address in that window
CODE_TRIES = 5  # wrong codes before the link is spent
IDLE = timedelta(hours=8)
ABSOLUTE = timedelta(days=7)
TOUCH = timedelta(minutes=1)  # last_seen is written at most this often


class Limited(Exception):
    """Too many sign-in requests for this address or from this client."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _code_digest(settings: Settings, token_hash: str, code: str) -> str:
    # Keyed by the council secret and the link: a 6-digit code alone is a million guesses.
    return hmac.new(settings.council.secret.encode(), f"{token_hash}:{code}".encode(),
                    hashlib.sha256).hexdigest()


# A path on this site: one `/`, then no `/` or `\\` (so not `//host` or `/\\host`, which
# browsers read as another site), and only printable ASCII without spaces or backslashes.
_LOCAL = re.compile(r"/(?![/\\])[!-~]*")


def local_path(value: str | None) -> str | None:
    """`value` if it is a path of this site to return to after sign-in, else None: never
    another site (`//evil`, `/\\evil`, `https://evil`), never the sign-in pages (a loop)."""
    if not value or len(value) > 500 or not _LOCAL.fullmatch(value) or "\\" in value:
        return None
    u = urlsplit(value)
    if u.scheme or u.netloc or u.path.startswith("/login"):
        return None
    return value


def actor_for(settings: Settings, address: str) -> str | None:
    """Who an address signs in as: the member's main address (any alias works), or the staff
    address; None for anyone else."""
    address = address.strip().lower()
    member = settings.member_for(address)
    if member is not None:
        return member.email
    return address if settings.is_staff(address) else None


def ask(ctx: Context, session: Session, address: str, client: str, now: datetime,
        base_url: str, next_path: str | None = None) -> None:
    """Record the request and, for a member, alias or staff address, mail the link and code.
    Raises Limited (the same for every address, so it tells nothing about who is known).
    `next_path` (a local path, checked again when the link is used) rides in the link."""
    address = address.strip().lower()
    link = models.SignInLink
    for column, value, (limit, window) in ((link.address, address, PER_ADDRESS),
                                           (link.client, client, PER_CLIENT)):
        n = session.exec(select(func.count()).select_from(link).where(column == value)
                         .where(col(link.created_at) > now - window)).one()
        if n >= limit:
            raise Limited
    token, code = secrets.token_urlsafe(32), f"{secrets.randbelow(10**6):06d}"
    token_hash = digest(token)
    session.execute(update(link).where(col(link.address) == address)
                    .where(col(link.used_at).is_(None))
                    .values(used_at=now, outcome="superseded"))
    session.add(link(address=address, client=client, token_hash=token_hash,
                     code_hash=_code_digest(ctx.settings, token_hash, code), created_at=now,
                     expires_at=now + LINK_LIFE))
    if actor_for(ctx.settings, address) and is_address(address):
        mail.send(ctx, session, "sign_in",
                  {"link": f"{base_url}/login/link?token={token}" + (
                      f"&next={quote(nxt, safe='/')}" if (nxt := local_path(next_path)) else ""),
                   "code": code,
                   "minutes": int(LINK_LIFE.total_seconds() // 60)},
                  to=[address], now=now, kind="sign_in")


def _use(session: Session, row: models.SignInLink, now: datetime) -> bool:
    """The one conditional update that spends a link: true for exactly one caller."""
    link = models.SignInLink
    done = session.execute(update(link).where(col(link.id) == row.id)
                           .where(col(link.used_at).is_(None))
                           .where(col(link.expires_at) > now)
                           .values(used_at=now, outcome="signed_in"))
    return done.rowcount == 1  # type: ignore[attr-defined]


def redeem(settings: Settings, session: Session, token: str, now: datetime) -> str | None:
    """The actor a link's token signs in, or None (unknown, used, superseded, expired)."""
    row = session.exec(select(models.SignInLink)
                       .where(models.SignInLink.token_hash == digest(token))).first()
    if row is None or not _use(session, row, now):
        return None
    return actor_for(settings, row.address)


def redeem_code(settings: Settings, session: Session, address: str, code: str,
                now: datetime) -> str | None:
    """The actor the newest live link's 6-digit code signs in, or None. CODE_TRIES wrong
    codes spend the link."""
    link = models.SignInLink
    row = session.exec(select(link).where(link.address == address.strip().lower())
                       .where(col(link.used_at).is_(None)).where(col(link.expires_at) > now)
                       .order_by(col(link.id).desc())).first()
    if row is None:
        return None
    want = _code_digest(settings, row.token_hash, code.strip())
    if not hmac.compare_digest(row.code_hash, want):
        spent = row.code_failures + 1 >= CODE_TRIES
        session.execute(update(link).where(col(link.id) == row.id)
                        .values(code_failures=link.code_failures + 1,
                                **({"used_at": now, "outcome": "too_many_codes"}
                                   if spent else {})))
        return None
    return actor_for(settings, row.address) if _use(session, row, now) else None


# -- sessions ------------------------------------------------------------------------------
def start(session: Session, actor: str, now: datetime, how: str) -> str:
    """A new session (never one the browser brought along); returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    session.add(models.WebSession(token_hash=digest(token), actor=actor, created_at=now,
                                  last_seen=now))
    audit.record(session, actor=actor, action="change", what="sign_in", now=now, via="web",
                 detail={"how": how})
    return token


def current(session: Session, token: str | None, now: datetime) -> models.WebSession | None:
    """The live session for a cookie's token: not ended, idle under 8 hours, younger than 7
    days."""
    if not token:
        return None
    ws = session.exec(select(models.WebSession)
                      .where(models.WebSession.token_hash == digest(token))).first()
    if ws is None or ws.ended_at is not None:
        return None
    if now - clock.to_utc(ws.created_at) >= ABSOLUTE or now - clock.to_utc(ws.last_seen) >= IDLE:
        return None
    if now - clock.to_utc(ws.last_seen) >= TOUCH:
        ws.last_seen = now
        session.add(ws)
    return ws


def end(session: Session, ws: models.WebSession, now: datetime, everywhere: bool) -> int:
    """Sign out this browser, or every browser of the same person; returns how many."""
    s = models.WebSession
    q = update(s).where(col(s.ended_at).is_(None))
    q = q.where(col(s.actor) == ws.actor) if everywhere else q.where(col(s.id) == ws.id)
    n = session.execute(q.values(ended_at=now)).rowcount  # type: ignore[attr-defined]
    audit.record(session, actor=ws.actor, action="change", what="sign_out", now=now, via="web",
                 detail={"everywhere": everywhere, "sessions": n})
    return int(n)


def csrf_token(settings: Settings, basis: str) -> str:
    """The form token bound to the browser's session (or pre-sign-in) cookie."""
    return hmac.new(settings.council.secret.encode(), f"csrf:{basis}".encode(),
                    hashlib.sha256).hexdigest()
