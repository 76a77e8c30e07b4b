"""The spool writer of `mailflow serve`: one thread stores what the receivers hand it, every
message waiting at that moment in one commit (group commit). One fsync answers many SMTP
sessions, so acceptance runs at disk speed while the pipeline catches up."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from mailflow import clock, db
from mailflow.app import App
from mailflow.inbound import spool

log = logging.getLogger(__name__)

BATCH = 200  # messages per commit at most: bounds one transaction's size and wait
QUIET = 0.01  # seconds without a new message: the senders have their 250s


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
        self.last_submit = 0.0

    def submit(self, item: spool.Incoming) -> Future[tuple[int, bool]]:
        """Future of (spool id, duplicate); raises if the message could not be stored."""
        done: Future[tuple[int, bool]] = Future()
        self.last_submit = time.monotonic()
        self.idle.clear()
        self.todo.put((item, done))
        return done

    def wait_turn(self, share: float) -> None:
        """On SQLite (one writer at a time, and a pipeline transaction makes every sender
        wait for its 250) the pipeline yields to arriving mail, but for at most `share`
        seconds (serve passes a multiple of its own last message's time): under a steady
        stream each gets its share of the write lock, so neither starves. On PostgreSQL
        writers do not block each other, so the pipeline never waits."""
        if not self.shares_lock:
            return
        give_up = time.monotonic() + min(max(share, 0.005), 2.0)
        while (left := give_up - time.monotonic()) > 0:
            if self.idle.is_set() and time.monotonic() - self.last_submit >= QUIET:
                return
            self.idle.wait(min(left, QUIET))
            time.sleep(min(max(left, 0), QUIET / 5))

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
