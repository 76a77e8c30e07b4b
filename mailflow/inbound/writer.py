"""The spool writer of `mailflow serve`: one thread stores what the receivers hand it, every
message waiting at that moment in one commit (group commit). One fsync answers many SMTP
sessions, so acceptance runs at disk speed while the pipeline catches up."""

from __future__ import annotations

import logging
import multiprocessing
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


class Turns:
    """When the spool writer last took mail, and whether it is idle, in memory shared with
    serve's pipeline process. On SQLite the two share one write lock, and a pipeline
    transaction makes every sender wait for its 250: the pipeline yields to arriving mail
    (`wait`), for at most a share of its own time, so neither starves. CLOCK_MONOTONIC is
    one clock for every process of the machine."""

    def __init__(self) -> None:
        # [last submit (time.monotonic), idle (1.0) or busy (0.0)]
        self.state = multiprocessing.get_context("spawn").RawArray("d", [0.0, 1.0])

    def submitted(self) -> None:
        self.state[0] = time.monotonic()
        self.state[1] = 0.0

    def idle(self) -> None:
        self.state[1] = 1.0

    def wait(self, share: float) -> None:
        """Until the writer is idle and no mail came for QUIET seconds, or `share` seconds
        have passed (at least 5 ms, at most 2 s)."""
        give_up = time.monotonic() + min(max(share, 0.005), 2.0)
        while (now := time.monotonic()) < give_up:
            if self.state[1] and now - self.state[0] >= QUIET:
                return
            time.sleep(min(give_up - now, QUIET / 5))


class SpoolWriter(threading.Thread):
    def __init__(self, app: App, on_stored: Callable[[int], None], turns: Turns | None = None):
        super().__init__(name="spool-writer", daemon=True)
        self.app = app
        self.on_stored = on_stored
        self.turns = turns or Turns()
        self.todo: queue.Queue[tuple[spool.Incoming, Future[tuple[int, bool]]] | None] = (
            queue.Queue())

    def submit(self, item: spool.Incoming) -> Future[tuple[int, bool]]:
        """Future of (spool id, duplicate); raises if the message could not be stored."""
        done: Future[tuple[int, bool]] = Future()
        self.turns.submitted()
        self.todo.put((item, done))
        return done

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
                self.turns.idle()
        self.turns.idle()

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
