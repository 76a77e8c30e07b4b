"""One transaction per message: a pipeline killed (`kill -9`) in the middle of a message, after
its case, request and mail are written but before the commit, leaves the message `new` and
nothing of it stored; the next run processes it once. On SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import func, select

from mailflow import clock, models
from mailflow.app import App
from mailflow.inbound import pipeline
from tests.conftest import ROOT
from tests.mail import outlook_forward, wire
from tests.test_serve import PATIENCE

# The pipeline in a child process, made to stop after dispatch has written everything the
# message causes (flushed, not committed) and to wait there to be killed.
CHILD = """
import sys, time
from pathlib import Path
from mailflow import clock, settings
from mailflow.app import App
from mailflow.inbound import pipeline

app = App(settings.load(Path(sys.argv[1])))
real = pipeline.dispatch

def dispatch_then_wait(ctx, session, raw, parsed, now):
    outcome = real(ctx, session, raw, parsed, now)
    session.flush()
    print("dispatched", outcome.case, flush=True)
    time.sleep(600)

pipeline.dispatch = dispatch_then_wait
pipeline.process(app, int(sys.argv[2]), clock.now())
"""


def counts(app: App) -> dict[str, int]:
    with app.session() as s:
        return {m.__name__: s.exec(select(func.count()).select_from(m)).one()
                for m in (models.Case, models.Request, models.Outbox, models.Event,
                          models.CaseStat)}


def test_a_pipeline_killed_mid_message_leaves_it_new_and_nothing_written(
        app: App, config_file: Path) -> None:
    raw_id, _ = pipeline.receive(app, wire(outlook_forward()), source="ingest", now=clock.now())
    before = counts(app)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(config_file), str(raw_id)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert line.startswith("dispatched CW-"), line + child.stdout.read().decode()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with app.session() as s:
        raw = s.get(models.RawMessage, raw_id)
        assert raw is not None
        assert (raw.state, raw.disposition, raw.case_id, raw.processed_at) == (
            "new", None, None, None)
    assert counts(app) == before
    # On PostgreSQL the dead worker's row lock goes when its server process notices.
    deadline = time.monotonic() + PATIENCE
    while (outcome := pipeline.process(app, raw_id, clock.now())) is None:
        assert time.monotonic() < deadline, "the killed worker's claim was never released"
        time.sleep(0.05)
    assert outcome.case is not None and outcome.rule != "failed"
    after = counts(app)
    assert after["Case"] == before["Case"] + 1 and after["CaseStat"] == before["CaseStat"] + 1
    with app.session() as s:
        raw = s.get(models.RawMessage, raw_id)
        assert raw is not None and raw.state == "done" and raw.case_id is not None
