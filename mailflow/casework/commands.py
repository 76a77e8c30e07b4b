"""Email commands: `#word args` lines at the top of a message, before any other text.

A command's arguments are the rest of its line; the lines below it, up to the next command,
are its body (a holding reply's reason, a rejection's explanation, a note). Only a message
whose visible text starts with a known command has commands: a `#` further down, or in
quoted text, is never one.

This module is the language (parsing, and the types every handler shares); the handlers and
the one `run` are casework/actions.py, and who may use which command is casework/authz.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session

from mailflow import models
from mailflow.casework import authz
from mailflow.casework.context import Context

_LINE = re.compile(r"^#([a-z][a-z_-]*)\b[ \t]*(.*)$", re.IGNORECASE)


class CommandError(Exception):
    """A command that cannot be carried out; the message says why."""


@dataclass
class Command:
    name: str
    args: str = ""
    body: str = ""
    implicit: bool = False  # found by the forgiving fallback, not typed as a command

    @property
    def text(self) -> str:
        """The arguments and the lines below, as one text (a note, a reason)."""
        return "\n".join(x for x in (self.args, self.body) if x).strip()


@dataclass
class Call:
    """One message's commands on one case: who sent them, in what role, when."""

    ctx: Context
    session: Session
    case: models.Case
    role: str | None  # casework/parties.py; an `officer` acts as the request's contact
    request: models.Request | None  # the sender's request, for a contact or officer
    sender: str
    now: datetime
    raw_message_id: int | None = None
    message_id: str | None = None  # of the message carrying the commands, to reply in thread
    evidence: str | None = None  # how the message was matched (in-reply-to, token, tag, guess)

    @property
    def today(self) -> date:
        return self.ctx.calendar.today(self.now)


@dataclass
class Result:
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join([*self.done, *(f"refused: {r}" for r in self.refused)])


def known(name: str) -> bool:
    return name in authz.BY_NAME


def parse(text: str) -> tuple[list[Command], str]:
    """(the commands at the top of `text`, the text after them). An unknown `#word` as the
    first line is kept as a command, so that its sender gets the help text."""
    lines = text.strip().splitlines()
    cmds: list[Command] = []
    body: list[str] = []
    i = 0
    for i, line in enumerate(lines):  # noqa: B007 - `i` is read after the loop
        m = _LINE.match(line.strip())
        if m and (known(m.group(1).lower()) or i == 0):
            if cmds:
                cmds[-1].body = "\n".join(body).strip()
            cmds.append(Command(m.group(1).lower(), m.group(2).strip()))
            body = []
        elif cmds:
            body.append(line)
        else:
            return [], text.strip()
    if cmds:
        cmds[-1].body = "\n".join(body).strip()
    return cmds, ""


def strip(text: str) -> str:
    """The text without its command lines."""
    return "\n".join(line for line in text.splitlines()
                     if not ((m := _LINE.match(line.strip())) and known(m.group(1).lower()))
                     ).strip()


def find_send(text: str) -> Command | None:
    """`#send` may stand below the member's own text for the constituent."""
    above: list[str] = []
    for line in text.strip().splitlines():
        if line.strip().lower() == "#send":
            return Command("send", "\n".join(above).strip())
        above.append(line)
    return None
