"""What casework needs from the running process, and nothing more: the settings (the council
directory included), the working-day calendar and the mail templates. The composition root
(app.py) builds it; casework never sees sockets, the wall clock or the App."""

from __future__ import annotations

from dataclasses import dataclass, replace

from jinja2 import Environment

from mailflow.casework.calendar import Calendar
from mailflow.settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    calendar: Calendar
    templates: Environment
    # Set while handling automatic mail (an auto-reply, a bounce): whatever it causes, no
    # automatic mail may go back (the loop guard of the outbox's one door).
    answering_automatic: str | None = None

    def answering(self, what: str) -> Context:
        return replace(self, answering_automatic=what)
