"""What every command needs once per process: settings, database, calendar, templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from jinja2 import Environment
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailflow import clock, db, models
from mailflow.casework import deadlines, directory
from mailflow.casework.calendar import Calendar
from mailflow.outbound.render import environment
from mailflow.outbound.transports import Transport, transport_for
from mailflow.settings import Settings


@dataclass
class App:
    settings: Settings
    _synced: bool = field(default=False, init=False)
    _sync_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

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
        return transport_for(self.settings.outbound, self.settings.maildir)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on a database whose directory matches the config file."""
        with db.session(self.url) as s:
            s.info["app"] = self
            if not self._synced:
                self._sync(s)
            yield s

    def _sync(self, s: Session) -> None:
        with self._sync_lock:
            if self._synced:
                return
            try:
                self._sync_once(s)
            except IntegrityError:  # another node synchronised the same rows at the same time
                s.rollback()
                self._sync_once(s)
            self._synced = True

    def _sync_once(self, s: Session) -> None:
        directory.sync(s, self.settings)
        # A changed calendar (closure days, nation...) moves open deadlines.
        deadlines.follow_calendar(s, self.settings, self.calendar, clock.now())
        s.commit()


# Reports count anonymised statistics (reports/stats.py). Rather than every code path that
# opens, answers, escalates or closes a case remembering to update them, each commit brings
# the statistics of every case it touched in step.
@event.listens_for(Session, "before_flush")
def _note_touched_cases(session: Session, _ctx: object, _instances: object) -> None:
    if "app" not in session.info:
        return
    touched = session.info.setdefault("touched_cases", {})  # identity -> case or case id
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, models.Case):
            touched[id(obj)] = obj  # a new case has no id before the flush
        elif isinstance(obj, models.Request | models.Event) and obj.case_id:
            touched[obj.case_id] = obj.case_id


@event.listens_for(Session, "before_commit")
def _record_statistics(session: Session) -> None:
    app = session.info.get("app")
    if app is None:
        return
    from mailflow.reports import stats

    session.flush()
    touched = session.info.pop("touched_cases", {})
    cases = {}
    for item in touched.values():
        case = item if isinstance(item, models.Case) else session.get(models.Case, item)
        if case is not None and case.id is not None:
            cases[case.id] = case
    for case in cases.values():
        stats.record(session, app.calendar, case)
    session.info.pop("touched_cases", None)  # what stats.record itself flushed
