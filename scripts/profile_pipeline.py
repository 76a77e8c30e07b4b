"""Where the pipeline's CPU goes: `pipeline.process` on a mix of messages, in this process.

The messages are bench_ingest.py's own (members' forwards, a fifth with a photo; officers'
replies threaded to requests opened beforehand, 40 % of the mix), stored in the spool of a
fresh SQLite copy of the sample council. A few are processed first, untimed, so compiling
templates and patterns does not count. Then the rest are processed twice over, each time
on a fresh copy with the same messages:

  1. timed, without the profiler: CPU-ms per message (forwards and replies apart), and SQL
     statements per message (every statement executed, counted by a SQLAlchemy listener);
  2. under cProfile (timing CPU, not the wall clock, so other work on the machine and waits
     for the disk do not count): the CPU grouped by module (own time), and the cumulative
     share of the pipeline's main steps. The profiler's own overhead inflates the figures
     (about 2-3x, more for Python-heavy code such as the ORM): read the shares.

    .venv/bin/python scripts/profile_pipeline.py                 # 60 messages
    .venv/bin/python scripts/profile_pipeline.py --messages 200 --top 40 --json
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import sys
import tempfile
import time
from collections import defaultdict
from email import message_from_bytes, policy
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_ingest  # noqa: E402

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.inbound import pipeline  # noqa: E402

# The steps whose cumulative time is worth a line: (label, file suffix, function name).
STEPS = (
    ("pipeline.process (all)", "inbound/pipeline.py", "_process"),
    ("parse (stdlib email)", "inbound/parse.py", "parse"),
    ("understand the message", "inbound/dispatch.py", "read"),
    ("dispatch (rules + casework)", "inbound/dispatch.py", "dispatch"),
    ("open a case", "casework/cases.py", "open_case"),
    ("duplicate search", "casework/duplicates.py", "find"),
    ("duplicate index", "casework/duplicates.py", "index"),
    ("mail.send (all outgoing mail)", "outbound/mail.py", "send"),
    ("  render (Jinja2 + headers)", "outbound/render.py", "render"),
    ("  outbox.queue", "outbound/outbox.py", "queue"),
    ("statistics on commit", "reports/stats.py", "record_all"),
    ("statistics on commit (all)", "mailflow/app.py", "record"),
    ("session.commit", "orm/session.py", "commit"),
    ("session.flush", "orm/session.py", "flush"),
    ("session.execute (queries)", "orm/session.py", "execute"),
)


def group(filename: str) -> str:
    """A module's group: mailflow modules by name, libraries by package."""
    path = filename.replace("\\", "/")
    if "/mailflow/" in path:
        return "mailflow." + path.rsplit("/mailflow/", 1)[1].removesuffix(".py").replace("/", ".")
    for lib in ("sqlalchemy/orm", "sqlalchemy/engine", "sqlalchemy/sql", "sqlalchemy",
                "sqlmodel", "jinja2", "markupsafe", "pydantic", "email", "mailparser",
                "html", "re", "json", "zoneinfo", "holidays", "encodings", "base64", "quopri"):
        if f"/{lib}/" in path or path.endswith(f"/{lib}.py"):
            return lib.replace("/", ".")
    if path.startswith("<") or path == "~":
        return "builtins (C: sqlite3, regex, str...)"
    return Path(path).stem


def build(n: int, warm: int, seed: int, folder: Path) -> tuple[App, list[int], list[str]]:
    """A fresh council holding the cases the replies answer, with `warm + n` messages in its
    spool; returns the app, the spool ids and each message's kind (forward or reply)."""
    rng = random.Random(seed)
    _config, messages, url = bench_ingest.prepare(folder, rng, n + warm)
    app = App(settings.load(folder / "config" / "mailflow.toml"))
    assert app.url == url
    now = clock.now()
    ids, kinds = [], []
    for raw in messages:
        ids.append(pipeline.receive(app, raw, source="ingest", now=now)[0])
        msg = message_from_bytes(raw, policy=policy.compat32)
        kinds.append("reply" if msg["In-Reply-To"] else "forward")
    return app, ids, kinds


class Counter:
    """SQL statements executed while `on`."""

    def __init__(self) -> None:
        self.on, self.count = False, 0
        event.listen(Engine, "before_cursor_execute", self._count)

    def _count(self, *_args: object) -> None:
        self.count += self.on

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._count)


def timed(n: int, warm: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="profile-pipeline-") as tmp:
        app, ids, kinds = build(n, warm, seed, Path(tmp))
        now = clock.now()
        for raw_id in ids[:warm]:
            pipeline.process(app, raw_id, now)
        counter = Counter()
        cpu: dict[str, list[float]] = defaultdict(list)
        statements: dict[str, list[int]] = defaultdict(list)
        try:
            for raw_id, kind in zip(ids[warm:], kinds[warm:], strict=True):
                before, t = counter.count, time.process_time()
                counter.on = True
                outcome = pipeline.process(app, raw_id, now)
                counter.on = False
                cpu[kind].append(1000 * (time.process_time() - t))
                statements[kind].append(counter.count - before)
                assert outcome is not None and outcome.rule != "failed", outcome
        finally:
            counter.close()
        with app.session() as s:
            failed = s.exec(select(models.RawMessage.id)
                            .where(models.RawMessage.state == "failed")).all()
        db.engine(app.url).dispose()
    assert not failed, f"messages quarantined: {failed}"
    every = [x for v in cpu.values() for x in v]
    result = {"messages": len(every), "forwards": len(cpu["forward"]),
              "replies": len(cpu["reply"]), "cpu_ms_per_message": sum(every) / len(every),
              "statements_per_message": sum(map(sum, statements.values())) / len(every)}
    for kind in ("forward", "reply"):
        if cpu[kind]:
            result[f"cpu_ms_{kind}"] = sum(cpu[kind]) / len(cpu[kind])
            result[f"statements_{kind}"] = sum(statements[kind]) / len(statements[kind])
    return result


def profiled(n: int, warm: int, seed: int) -> pstats.Stats:
    with tempfile.TemporaryDirectory(prefix="profile-pipeline-") as tmp:
        app, ids, _ = build(n, warm, seed, Path(tmp))
        now = clock.now()
        for raw_id in ids[:warm]:
            pipeline.process(app, raw_id, now)
        profiler = cProfile.Profile(time.process_time)  # CPU, not wall: the machine is shared
        for raw_id in ids[warm:]:
            profiler.runcall(pipeline.process, app, raw_id, now)
        db.engine(app.url).dispose()
    return pstats.Stats(profiler)


def trace(warm: int, seed: int) -> dict[str, list[str]]:
    """The SQL statements of the first forward and the first reply after the warm-up, in
    order (each cut to 160 characters): where the next statement to save is."""
    shown: dict[str, list[str]] = {"forward": [], "reply": []}
    with tempfile.TemporaryDirectory(prefix="profile-pipeline-") as tmp:
        app, ids, kinds = build(40, warm, seed, Path(tmp))
        now = clock.now()
        for raw_id in ids[:warm]:
            pipeline.process(app, raw_id, now)
        into: list[list[str]] = []

        def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            if into:
                into[0].append(" ".join(statement.split())[:160])

        event.listen(Engine, "before_cursor_execute", note)
        try:
            for raw_id, kind in zip(ids[warm:], kinds[warm:], strict=True):
                into[:] = [shown[kind]] if not shown[kind] else []
                pipeline.process(app, raw_id, now)
                if all(shown.values()):
                    break
        finally:
            event.remove(Engine, "before_cursor_execute", note)
        db.engine(app.url).dispose()
    return shown


def summarise(stats: pstats.Stats, n: int, top: int) -> dict[str, object]:
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in raw.values())
    modules: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, _callers) in raw.items():
        modules[group(filename)] += tt
    steps = {}
    for label, suffix, name in STEPS:
        ct = sum(v[3] for (f, _l, fn), v in raw.items()
                 if fn == name and f.replace("\\", "/").endswith(suffix))
        steps[label] = ct
    ordered = sorted(modules.items(), key=lambda kv: -kv[1])[:top]
    return {
        "profiled_ms_per_message": 1000 * total / n,
        "modules": [(m, round(1000 * t / n, 3), round(100 * t / total, 1)) for m, t in ordered],
        "steps": [(k, round(1000 * v / n, 3), round(100 * v / total, 1))
                  for k, v in steps.items()],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=60)
    p.add_argument("--warm", type=int, default=6, help="messages processed first, untimed")
    p.add_argument("--top", type=int, default=25, help="modules listed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dump", metavar="FILE", help="write the raw cProfile stats here")
    p.add_argument("--trace", action="store_true",
                   help="print the SQL statements of one forward and one reply, and stop")
    a = p.parse_args()
    if a.trace:
        for kind, statements in trace(a.warm, a.seed).items():
            print(f"{kind}: {len(statements)} statements")
            print("\n".join(f"  {s}" for s in statements))
        return
    figures = timed(a.messages, a.warm, a.seed)
    stats = profiled(a.messages, a.warm, a.seed)
    if a.dump:
        stats.dump_stats(a.dump)
    summary = summarise(stats, figures["messages"], a.top)  # type: ignore[arg-type]
    if a.json:
        print(json.dumps({**figures, **summary}))
        return
    print(f"{figures['messages']} messages ({figures['forwards']} forwards, "
          f"{figures['replies']} replies), without the profiler: "
          f"{figures['cpu_ms_per_message']:.1f} CPU-ms and "
          f"{figures['statements_per_message']:.1f} SQL statements per message")
    for kind in ("forward", "reply"):
        if f"cpu_ms_{kind}" in figures:
            print(f"  {kind.replace('y', 'ie')}s: {figures[f'cpu_ms_{kind}']:.1f} CPU-ms, "
                  f"{figures[f'statements_{kind}']:.1f} statements")
    print(f"\nunder cProfile: {summary['profiled_ms_per_message']:.1f} CPU-ms per message\n")
    print(f"{'own time by module':<44} {'ms/msg':>8} {'share':>6}")
    for name, ms, share in summary["modules"]:  # type: ignore[union-attr]
        print(f"{name:<44} {ms:>8.2f} {share:>5.1f}%")
    print(f"\n{'step (cumulative)':<44} {'ms/msg':>8} {'share':>6}")
    for name, ms, share in summary["steps"]:  # type: ignore[union-attr]
        print(f"{name:<44} {ms:>8.2f} {share:>5.1f}%")


if __name__ == "__main__":
    main()
