"""Benchmark the retention job: `--due` closed cases past their period among `--kept` cases
that stay, each with a constituent, two requests, six timeline events, a raw message, an
attachment, two outbox mails and a read. Prints the time per deleted case: it should not
grow with the number of cases kept (each case's rows are found by index).

    .venv/bin/python scripts/bench_retention.py                      # SQLite
    .venv/bin/python scripts/bench_retention.py --kept 20000 --due 1000
    .venv/bin/python scripts/bench_retention.py --url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.jobs import retention  # noqa: E402

NOW = clock.parse("2026-12-10T03:00:00Z")
LONG_AGO = NOW - timedelta(days=400)
LATELY = NOW - timedelta(days=100)


def config(folder: Path, url: str) -> Path:
    path = folder / "bench.toml"
    path.write_text(
        '[council]\nname = "Bench Council"\ncasework_address = "casework@bench.example"\n'
        'secret = "bench"\n'
        f'[database]\nurl = "{url}"\n[outbound]\ntransport = "maildir"\nmaildir = "sent"\n'
        '[[wards]]\nname = "Ward"\n[[members]]\nname = "Cllr A"\nemail = "a@bench.example"\n'
        'ward = "Ward"\n[[services]]\nname = "Roads"\ncontact = "roads@bench.example"\n')
    return path


def fill(app: App, kept: int, due: int) -> None:
    """Bulk rows, ids assigned here so the children can point at their parents."""
    with app.session() as s:
        member = s.exec(text("SELECT id FROM member")).scalar_one()  # type: ignore[call-overload]
        service = s.exec(text("SELECT id FROM service")).scalar_one()  # type: ignore[call-overload]
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (
        models.Constituent, models.RawMessage, models.Case, models.Request, models.Event,
        models.Blob, models.Attachment, models.Outbox, models.AuditEntry)}
    for i in range(1, kept + due + 1):
        closed = LONG_AGO if i <= due else LATELY
        rows[models.Constituent].append({"id": i, "name": f"Person {i}",
                                         "email": f"p{i}@example.org", "phone": "01506 000000",
                                         "address": f"{i} Main Street"})
        rows[models.RawMessage].append({
            "id": i, "message_id": f"<m{i}@example.org>", "digest": f"d{i}",
            "received_at": closed - timedelta(days=20), "source": "ingest", "size": 2000,
            "raw": b"From: p@example.org\r\n\r\n" + b"x" * 2000, "state": "done",
            "case_id": i, "envelope_to": None})
        rows[models.Case].append({
            "id": i, "reference": f"CW-2025-{i:06d}", "status": "closed", "member_id": member,
            "constituent_id": i, "enquiry_type": "direct", "subject": f"Enquiry {i}",
            "issue": "A pothole.", "member_note": "", "received_at": closed - timedelta(days=20),
            "opened_at": closed - timedelta(days=20), "closed_at": closed,
            "source_message_id": i, "share": "private", "priority": "normal"})
        for k in range(2):
            rid = 2 * i + k
            rows[models.Request].append({
                "id": rid, "case_id": i, "service_id": service, "contact": "roads@bench.example",
                "state": "answered", "token": "t", "sent_at": closed - timedelta(days=19),
                "due": (closed - timedelta(days=5)).date(), "due_rule": "10 working days",
                "chase_step": "none"})
            rows[models.Outbox].append({
                "id": rid, "created_at": closed - timedelta(days=19), "kind": "request",
                "case_id": i, "request_id": rid, "message_id": f"<o{rid}@bench.example>",
                "sender": "casework@bench.example", "recipients": ["roads@bench.example"],
                "subject": "Request", "raw": b"x" * 1500, "state": "sent", "attempts": 1,
                "next_attempt_at": closed, "recipients_status": None})
        for k in range(6):
            rows[models.Event].append({
                "id": 6 * i + k, "case_id": i, "request_id": 2 * i if k == 2 else None,
                "at": closed - timedelta(days=18 - k), "kind": "member_update",
                "sender": "a@bench.example", "text": f"Update {k} on case {i}",
                "raw_message_id": i if k == 0 else None, "data": None})
        data = f"file {i}".encode() * 400
        sha = hashlib.sha256(data).hexdigest()
        rows[models.Blob].append({"sha256": sha, "size": len(data), "data": data})
        rows[models.Attachment].append({
            "id": i, "case_id": i, "raw_message_id": i, "name": "letter.pdf",
            "content_type": "application/pdf", "size": len(data), "sha256": sha, "stored": True,
            "created_at": closed - timedelta(days=20)})
        rows[models.AuditEntry].append({"id": i, "at": closed, "actor": "staff", "action": "read",
                                        "what": "case", "case_ref": f"CW-2025-{i:06d}",
                                        "via": "cli", "detail": None})
    eng = db.engine(app.url)
    with eng.begin() as conn:
        for model, values in rows.items():
            for start in range(0, len(values), 5000):
                conn.execute(insert(model), values[start:start + 5000])  # type: ignore[arg-type]
    if db.is_postgres(eng):  # as autovacuum would have by now: the planner needs statistics
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="PostgreSQL URL (a fresh schema is made and dropped)")
    ap.add_argument("--kept", type=int, default=5000)
    ap.add_argument("--due", type=int, default=500)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-retention-"))
    schema = None
    url = f"sqlite:///{folder}/bench.db"
    if args.url:
        import uuid

        from sqlalchemy import create_engine

        schema = "bench_" + uuid.uuid4().hex[:8]
        admin = create_engine(db.normalise_url(args.url), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{db.normalise_url(args.url)}?options=-csearch_path%3D{schema}"
    try:
        app = App(settings.load(config(folder, url)))
        db.upgrade(app.url)
        app.start(NOW)
        fill(app, args.kept, args.due)
        start = time.perf_counter()
        dry = retention.run(app, NOW, dry_run=True)
        dry_s = time.perf_counter() - start
        start = time.perf_counter()
        items = retention.run(app, NOW)
        run_s = time.perf_counter() - start
        deleted = retention.summary(items)["cases"]
        with app.session() as s:
            left = s.exec(text('SELECT count(*) FROM "case"')).scalar_one()  # type: ignore[call-overload]
        assert deleted == args.due == len(dry), (deleted, len(dry))
        assert left == args.kept
        print(json.dumps({"backend": "postgresql" if args.url else "sqlite",
                          "kept": args.kept, "due": args.due, "deleted": deleted,
                          "dry_run_s": round(dry_s, 3), "run_s": round(run_s, 3),
                          "ms_per_case": round(1000 * run_s / max(deleted, 1), 2),
                          "at": datetime.now(UTC).isoformat(timespec="seconds")}))
        db.engine(app.url).dispose()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if schema and args.url:
            with admin.connect() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
