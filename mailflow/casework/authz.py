"""Who may use which email command: one table, read by the handlers, `#help` and the README.

Roles are casework/parties.py's: `member`, `staff`, `contact` (an `officer` acting for a
contact counts as the contact; they may only answer, hold or redirect their own request),
`colleague` (`#note` only). Anyone else (the constituent, a stranger, a forged From naming
nobody on the case) may do nothing. Sharing and consent are the member's alone: they are
the data controller.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("member", "staff", "contact", "colleague")
M, S, C, K = "member", "staff", "contact", "colleague"


@dataclass(frozen=True)
class Command:
    name: str
    syntax: str
    summary: str
    roles: frozenset[str]


def _c(name: str, syntax: str, summary: str, *roles: str) -> Command:
    return Command(name, syntax, summary, frozenset(roles))


COMMANDS: tuple[Command, ...] = (
    _c("close", "#close [outcome]", "close the case, with the outcome in words", M, S),
    _c("reopen", "#reopen [SERVICE | reason]", "reopen an answered or closed case: the "
       "service is sent a follow-up request with your reason and its last answer", M, S),
    _c("chase", "#chase [SERVICE]", "chase the waiting request(s) now, once a working day at "
       "most; #chase anywhere in a follow-up works too", M, S),
    _c("resend", "#resend [SERVICE]", "send an undeliverable request again", M, S),
    _c("contact", "#contact name@council.example [SERVICE]",
       "re-address an undeliverable (or waiting) request to a named person in a trusted "
       "domain", M, S),
    _c("category", "#category NAME", "set the case's category", M, S),
    _c("service", "#service NAME", "send a request to another service as well", M, S),
    _c("type", "#type complaint|direct|indirect|service-request|community",
       "set the enquiry type (a complaint follows the complaint target)", M, S),
    _c("priority", "#priority high|normal", "set the case's priority", M, S),
    _c("share", "#share private|ward|party",
       "share the case with ward colleagues (needs #consent yes)", M),
    _c("consent", "#consent yes|no|handover", "record whether the constituent agreed to "
       "sharing, or (handover) to passing the case to your successor at the end of your term",
       M),
    _c("note", "#note TEXT", "add a private note to the case, sent to no one", M, S, K),
    _c("deadline", "#deadline DATE", "set your own deadline for the case", M, S),
    _c("holding", "#holding DATE", "a holding reply on your request: the new date and why", C),
    _c("answer", "#answer", "this reply is the answer to your request, whatever its words "
       "(the text below the command)", C),
    _c("ack", "#ack", "this reply only acknowledges your request: it stays open and is chased "
       "on its due date", C),
    _c("agree", "#agree", "agree to the service's new date", M, S),
    _c("refuse", "#refuse", "refuse the service's new date", M, S),
    _c("reject", "#reject", "reject the service's answer; the request is open again", M, S),
    _c("merge", "#merge REF", "merge with another case (its member must agree)", M, S),
    _c("redirect", "#redirect colleague@council.example",
       "pass your request to a colleague, who gets it by email", C),
    _c("send", "#send", "send the service's latest answer to the constituent, with your text "
       "above the command", M),
    _c("help", "#help", "this list", M, S, C, K),
)
BY_NAME = {c.name: c for c in COMMANDS}

_WHO = {M: "the case's member", S: "member services", C: "the service contact",
        K: "a colleague the case is shared with"}


def allowed(role: str | None, command: str) -> tuple[bool, str]:
    """(True, "") or (False, the reason in words, for the refusal reply)."""
    cmd = BY_NAME.get(command)
    if cmd is None:
        return False, f"#{command} is not a command; send #help for the list"
    if role is None:
        return False, "you are not a party to this case, so it cannot take commands from you"
    if role in cmd.roles:
        return True, ""
    names = [_WHO[r] for r in ROLES if r in cmd.roles]
    who = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    if role == C:
        return False, (f"#{command} is for {who}; a service contact may only answer, hold "
                       "(#holding) or redirect (#redirect) their own request")
    if role == K:
        return False, f"#{command} is for {who}; a colleague sharing the case may only #note"
    return False, f"#{command} is for {who} only"


def help_text(role: str | None = None) -> str:
    """The `#help` reply: every command, or those this role may use, one per line."""
    rows = [c for c in COMMANDS if role is None or role in c.roles]
    width = max(len(c.syntax) for c in rows)
    lines = ["Commands go one per line at the top of your email, before any quoted text:", ""]
    lines += [f"  {c.syntax.ljust(width)}  {c.summary}" for c in rows]
    return "\n".join(lines)


def markdown_table() -> str:
    """The README's table of commands and who may use them (`|` escaped for GitHub)."""
    head = "| command | what it does | " + " | ".join(ROLES) + " |"
    sep = "| --- | --- | " + " | ".join("---" for _ in ROLES) + " |"
    rows = [f"| `{c.syntax.replace('|', chr(92) + '|')}` | {c.summary} | "
            + " | ".join("yes" if r in c.roles else "" for r in ROLES) + " |" for c in COMMANDS]
    return "\n".join([head, sep, *rows])
