"""Email commands: `#word args` lines at the top of a message, before any other text.

A command's arguments are the rest of its line; the lines below it, up to the next command,
are its body (a holding reply's reason, a rejection's explanation, a note). Only a message
whose visible text starts with a known command has commands: a `#` further down, or in
quoted text, is never one.

Each command is registered by name with the roles that may use it (`member`, `contact`,
`officer`, `staff`) and a handler that takes a `Context` and the `Command` and returns what it
did in words, or raises `CommandError` saying why it could not.

    @command("note", roles={"member", "staff"}, help="add a private note")
    def _note(ctx: Context, cmd: Command) -> str: ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session

from mailflow import models
from mailflow.app import App
from mailflow.casework import closing, holding, notify
from mailflow.casework.cases import event

_LINE = re.compile(r"^#([a-z][a-z_-]*)\b[ \t]*(.*)$", re.IGNORECASE)


class CommandError(Exception):
    """A command that cannot be carried out; the message says why."""


@dataclass
class Command:
    name: str
    args: str = ""
    body: str = ""
    implicit: bool = False  # found by the forgiving fallback, not typed as a command


@dataclass
class Context:
    app: App
    session: Session
    case: models.Case
    role: str  # member | contact | officer | staff
    request: models.Request | None  # the sender's request, for a contact or officer
    sender: str
    now: datetime
    raw_message_id: int | None = None


Handler = Callable[[Context, Command], str]


@dataclass
class Spec:
    name: str
    handler: Handler
    roles: frozenset[str]
    help: str = ""


REGISTRY: dict[str, Spec] = {}


def command(name: str, *, roles: set[str], help: str = "") -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = Spec(name, fn, frozenset(roles), help)
        return fn
    return register


def parse(text: str) -> tuple[list[Command], str]:
    """(the commands at the top of `text`, the text after them)."""
    lines = text.strip().splitlines()
    cmds: list[Command] = []
    body: list[str] = []
    i = 0
    for i, line in enumerate(lines):  # noqa: B007 - `i` is read after the loop
        m = _LINE.match(line.strip())
        if m and m.group(1).lower() in REGISTRY:
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


@dataclass
class Result:
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join([*self.done, *(f"refused: {r}" for r in self.refused)])


def run(ctx: Context, cmds: list[Command]) -> Result:
    """Carry out each command the sender may use; refusals and failures are recorded on the
    case (and told to a member, who can fix and resend)."""
    result = Result()
    for cmd in cmds:
        spec = REGISTRY[cmd.name]
        try:
            if ctx.role not in spec.roles:
                raise CommandError(f"#{cmd.name} is not for the {ctx.role} of a case")
            result.done.append(f"#{cmd.name}: {spec.handler(ctx, cmd)}")
        except CommandError as e:
            result.refused.append(f"#{cmd.name}: {e}")
            event(ctx.session, ctx.case, "command_refused", ctx.now, sender=ctx.sender,
                  text=f"#{cmd.name} {cmd.args}".strip() + f": {e}",
                  raw_message_id=ctx.raw_message_id, command=cmd.name)
            if ctx.role == "member":
                notify.member(ctx.app, ctx.session, ctx.case, "command_refused",
                              f"Your #{cmd.name} on {ctx.case.reference} was not carried out: "
                              f"{e}.", ctx.now, urgent=True)
    return result


# -- dates, written as officers write them ---------------------------------------------------
_MONTHS = {m: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], 1) for m in names}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_WEEKDAY = r"(?:(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?,?\s+)?"
_DATES = [
    re.compile(r"(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})\b"),
    re.compile(r"(?P<day>\d{1,2})[/.](?P<month>\d{1,2})(?:[/.](?P<year>\d{2,4}))?\b"),
    re.compile(_WEEKDAY + _DAY + r"(?:\s+of)?\s+" + _MONTH + _YEAR + r"\b", re.IGNORECASE),
    re.compile(_WEEKDAY + _MONTH + r"\s+" + _DAY + _YEAR + r"\b", re.IGNORECASE),
]


def parse_date(text: str, today: date) -> date | None:
    """The first date at the start of `text`: 2026-12-10, 10/12/2026, 10 December [2026],
    Thursday 10th December, December 10. Without a year: the next such day from today."""
    text = text.strip()
    for pattern in _DATES:
        m = pattern.match(text)
        if not m:
            continue
        month = m.group("month")
        month_n = int(month) if month.isdigit() else _MONTHS[month.lower().rstrip(".")]
        year = m.group("year")
        try:
            if year:
                y = int(year) + (2000 if len(year) == 2 else 0)
                return date(y, month_n, int(m.group("day")))
            d = date(today.year, month_n, int(m.group("day")))
            return d if d >= today else date(today.year + 1, month_n, int(m.group("day")))
        except ValueError:
            return None
    return None


# "I will reply by 10 December", "We aim to respond by Friday 11th December."
_PROMISE = re.compile(
    r"\b(?:i|we)\s*(?:will|'ll|’ll|shall|should|aim to|expect to|hope to|intend to|plan to)"
    r"\s+(?:be able to\s+)?(?:send (?:you )?(?:a |an |the )?(?:full )?|provide (?:a |an |the )?"
    r"(?:full )?|give (?:you )?(?:a |an |the )?(?:full )?)?"
    r"(?:reply|respond|response|answer|get back to you|come back to you|update you|update)"
    r"\b[^.\n]{0,40}?\b(?:by|on|before)\s+", re.IGNORECASE)


def promised_date(text: str, today: date) -> date | None:
    """The forgiving fallback for officers who do not type `#holding`."""
    for m in _PROMISE.finditer(text):
        d = parse_date(text[m.end():], today)
        if d:
            return d
    return None


# -- the commands ----------------------------------------------------------------------------
def _today(ctx: Context) -> date:
    return ctx.app.calendar.today(ctx.now)


@command("holding", roles={"contact", "officer", "staff"},
         help="#holding DATE, with the reason and next action below: a new due date")
def _holding(ctx: Context, cmd: Command) -> str:
    if ctx.request is None:
        raise CommandError("no request of yours on this case to move")
    new_due = parse_date(cmd.args, _today(ctx))
    if new_due is None:
        raise CommandError(f"{cmd.args or '(nothing)'} is not a date; write #holding 2026-12-10")
    if not cmd.body.strip():
        raise CommandError("a holding reply needs the reason and next action below the date")
    return holding.holding_reply(ctx.app, ctx.session, ctx.case, ctx.request, ctx.sender,
                                 new_due, cmd.body, ctx.now, raw_message_id=ctx.raw_message_id,
                                 how="fallback" if cmd.implicit else "#holding")


def _decide(ctx: Context, cmd: Command, agree: bool) -> str:
    request = holding.pending(ctx.session, ctx.case)
    if request is None:
        raise CommandError("no extension is waiting for agreement on this case")
    return holding.decide(ctx.app, ctx.session, ctx.case, request, ctx.sender, agree,
                          "\n".join(x for x in (cmd.args, cmd.body) if x), ctx.now,
                          ctx.raw_message_id)


@command("agree", roles={"member", "staff"}, help="agree to a service's longer extension")
def _agree(ctx: Context, cmd: Command) -> str:
    return _decide(ctx, cmd, True)


@command("refuse", roles={"member", "staff"}, help="refuse it: the due date stays")
def _refuse(ctx: Context, cmd: Command) -> str:
    return _decide(ctx, cmd, False)


@command("reject", roles={"member", "staff"},
         help="#reject REASON: send the answer back to the service with a new due date")
def _reject(ctx: Context, cmd: Command) -> str:
    reason = "\n".join(x for x in (cmd.args, cmd.body) if x).strip()
    if not reason:
        raise CommandError("say why, e.g. #reject the pothole is still there")
    request = closing.last_answered(ctx.session, ctx.case)
    if request is None:
        raise CommandError("no answer on this case to reject")
    return closing.reject(ctx.app, ctx.session, ctx.case, request, ctx.sender, reason, ctx.now,
                          ctx.raw_message_id)


@command("reopen", roles={"member", "staff"}, help="open an answered or closed case again")
def _reopen(ctx: Context, cmd: Command) -> str:
    if ctx.case.status not in ("answered", "closed"):
        raise CommandError(f"the case is {ctx.case.status}, not answered or closed")
    return closing.reopen(ctx.session, ctx.case, ctx.sender,
                          "\n".join(x for x in (cmd.args, cmd.body) if x), ctx.now,
                          ctx.raw_message_id)


@command("close", roles={"member", "staff"}, help="#close [outcome]: close the case now")
def _close(ctx: Context, cmd: Command) -> str:
    if ctx.case.status == "closed":
        raise CommandError("the case is already closed")
    return closing.close(ctx.session, ctx.case, ctx.sender,
                         "\n".join(x for x in (cmd.args, cmd.body) if x), ctx.now,
                         ctx.raw_message_id)
