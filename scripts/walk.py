"""Walk one member's forward from the receiver to the outbox and count the calls that cross
between mailflow's layers (inbound, casework, outbound, ...): how one-way the path is.

    .venv/bin/python scripts/walk.py

Prints each crossing kind (caller layer -> callee layer) with its count and the functions
called across it. A one-way path crosses inbound -> casework and casework -> outbound only.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailflow import clock, db, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.inbound import pipeline  # noqa: E402

LAYERS = ("inbound", "casework", "outbound", "jobs", "reports")
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def layer(filename: str) -> str | None:
    path = Path(filename)
    if "mailflow" not in path.parts:
        return None
    rest = path.parts[path.parts.index("mailflow") + 1:]
    if len(rest) > 1 and rest[0] in LAYERS:
        return rest[0]
    return rest[0].removesuffix(".py") if rest else None


def forward(council: settings.Settings) -> bytes:
    member = council.members[0]
    m = EmailMessage()
    m["From"] = f"{member.name} <{member.email}>"
    m["To"] = council.council.casework_address
    m["Subject"] = "FW: Pothole on Main Street"
    m["Message-ID"] = "<walk-1@example.org>"
    m.set_content("Can you chase this please?\n\n-----Original Message-----\n"
                  "From: Mary Jones <mary.jones@example.org>\nSent: 19 November 2026 18:04\n"
                  f"To: {member.name} <{member.email}>\nSubject: Pothole on Main Street\n\n"
                  "There is a huge pothole outside number 12 Main Street.\n")
    return m.as_bytes()


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="mailflow-walk-"))
    try:
        shutil.copytree(ROOT / "config", folder, dirs_exist_ok=True)
        os.environ["MAILFLOW_DATABASE_URL"] = f"sqlite:///{folder}/walk.db"
        council = settings.load(folder / "mailflow.toml")
        app = App(council)
        db.upgrade(app.url)
        clock.pin(NOW)
        if hasattr(app, "start"):  # the code before issue 10 synchronised on first use
            app.start(NOW)
        raw_id, _ = pipeline.receive(app, forward(council), source="walk", now=NOW)
        crossings: Counter[tuple[str, str]] = Counter()
        called: dict[tuple[str, str], set[str]] = defaultdict(set)

        def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
            if event != "call" or frame.f_back is None:
                return
            callee, caller = layer(frame.f_code.co_filename), layer(
                frame.f_back.f_code.co_filename)
            if callee in LAYERS and caller in LAYERS and callee != caller:
                crossings[(caller, callee)] += 1
                called[(caller, callee)].add(
                    f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}")

        sys.setprofile(profile)
        try:
            outcome = pipeline.process(app, raw_id, NOW)
        finally:
            sys.setprofile(None)
        print(f"outcome: {outcome.disposition if outcome else None} "
              f"{outcome.case if outcome else ''}")
        for (a, b), n in sorted(crossings.items()):
            print(f"{a:>8} -> {b:<8} {n:4d}  {', '.join(sorted(called[(a, b)]))}")
        print(f"total crossings: {sum(crossings.values())}")
    finally:
        db.engine(f"sqlite:///{folder}/walk.db").dispose()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
