"""The SMTP receiver of `mailflow serve` (aiosmtpd). It only moves bytes: store, then 250."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailflow import clock
from mailflow.app import App
from mailflow.inbound import pipeline

log = logging.getLogger(__name__)


class Handler:
    def __init__(self, app: App, on_stored: Callable[[int], None]):
        self.app = app
        self.on_stored = on_stored

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        try:
            raw_id, duplicate = await asyncio.to_thread(
                pipeline.receive, self.app, raw, source="smtp", now=clock.now(),
                envelope_from=envelope.mail_from,
                envelope_to=[r.lower() for r in envelope.rcpt_tos],
            )
        except Exception as e:  # noqa: BLE001 - whatever broke, the sender must retry
            log.exception("could not store a message from %s", envelope.mail_from)
            return f"451 4.3.0 Not stored, please try again later ({type(e).__name__})"
        if not duplicate:
            self.on_stored(raw_id)
        return f"250 2.0.0 Stored as {raw_id}" + (" (already had it)" if duplicate else "")
