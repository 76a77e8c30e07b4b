"""The composition root: settings, database, calendar, templates and transport, put together
once per process. Casework gets a `Context` from here; the statistics hook is registered on
every session this opens. Nothing here runs as a side effect of reading: the directory and
the calendar are brought in step with the config file by `start`, which the commands that
run the loop call (`init`, `serve`, `tick`, `ingest`, `poll`, `import`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from jinja2 import Environment
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailflow import db, models
from mailflow.casework import deadlines, directory
from mailflow.casework.calendar import Calendar
from mailflow.casework.context import Context
from mailflow.outbound.render import environment
from mailflow.outbound.transports import Transport, transport_for
from mailflow.reports import stats
from mailflow.settings import Settings


@dataclass
class App:
    settings: Settings

    @property
    def url(self) -> str:
        return self.settings.database_url

    @cached_property
    def calendar(self) -> Calendar:
        return Calendar(self.settings.council)

    @cached_property
    def templates(self) -> Environment:
        return environment(self.settings.templates_dir)

    @cached_property
    def transport(self) -> Transport:
        s = self.settings
        ca_file = s.resolve(s.outbound.ca_file) if s.outbound.ca_file else None
        return transport_for(s.outbound, s.maildir, ca_file)

    @cached_property
    def context(self) -> Context:
        return Context(self.settings, self.calendar, self.templates)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose commits keep the anonymised statistics in step."""
        with db.session(self.url) as s:
            _track_statistics(s, self.calendar)
            yield s

    def start(self, now: datetime) -> None:
        """Bring the directory (wards, members, services) and open deadlines in step with the
        config file. Safe on several nodes at once: a node that loses the race reads again."""
        with self.session() as s:
            try:
                self._sync(s, now)
            except IntegrityError:  # another node synchronised the same rows at the same time
                s.rollback()
                self._sync(s, now)

    def _sync(self, s: Session, now: datetime) -> None:
        directory.sync(s, self.settings)
        # A changed calendar (closure days, nation...) moves open deadlines.
        deadlines.follow_calendar(s, self.settings, self.calendar, now)
        s.commit()


# Reports count anonymised statistics (reports/stats.py). Rather than every code path that
# opens, answers, escalates or closes a case remembering to update them, each commit brings
# the statistics of every case it touched in step.
def _track_statistics(session: Session, calendar: Calendar) -> None:
    def note_touched(session: Session, _ctx: object, _instances: object) -> None:
        touched = session.info.setdefault("touched_cases", {})  # identity -> case or case id
        for obj in (*session.new, *session.dirty):
            if isinstance(obj, models.Case):
                touched[id(obj)] = obj  # a new case has no id before the flush
            elif isinstance(obj, models.Request | models.Event) and obj.case_id:
                touched[obj.case_id] = obj.case_id

    def record(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a savepoint released (a chase step): the outer commit records them all
        session.flush()
        touched: dict[Any, Any] = session.info.pop("touched_cases", {})
        cases = {}
        for item in touched.values():
            case = item if isinstance(item, models.Case) else session.get(models.Case, item)
            if case is not None and case.id is not None:
                cases[case.id] = case
        stats.record_all(session, calendar, list(cases.values()))
        session.info.pop("touched_cases", None)  # what stats.record_all itself flushed

    event.listen(session, "before_flush", note_touched)
    event.listen(session, "before_commit", record)
