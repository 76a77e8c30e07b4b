"""`mailflow serve`: the SMTP (or LMTP) receiver, the IMAP receiver (with `[imap]`), the
spool writer, the pipeline worker and the scheduled jobs in one process (on PostgreSQL the
pipeline is `[pipeline] workers` child processes instead, inbound/workers.py). Stops cleanly on
SIGTERM or Ctrl-C: the receivers first, then the writer commits what it holds, then the
worker finishes the message it holds (the rest stay in the spool for the next start)."""

from __future__ import annotations

import errno
import logging
import queue
import signal
import threading
import time
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from mailflow import clock, db, metrics, settings
from mailflow.app import App
from mailflow.inbound import pipeline, workers
from mailflow.inbound.imap import Receiver
from mailflow.inbound.smtp import Handler, Listener
from mailflow.inbound.writer import SpoolWriter
from mailflow.jobs import tick
from mailflow.ops import systemd
from mailflow.web import health
from mailflow.web.server import WebServer

log = logging.getLogger(__name__)

WRITER_SHARE = 3  # on SQLite: the spool writer's turn, in multiples of a pipeline message


class CannotListen(Exception):
    """The receiver's port is taken (or not ours to take): nothing was started."""


class Worker(threading.Thread):
    """Takes stored messages through the pipeline, so SMTP answers at disk speed."""

    def __init__(self, app: App, writer: SpoolWriter):
        super().__init__(name="pipeline", daemon=True)
        self.app = app
        self.writer = writer
        self.todo: queue.Queue[int | None] = queue.Queue()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self.sweep(self.app, clock.now())
        except Exception:  # noqa: BLE001 - the database may not be up yet; the job sweeps again
            log.exception("could not read the spool at start")
        took = 0.0
        while (raw_id := self.todo.get()) is not None and not self.stopping.is_set():
            # Senders waiting for their 250 come first, for up to three times what the
            # last message took: about 3/4 of the lock for them, 1/4 at least for us.
            self.writer.wait_turn(WRITER_SHARE * took)
            start = time.monotonic()
            try:
                pipeline.process(self.app, raw_id, clock.now())
            except Exception:  # noqa: BLE001 - it stays in the spool; the sweep job retries
                log.exception("pipeline failed on message %s", raw_id)
            took = time.monotonic() - start

    def sweep(self, app: App, now: datetime) -> dict[str, int]:
        """serve's spool job: what another process stored (or a crash left) joins this
        worker's queue rather than being processed in the scheduler's thread, so it too
        takes turns with the spool writer."""
        if not self.todo.empty() or self.stopping.is_set():
            return {"queued": 0}
        ids = pipeline.pending(app)
        for raw_id in ids:
            self.todo.put(raw_id)
        return {"queued": len(ids)}

    def stop(self) -> None:
        """Finish the message in hand and stop; what is still queued stays `new` in the
        spool, and the next start's sweep takes it (a None behind a long queue would have
        kept the process busy with all of it after SIGTERM)."""
        self.stopping.set()
        self.todo.put(None)
        self.join(timeout=30)


def pipeline_workers(app: App) -> int:
    """How many pipeline worker processes this node runs: `[pipeline] workers` on
    PostgreSQL; 0 on SQLite, where one thread of this process is the pipeline."""
    n = app.settings.pipeline.workers
    if db.is_postgres(db.engine(app.url)):
        return n
    if n > 1:
        log.warning("[pipeline] workers = %s in %s: SQLite has one writer, so serve runs one "
                    "pipeline worker; more are for PostgreSQL", n, app.settings.path)
    return 0


def serve(app: App, host: str | None = None, port: int | None = None,
          protocol: str | None = None, web_port: int | None = None) -> None:
    s = app.settings
    protocol = protocol or s.smtp.protocol
    stop = threading.Event()
    n = pipeline_workers(app)
    # On PostgreSQL worker processes claim stored mail in the database (inbound/claiming.py);
    # on SQLite a thread here takes it in turns with the spool writer.
    pool = workers.Pool(s, n) if n else None
    writer = SpoolWriter(app, pool.wake if pool else lambda raw_id: worker.todo.put(raw_id))
    worker = Worker(app, writer)
    controller = Listener(
        Handler(writer, protocol, s.is_ours, s.smtp.allows), protocol, hostname=host or s.smtp.host,
        port=port or s.smtp.port, data_size_limit=s.smtp.max_message_size,
        server_hostname="mailflow", decode_data=False, ident="mailflow",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    # APScheduler logs every run at INFO; `_run` logs a job by name when it did something.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # A run still going when the next is due is skipped (max_instances=1, coalesce): that is
    # the design on a busy machine, not a fault, so it is not logged as one.
    logging.getLogger("apscheduler.scheduler").addFilter(
        lambda r: "maximum number of running instances" not in r.getMessage())
    imap = Receiver(app, pool.wake if pool else worker.todo.put) if s.imap.host else None
    scheduler = BackgroundScheduler(timezone="UTC")
    every = s.scheduler.outbox_seconds
    jobs: dict[str, tick.Job] = {**tick.JOBS, "process_spool": worker.sweep}
    if pool:  # the workers look at the spool themselves; the job only wakes them
        jobs["process_spool"] = lambda _app, _now: pool.wake() or {}
    for name, job in jobs.items():
        scheduler.add_job(_run, "interval", seconds=every, args=[app, name, job], id=name,
                          name=name, max_instances=1, coalesce=True)

    on_signal(stop)
    try:  # the port first: when it is taken, nothing else has started
        controller.start()
    except OSError as e:
        where = f"{controller.hostname}:{controller.port}"
        why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or e)
        raise CannotListen(f"cannot listen on {where}: {why}") from None
    if pool:
        pool.start()
    else:
        worker.start()
    writer.start()  # a sender accepted meanwhile waits for its 250 until the writer runs
    if imap:
        imap.start()
    scheduler.start()

    def receivers() -> dict[str, bool]:
        thread = getattr(controller, "_thread", None)
        running = {"smtp": bool(thread and thread.is_alive()),
                   "pipeline": pool.alive() if pool else worker.is_alive()}
        if imap:
            running["imap"] = bool(imap.thread and imap.thread.is_alive())
        return running

    web = start_web(app, receivers, web_port)
    systemd.watchdog(lambda: all(receivers().values()), stop)
    log.info("mailflow serving %s on %s:%s for %s", protocol.upper(), controller.hostname,
             controller.port, s.council.casework_address)
    print(f"mailflow: {protocol.upper()} on {controller.hostname}:{controller.port}, "
          f"database {settings._redact(app.url)}, outbound {s.outbound.transport}"
          + (f", IMAP {imap.where}" if imap else "")
          + (f", web {web.address}" if web else "")
          + (f", {n} pipeline worker process(es)" if pool else ""), flush=True)
    systemd.notify("READY=1")
    if pool:
        systemd.notify(f"STATUS=taking mail; {n} pipeline worker process(es): pids "
                       + " ".join(map(str, pool.pids())))
    try:
        stop.wait()
    finally:
        systemd.notify("STOPPING=1")
        worker.stopping.set()  # at once: the scheduler below may wait for a running job
        if pool:
            pool.stopping.set()  # no restarts from here on
        controller.stop()
        if web:
            web.stop()
        writer.stop()
        if imap:
            imap.stop()
        scheduler.shutdown(wait=True)
        if pool:
            pool.stop()
        else:
            worker.stop()
        log.info("mailflow stopped")


def on_signal(stop: threading.Event) -> None:
    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def wait_for_signal() -> None:
    """Until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    on_signal(stop)
    stop.wait()


def start_web(app: App, receivers: health.Receivers, port: int | None = None
              ) -> WebServer | None:
    """Health and metrics beside the mail: a busy port is an error in the log, not a reason to
    stop taking mail."""
    cfg = app.settings.web
    port = cfg.port if port is None else port
    try:
        return WebServer(health.create(app, receivers), cfg.host, port).start()
    except OSError as e:
        log.error("web: cannot listen on %s:%s (%s); /livez, /readyz and /metrics are off",
                  cfg.host, port, e.strerror or e)
        return None


def _run(app: App, name: str, job: tick.Job) -> None:
    try:
        result = job(app, clock.now())
        if any(result.values()):
            log.info("%s: %s", name, result, extra={"job": name})
    except Exception:  # noqa: BLE001 - a failing job must not stop the scheduler
        log.exception("job %s failed", name, extra={"job": name})
        metrics.job_ran(name, ok=False)
    else:
        metrics.job_ran(name, ok=True)
