"""Benchmark the inbound side of `mailflow serve` against a null SMTP sink, in one run.

Each round sends the same N realistic messages (member forwards with and without
attachments, officer replies to earlier requests; 2-40 KB) from several concurrent clients
on persistent SMTP connections, first to a null aiosmtpd sink (answers 250, discards), then
to `mailflow serve` on a fresh SQLite database. Both servers run as child
processes, so the clients never share a GIL with the server. Prints per round and as
medians:

  acceptance  messages/s until every message had its 250 (mailflow answers 250 only once
              the raw message is durably in the spool)
  end-to-end  messages/s until every message is disposed (its case, update or holding-pen
              item committed, with the mail it causes in the outbox)

each also as a ratio to the null sink of the same round.

    .venv/bin/python scripts/bench_ingest.py                 # 1,000 messages, 4 clients, 3 rounds
    .venv/bin/python scripts/bench_ingest.py --messages 100 --rounds 1   # a smoke run

`--database URL` runs each round in a fresh schema of that PostgreSQL database, `--workers N`
runs N serve nodes on it, and `--pipeline-workers 1,2` runs every round once per value of
`[pipeline] workers` (worker processes per node), each against its own null sink, and prints
end-to-end against the first value:

    .venv/bin/python scripts/bench_ingest.py --database postgresql://postgres@127.0.0.1:5432/test \
        --workers 2 --pipeline-workers 1,2 --messages 250 --rounds 1

`--open-cases N` measures instead how the pipeline's rate depends on what is already open:
the same batch of member forwards (`mailflow ingest`'s path, in this process) into a council
with no cases, then into one with N open cases spread over its members and wards; it prints
both rates and their ratio (the target is 0.9x or better: no per-message work may grow with
the cases open).

    .venv/bin/python scripts/bench_ingest.py --open-cases 5000 --messages 150
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.inbound import pipeline  # noqa: E402

WORDS = ("pothole road pavement bin recycling collection housing repair damp mould noise "
         "rats street light outside number the a of my and it has been since weeks please "
         "neighbour children school bus stop corner flooding drain broken again still").split()
TOPICS = ("Pothole on {s}", "Missed bin collection, {s}", "Damp and mould at {s}",
          "Street light out on {s}", "Noise from {s} every night", "Rats near {s}")
# Each message its own street, as in a real ward: the same street twice is a likely
# duplicate, and a council does not get hundreds of duplicates an hour.
NAMES = ("Rowan Birch Hazel Alder Willow Cedar Maple Linden Aspen Holly Elm Ash Oak Beech Larch "
         "Mill Station Church School Castle Bridge Market Union Victoria Albert Kings Queens "
         "Park Burn Glen Brae Loch Craig Whin Broom Heather Thistle Crown Abbey").split()
KINDS = ("Street", "Road", "Lane", "Avenue", "Crescent", "Drive", "Place", "Terrace")


# street() repeats every 39 * 39 * 8 = 12,168 numbers: the open cases' streets start here, so
# up to 6,000 forwards and 6,000 open cases never share one (a shared street in the ward makes
# the new case a probable duplicate, which is more work, not the cost of what is open)
SEED_STREETS = 6_000


def street(i: int) -> str:
    a, b = divmod(i, len(NAMES))
    return f"{NAMES[b]} {NAMES[a % len(NAMES)]} {KINDS[i % len(KINDS)]}"


def words(rng: random.Random, n: int) -> str:
    lines, line = [], []
    for _ in range(n):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            lines.append(" ".join(line).capitalize() + ".")
            line = []
    return "\n".join(lines + [" ".join(line)])


def forward(rng: random.Random, council: settings.Settings, i: int) -> EmailMessage:
    member = rng.choice(council.members)
    subject = rng.choice(TOPICS).format(s=street(i))
    body = words(rng, rng.randint(250, 5500))  # 2-40 KB with the quoted headers
    msg = EmailMessage()
    msg["From"] = f"{member.name} <{member.email}>"
    msg["To"] = council.council.casework_address
    msg["Subject"] = f"FW: {subject}"
    msg["Date"] = "Mon, 23 Nov 2026 09:15:00 +0000"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@member.example>"
    msg.set_content(f"Can you look into this please?\n\n{member.name}\n\n"
                    "________________________________\n"
                    f"From: Resident {i} <resident{i}@example.org>\n"
                    "Sent: 20 November 2026 18:04\n"
                    f"To: {member.name} <{member.email}>\nSubject: {subject}\n\n{body}\n")
    if rng.random() < 0.2:
        msg.add_attachment(rng.randbytes(rng.randint(2_000, 20_000)), maintype="image",
                           subtype="jpeg", filename=f"photo{i}.jpg")
    return msg


def reply(rng: random.Random, request: EmailMessage) -> EmailMessage:
    officer = str(request["To"])
    msg = EmailMessage()
    msg["From"] = officer
    msg["To"] = str(request["Reply-To"] or request["From"])
    msg["Subject"] = f"RE: {request['Subject']}"
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@officer.example>"
    msg["In-Reply-To"] = msg["References"] = str(request["Message-ID"])
    body = request.get_body(("plain",))
    quoted = "\n".join("> " + ln for ln in (body.get_content() if body else "").splitlines())
    msg.set_content(f"{words(rng, rng.randint(30, 200))}\n\nKind regards\nA. Officer\n\n"
                    f"From: {request['From']}\nSent: 23 November 2026 10:00\n"
                    f"To: {officer}\nSubject: {request['Subject']}\n\n{quoted}\n")
    return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stdout.read().decode() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def send_all(ports: list[int], messages: list[bytes], clients: int
             ) -> tuple[float, list[float]]:
    """Seconds until every message has its 250, over `clients` persistent connections spread
    over the servers' ports, and each message's acceptance latency (seconds)."""
    errors: list[str] = []
    latencies: list[float] = []

    def client(port: int, share: list[bytes]) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for raw in share:
                t = time.perf_counter()
                refused = smtp.sendmail("bench@example.org", ["casework@council.example"], raw)
                latencies.append(time.perf_counter() - t)
                if refused:
                    errors.append(str(refused))

    threads = [threading.Thread(target=client, args=(ports[i % len(ports)], messages[i::clients]))
               for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"refused: {errors[:3]}")
    return time.perf_counter() - start, latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a process and its children (serve's pipeline worker
    processes on PostgreSQL), from Linux /proc."""
    total, parents = 0.0, {pid}
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stats[int(d.name)] = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    while parents:
        total += sum((int(stats[p][11]) + int(stats[p][12])) for p in parents if p in stats)
        parents = {c for c, f in stats.items() if int(f[1]) in parents}
    return total / os.sysconf("SC_CLK_TCK")


def counting_serve(count_file: str, argv: list[str]) -> None:
    """`mailflow serve` with every SQL statement counted (a SQLAlchemy event listener), the
    count written to `count_file` when it stops."""
    import atexit

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from mailflow import cli
    count = [0]

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        count[0] += 1

    atexit.register(lambda: Path(count_file).write_text(str(count[0])))
    os.environ["BENCH_COUNT_FILE"] = count_file  # serve's worker processes count too
    raise SystemExit(cli.main(argv))


def count_in_worker(count_file: str) -> None:
    """In a pipeline worker process of a counting serve (spawned, it imports this script as
    `__mp_main__`): count its statements into `count_file.<pid>`."""
    import atexit

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    count = [0]

    @event.listens_for(Engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        count[0] += 1

    atexit.register(lambda: Path(f"{count_file}.{os.getpid()}").write_text(str(count[0])))


def fresh_database(database: str | None, folder: Path) -> tuple[str | None, object]:
    """The round's database URL (None: the council's SQLite file in `folder`) and how to
    drop it: on PostgreSQL a fresh schema in the given database."""
    if not database or not database.startswith("postgres"):
        return database, lambda: None
    from urllib.parse import quote

    from sqlalchemy import text
    base = db.normalise_url(database)
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        db.engine.cache_clear()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema)}", drop


def null_sink(port: int) -> None:
    """The baseline server: aiosmtpd, same data size limit, answers 250 and discards."""
    from aiosmtpd.controller import Controller

    class Null:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 2.0.0 OK"

    c = Controller(Null(), hostname="127.0.0.1", port=port, decode_data=False,
                   data_size_limit=25 * 1024 * 1024)
    c.start()
    print("ready", flush=True)
    threading.Event().wait()


def prepare(folder: Path, rng: random.Random, n: int, database: str | None = None,
            pipeline_workers: int = 1) -> tuple[Path, list[bytes], str]:
    """A copy of the sample council on a fresh database holding the cases the replies answer,
    and the N messages of the round: 60% new forwards, 40% replies to earlier requests."""
    (folder / "config").mkdir(parents=True)
    config = folder / "config" / "mailflow.toml"
    shutil.copy(ROOT / "config" / "mailflow.toml", config)
    with config.open("a") as f:  # worker processes per node (PostgreSQL; SQLite runs one)
        f.write(f"\n[pipeline]\nworkers = {pipeline_workers}\n")
    if database:
        os.environ["MAILFLOW_DATABASE_URL"] = database
    council = settings.load(config)
    app = App(council)
    db.upgrade(app.url)
    app.start(clock.now())  # the directory, synchronised
    now = clock.now()
    replies = int(n * 0.4)
    for i in range(replies):
        raw = forward(rng, council, n + i).as_bytes(policy=policy.SMTP)
        pipeline.receive(app, raw, source="ingest", now=now)
    pipeline.drain(app, now)
    with app.session() as s:
        requests = [message_from_bytes(raw, policy=policy.default) for raw in s.exec(
            select(models.Outbox.raw).where(models.Outbox.kind == "request")).scalars()]
    mail = [reply(rng, r) for r in requests[:replies]]
    mail += [forward(rng, council, i) for i in range(n - len(mail))]
    rng.shuffle(mail)
    db.engine(app.url).dispose()
    return config, [m.as_bytes(policy=policy.SMTP) for m in mail], app.url


def waiting(url: str, since: int) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        new = conn.execute(select(func.count()).select_from(models.RawMessage.__table__)
                           .where(models.RawMessage.state == "new")).scalar_one()
        total = conn.execute(select(func.count()).select_from(models.RawMessage.__table__)
                             ).scalar_one()
    engine.dispose()
    return new + max(0, since - total)


def one_round(n: int, clients: int, seed: int, database: str | None = None, workers: int = 1,
              pipeline_workers: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        url, drop = fresh_database(database, Path(tmp))
        try:
            return _round(Path(tmp), rng, n, clients, url, workers, pipeline_workers)
        finally:
            drop()  # type: ignore[operator]


def _round(tmp: Path, rng: random.Random, n: int, clients: int, url: str | None, workers: int,
           pipeline_workers: int = 1) -> dict[str, float]:
    config, messages, db_url = prepare(tmp, rng, n, url, pipeline_workers)
    with create_engine(db_url).connect() as conn:
        before = conn.execute(select(func.count()).select_from(
            models.RawMessage.__table__)).scalar_one()
    # The baseline, in the same round.
    port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--null-sink", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_listening(port, sink)
    null_s, null_lat = send_all([port], messages, clients)
    sink.kill()
    sink.wait()
    # mailflow serve on the council: `workers` nodes on one database (each one pipeline
    # worker; on SQLite use 1), the clients spread over them.
    env = {**os.environ, "MAILFLOW_DATABASE_URL": db_url}
    nodes = []
    for i in range(workers):
        port = free_port()
        count_file = str(tmp / f"statements-{i}")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--counting-serve", count_file, "--", "--config",
             str(config), "serve", "--port", str(port), "--web-port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        nodes.append((port, proc, count_file))
    logs: list[list[str]] = [[] for _ in nodes]
    try:
        for (port, proc, _), lines in zip(nodes, logs, strict=True):
            wait_listening(port, proc)
            threading.Thread(target=lambda p=proc, out=lines: out.extend(
                ln.decode(errors="replace") for ln in p.stdout), daemon=True).start()
        # The worker processes up, not only the port (SQLite: a thread of serve, none).
        per_node = pipeline_workers if db_url.startswith("postgresql") else 0
        deadline = time.monotonic() + 120
        while sum("pipeline worker" in ln and "started" in ln for out in logs
                  for ln in list(out)) < per_node * workers:
            if time.monotonic() > deadline:
                raise SystemExit("the pipeline workers did not start:\n"
                                 + "".join(logs[0][-20:]))
            time.sleep(0.05)
        cpu0 = sum(cpu_seconds(proc.pid) for _, proc, _ in nodes)
        start = time.perf_counter()
        accept_s, lat = send_all([p for p, _, _ in nodes], messages, clients)
        while waiting(db_url, before + n):
            time.sleep(0.02)
        e2e_s = time.perf_counter() - start
        cpu = sum(cpu_seconds(proc.pid) for _, proc, _ in nodes) - cpu0
    finally:
        for _, proc, _ in nodes:
            proc.terminate()
        for _, proc, _ in nodes:
            proc.wait(timeout=60)
    statements = sum(int(c.read_text()) for _, _, f in nodes
                     for c in Path(f).parent.glob(Path(f).name + "*"))
    size = sum(map(len, messages)) / n / 1024
    return {"messages": n, "pipeline_workers": pipeline_workers,
            "mean_kb": round(size, 1), "null_per_s": n / null_s,
            "accept_per_s": n / accept_s, "e2e_per_s": n / e2e_s,
            "accept_ratio": null_s / accept_s, "e2e_ratio": null_s / e2e_s,
            "null_p50_ms": 1000 * percentile(null_lat, 50),
            "null_p99_ms": 1000 * percentile(null_lat, 99),
            "accept_p50_ms": 1000 * percentile(lat, 50),
            "accept_p99_ms": 1000 * percentile(lat, 99),
            "p99_ratio": percentile(lat, 99) / percentile(null_lat, 99),
            "cpu_ms_per_message": 1000 * cpu / n, "statements_per_message": statements / n}


def seed_open_cases(app: App, n: int, rng: random.Random) -> None:
    """N open cases, each its own constituent and street, spread over the members (and so the
    wards), opened over the last `duplicate_days`; written directly, as they would be stored
    had they come through the pipeline (with their duplicate-search keys where the schema has
    them)."""
    from datetime import timedelta

    from mailflow.casework import duplicates
    now = clock.now()
    days = app.settings.casework.duplicate_days
    with app.session() as s:
        members = s.exec(select(models.Member)).scalars().all()
        for start in range(0, n, 1000):
            rows = []
            for i in range(start, min(n, start + 1000)):
                member = members[i % len(members)]
                who = models.Constituent(name=f"Seed {i}", email=f"seed{i}@example.org",
                                         address=f"{i} {street(SEED_STREETS + i)}")
                s.add(who)
                s.flush()
                subject = rng.choice(TOPICS).format(s=street(SEED_STREETS + i))
                rows.append(models.Case(
                    reference=f"SEED-{i}", status="open", member_id=member.id,
                    ward_id=member.ward_id, constituent_id=who.id, subject=subject,
                    issue=words(rng, 40), received_at=now,
                    opened_at=now - timedelta(hours=rng.uniform(0, 24 * (days - 1)))))
            s.add_all(rows)
            s.flush()
            if hasattr(duplicates, "index"):
                for case in rows:
                    duplicates.index(s, case)
            s.commit()


def open_cases_round(n_open: int, n: int, seed: int, rounds: int = 1) -> dict[str, float]:
    """Messages/s through the pipeline with no cases open, then with `n_open` open, `rounds`
    times alternately (medians). Also the CPU a message takes in each (this process's CPU
    time): on a machine shared with other work the wall-clock rate moves with the load, the
    CPU much less, so the CPU ratio is the steadier reading of the same question."""
    rates: dict[str, list[float]] = {"empty": [], "open": []}
    cpu: dict[str, list[float]] = {"empty": [], "open": []}
    # A short untimed round first: the first messages of a process pay for compiling
    # templates and patterns, which would count against the empty council.
    plan = [("warm-up", 0, min(n, 10))] + [("empty", 0, n), ("open", n_open, n)] * rounds
    for label, opened, count in plan:
        rng = random.Random(seed)
        with tempfile.TemporaryDirectory(prefix="bench-open-") as tmp:
            (Path(tmp) / "config").mkdir()
            config = Path(tmp) / "config" / "mailflow.toml"
            shutil.copy(ROOT / "config" / "mailflow.toml", config)
            council = settings.load(config)
            app = App(council)
            db.upgrade(app.url)
            app.start(clock.now())
            seed_open_cases(app, opened, random.Random(seed + 1))
            raws = [forward(rng, council, i).as_bytes(policy=policy.SMTP)
                    for i in range(count)]
            now = clock.now()
            start, cpu_start = time.perf_counter(), time.process_time()
            for raw in raws:
                pipeline.receive(app, raw, source="ingest", now=now)
            pipeline.drain(app, now)
            if label in rates:
                rates[label].append(count / (time.perf_counter() - start))
                cpu[label].append(1000 * (time.process_time() - cpu_start) / count)
            db.engine(app.url).dispose()
    empty, full = statistics.median(rates["empty"]), statistics.median(rates["open"])
    cpu_empty, cpu_open = statistics.median(cpu["empty"]), statistics.median(cpu["open"])
    return {"open_cases": n_open, "messages": n, "rounds": rounds, "empty_per_s": empty,
            "open_per_s": full, "ratio": full / empty, "empty_cpu_ms": cpu_empty,
            "open_cpu_ms": cpu_open, "cpu_ratio": cpu_empty / cpu_open}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    p.add_argument("--open-cases", type=int, metavar="N",
                   help="compare the pipeline's rate with N cases open against none")
    p.add_argument("--database", metavar="URL",
                   help="PostgreSQL URL: each round runs in a fresh schema of that database "
                        "(default: a fresh SQLite file)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="serve nodes on the one database")
    p.add_argument("--pipeline-workers", default="1", metavar="N[,M...]",
                   help="[pipeline] workers of each node (PostgreSQL); several, comma-"
                        "separated (1,2), run each in every round and compare them")
    p.add_argument("--null-sink", type=int, help=argparse.SUPPRESS)
    p.add_argument("--counting-serve", metavar="FILE", help=argparse.SUPPRESS)
    a, rest = p.parse_known_args()
    if a.null_sink:
        null_sink(a.null_sink)
        return
    if a.counting_serve:
        counting_serve(a.counting_serve, [x for x in rest if x != "--"])
    if a.open_cases is not None:
        r = open_cases_round(a.open_cases, a.messages, seed=0, rounds=a.rounds)
        print(json.dumps(r) if a.json else
              f"{a.messages} forwards, median of {a.rounds}: {r['empty_per_s']:.1f}/s with no "
              f"cases open, {r['open_per_s']:.1f}/s with {a.open_cases} open: "
              f"{r['ratio']:.2f}x (target 0.9x); CPU a message {r['empty_cpu_ms']:.1f} ms "
              f"vs {r['open_cpu_ms']:.1f} ms: {r['cpu_ratio']:.2f}x")
        return
    settings_ = [int(x) for x in a.pipeline_workers.split(",")]
    rounds: dict[int, list[dict[str, float]]] = {w: [] for w in settings_}
    for r in range(a.rounds):
        for w in settings_:  # each setting in every round: the machine's load hits all alike
            result = one_round(a.messages, a.clients, seed=r, database=a.database,
                               workers=a.workers, pipeline_workers=w)
            rounds[w].append(result)
            if not a.json:
                print(f"round {r + 1}" + (f", {w} pipeline worker(s) per node"
                                          if len(settings_) > 1 else "")
                      + f": null sink {result['null_per_s']:.0f}/s, acceptance "
                      f"{result['accept_per_s']:.0f}/s ({result['accept_ratio']:.2f}x), "
                      f"end-to-end {result['e2e_per_s']:.0f}/s ({result['e2e_ratio']:.2f}x), "
                      f"mean {result['mean_kb']} KB; acceptance latency p50 "
                      f"{result['accept_p50_ms']:.1f} ms, p99 {result['accept_p99_ms']:.1f} ms "
                      f"({result['p99_ratio']:.1f}x the null sink's p99); "
                      f"{result['cpu_ms_per_message']:.1f} CPU-ms and "
                      f"{result['statements_per_message']:.1f} SQL statements per message",
                      flush=True)
    medians = {w: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
               for w, rs in rounds.items()}
    if a.json:
        if len(settings_) == 1:
            print(json.dumps({"rounds": rounds[settings_[0]], "median": medians[settings_[0]]}))
        else:
            print(json.dumps({"by_pipeline_workers": {
                str(w): {"rounds": rounds[w], "median": medians[w]} for w in settings_}}))
        return
    for w, median in medians.items():
        print(f"median of {a.rounds}" + (f", {w} pipeline worker(s) per node"
                                         if len(settings_) > 1 else "")
              + f": acceptance {median['accept_ratio']:.2f}x the null sink "
              f"(target 0.4x), end-to-end {median['e2e_ratio']:.2f}x (target 0.2x, must 0.12x), "
              f"p99 acceptance latency {median['p99_ratio']:.1f}x the null sink's (target 10x), "
              f"{median['cpu_ms_per_message']:.1f} CPU-ms and "
              f"{median['statements_per_message']:.1f} SQL statements per message")
    if len(settings_) > 1:
        base = medians[settings_[0]]["e2e_per_s"]
        print("end-to-end against " + f"{settings_[0]} pipeline worker(s): " + ", ".join(
            f"{w}: {m['e2e_per_s'] / base:.2f}x" for w, m in medians.items()))

if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__" and os.environ.get("BENCH_COUNT_FILE"):
    count_in_worker(os.environ["BENCH_COUNT_FILE"])
