"""What every command needs once per process: settings, database, calendar, templates."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from jinja2 import Environment
from sqlmodel import Session

from mailflow import db
from mailflow.casework import directory
from mailflow.casework.calendar import Calendar
from mailflow.outbound.render import environment
from mailflow.outbound.transports import Transport, transport_for
from mailflow.settings import Settings


@dataclass
class App:
    settings: Settings
    _synced: bool = field(default=False, init=False)
    # serve's receiver and jobs start together, each in its own thread: one syncs the
    # directory, the others wait (two inserting the same ward fail on its unique name).
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
                with self._sync_lock:
                    if not self._synced:
                        directory.sync(s, self.settings)
                        s.commit()
                        self._synced = True
            yield s
