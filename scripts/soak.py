#!/usr/bin/env python3
"""Soak: three `mailflow serve` nodes on one PostgreSQL, SMTP load spread over them, one node
killed with `kill -9` and restarted every few minutes; then every acknowledged message is
checked in the database.

    .venv/bin/python scripts/soak.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python scripts/soak.py --messages 3000 --minutes 5 --kill-every 60

The load is bench_ingest.py's: members' Outlook forwards (each its own street) and, once the
pipeline has sent requests, officers' replies threaded to them (about 40 % of the messages),
paced evenly over `--minutes` from `--clients` threads, each on a persistent connection to a
node; a message without a 250 (its node was killed) is sent again to the next node. The
victim node (`--victim`, or each node in turn with `--victim all`) is killed every
`--kill-every` seconds and restarted at once on the same SMTP port.

Checks (exit 1 when one fails): every acknowledged Message-ID stored once and processed
(lost 0, quarantined 0); no forward opened two cases; no mail written to the outbound
maildir twice beyond one per kill (a node sends one mail at a time, so a kill can interrupt
at most one send); each node's RSS, sampled from /proc, grown < `--max-rss-growth` % from the
end of warm-up (the first fifth of the run) to the end, for nodes that lived through the run.
Also printed: recovery after each kill (kill -> the new process's /readyz answers 200 ->
its first 250), acceptance latency, the pipeline's drain time.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.parser import BytesHeaderParser
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_ingest as bench  # noqa: E402  (puts ROOT on sys.path too)

from mailflow import clock, db, settings  # noqa: E402
from mailflow.app import App  # noqa: E402

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
SERVE = "import sys; from mailflow import cli; sys.exit(cli.main(sys.argv[1:]))"
REPLY_SHARE = 0.4


@dataclass
class Life:
    """One process of a node, from start to kill (or the end of the run)."""
    proc: subprocess.Popen[bytes]
    started: float
    killed_at: float | None = None
    ready_at: float | None = None  # /readyz first answered 200
    first_ack: float | None = None  # first 250 after start
    rss: list[tuple[float, int]] = field(default_factory=list)  # (time, KiB)


@dataclass
class Node:
    index: int
    port: int
    lives: list[Life] = field(default_factory=list)
    up: threading.Event = field(default_factory=threading.Event)


class Soak:
    def __init__(self, args: argparse.Namespace, folder: Path, url: str, config: Path):
        self.a = args
        self.folder, self.url, self.config = folder, url, config
        self.rng = random.Random(args.seed)
        self.council = settings.load(config)
        self.nodes = [Node(i, bench.free_port()) for i in range(args.nodes)]
        self.lock = threading.Lock()
        self.acked: dict[str, str] = {}  # Message-ID -> "forward" | "reply"
        self.sent_twice_tries = 0  # messages sent again after a failure
        self.latency: list[float] = []
        self.kills: list[tuple[int, Life]] = []
        self.replies: queue.Queue[bytes] = queue.Queue()  # requests to answer
        self.engine = create_engine(url, pool_size=2)

    # -- the nodes ---------------------------------------------------------------------------
    def start(self, node: Node) -> Life:
        log = open(self.folder / f"node{node.index}-{len(node.lives)}.log", "wb")
        env = {**os.environ, "MAILFLOW_DATABASE_URL": self.url}
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--config", str(self.config), "serve",
             "--port", str(node.port), "--web-port", "0"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        life = Life(proc, time.monotonic())
        node.lives.append(life)
        threading.Thread(target=self.watch_ready, args=(node, life, log.name),
                         daemon=True).start()
        return life

    def watch_ready(self, node: Node, life: Life, log: str) -> None:
        """Poll until the new process prints its web address and /readyz answers 200."""
        web = None
        while life.proc.poll() is None and life.killed_at is None:
            if web is None:
                for line in Path(log).read_text(errors="replace").splitlines():
                    found = re.search(r", web (http://[^\s,]+)", line)
                    if line.startswith("mailflow: ") and found:
                        web = found.group(1)
            else:
                try:
                    with urllib.request.urlopen(f"{web}/readyz", timeout=2) as r:
                        if r.status == 200:
                            life.ready_at = time.monotonic()
                            node.up.set()
                            return
                except OSError:
                    pass
            time.sleep(0.05)

    def kill(self, node: Node) -> None:
        life = node.lives[-1]
        node.up.clear()
        life.killed_at = time.monotonic()
        os.kill(life.proc.pid, signal.SIGKILL)
        life.proc.wait()
        self.kills.append((node.index, life))
        self.start(node)

    def sample_rss(self, stop: threading.Event) -> None:
        while not stop.wait(self.a.rss_every):
            for node in self.nodes:
                life = node.lives[-1]
                try:
                    status = Path(f"/proc/{life.proc.pid}/status").read_text()
                except OSError:
                    continue
                kib = next((int(ln.split()[1]) for ln in status.splitlines()
                            if ln.startswith("VmRSS:")), None)
                if kib is not None:  # None: killed, not yet reaped
                    life.rss.append((time.monotonic(), kib))

    # -- the load ----------------------------------------------------------------------------
    def collect_requests(self, stop: threading.Event) -> None:
        """The pipeline's requests to services, as they appear, for the officers to answer."""
        last = 0
        while not stop.wait(1.0):
            with self.engine.connect() as c:
                rows = c.execute(text("SELECT id, raw FROM outbox WHERE kind = 'request' "
                                      "AND id > :last ORDER BY id LIMIT 500"),
                                 {"last": last}).all()
            for row_id, raw in rows:
                last = row_id
                self.replies.put(bytes(raw))

    def message(self, i: int) -> tuple[str, bytes]:
        with self.lock:
            request = None
            if self.rng.random() < REPLY_SHARE:
                try:
                    request = self.replies.get_nowait()
                except queue.Empty:
                    pass
            msg = bench.reply(self.rng, message_from_bytes(request, policy=policy.default)) \
                if request else bench.forward(self.rng, self.council, i)
        return ("reply" if request else "forward"), msg.as_bytes(policy=policy.SMTP)

    def client(self, todo: queue.Queue[int | None], start: float, gap: float,
               deadline: float) -> None:
        """Message i goes to node i mod nodes (so a restarted node gets its share again),
        over one persistent connection per node; without a 250 it goes to the next node."""
        conns: dict[int, smtplib.SMTP] = {}
        while (i := todo.get()) is not None:
            if (wait := start + i * gap - time.monotonic()) > 0:
                time.sleep(wait)
            if time.monotonic() > deadline:
                break
            kind, raw = self.message(i)
            mid = str(message_from_bytes(raw, policy=policy.default)["Message-ID"])
            t = time.perf_counter()
            tries = 0
            while time.monotonic() < deadline + 60:
                node = self.nodes[(i + tries) % len(self.nodes)]
                try:
                    if node.index not in conns:
                        if not node.up.is_set():
                            raise OSError("node down")
                        conns[node.index] = smtplib.SMTP("127.0.0.1", node.port, timeout=60)
                    refused = conns[node.index].sendmail(
                        "soak@example.org", ["casework@council.example"], raw)
                    if refused:
                        raise smtplib.SMTPException(str(refused))
                    now = time.monotonic()
                    with self.lock:
                        self.acked[mid] = kind
                        self.latency.append(time.perf_counter() - t)
                        self.sent_twice_tries += tries > 0
                        life = node.lives[-1]
                        if life.first_ack is None:
                            life.first_ack = now
                    break
                except (OSError, smtplib.SMTPException):
                    tries += 1
                    broken = conns.pop(node.index, None)
                    if broken is not None:
                        try:
                            broken.close()
                        except OSError:
                            pass
                    time.sleep(0.05 * min(tries, 10))
        for smtp in conns.values():
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> dict[str, object]:
        try:
            return self._run()
        finally:
            for node in self.nodes:
                for life in node.lives:
                    if life.proc.poll() is None:
                        life.proc.kill()
                        life.proc.wait()
            self.engine.dispose()

    def _run(self) -> dict[str, object]:
        a = self.a
        for node in self.nodes:
            self.start(node)
        for node in self.nodes:
            if not node.up.wait(120):
                raise SystemExit(f"node {node.index} never became ready; see "
                                 f"{self.folder}/node{node.index}-0.log")
        seconds = a.minutes * 60
        gap = seconds / a.messages
        start = time.monotonic()
        deadline = start + seconds
        stop = threading.Event()
        helpers = [threading.Thread(target=self.sample_rss, args=(stop,), daemon=True),
                   threading.Thread(target=self.collect_requests, args=(stop,), daemon=True)]
        todo: queue.Queue[int | None] = queue.Queue()
        for i in range(a.messages):
            todo.put(i)
        for _ in range(a.clients):
            todo.put(None)
        clients = [threading.Thread(target=self.client, args=(todo, start, gap, deadline),
                                    daemon=True)
                   for _ in range(a.clients)]
        for t in helpers + clients:
            t.start()
        victims = list(range(len(self.nodes))) if a.victim == "all" else [int(a.victim) - 1]
        next_kill, n_kill = start + a.kill_every, 0
        while any(t.is_alive() for t in clients):
            victim = self.nodes[victims[n_kill % len(victims)]]
            # A node still starting after its last kill is not killed again: the next
            # kill waits for it (a kill measures a recovery).
            if time.monotonic() >= next_kill and next_kill < deadline and victim.up.is_set():
                self.kill(victim)
                n_kill += 1
                next_kill = max(next_kill + a.kill_every, time.monotonic() + 1)
            time.sleep(0.05)
        sent_s = time.monotonic() - start
        recovered = all(node.up.wait(300) for node in self.nodes)
        drained = self.drain(a.drain_timeout)
        drain_s = time.monotonic() - start - sent_s
        # Let the outbox go out: a flush runs every [scheduler] outbox_seconds on each node.
        self.settle_outbox(a.drain_timeout)
        stop.set()
        for t in helpers:
            t.join()
        for node in self.nodes:
            node.lives[-1].proc.terminate()
        for node in self.nodes:
            node.lives[-1].proc.wait(timeout=60)
        return self.figures(sent_s, drain_s, drained, recovered)

    def drain(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.engine.connect() as c:
                if not c.execute(text("SELECT count(*) FROM rawmessage WHERE state = 'new'")
                                 ).scalar_one():
                    return True
            time.sleep(0.5)
        return False

    def settle_outbox(self, timeout: float) -> None:
        """Until nothing is queued and due (mail held in a dead node's claim waits out
        outbox.STALE_CLAIM, longer than a soak: it is counted, not waited for)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.engine.connect() as c:
                if not c.execute(text("SELECT count(*) FROM outbox WHERE state = 'queued' "
                                      "AND next_attempt_at <= now()")).scalar_one():
                    return
            time.sleep(0.5)

    # -- the checks --------------------------------------------------------------------------
    def figures(self, sent_s: float, drain_s: float, drained: bool, recovered: bool
                ) -> dict[str, object]:
        a = self.a
        with self.engine.connect() as c:
            stored = c.execute(text(
                "SELECT r.message_id, r.state, r.disposition, count(cs.id) FROM rawmessage r "
                "LEFT JOIN \"case\" cs ON cs.source_message_id = r.id "
                "GROUP BY r.id, r.message_id, r.state, r.disposition")).all()
            outbox = dict(c.execute(text("SELECT state, count(*) FROM outbox GROUP BY state"))
                          .all())
        by_mid: dict[str, list[tuple[str, str | None, int]]] = {}
        for mid, state, disposition, cases in stored:
            by_mid.setdefault(mid, []).append((state, disposition, cases))
        lost = [m for m in self.acked if not any(s == "done" for s, _, _ in by_mid.get(m, []))]
        quarantined = sum(s == "failed" for rows in by_mid.values() for s, _, _ in rows)
        stored_twice = sum(len(rows) - 1 for rows in by_mid.values() if len(rows) > 1)
        forwards = [m for m, kind in self.acked.items() if kind == "forward"]
        duplicated = sum(max(0, sum(n for _, _, n in by_mid.get(m, [])) - 1) for m in forwards)
        opened = sum(any(d == "case_opened" for _, d, _ in by_mid.get(m, [])) for m in forwards)
        replies = [m for m, kind in self.acked.items() if kind == "reply"]
        updates = sum(any(d == "update" for _, d, _ in by_mid.get(m, [])) for m in replies)
        written = Counter(self.maildir_ids())
        sent_twice = sum(n - 1 for n in written.values() if n > 1)
        ready_s, ack_s = [], []
        for killed_at, after in self.restarts():
            if after.ready_at:
                ready_s.append(after.ready_at - killed_at)
            if after.first_ack:
                ack_s.append(after.first_ack - killed_at)
        growth, whole_run = {}, []
        for node in self.nodes:
            for k, life in enumerate(node.lives):
                g = rss_growth(life, self.a.warm_up)
                if g is None:
                    continue
                growth[f"node{node.index + 1}.{k}"] = g
                if k == 0 and life.killed_at is None:  # lived through the whole run
                    whole_run.append(g)
        checks = {
            "recovered after every kill": recovered,
            "drained": drained,
            "lost 0": not lost,
            "quarantined 0": quarantined == 0,
            "stored twice 0": stored_twice == 0,
            "duplicated cases 0": duplicated == 0,
            "sent twice <= kills": sent_twice <= len(self.kills),
            f"RSS growth < {a.max_rss_growth:g} %": bool(whole_run) and all(
                g < a.max_rss_growth for g in whole_run),
        }
        return {
            "messages": a.messages, "acknowledged": len(self.acked),
            "forwards": len(forwards), "replies": len(replies),
            "send_s": round(sent_s, 1), "drain_after_send_s": round(drain_s, 1),
            "accept_per_s": round(len(self.acked) / sent_s, 2),
            "accept_p50_ms": round(1000 * bench.percentile(self.latency, 50), 1)
            if self.latency else None,
            "accept_p99_ms": round(1000 * bench.percentile(self.latency, 99), 1)
            if self.latency else None,
            "resent_after_failure": self.sent_twice_tries,
            "kills": len(self.kills), "lost": len(lost), "lost_ids": lost[:10],
            "quarantined": quarantined, "stored_twice": stored_twice,
            "cases_opened": opened, "duplicated_cases": duplicated,
            "replies_recorded": updates,
            "outbox": outbox, "mail_written": sum(written.values()),
            "mail_written_twice": sent_twice,
            "recover_ready_s": [round(x, 2) for x in ready_s],
            "recover_first_250_s": [round(x, 2) for x in ack_s],
            "recover_ready_median_s": round(statistics.median(ready_s), 2) if ready_s else None,
            "rss_growth_pct": {k: round(v, 1) for k, v in growth.items()},
            "rss_mb_by_tenths": {f"node{n.index + 1}": tenths(n.lives[0])
                                 for n in self.nodes if n.lives[0].killed_at is None},
            "checks": checks,
        }

    def restarts(self) -> list[tuple[float, Life]]:
        """Each kill's moment with the process that replaced it."""
        out = []
        for idx, dead in self.kills:
            lives = self.nodes[idx].lives
            assert dead.killed_at is not None
            out.append((dead.killed_at, lives[lives.index(dead) + 1]))
        return out

    def maildir_ids(self) -> list[str]:
        folder = self.config.parent.parent / "data" / "sent"
        parser = BytesHeaderParser(policy=policy.default)
        out = []
        for f in folder.glob("*.eml") if folder.exists() else []:
            with open(f, "rb") as fh:
                out.append(str(parser.parse(fh)["Message-ID"]))
        return out


def rss_growth(life: Life, warm_up: float) -> float | None:
    """Per cent growth of RSS from the end of warm-up (the median of the samples just after
    the first `warm_up` of the process's life) to its end (the median of the last three)."""
    if len(life.rss) < 6:
        return None
    end = life.killed_at or life.rss[-1][0]
    cut = life.started + warm_up * (end - life.started)
    after = [kib for t, kib in life.rss if t >= cut]
    if len(after) < 6:
        return None
    base = statistics.median(after[:3])
    last = statistics.median(after[-3:])
    return 100 * (last - base) / base


def tenths(life: Life) -> list[float]:
    """RSS in MB at each tenth of a process's life: does it level off after warm-up?"""
    if not life.rss:
        return []
    t0, t1 = life.rss[0][0], life.rss[-1][0]
    marks = [t0 + k * (t1 - t0) / 10 for k in range(11)]
    return [round(next(kib for t, kib in life.rss if t >= m - 1e-9) / 1024, 1) for m in marks]


def prepare(folder: Path, url: str) -> Path:
    """A copy of the sample council on the fresh schema, the jobs every 5 s."""
    (folder / "config").mkdir(parents=True)
    config = folder / "config" / "mailflow.toml"
    shutil.copy(ROOT / "config" / "mailflow.toml", config)
    with open(config, "a") as f:
        f.write("\n[scheduler]\noutbox_seconds = 5\n")
    os.environ["MAILFLOW_DATABASE_URL"] = url
    app = App(settings.load(config))
    db.upgrade(app.url)
    app.start(clock.now())  # the directory, synchronised
    db.engine(app.url).dispose()
    return config


def table(r: dict[str, object]) -> str:
    rows = [(k, v) for k, v in r.items() if k != "checks"]
    checks = r["checks"]
    assert isinstance(checks, dict)
    width = max(len(k) for k, _ in rows)
    lines = [f"  {k:<{width}}  {v}" for k, v in rows]
    lines += [f"  check: {k:<30} {'ok' if ok else 'FAILED'}" for k, ok in checks.items()]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database", default=os.environ.get("MAILFLOW_TEST_DATABASE_URL",
                                                        DEFAULT_DATABASE),
                   help="PostgreSQL URL; the soak runs in a fresh schema, dropped after")
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--kill-every", type=float, default=120, metavar="SECONDS")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--victim", default="3", help="the node killed (1-based), or 'all' in turn")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warm-up", type=float, default=0.2,
                   help="share of a process's life before its RSS baseline")
    p.add_argument("--rss-every", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--max-rss-growth", type=float, default=10.0, metavar="PERCENT")
    p.add_argument("--drain-timeout", type=float, default=900, metavar="SECONDS")
    p.add_argument("--keep", action="store_true", help="keep the schema and the node logs")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not a.database.startswith("postgres"):
        p.error("--database: the soak needs PostgreSQL (several nodes on one database)")
    # SIGTERM (or SIGINT, which a shell's background job ignores) ends the run through the
    # `finally`s below, so no node outlives the script.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    url, drop = bench.fresh_database(a.database, folder)
    assert url is not None
    try:
        config = prepare(folder, url)
        result = Soak(a, folder, url, config).run()
    finally:
        if a.keep:
            print(f"kept {folder} and the schema of {settings._redact(url)}", file=sys.stderr)
        else:
            drop()  # type: ignore[operator]
            shutil.rmtree(folder, ignore_errors=True)
    if a.json:
        print(json.dumps(result))
    else:
        print(f"soak: {a.nodes} nodes, {a.messages} messages over {a.minutes:g} min, "
              f"kill -9 every {a.kill_every:g} s\n{table(result)}")
    checks = result["checks"]
    assert isinstance(checks, dict)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
