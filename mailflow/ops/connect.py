"""`mailflow check --connect`: try the database, the IMAP login and the outbound relay login,
and say in one line each what works and what does not (nothing is sent or fetched)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text

from mailflow import db, settings
from mailflow.app import App
from mailflow.inbound.imap import Receiver
from mailflow.outbound.transports import SmtpTransport


@dataclass(frozen=True)
class Check:
    part: str
    ok: bool
    said: str

    def __str__(self) -> str:
        return f"{self.part}: {'ok' if self.ok else 'FAILED'}: {self.said}"


def _why(e: BaseException) -> str:
    words = str(getattr(e, "orig", None) or e).strip().splitlines()
    return f"{type(e).__name__}: {words[0] if words else ''}".rstrip(": ")


def _try(part: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(part, True, probe())
    except Exception as e:  # noqa: BLE001 - any failure is the answer, in one line
        return Check(part, False, _why(e))


def database(app: App) -> str:
    with db.engine(app.url).connect() as conn:
        conn.execute(text("SELECT 1"))
    current, head = db.schema_revisions(app.url)
    if current != head:
        raise RuntimeError(f"schema at {current or 'nothing'}, code needs {head}: "
                           "run `mailflow init` (take a backup first)")
    return f"{settings._redact(app.url)}, schema {current}"


def imap(app: App) -> str:
    receiver = Receiver(app)
    client = receiver.connect()
    try:
        client.select_folder(receiver.cfg.folder, readonly=True)
    finally:
        client.logout()
    return f"logged in as {receiver.where}"


def outbound(app: App) -> str:
    s = app.settings
    if s.outbound.transport == "maildir":
        folder = s.maildir
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise PermissionError(f"{folder} is not writable")
        return f"writing to {folder}"
    cfg = s.outbound
    smtp = SmtpTransport(cfg, s.resolve(cfg.ca_file) if cfg.ca_file else None).connect()
    smtp.quit()
    login = f" as {cfg.smtp_user}" if cfg.smtp_user else " (no login)"
    method = " with XOAUTH2" if cfg.oauth2 else ""
    return f"relay {cfg.smtp_host}:{cfg.port} ({cfg.security}){login}{method}"


def check(app: App) -> list[Check]:
    checks = [_try("database", lambda: database(app))]
    if app.settings.imap.host:
        checks.append(_try("imap", lambda: imap(app)))
    checks.append(_try("outbound", lambda: outbound(app)))
    return checks
