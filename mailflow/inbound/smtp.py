"""The SMTP and LMTP receivers of `mailflow serve` (aiosmtpd). They only move bytes: refuse at
RCPT an address mailflow does not serve, hand the message to the spool writer, answer 250 once
it is committed, 451 if it could not be."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailflow import metrics
from mailflow.inbound import spool
from mailflow.inbound.writer import SpoolWriter

log = logging.getLogger(__name__)


class Handler:
    def __init__(self, writer: SpoolWriter, source: str, serves: Callable[[str], bool],
                 allows: Callable[[str | None], bool] = lambda host: True):
        self.writer = writer
        self.source = source
        self.serves = serves  # the casework address and its plus-addresses
        self.allows = allows  # [smtp] allowed_clients: the hosts that may hand us mail

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        """Only the council's own MTA may hand mail over: anyone else reaching the port could
        write whatever headers (Authentication-Results too) they like."""
        peer = session.peer[0] if isinstance(session.peer, tuple) else session.peer
        if not self.allows(peer):
            log.warning("refused mail from %s: not in [smtp] allowed_clients", peer)
            metrics.RECEIVED.labels(self.source, "refused").inc()
            return "550 5.7.1 Client host not allowed to send mail to mailflow"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        """Refuse here what is not ours, rather than store and hold it: the sending MTA tells
        its sender at once. LMTP asks per recipient too, so a refused one leaves the others."""
        if not self.serves(address):
            return "550 5.1.1 No such mailbox: mailflow takes mail for the casework address only"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        item = spool.Incoming(raw, self.source, envelope.mail_from,
                              [r.lower() for r in envelope.rcpt_tos])
        try:
            raw_id, duplicate = await asyncio.wrap_future(self.writer.submit(item))
        except Exception as e:  # noqa: BLE001 - whatever broke, the sender must retry
            status = f"451 4.3.0 Not stored, please try again later ({type(e).__name__})"
            metrics.RECEIVED.labels(self.source, "failed").inc()
        else:
            status = f"250 2.0.0 Stored as {raw_id}" + (" (already had it)" if duplicate else "")
        if self.source == "lmtp":  # RFC 2033: one answer per recipient, in RCPT order
            return "\r\n".join(status for _ in envelope.rcpt_tos)
        return status


class _ClearSize:
    """aiosmtpd says only "Too much mail data"; a member whose forward bounces should read
    what the limit is."""

    data_size_limit: int | None

    async def push(self, status: str) -> None:
        if status.startswith("552 Error") and self.data_size_limit:
            mb = self.data_size_limit / 1024 / 1024
            status = (f"552 5.3.4 Message too big for mailflow: the limit is {mb:g} MB "
                      f"({self.data_size_limit} bytes)")
        await super().push(status)  # type: ignore[misc]


class SmtpServer(_ClearSize, SMTP):
    pass


class LmtpServer(_ClearSize, LMTP):
    pass


class Listener(Controller):
    """An aiosmtpd controller speaking SMTP or, for Postfix's `lmtp:` transport, LMTP."""

    def __init__(self, handler: Handler, protocol: str, **kwargs: Any):
        self.server_class = LmtpServer if protocol == "lmtp" else SmtpServer
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        return self.server_class(self.handler, **self.SMTP_kwargs)
