"""Where sent mail goes: a folder of .eml files (the embedded default) or an SMTP relay.

A transport answers for each recipient (`Answer`: the relay's code and words), so a relay that
refuses one recipient fails only that one. It raises when the conversation itself breaks (no
connection, a timeout, a dropped line): then nobody's outcome is known and all stay pending."""

from __future__ import annotations

import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailflow.oauth2 import Tokens, xoauth2
from mailflow.settings import Outbound

_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class Answer:
    code: int
    text: str

    @property
    def state(self) -> str:
        """sent (2xx), failed (5xx: permanent) or pending (4xx and anything odd: try again)."""
        if 200 <= self.code < 300:
            return "sent"
        return "failed" if 500 <= self.code < 600 else "pending"

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class Transport(Protocol):
    def send(self, sender: str, recipients: list[str], raw: bytes,
             name: str) -> dict[str, Answer]: ...


class MaildirTransport:
    """Each message as one .eml file; written to a temporary name and renamed, so a reader
    never sees half a message."""

    def __init__(self, folder: Path):
        self.folder = folder

    def send(self, sender: str, recipients: list[str], raw: bytes,
             name: str) -> dict[str, Answer]:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{name}.eml"
        tmp = self.folder / f".{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return {r: Answer(250, f"written to {final.name}") for r in recipients}


class SmtpTransport:
    def __init__(self, cfg: Outbound, ca_file: Path | None = None):
        self.cfg = cfg
        self.ca_file = ca_file  # [outbound] ca_file, resolved beside the config file
        self.tokens = Tokens(cfg.oauth2) if cfg.oauth2 else None

    def send(self, sender: str, recipients: list[str], raw: bytes,
             name: str) -> dict[str, Answer]:
        smtp = self.connect()
        try:
            # Stored with Unix line ends; SMTP needs CRLF, and smtplib leaves bytes alone.
            return converse(smtp, sender, recipients, _BARE_LF.sub(b"\r\n", raw))
        finally:
            _hang_up(smtp)

    def connect(self) -> smtplib.SMTP:
        """Connected, secured and logged in as `[outbound]` says (also `check --connect`)."""
        cfg = self.cfg
        context = ssl.create_default_context(cafile=self.ca_file)
        # Two timeouts: connecting and the greeting get connect_timeout, so a relay that
        # accepts the connection and never speaks costs seconds; each answer after that
        # gets command_timeout. (The host given here is also the name TLS checks.)
        smtp = (smtplib.SMTP_SSL(cfg.smtp_host, cfg.port, timeout=cfg.connect_timeout,
                                 context=context)
                if cfg.security == "ssl"
                else smtplib.SMTP(cfg.smtp_host, cfg.port, timeout=cfg.connect_timeout))
        try:
            smtp.timeout = cfg.command_timeout
            if smtp.sock is not None:
                smtp.sock.settimeout(cfg.command_timeout)
            if cfg.security == "starttls":
                smtp.starttls(context=context)
            self.login(smtp)
        except BaseException:
            _hang_up(smtp)
            raise
        return smtp

    def login(self, smtp: smtplib.SMTP) -> None:
        cfg = self.cfg
        if self.tokens and cfg.smtp_user:
            # XOAUTH2 (Microsoft 365 retired basic auth). A refused token is asked for once
            # more: the command or msal then hands out a fresh one.
            smtp.ehlo_or_helo_if_needed()
            for attempt in (1, 2):
                initial = xoauth2(cfg.smtp_user, self.tokens.get())
                try:
                    # After a refusal the server sends its error as a challenge and waits
                    # for an empty line before its final 535.
                    code, text = smtp.auth(
                        "XOAUTH2", lambda challenge=None, r=initial: "" if challenge else r)
                    if code != 235:  # smtplib takes 503 ("already authenticated") as success
                        raise smtplib.SMTPAuthenticationError(code, text)
                    return
                except smtplib.SMTPAuthenticationError:
                    if attempt == 2:
                        raise
        elif cfg.smtp_user:
            smtp.login(cfg.smtp_user, cfg.password or "")


def converse(smtp: smtplib.SMTP, sender: str, recipients: list[str],
             data: bytes) -> dict[str, Answer]:
    """MAIL, one RCPT per recipient, DATA: what sendmail does, keeping every recipient's own
    answer (sendmail forgets the RCPT refusals when DATA fails)."""
    smtp.ehlo_or_helo_if_needed()
    options = [f"SIZE={len(data)}"] if smtp.does_esmtp and smtp.has_extn("size") else []
    code, text = smtp.mail(sender, options)
    if code != 250:  # the relay refused the mail itself: its answer is every recipient's
        return {r: _answer(code, text) for r in recipients}
    answers = {r: _rcpt(smtp, r) for r in recipients}
    accepted = [r for r, a in answers.items() if a.code in (250, 251)]
    if not accepted:
        return answers
    try:
        code, text = smtp.data(data)
    except smtplib.SMTPDataError as e:  # DATA itself refused (no 354)
        code, text = e.smtp_code, e.smtp_error
    return answers | {r: _answer(code, text) for r in accepted}


def _rcpt(smtp: smtplib.SMTP, recipient: str) -> Answer:
    try:
        return _answer(*smtp.rcpt(recipient))
    except UnicodeEncodeError:  # a non-ASCII address and a relay without SMTPUTF8
        return Answer(553, "5.6.7 address not ASCII and the relay offers no SMTPUTF8")


def _answer(code: int, text: bytes | str) -> Answer:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return Answer(code, " ".join(words.split())[:300])


def _hang_up(smtp: smtplib.SMTP) -> None:
    """QUIT, but never let a slow goodbye undo a delivery the relay has accepted."""
    try:
        if smtp.sock is not None:
            smtp.sock.settimeout(min(smtp.timeout, 5))
            smtp.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        smtp.close()


def transport_for(cfg: Outbound, maildir: Path, ca_file: Path | None = None) -> Transport:
    return MaildirTransport(maildir) if cfg.transport == "maildir" else SmtpTransport(cfg,
                                                                                     ca_file)
