"""The spool writer of `mailflow serve`: one thread stores what the receivers hand it, every
message waiting at that moment in one commit (group commit). One fsync answers many SMTP
sessions, so acceptance runs at disk speed while the pipeline catches up."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from mailflow import clock, db
from mailflow.app import App
from mailflow.inbound import spool

log = logging.getLogger(__name__)

BATCH = 200  # messages per commit at most: bounds one transaction's size and wait


class SpoolWriter(threading.Thread):
    def __init__(self, app: App, on_stored: Callable[[int], None]):
        super().__init__(name="spool-writer", daemon=True)
        self.app = app
        self.on_stored = on_stored
        self.todo: queue.Queue[tuple[spool.Incoming, Future[tuple[int, bool]]] | None] = (
            queue.Queue())
        self.idle = threading.Event()  # nothing queued and no commit in hand
        self.idle.set()
        # On SQLite one writer at a time: a pipeline transaction makes senders wait. On
        # PostgreSQL writers do not block each other, so the pipeline never waits.
        self.shares_lock = db.engine(app.url).dialect.name == "sqlite"

    def submit(self, item: spool.Incoming) -> Future[tuple[int, bool]]:
        """Future of (spool id, duplicate); raises if the message could not be stored."""
        done: Future[tuple[int, bool]] = Future()
        self.idle.clear()
        self.todo.put((item, done))
        return done

    def wait_turn(self, most: float = 0.5) -> None:
        """Let the writer go first, but only with what is already queued: the pipeline waits
        for the writer's commit in hand (one group commit, a few milliseconds), never for a
        quiet moment, so under a steady stream the two take turns instead of the pipeline
        starving. Only on SQLite (one writer at a time); at most `most` seconds."""
        if self.shares_lock:
            self.idle.wait(most)

    def run(self) -> None:
        stopping = False
        while not stopping:
            first = self.todo.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < BATCH:
                try:
                    more = self.todo.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._store(batch)
            if self.todo.empty():
                self.idle.set()
        self.idle.set()

    def _store(self, batch: list[tuple[spool.Incoming, Future[tuple[int, bool]]]]) -> None:
        try:
            # A plain session: the spool needs none of the casework hooks of app.session().
            with db.session(self.app.url) as session:
                results = spool.store(session, [item for item, _ in batch], clock.now())
        except Exception as e:  # noqa: BLE001 - every sender in the batch gets 451 and retries
            log.exception("could not store %d message(s)", len(batch))
            for _, done in batch:
                done.set_exception(e)
            return
        for (_, done), (raw_id, duplicate) in zip(batch, results, strict=True):
            done.set_result((raw_id, duplicate))
            if not duplicate:
                self.on_stored(raw_id)

    def stop(self) -> None:
        self.todo.put(None)
        self.join(timeout=30)
