"""After the answer, or while waiting for one: `#reopen` sends the service a follow-up
request, and `#chase` (or a member's follow-up with `#chase` anywhere in it) chases the
waiting requests at once, once a working day at most per request.

`#reopen` parse rule: the argument on the command's line names a service when the whole of
it (or the part before a colon) is a service's name, case and spacing aside (`#reopen
Housing`, `#reopen Housing: the leak is back`); anything else is the member's reason
(`#reopen they did not fix it`), and so are the lines below the command. Without a service
the follow-up goes to the service of the last answered request (else of the last request).
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session, col, select

from mailflow import db, models
from mailflow.casework import cases, closing, names
from mailflow.casework.commands import CommandError
from mailflow.casework.context import Context
from mailflow.casework.notify import date_text, member_of
from mailflow.outbound import mail
from mailflow.settings import Settings

_CHASE = re.compile(r"(?<![\w#])#chase\b", re.IGNORECASE)


def parse_reopen(settings: Settings, args: str, body: str) -> tuple[str | None, str]:
    """(the service named, or None; the member's reason) by the rule in the module doc."""
    head, colon, tail = args.partition(":")
    for candidate, rest in ((args, ""), (head, tail) if colon else (None, "")):
        if candidate is None:
            continue
        key = names.squash(candidate)
        named = next((s.name for s in settings.services if key and names.squash(s.name) == key),
                     None)
        if named:
            return named, "\n".join(x for x in (rest.strip(), body.strip()) if x)
    return None, "\n".join(x for x in (args.strip(), body.strip()) if x)


def _requests(session: Session, case: models.Case) -> list[models.Request]:
    return list(session.exec(select(models.Request).where(models.Request.case_id == case.id)
                             .order_by(col(models.Request.id))))


def _service_name(session: Session, r: models.Request) -> str:
    row = session.get(models.Service, r.service_id)
    return row.name if row else "?"


def reopen(ctx: Context, session: Session, case: models.Case, sender: str, args: str, body: str,
           now: datetime, raw_message_id: int | None = None) -> str:
    """Reopen an answered or closed case and ask the service again."""
    if case.merged_into_id is not None:
        raise CommandError(f"{case.reference} was merged into another case; write to that one")
    if case.status not in ("answered", "closed"):
        raise CommandError(f"the case is {case.status}, not answered or closed; #chase asks "
                           "for news of a waiting request")
    s = ctx.settings
    named, reason = parse_reopen(s, args, body)
    requests = _requests(session, case)
    last = closing.last_answered(session, case)
    name = named or (_service_name(session, last) if last
                     else _service_name(session, requests[-1]) if requests else None)
    if name is None:  # never sent anywhere: back to triage for a service
        was = case.status
        case.status, case.open_until, case.closed_at = "triage", None, None
        session.add(case)
        cases.event(session, case, "reopened", now, sender=sender, text=reason,
                    raw_message_id=raw_message_id, was=was)
        return f"case reopened (was {was}); no service was asked yet: send #service NAME"
    svc = s.service(name)
    if svc is None:
        raise CommandError(f"{name} is no longer in the council directory; #reopen NAME "
                           f"with one of {', '.join(x.name for x in s.services)}")
    for r in requests:
        if _service_name(session, r) == name and r.state in ("sent", "undeliverable"):
            raise CommandError(f"a request to {name} is already {r.state}"
                               + (", send #resend or #contact" if r.state != "sent"
                                  else f", due {r.due.isoformat()}; #chase asks for news"))
    # The answer the member questions, quoted even to a service not asked before.
    of = last.id if last else None
    done = closing.reopen(session, case, sender, reason, now, raw_message_id)
    request = cases.send_request(ctx, session, case, svc, now, reason=f"#reopen from {sender}",
                                 follow_up=cases.FollowUp(reason, of))
    return (f"{done}; follow-up request sent to {name} <{request.contact}>, due "
            f"{request.due.isoformat()}")


# -- chasing by hand ---------------------------------------------------------------------------
def wants_chase(text: str) -> bool:
    """`#chase` anywhere in a member's own words (quoted history is already folded away)."""
    return bool(_CHASE.search(text))


def without_chase(text: str) -> str:
    return re.sub(r"[ \t]{2,}", " ", _CHASE.sub("", text)).strip()


def _which(session: Session, waiting: list[models.Request], args: str, words: str
           ) -> list[models.Request]:
    """The waiting requests to chase: the service on the command's line, else those the
    member's words name ("any news from Roads?"), else all of them."""
    by_name = {_service_name(session, r): r for r in waiting}
    if args.strip():
        name, why = names.match(args, list(by_name), "service with a waiting request")
        if name is None:
            raise CommandError(why)
        return [r for r in waiting if _service_name(session, r) == name]
    said = names.squash(words)
    named = [r for r in waiting if names.squash(_service_name(session, r)) in said] \
        if said else []
    return named or waiting


def chase(ctx: Context, session: Session, case: models.Case, sender: str, args: str,
          words: str, now: datetime) -> str:
    """Chase the waiting requests now; a request chased already this working day is not
    chased again, and the sender is told when its last chase went."""
    cal = ctx.calendar
    if case.status == "closed" or case.merged_into_id is not None:
        raise CommandError(f"{case.reference} is closed; #reopen it to ask the service again")
    reqs = _requests(session, case)
    waiting = [r for r in reqs if r.state == "sent"]
    if not waiting:
        lost = [r for r in reqs if r.state == "undeliverable"]
        raise CommandError("no request on this case is waiting for an answer" + (
            f"; the request to {_service_name(session, lost[0])} is undeliverable: send "
            "#resend or #contact new.person@council.example" if lost else ""))
    today = cal.working_day_on_or_after(cal.today(now))
    done, refused = [], []
    for r in _which(session, waiting, args, words):
        name = _service_name(session, r)
        last = r.chased_at
        if last is not None and cal.working_day_on_or_after(cal.today(last)) == today:
            when = cal.local(last)
            refused.append(f"{name} was chased at {when:%H:%M} on {date_text(when.date())}; "
                           f"one chase a working day: try again on "
                           f"{date_text(cal.next_working_day(today))}")
            continue
        if not db.claim(session, models.Request, {"id": r.id, "state": "sent",
                                                   "chased_at": last}, {"chased_at": now}):
            refused.append(f"{name} is being chased by another message")
            continue
        session.refresh(r)
        overdue = cal.working_days_between(r.due, cal.today(now))
        mail.send(ctx, session, "member_chase",
                  {"request": r, "service": session.get(models.Service, r.service_id),
                   "member": member_of(session, case), "words": words,
                   "due_text": date_text(r.due), "overdue": overdue},
                  to=[r.contact], now=now, kind="chase", case=case, request=r, signed=True,
                  thread=True, automatic=False)
        cases.event(session, case, "chased", now, sender=sender, request_id=r.id,
                    step="by_hand", text=f"Chase sent to {r.contact} at {sender}'s request"
                    + (f": {overdue} working day(s) overdue" if overdue > 0
                       else f", due {r.due.isoformat()}") + ".")
        done.append(f"chase sent to {name} <{r.contact}>, due {r.due.isoformat()}")
    if not done:
        raise CommandError("; ".join(refused))
    return "; ".join(done + [f"not chased: {x}" for x in refused])
