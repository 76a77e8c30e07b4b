"""`serve`'s pipeline worker processes on PostgreSQL (`[pipeline] workers`): each its own
interpreter (multiprocessing spawn, so a second core helps) and its own engine, claiming
stored messages in the database (inbound/claiming.py). The parent keeps the receivers, the spool
writer, the web server and the scheduler, and supervises:

- it wakes the workers when it has stored mail (a byte down each worker's control pipe);
  they also look every POLL seconds, for what other nodes, IMAP or `ingest` stored;
- a worker that dies is started again; one that keeps dying waits longer each time;
- the workers die with the parent: the kernel kills them when it goes (PR_SET_PDEATHSIG on
  Linux), and a worker also stops when its control pipe reports the parent gone, so
  `kill -9` of the parent leaves no orphan (the message in hand rolls back);
- each message's pipeline time comes back up a report pipe into the parent's
  `mailflow_pipeline_seconds`, so a node's /metrics counts its workers' messages;
- a clock pinned in the parent (`serve --now`) is pinned in the workers too."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import struct
import sys
import threading
import time
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import Any

from mailflow import clock, metrics
from mailflow.settings import Settings

log = logging.getLogger(__name__)

POLL = 1.0  # seconds an idle worker waits before looking at the spool again
WAKE, STOP = b"w", b"s"
_SPAWN = multiprocessing.get_context("spawn")


class Pool:
    def __init__(self, settings: Settings, n: int):
        self.settings = settings
        self.n = n
        self.slots: list[_Slot | None] = [None] * n
        self.stopping = threading.Event()  # no more restarts
        self.halt = threading.Event()  # the supervisor stops the workers and ends
        self.started = threading.Event()
        self.restarts = 0
        # The supervisor thread starts every worker: the kernel's parent-death signal follows
        # the thread that forked, so it must live as long as the workers.
        self.thread = threading.Thread(target=self._supervise, name="pipeline-workers",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.started.wait(timeout=60)

    def wake(self, _raw_id: int | None = None) -> None:
        """Mail was stored: a waiting worker takes it at once (a busy one finds it anyway)."""
        for slot in self.slots:
            if slot is not None:
                slot.send(WAKE)

    def alive(self) -> bool:
        """Every worker running (/readyz, the systemd watchdog)."""
        return all(s is not None and s.process.is_alive() for s in self.slots)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots if s is not None and s.process.pid]

    def stop(self, timeout: float = 30) -> None:
        """Each worker finishes the message in hand and stops; the rest stay `new`."""
        self.stopping.set()
        for slot in self.slots:
            if slot is not None:
                slot.send(STOP)
                # SIGTERM too: a worker still starting (its imports) cannot read the pipe
                # yet, and dies of it at once; a running one finishes the message in hand.
                slot.process.terminate()
        self.halt.set()
        self.thread.join(timeout=timeout + 5)

    # -- the supervisor thread ------------------------------------------------------------
    def _supervise(self) -> None:
        try:
            for i in range(self.n):
                self.slots[i] = _Slot.start(self.settings, i + 1)
        finally:
            self.started.set()
        due: dict[int, tuple[float, int]] = {}  # slot -> (when to start it again, deaths)
        while not self.halt.is_set():
            live = [s for s in self.slots if s is not None]
            ready = wait([s.process.sentinel for s in live] + [s.reports for s in live],
                         timeout=0.5)
            for s in live:
                if s.reports in ready:
                    s.relay()
            for i, s in enumerate(self.slots):
                if s is None or s.process.is_alive() or self.stopping.is_set():
                    continue
                s.relay()
                s.close()
                deaths = s.quick_deaths()
                pause = min(2 ** deaths, 30) if deaths else 0
                log.error("pipeline worker %s (pid %s) stopped with exit code %s; starting it "
                          "again in %s s", i + 1, s.process.pid, s.process.exitcode, pause)
                due[i] = (time.monotonic() + pause, deaths)
                self.slots[i] = None
            for i, (at, deaths) in list(due.items()):
                if time.monotonic() >= at and not self.stopping.is_set():
                    del due[i]
                    self.slots[i] = _Slot.start(self.settings, i + 1, deaths)
                    self.restarts += 1
        self._stop_all()

    def _stop_all(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        for s in self.slots:
            if s is None:
                continue
            s.process.join(max(deadline - time.monotonic(), 0.1))
            if s.process.is_alive():
                log.warning("pipeline worker pid %s did not stop; killing it", s.process.pid)
                s.process.kill()
                s.process.join(5)
            s.relay()
            s.close()


class _Slot:
    """One worker process and the parent's ends of its two pipes."""

    def __init__(self, process: Any, control: Connection, reports: Connection, deaths: int):
        self.process = process
        self.control = control
        self.reports = reports
        self.deaths = deaths  # quick deaths in a row before this start
        self.born = time.monotonic()

    @classmethod
    def start(cls, settings: Settings, number: int, deaths: int = 0) -> _Slot:
        control_r, control_w = _SPAWN.Pipe(duplex=False)
        reports_r, reports_w = _SPAWN.Pipe(duplex=False)
        # daemonic: should serve's interpreter end without stopping them, multiprocessing
        # terminates them instead of waiting for them
        p = _SPAWN.Process(target=main, args=(settings, number, os.getpid(), control_r,
                                              reports_w, clock.pinned()),
                           name=f"mailflow-pipeline-{number}", daemon=True)
        p.start()
        control_r.close()  # the child's ends: when the child goes, the parent sees EOF
        reports_w.close()
        os.set_blocking(control_w.fileno(), False)  # wake never blocks the spool writer
        return cls(p, control_w, reports_r, deaths)

    def quick_deaths(self) -> int:
        """Died within 10 s of starting: counts towards a longer pause before the next."""
        return self.deaths + 1 if time.monotonic() - self.born < 10 else 0

    def send(self, what: bytes) -> None:
        try:
            self.control.send_bytes(what)
        except (BlockingIOError, BrokenPipeError, OSError):
            pass  # a full pipe has wakes enough; a dead worker is restarted by the supervisor

    def relay(self) -> None:
        """The pipeline seconds the worker reported, into this process's histogram."""
        try:
            while self.reports.poll():
                data = self.reports.recv_bytes()
                for (seconds,) in struct.iter_unpack("d", data):
                    metrics.PIPELINE.observe(seconds)
        except (EOFError, OSError):
            pass

    def close(self) -> None:
        for c in (self.control, self.reports):
            try:
                c.close()
            except OSError:
                pass


# -- in the worker process ----------------------------------------------------------------
def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent goes; elsewhere the control pipe's
    EOF does it, between messages."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it went before we asked
        os._exit(0)


def main(settings: Settings, number: int, parent: int, control: Connection,
         reports: Connection, pinned: datetime | None = None
         ) -> None:
    """A worker process: claim and process messages until told to stop or the parent goes."""
    die_with_parent(parent)
    clock.pin(pinned)
    from mailflow import db

    db.early_commits()  # redone from the spool if a power cut undoes them
    from mailflow.ops import logs

    logs.configure(logging.INFO)
    logs.apply(settings.logging.format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the message in hand, go
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us in turn
    from mailflow.app import App
    from mailflow.inbound import claiming

    app = App(settings)
    took: list[float] = []
    log.info("pipeline worker %s started (pid %s)", number, os.getpid())
    failures = 0

    def stopping() -> bool:
        """Told to stop (between two messages: the one in hand is finished)?"""
        try:
            while control.poll():
                if control.recv_bytes() == STOP:
                    stop.set()
        except (EOFError, OSError):  # the parent is gone
            stop.set()
        return stop.is_set()

    while not stop.is_set():
        try:
            done = claiming.batch(app, clock.now, took.append, stopping)
            failures = 0
        except Exception as e:  # noqa: BLE001 - the database went away: wait, then again
            failures += 1
            done = 0
            log.warning("pipeline worker %s: %s; trying again", number,
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            stop.wait(min(2 ** failures * 0.1, 5))
        if took:
            try:
                reports.send_bytes(struct.pack(f"{len(took)}d", *took))
            except OSError:
                return  # the parent is gone
            took.clear()
        try:  # busy: only a look at the pipe; idle: until a wake, a stop, or POLL seconds
            if control.poll(0 if done else POLL):
                while control.poll():
                    if control.recv_bytes() == STOP:
                        stop.set()
        except (EOFError, OSError):
            return  # the parent is gone
        if os.getppid() != parent:
            return
    log.info("pipeline worker %s stopped", number)
