"""Where sent mail goes: a folder of .eml files (the embedded default) or an SMTP relay."""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from pathlib import Path
from typing import Protocol

from mailflow.settings import Outbound

_BARE_LF = re.compile(rb"(?<!\r)\n")


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], raw: bytes, name: str) -> None: ...


class MaildirTransport:
    """Each message as one .eml file; written to a temporary name and renamed, so a reader
    never sees half a message."""

    def __init__(self, folder: Path):
        self.folder = folder

    def send(self, sender: str, recipients: list[str], raw: bytes, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{name}.eml"
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)


class SmtpTransport:
    def __init__(self, cfg: Outbound, timeout: float = 30):
        self.cfg = cfg
        self.timeout = timeout

    def send(self, sender: str, recipients: list[str], raw: bytes, name: str) -> None:
        cfg = self.cfg
        with smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, timeout=self.timeout) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.smtp_user:
                smtp.login(cfg.smtp_user, cfg.smtp_password or "")
            # Stored with Unix line ends; SMTP needs CRLF, and smtplib leaves bytes alone.
            refused = smtp.sendmail(sender, recipients, _BARE_LF.sub(b"\r\n", raw))
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)


def transport_for(cfg: Outbound, maildir: Path) -> Transport:
    return MaildirTransport(maildir) if cfg.transport == "maildir" else SmtpTransport(cfg)
