"""`[pipeline] workers` (issue 16): on PostgreSQL `serve` runs pipeline worker processes that
claim stored mail in the database (inbound/claiming.py, inbound/workers.py). Real serve nodes
in their own processes on one real PostgreSQL; `kill -9` of a worker and of a node."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, text
from sqlmodel import Session, select

from mailflow import clock, db, models, settings
from mailflow.app import App
from mailflow.inbound import claiming, pipeline, threadkey
from mailflow.serve import pipeline_workers
from tests.conftest import ROOT
from tests.mail import ROADS, outlook_forward, read_sent, reply_to, wire
from tests.test_serve import start, wait_for

NOW = clock.parse("2026-11-23T10:00:00Z")


# -- the thread key -----------------------------------------------------------------------
def key(msg: object, envelope_to: list[str] | None = None) -> str | None:
    return threadkey.of(wire(msg), envelope_to)  # type: ignore[arg-type]


def test_the_thread_key_is_the_reference_the_headers_name_strongest_first() -> None:
    ours = "<cw-2026-00042.0123456789abcdef0123@council.example>"
    reply = outlook_forward(subject="RE: [CW-2026-00007] Pothole")
    assert key(reply) == "CW-2026-7"  # the subject tag, when nothing stronger
    reply["In-Reply-To"] = ours
    assert key(reply) == "CW-2026-42"  # our Message-ID beats the tag
    plus = outlook_forward(subject="Pothole")
    del plus["To"]
    plus["To"] = "Casework <casework+cw-2026-00042.k3j4h5@council.example>"
    assert key(plus) == "CW-2026-42"
    assert key(outlook_forward(), ["casework+CW202642.abc@council.example"]) == "CW-2026-42"
    encoded = outlook_forward(subject="RE: [CW-2026-00042] Schlagloch vor der Tür")
    assert b"=?" in wire(encoded)
    assert key(encoded) == "CW-2026-42"


def test_a_new_forward_and_foreign_ids_have_no_key() -> None:
    fwd = outlook_forward()
    fwd["References"] = "<abc.0123456789@elsewhere.example> <1234@x>"
    assert key(fwd) is None


# -- settings -----------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "33", '"two"'])
def test_workers_is_validated_naming_the_field_and_the_file(config_file: Path,
                                                            value: str) -> None:
    config_file.write_text(config_file.read_text() + f"\n[pipeline]\nworkers = {value}\n")
    with pytest.raises(settings.ConfigError) as err:
        settings.load(config_file)
    assert str(config_file) in str(err.value) and "pipeline.workers" in str(err.value)


def test_sqlite_runs_one_pipeline_whatever_is_configured(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import COUNCIL

    path = tmp_path / "mailflow.toml"
    path.write_text(COUNCIL.format(db_url=f"sqlite:///{tmp_path}/m.db")
                    + "\n[pipeline]\nworkers = 4\n")
    app = App(settings.load(path))
    assert app.settings.pipeline.workers == 4
    with caplog.at_level(logging.WARNING):
        assert pipeline_workers(app) == 0  # the thread in serve's own process
    assert "workers = 4" in caplog.text and "SQLite" in caplog.text


def test_only_pipeline_workers_commit_before_the_disk_has_it(app: App) -> None:
    """A worker's commits may be undone by a power cut (redone from the spool); the
    receivers' and everyone else's wait for the disk (db.early_commits)."""
    pg = db.is_postgres(db.engine(app.url))
    # On PostgreSQL also the schema: the setting must not replace the URL's own options.
    probe = "SELECT current_setting('synchronous_commit') || ' ' || current_schema()" if pg \
        else "PRAGMA synchronous"
    script = ("import sys; from sqlalchemy import text; from mailflow import db\n"
              "if sys.argv[2] == 'worker': db.early_commits()\n"
              "with db.engine(sys.argv[1]).connect() as c:\n"
              f"    print(c.execute(text({probe!r})).scalar())")
    seen = {who: subprocess.run([sys.executable, "-c", script, app.url, who], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.strip()
            for who in ("worker", "receiver")}
    if pg:
        with app.session() as s:
            schema = s.execute(text("SELECT current_schema()")).scalar()
        assert seen == {"worker": f"off {schema}", "receiver": f"on {schema}"}
    else:
        assert seen == {"worker": "1", "receiver": "2"}


# -- PostgreSQL only from here -------------------------------------------------------------
@pytest.fixture
def pg(app: App) -> App:
    if not db.is_postgres(db.engine(app.url)):
        pytest.skip("claims by SKIP LOCKED and worker processes are PostgreSQL's")
    return app


def requests_sent(app: App, n: int) -> list[object]:
    """Open n cases and return the request mail each sent (what officers reply to)."""
    for i in range(n):
        pipeline.receive(app, wire(outlook_forward(
            subject=f"Pothole {i} on Station Road {i}",
            constituent=f"Resident {i} <resident{i}@example.org>")), source="ingest", now=NOW)
    assert pipeline.drain(app, NOW) == n
    with app.session() as s:
        raws = s.exec(select(models.Outbox.raw).where(models.Outbox.kind == "request")
                      .order_by(models.Outbox.id)).all()
    return [message_from_bytes(r, policy=policy.default) for r in raws]


def store(app: App, msg: object) -> int:
    raw_id, duplicate = pipeline.receive(app, wire(msg), source="ingest", now=NOW)  # type: ignore[arg-type]
    assert not duplicate
    return raw_id


def test_a_later_message_of_a_case_waits_while_an_earlier_one_is_in_hand(pg: App) -> None:
    [request] = requests_sent(pg, 1)
    first = store(pg, reply_to(request, ROADS, "Received, passed to the team."))
    second = store(pg, reply_to(request, ROADS, "The pothole was filled on Monday."))
    other = store(pg, outlook_forward(subject="Bins not collected on Mill Lane"))
    with db.session(pg.url) as holder:  # another worker has the first in hand
        holder.exec(select(models.RawMessage).where(models.RawMessage.id == first)
                    .with_for_update()).one()
        assert claiming.candidates(pg) == [other]  # not the first (locked), not the second
        assert claiming.process_one(pg, [second], NOW) is None
        holder.rollback()  # that worker died: its row is free again, still `new`
    assert claiming.candidates(pg) == [first, other]
    assert claiming.drain(pg, NOW) == 3
    with pg.session() as s:
        raws = s.exec(select(models.RawMessage.id, models.RawMessage.state)
                      .where(models.RawMessage.id >= first)).all()
        order = s.exec(select(models.Event.raw_message_id).where(
            models.Event.raw_message_id.in_([first, second]))  # type: ignore[union-attr]
            .order_by(models.Event.id)).all()
    assert {state for _, state in raws} == {"done"}
    assert list(dict.fromkeys(order)) == [first, second]


# -- real serve nodes ----------------------------------------------------------------------
def with_workers(config_file: Path, n: int) -> Path:
    config_file.write_text(config_file.read_text() + f"\n[pipeline]\nworkers = {n}\n")
    return config_file


def spool_states(app: App) -> dict[str, int]:
    with app.session() as s:
        return dict(s.exec(select(models.RawMessage.state, func.count())  # type: ignore[call-overload]
                           .group_by(models.RawMessage.state)).all())


def workers_of(proc: subprocess.Popen[bytes]) -> list[int]:
    """The node's pipeline worker processes (its spawned children)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == proc.pid and b"spawn_main" in cmd and fields[0] != "Z":
            out.append(int(d.name))
    return sorted(out)


def web_address(proc: subprocess.Popen[bytes]) -> str:
    """The web server's address from serve's start line (its port is any free one)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(rb"web (http://[0-9.:]+)", line):
            return m.group(1).decode()
    raise AssertionError("serve printed no web address")


def readyz(web: str) -> dict:
    try:
        with urllib.request.urlopen(f"{web}/readyz", timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503: not ready, with the checks
        return json.loads(e.read())


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def mixed_spool(app: App, cases: int, forwards: int) -> tuple[list[int], list[tuple[int, int]]]:
    """`forwards` new forwards and two replies to each of `cases` open cases, interleaved as
    they would arrive; returns (every stored id, the (first, second) reply pairs)."""
    requests = requests_sent(app, cases)
    ids, pairs = [], []
    for i, request in enumerate(requests):
        a = store(app, reply_to(request, ROADS, "Received, passed to the team."))
        ids.append(a)
        for j in range(forwards // cases):
            ids.append(store(app, outlook_forward(
                subject=f"Bins {i}-{j} on Mill Lane {i}-{j}",
                constituent=f"Neighbour {i}-{j} <n{i}x{j}@example.org>")))
        b = store(app, reply_to(request, ROADS, "The pothole was filled on Monday."))
        ids.append(b)
        pairs.append((a, b))
    return ids, pairs


def exactly_once(app: App, ids: list[int], pairs: list[tuple[int, int]], cases: int) -> None:
    with app.session() as s:
        assert set(s.exec(select(models.RawMessage.state)
                          .where(models.RawMessage.id.in_(ids)))) == {"done"}  # type: ignore[union-attr]
        forwards = len(ids) - 2 * len(pairs)
        assert s.exec(select(func.count()).select_from(models.Case)).one() == cases + forwards
        # one acknowledgement per case: no forward was processed twice
        acks = s.exec(select(models.Outbox.case_id, func.count())  # type: ignore[call-overload]
                      .where(models.Outbox.kind == "acknowledgement")
                      .group_by(models.Outbox.case_id)).all()
        assert len(acks) == cases + forwards and {n for _, n in acks} == {1}
        per_raw = dict(s.exec(select(models.Event.raw_message_id, func.count())  # type: ignore[call-overload]
                              .where(models.Event.raw_message_id.in_(ids))  # type: ignore[union-attr]
                              .group_by(models.Event.raw_message_id)).all())
        replies = [r for pair in pairs for r in pair]
        assert len({per_raw.get(r) for r in replies}) == 1  # each reply recorded alike, once
        for a, b in pairs:  # in the order they were stored
            order = s.exec(select(models.Event.raw_message_id)
                           .where(models.Event.raw_message_id.in_([a, b]))  # type: ignore[union-attr]
                           .order_by(models.Event.id)).all()
            assert list(dict.fromkeys(order)) == [a, b]
        assert s.exec(select(func.count()).select_from(models.Holding)
                      .where(models.Holding.kind == "failed")).one() == 0


def stop(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read().decode() if proc.stdout else ""


def test_two_nodes_with_two_workers_each_drain_the_spool_once_and_in_order(
        pg: App, config_file: Path) -> None:
    cases, forwards = 6, 24
    ids, pairs = mixed_spool(pg, cases, forwards)
    config = with_workers(config_file, 2)
    nodes = [start(config)[1], start(config)[1]]
    try:
        wait_for("both nodes' workers", lambda: all(len(workers_of(p)) == 2 for p in nodes))
        wait_for("the spool drained", lambda: spool_states(pg).get("new", 0) == 0)
    finally:
        logs = [stop(p) for p in nodes]
    assert all("2 pipeline worker process(es)" in log for log in logs), logs
    assert [p.returncode for p in nodes] == [0, 0]  # SIGTERM: workers stopped, clean exit
    assert all(len(re.findall(r"pipeline worker \d stopped", log)) == 2 for log in logs)
    exactly_once(pg, ids, pairs, cases)


def test_kill_9_of_a_worker_mid_batch_loses_nothing_and_it_is_started_again(
        pg: App, config_file: Path) -> None:
    cases, forwards = 4, 40
    ids, pairs = mixed_spool(pg, cases, forwards)
    _, node = start(with_workers(config_file, 2))
    try:
        web = web_address(node)
        first = wait_for("two workers", lambda: (w := workers_of(node)) and len(w) == 2 and w)
        assert readyz(web)["checks"]["pipeline"] == "ok"
        wait_for("work under way", lambda: spool_states(pg).get("done", 0) >= cases + 3)
        os.kill(first[0], signal.SIGKILL)  # type: ignore[index]
        wait_for("a new worker", lambda: len(workers_of(node)) == 2
                 and first[0] not in workers_of(node))  # type: ignore[index]
        wait_for("the spool drained", lambda: spool_states(pg).get("new", 0) == 0)
        wait_for("/readyz ready again", lambda: readyz(web)["status"] == "ready")
        # the workers' pipeline times reach the node's /metrics
        with urllib.request.urlopen(f"{web}/metrics", timeout=10) as r:
            counted = re.search(rb"^mailflow_pipeline_seconds_count (\S+)", r.read(), re.M)
        assert counted and float(counted.group(1)) > 0
    finally:
        log = stop(node)
    assert "exit code -9; starting it again" in log, log
    exactly_once(pg, ids, pairs, cases)


def test_the_workers_die_with_their_node(pg: App, config_file: Path) -> None:
    _, node = start(with_workers(config_file, 2))
    try:
        pids = wait_for("two workers", lambda: (w := workers_of(node)) and len(w) == 2 and w)
        node.kill()  # kill -9: no chance to stop them
        node.wait()
        wait_for("no orphan workers", lambda: all(gone(p) for p in pids), timeout=30)  # type: ignore[union-attr]
    finally:
        stop(node)


def test_drain_on_postgresql_takes_the_same_claim(pg: App) -> None:
    """`drain` on PostgreSQL (tick, ingest) goes through the same claim as the workers."""
    ids = [store(pg, outlook_forward(subject=f"Lights out on Glen Road {i}",
                                     constituent=f"R {i} <r{i}@example.org>"))
           for i in range(3)]
    assert pipeline.drain(pg, NOW) == 3
    with Session(db.engine(pg.url)) as s:
        assert set(s.exec(select(models.RawMessage.state)
                          .where(models.RawMessage.id.in_(ids)))) == {"done"}  # type: ignore[union-attr]


def test_two_ticks_at_once_send_each_chase_digest_and_mail_once(
        pg: App, config_file: Path) -> None:
    """Two nodes' schedulers running every job at the same moment: the chases, the digests and
    the outbox are claimed in the database, so each mail is written to the relay once."""
    requests_sent(pg, 4)
    later = "2026-12-15T10:30:00Z"  # the requests long overdue; digests due (08:00)
    ticks = [subprocess.Popen(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config_file), "tick", "--now",
         later, "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)]
    results = [t.communicate(timeout=300) for t in ticks]
    assert all(t.returncode == 0 for t in ticks), results
    sent = read_sent(pg.settings.maildir)
    kinds = [str(m["X-Mailflow-Kind"]) for m in sent]
    ids = [str(m["Message-ID"]) for m in sent]
    assert len(ids) == len(set(ids)), "a mail was written to the relay twice"
    assert kinds.count("chase") + kinds.count("reminder") >= 4, kinds
    assert "member_digest" in kinds and "staff_digest" in kinds, kinds
    with pg.session() as s:
        chased = s.exec(select(models.Event.request_id, func.count())  # type: ignore[call-overload]
                        .where(models.Event.kind.in_(["chased", "reminded"]))  # type: ignore[attr-defined]
                        .group_by(models.Event.request_id)).all()
        digests = s.exec(select(models.Outbox.recipients)
                         .where(models.Outbox.kind == "member_digest")).all()
    assert len(chased) == 4 and {n for _, n in chased} == {1}
    assert len(digests) == len({tuple(r) for r in digests})
