"""What every command needs once per process: settings, database, calendar, templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from jinja2 import Environment
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailflow import clock, db
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
        d = self.settings.templates.dir
        return environment(self.settings.resolve(d) if d else None)

    @cached_property
    def transport(self) -> Transport:
        return transport_for(self.settings.outbound, self.settings.maildir)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session on a database whose directory matches the config file."""
        with db.session(self.url) as s:
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
