#!/usr/bin/env python3
"""Time the holding pen page (`/holding`) against the case list (`/cases`) in the same run.

    .venv/bin/python scripts/bench_holding_page.py [--held 300] [--runs 21]

Builds the test council in a fresh SQLite file, opens 20 cases from members' forwards and
holds N strangers' messages (each a real message through the pipeline), serves the web pages
on a free port of this process and times GETs as member services over real HTTP (median).
Also counts the SQL statements of one /holding page: they must not grow with the items.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow import clock, db  # noqa: E402
from mailflow.inbound import pipeline  # noqa: E402
from tests.mail import CASEWORK, message, outlook_forward  # noqa: E402
from tests.rules import STAFF, make_app  # noqa: E402
from tests.webclient import Client, served, sign_in  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--held", type=int, default=300)
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    app = make_app(tmp, f"sqlite:///{tmp}/mailflow.db")
    now = clock.parse("2026-11-23T10:00:00Z")
    mails = [outlook_forward(subject=f"Case {i}") for i in range(20)]
    mails += [message(f"p{i}@gmail.example", CASEWORK, f"Pothole {i}",
                      "There is a pothole. " * 200) for i in range(args.held)]
    for msg in mails:
        raw_id, _ = pipeline.receive(app, msg.as_bytes(), source="ingest", now=now)
        pipeline.process(app, raw_id, now)
    clock.pin(clock.parse("2026-11-24T10:00:00Z"))
    statements = [0]

    def count(*_: object) -> None:
        statements[0] += 1
    with served(app) as base:
        client = Client(base)
        sign_in(client, app, STAFF)
        for path in ("/cases", "/holding"):
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                r = client.get(path)
                times.append(time.perf_counter() - t)
                assert r.status == 200, r.body
            print(f"{path}: median {statistics.median(times) * 1000:.1f} ms "
                  f"({len(r.body):,} bytes)")
        event.listen(db.engine(app.url), "before_cursor_execute", count)
        client.get("/holding")
        print(f"/holding: {statements[0]} SQL statements ({args.held} items waiting, "
              "100 shown)")


if __name__ == "__main__":
    main()
