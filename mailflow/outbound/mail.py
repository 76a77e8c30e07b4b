"""The one door to the outbox. Every notice, request, chase, digest, report and command reply
is composed here (From, Message-ID, Reply-To with the request's signed token, threading,
attachments), rendered from its template and queued with the configured per-recipient
limit and the loop guard, in the caller's transaction."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from mailflow import models, tokens
from mailflow.outbound import outbox
from mailflow.outbound.outbox import (  # noqa: F401 - the door's: rate-limit reads, batches
    BATCH,
    none_stored,
    warm_recent,
    write_batch,
)
from mailflow.outbound.render import Attachment, header_text, is_address, new_message_id, render

if TYPE_CHECKING:
    from mailflow.casework.context import Context

log = logging.getLogger(__name__)
_MIME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")


__all__ = ["Attachment", "send"]


def sender(ctx: Context) -> tuple[str, str]:
    c = ctx.settings.council
    return (f"{c.name} casework", c.casework_address)


def request_thread(session: Session, request: models.Request) -> str | None:
    """Our first mail to the service about this request, to thread what follows under it."""
    return session.exec(_THREAD, params={"request": request.id}).first()


_THREAD = (  # built once: every chase asks it
    select(models.Outbox.message_id).where(models.Outbox.request_id == bindparam("request"))
    .where(col(models.Outbox.kind).in_(("request", "follow_up")))
    .order_by(col(models.Outbox.id)))


def _web_url(ctx: Context) -> str | None:
    """Where people open the web pages (`[web] base_url`), for links in mail; None when it is
    not set, since host:port is rarely what a member's phone can reach."""
    base = ctx.settings.web.base_url
    return base.rstrip("/") if base else None


def _attachable(f: Attachment) -> Attachment:
    """A file as it may be written: a content type from outside that is not two MIME tokens
    becomes application/octet-stream, the name is made safe for a header."""
    maintype, _, subtype = f.content_type.partition("/")
    if not (_MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype)):
        maintype, subtype = "application", "octet-stream"  # a type from outside, unreadable
    return Attachment(header_text(f.name, 150) or "attachment", f"{maintype}/{subtype}", f.data)


def send(ctx: Context, session: Session, template: str, context: dict[str, Any], *,
         to: Sequence[str], now: datetime, kind: str | None = None,
         case: models.Case | None = None, request: models.Request | None = None,
         cc: Sequence[str] | None = None, reply_to: str | None = None, signed: bool = False,
         thread: bool = False, in_reply_to: str | None = None, automatic: bool = True,
         files: Sequence[Attachment] = ()) -> models.Outbox:
    """Compose, render and queue one mail. `signed`: Reply-To is the request's signed address,
    so the answer finds its request; `thread`: In-Reply-To our first mail of the request."""
    council = ctx.settings.council
    if signed and request is not None:
        assert case is not None
        reply_to = tokens.reply_address(council.casework_address, case.reference, request.token)
    if thread and request is not None:
        in_reply_to = request_thread(session, request)
    domain = council.casework_address.partition("@")[2]
    # An address that cannot be written safely (an outsider's, say) is left out, not sent.
    bad = [a for a in [*to, *(cc or [])] if not is_address(a)]
    to, cc = [a for a in to if a not in bad], [a for a in cc or [] if a not in bad]
    msg = render(
        ctx.templates, template,
        {"council": council, **({"case": case} if case is not None else {}),
         "web_url": _web_url(ctx), **context},
        sender=sender(ctx), to=list(to), cc=list(cc) or None, now=now,
        message_id=new_message_id(domain, case.reference if case else template.replace("_", "-")),
        reply_to=reply_to, in_reply_to=in_reply_to,
        references=[in_reply_to] if in_reply_to else None, automatic=automatic,
        files=[_attachable(f) for f in files],
    )
    row = outbox.queue(session, msg, kind=kind or template, now=now,
                       case_id=case.id if case else None,
                       request_id=request.id if request else None,
                       limit=ctx.settings.outbound.max_per_recipient_per_hour,
                       answering=ctx.answering_automatic)
    if bad:
        log.warning("outbox: %s left out addresses it cannot write: %s", template, bad)
    if bad and not to:
        row.state = "held"
        row.held_reason = ("no address mailflow can write to: "
                           + header_text(", ".join(bad), 300))
    return row
