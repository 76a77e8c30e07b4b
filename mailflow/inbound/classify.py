"""Automatic mail: auto-replies, bounces, and our own mail coming back (loops)."""

from __future__ import annotations

import re

from mailflow.inbound.parse import Parsed

NORMAL, AUTO_REPLY, BOUNCE, OWN_MAIL = "normal", "auto_reply", "bounce", "own_mail"

_OOF_SUBJECT = re.compile(
    r"^(automatic reply|auto(matic)?[- ]?reply|out of (the )?office|autoreply|"
    r"abwesenheitsnotiz|réponse automatique|respuesta automática|ateb awtomatig|"
    r"odpowiedź automatyczna|away from (my|the) office|on leave)\b",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.IGNORECASE)


def classify(p: Parsed, is_ours: bool) -> str:
    if is_ours or p.header("X-Mailflow-Kind"):
        return OWN_MAIL
    ctype = p.msg.get_content_type()
    report = (p.msg.get_param("report-type") or "").lower() if ctype == "multipart/report" else ""
    if report == "delivery-status" or _DAEMON.match(p.sender or ""):
        return BOUNCE
    auto = p.header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return AUTO_REPLY
    if p.header("X-Autoreply") or p.header("X-Autorespond"):
        return AUTO_REPLY
    if p.header("Precedence").strip().lower() in ("bulk", "junk", "list"):
        return AUTO_REPLY
    if _OOF_SUBJECT.match(p.subject):
        return AUTO_REPLY
    return NORMAL
