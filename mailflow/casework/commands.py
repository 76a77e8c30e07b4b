"""Email commands: `#word args` lines at the top of a message, before any other text.

A command's arguments are the rest of its line; the lines below it, up to the next command,
are its body (a holding reply's reason, a rejection's explanation, a note). Only a message
whose visible text starts with a known command has commands: a `#` further down, or in
quoted text, is never one.

Who may use which command is decided by one table, casework/authz.py. The time commands
are registered here (`@command`: a handler takes a `Context` and the `Command` and returns
what it did in words, or raises `CommandError` saying why it could not); the casework rules'
commands are casework/actions.py ACTIONS. An unknown `#word` at the top is answered with the
help text. Every message with commands gets one reply: what was done, what was refused, why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlmodel import Session

from mailflow import models
from mailflow.app import App
from mailflow.casework import actions, authz, cases, closing, holding, notify
from mailflow.casework.cases import event
from mailflow.outbound.render import new_message_id, render

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
class Context:
    app: App
    session: Session
    case: models.Case
    role: str  # member | contact | officer | staff
    request: models.Request | None  # the sender's request, for a contact or officer
    sender: str
    now: datetime
    raw_message_id: int | None = None
    message_id: str | None = None  # of the message carrying the commands, to reply in thread


Handler = Callable[[Context, Command], str]


REGISTRY: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = fn
        return fn
    return register


def known(name: str) -> bool:
    return name in REGISTRY or name in actions.ACTIONS


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


@dataclass
class Result:
    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join([*self.done, *(f"refused: {r}" for r in self.refused)])


_FREE_TEXT = {"note", "close", "send"}  # commands whose lines below belong to them


def run(ctx: Context, cmds: list[Command]) -> Result:
    """Carry out each command the sender may use (authz.py decides), record refusals on the
    case, and answer the sender once with what was done and what was refused."""
    result = Result()
    # A trusted officer replying with the request's token acts for its contact.
    role = "contact" if ctx.role == "officer" else ctx.role
    for cmd in cmds:
        if not known(cmd.name):
            result.refused.append(f"#{cmd.name}: not a command. {authz.help_text(role)}")
            continue
        try:
            ok, why = authz.allowed(role, cmd.name)
            if not ok:
                raise CommandError(why)
            if cmd.name in REGISTRY:
                result.done.append(f"#{cmd.name}: {REGISTRY[cmd.name](ctx, cmd)}")
                continue
            arg = cmd.text if cmd.name in _FREE_TEXT else cmd.args
            done = actions.ACTIONS[cmd.name](ctx.app, ctx.session, ctx.case, ctx.sender,
                                             arg, ctx.now, message=ctx.raw_message_id)
            if not done.ok:
                raise CommandError(done.text)
            result.done.append(f"#{cmd.name}: {done.text}")
        except CommandError as e:
            result.refused.append(f"#{cmd.name}: {e}")
            event(ctx.session, ctx.case, "command_refused", ctx.now, sender=ctx.sender,
                  text=f"#{cmd.name} {cmd.args}".strip() + f": {e}",
                  raw_message_id=ctx.raw_message_id, command=cmd.name)
    if not all(c.implicit for c in cmds):
        _answer(ctx, result)
    return result


def _answer(ctx: Context, result: Result) -> None:
    """One reply to the sender: each command's confirmation or the reason it was refused."""
    msg = render(
        ctx.app.templates, "command_reply",
        {"council": ctx.app.settings.council, "case": ctx.case, "done": result.done,
         "refused": result.refused},
        sender=notify.sender(ctx.app), to=[ctx.sender], now=ctx.now,
        message_id=new_message_id(notify.domain(ctx.app), ctx.case.reference),
        in_reply_to=ctx.message_id,
    )
    cases.queue_mail(ctx.app, ctx.session, msg, kind="command_reply", now=ctx.now,
                     case_id=ctx.case.id)


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


@command("holding")
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


@command("agree")
def _agree(ctx: Context, cmd: Command) -> str:
    return _decide(ctx, cmd, True)


@command("refuse")
def _refuse(ctx: Context, cmd: Command) -> str:
    return _decide(ctx, cmd, False)


@command("reject")
def _reject(ctx: Context, cmd: Command) -> str:
    reason = "\n".join(x for x in (cmd.args, cmd.body) if x).strip()
    if not reason:
        raise CommandError("say why, e.g. #reject the pothole is still there")
    request = closing.last_answered(ctx.session, ctx.case)
    if request is None:
        raise CommandError("no answer on this case to reject")
    return closing.reject(ctx.app, ctx.session, ctx.case, request, ctx.sender, reason, ctx.now,
                          ctx.raw_message_id)


@command("reopen")
def _reopen(ctx: Context, cmd: Command) -> str:
    if ctx.case.status not in ("answered", "closed"):
        raise CommandError(f"the case is {ctx.case.status}, not answered or closed")
    return closing.reopen(ctx.session, ctx.case, ctx.sender,
                          "\n".join(x for x in (cmd.args, cmd.body) if x), ctx.now,
                          ctx.raw_message_id)


@command("close")
def _close(ctx: Context, cmd: Command) -> str:
    if ctx.case.status == "closed":
        raise CommandError("the case is already closed")
    return closing.close(ctx.session, ctx.case, ctx.sender,
                         "\n".join(x for x in (cmd.args, cmd.body) if x), ctx.now,
                         ctx.raw_message_id)
