"""The command line. Thin: parses arguments, calls the layers below, prints the result."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from mailflow import clock, db, models, settings
from mailflow.app import App
from mailflow.casework import sharing, views
from mailflow.ops import logs

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 64, 65, 66, 75, 77, 78


class Fail(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _load(args: argparse.Namespace) -> App:
    app = App(settings.load(getattr(args, "config", None)))
    logs.apply(app.settings.logging.format)
    return app


def _started(args: argparse.Namespace, unreachable: int = 1) -> App:
    """The app, with its directory and calendar brought in step with the config file: the
    commands that run the loop start with this; reading commands do not write."""
    app = _load(args)
    _ready(app, unreachable)
    try:
        app.start(clock.now())
    except (SQLAlchemyError, OSError) as e:
        raise Fail(f"database {settings._redact(app.url)} cannot be used: {_why(e)}",
                   unreachable) from None
    return app


def _reading(args: argparse.Namespace) -> App:
    """The app for a command that reads the database: one line, exit 1, when there is none."""
    app = _load(args)
    _ready(app, 1)
    return app


def _ready(app: App, code: int) -> None:
    """A database that is missing, never initialised or unreachable is one line naming it
    (and `mailflow init` when that is the cure), not a traceback or a new empty file."""
    try:
        problem = db.unready(app.url)
    except (SQLAlchemyError, OSError) as e:
        raise Fail(f"database {settings._redact(app.url)} cannot be used: {_why(e)}",
                   code) from None
    if problem:
        raise Fail(f"database {settings._redact(app.url)} {problem}: run `mailflow init`",
                   code)


def _why(e: BaseException) -> str:
    lines = str(getattr(e, "orig", None) or e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _os_user() -> str:
    try:
        return f"{getpass.getuser()} (os user)"
    except (KeyError, OSError):  # a container's uid with no name
        return f"uid {os.getuid()} (os user)"


def _audited(s: Session, who: str, what: str, *, action: str = "read",
             case_ref: str | None = None, detail: dict[str, Any] | None = None,
             cases: Iterable[str] = ()) -> None:
    """Record a read (or refusal) in the controller's trail and commit it before anything is
    shown: a read that cannot be recorded is not made."""
    from mailflow.casework import audit

    kept = {k: v for k, v in (detail or {}).items() if v is not None and v is not False}
    audit.record(s, actor=who, action=action, what=what, now=clock.now(), case_ref=case_ref,
                 detail=kept or None, cases=cases)
    s.commit()


def _refused(app: App, who: str, what: str, reason: str, code: int,
             case_ref: str | None = None, detail: dict[str, Any] | None = None,
             session: Session | None = None) -> Fail:
    """A read refused: recorded with the reason (and the OS user behind an `--as`), in the
    command's own session when it has one (SQLite has one writer)."""
    with contextlib.nullcontext(session) if session else app.session() as s:
        s.rollback()
        _audited(s, who, what, action="refused", case_ref=case_ref,
                 detail={"reason": reason, "os_user": _os_user(), **(detail or {})})
    return Fail(reason, code)


def _pin(args: argparse.Namespace) -> None:
    if getattr(args, "now", None):
        try:
            clock.pin(clock.parse(args.now))
        except ValueError as e:
            raise Fail(f"--now: {e}", EX_USAGE) from None


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col_) for col_ in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


# -- commands ----------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    app = _load(args)
    print(app.settings.summary())
    print("config OK")
    if not args.connect:
        return 0
    from mailflow.ops import connect

    checks = connect.check(app)
    for c in checks:
        print(c)
    return 0 if all(c.ok for c in checks) else 1


def cmd_backup(args: argparse.Namespace) -> int:
    from mailflow.ops.backup import BackupError, backup

    app = _load(args)
    try:
        how = backup(app.url, Path(args.out))
    except (BackupError, OSError, sqlite3.Error) as e:
        raise Fail(f"{args.out}: {e}") from None
    print(f"backed up {settings._redact(app.url)} to {args.out} ({how})")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    app = _load(args)
    db.upgrade(app.url)
    app.start(clock.now())
    with app.session() as s:
        from mailflow.reports import stats

        if n := stats.backfill(s, app.calendar):  # cases from before statistics existed
            print(f"statistics written for {n} cases")
        s.commit()
    app.settings.maildir.mkdir(parents=True, exist_ok=True)
    print(f"database ready: {settings._redact(app.url)}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from mailflow.inbound import pipeline
    from mailflow.inbound.spool import identify

    _pin(args)
    app = _started(args, EX_TEMPFAIL)  # the MTA keeps the message and retries
    limit = app.settings.smtp.max_message_size
    code = 0
    for name in args.files or ["-"]:
        try:  # one at a time, so an unreadable file stops nothing after it
            raw = _read_message(name, limit)
        except OSError as e:
            print(f"mailflow ingest: {name}: {e.strerror or e}", file=sys.stderr)
            code = _worse(code, EX_NOINPUT)
            continue
        now = clock.now()
        if len(raw) > limit:  # as SMTP refuses it: stored nowhere, the MTA bounces it
            reason = (f"552 5.3.4 Message too big for mailflow: the limit is "
                      f"{limit / 1024 / 1024:g} MB ({limit} bytes)")
            print(f"mailflow ingest: {name}: {reason}", file=sys.stderr)
            if args.json:
                _print_json({"file": name, "message_id": None, "disposition": "refused",
                             "case": None, "reason": reason, "rule": "too_big"})
            code = _worse(code, EX_DATAERR)
            continue
        try:
            raw_id, duplicate = pipeline.receive(app, raw, source="ingest", now=now)
        except Exception as e:  # noqa: BLE001 - the MTA keeps the message and retries
            print(f"mailflow ingest: {name}: could not store the message, try again later: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            code = _worse(code, EX_TEMPFAIL)
            continue
        if duplicate:
            first = pipeline.describe(app, raw_id)
            outcome = pipeline.Outcome("duplicate_delivery", first.case,
                                       f"already received as message {raw_id}", "duplicate")
        else:
            outcome = pipeline.process(app, raw_id, now) or pipeline.describe(app, raw_id)
        result = {"file": name, "message_id": identify(raw)[0], "disposition": outcome.disposition,
                  "case": outcome.case, "reason": outcome.reason, "rule": outcome.rule or None}
        if args.json:
            _print_json(result)
        else:
            print(f"{name}: {outcome.disposition}"
                  + (f" {outcome.case}" if outcome.case else "") + f" ({outcome.reason})")
    return code


def _read_message(name: str, limit: int) -> bytes:
    """No more than the limit (and one byte, to tell) in memory."""
    if name != "-":
        with open(name, "rb") as f:
            return f.read(limit + 1)
    raw = sys.stdin.buffer.read(limit + 1)
    while len(raw) > limit and sys.stdin.buffer.read(1 << 20):
        pass  # the MTA writes it all: read the rest away, so it sees our exit code
    return raw


def _worse(code: int, new: int) -> int:
    """75 wins (the MTA must retry), then the first problem met."""
    return EX_TEMPFAIL if EX_TEMPFAIL in (code, new) else code or new


def cmd_inspect(args: argparse.Namespace) -> int:
    from mailflow.inbound.inspect import inspect

    s = settings.load(getattr(args, "config", None))
    code = 0
    with db.read_only_session(s.database_url) as session:
        for name in args.files:
            try:
                raw = Path(name).read_bytes()
            except OSError as e:
                print(f"mailflow inspect: {name}: {e.strerror}", file=sys.stderr)
                code = code or EX_NOINPUT
                continue
            try:
                data = inspect(raw, s, session, name)
            except Exception as e:  # noqa: BLE001 - one bad file must not stop a folder
                if session is not None:
                    session.rollback()
                print(f"mailflow inspect: {name}: {type(e).__name__}: {e}", file=sys.stderr)
                code = code or 1
                continue
            if args.json:
                _print_json(data)
            else:
                _print_inspection(data)
    return code


def _print_inspection(d: dict[str, Any]) -> None:
    who = d["from"]
    print(f"{d['file']}: {d['message_id'] or '(no Message-ID)'}")
    print(f"  from:           {who['name'] or ''} <{who['address'] or ''}>")
    print(f"  subject:        {d['subject']}")
    print(f"  classification: {d['classification']}"
          + (f" ({d['classification_reason']})" if d["classification_reason"] else ""))
    if d["reply_kind"]:
        print(f"  reply kind:     {d['reply_kind']}")
    if d["bounce"]:
        b = d["bounce"]
        print(f"  bounce:         {', '.join(b['recipients']) or '?'} {b['status'] or ''} "
              f"{'permanent' if b['permanent'] else 'transient'}")
    if d["original"]:
        o = d["original"]
        sender = o["from"] or {"name": None, "address": "?"}
        print(f"  forward of:     {sender['name'] or ''} <{sender['address']}> "
              f"{o['subject'] or ''}")
    m = d["match"]
    print(f"  match:          {m['case'] or 'none'} by {m['evidence']}"
          + (f" ({'; '.join(m['why'])})" if m["why"] else ""))
    for c in d["candidates"]:
        print(f"  candidate:      {c['case']} ({'; '.join(c['why'])})")
    for f in d["attachments"]:
        print(f"  attachment:     {f['name']} {f['content_type']} {f['size']} bytes")
    text = (d["reply_text"] or "").strip().splitlines()
    for line in text[:8]:
        print(f"  | {line}")


def cmd_tick(args: argparse.Namespace) -> int:
    from mailflow.jobs import tick

    _pin(args)
    app = _started(args)
    _writable(app, 1)
    result = tick.tick(app, clock.now())
    if args.json:
        _print_json(result)
    else:
        for name, counts in result.items():
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mailflow.serve import CannotListen, serve

    app = _started(args, EX_TEMPFAIL)
    _writable(app, 1)
    try:
        serve(app, args.host, args.port, "lmtp" if args.lmtp else None, args.web_port)
    except CannotListen as e:
        raise Fail(str(e), EX_TEMPFAIL) from None
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """The web server alone (health and metrics; receivers run elsewhere)."""
    from mailflow.serve import wait_for_signal
    from mailflow.web import health
    from mailflow.web.server import WebServer

    app = _started(args, EX_TEMPFAIL)
    cfg = app.settings.web
    port = cfg.port if args.port is None else args.port
    try:
        web = WebServer(health.create(app), cfg.host, port).start()
    except OSError as e:
        raise Fail(f"cannot listen on {cfg.host}:{port}: {e.strerror or e}", EX_TEMPFAIL) from None
    print(f"mailflow: web on {web.address}", flush=True)
    try:
        wait_for_signal()
    finally:
        web.stop()
    return 0


def _writable(app: App, code: int) -> None:
    """The outbound maildir, checked by writing to it (permission bits lie to root), so a
    folder that cannot be written is one line at start, not a retry per mail for ever."""
    import tempfile

    if app.settings.outbound.transport != "maildir":
        return
    folder = app.settings.maildir
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise Fail(f"[outbound] maildir {folder} cannot be written: {e.strerror or e}",
                   code) from None


def cmd_poll(args: argparse.Namespace) -> int:
    import dataclasses
    import signal

    from mailflow.inbound import imap, pipeline

    app = _load(args)
    cfg = app.settings.imap
    if not cfg.host:
        raise Fail(f"IMAP is not configured: no [imap] host in {app.settings.path}", 2)
    app = _started(args, EX_TEMPFAIL)
    if not args.once:  # until SIGTERM, like serve's IMAP thread, processing as it goes
        # drain, not process(raw_id): it also takes what an interrupted fetch had stored.
        receiver = imap.Receiver(app, lambda _id: pipeline.drain(app, clock.now()))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: receiver.stopping.set())
        receiver.run()
        return 0
    try:
        counts = imap.Receiver(app).once()
    except Exception as e:  # noqa: BLE001 - cron mails this line to the admin
        raise Fail(f"IMAP {cfg.username}@{cfg.host}:{cfg.port_number}: {imap.why(e)}",
                   EX_TEMPFAIL if isinstance(e, OSError) else 1) from None
    # Processed here, after the moves; also what an earlier run stored and did not process.
    processed = pipeline.drain(app, clock.now())
    result = {**dataclasses.asdict(counts), "processed": processed}
    if args.json:
        _print_json(result)
    else:
        print(", ".join(f"{k} {v}" for k, v in result.items()))
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    app = _reading(args)
    viewer = _viewer(app, args.as_, "cases") if args.as_ else None
    with app.session() as s:
        q = select(models.Case).order_by(col(models.Case.id))
        if args.member:
            member = s.exec(select(models.Member)
                            .where(models.Member.email == args.member.lower())).first()
            if member is None:
                m = app.settings.member_for(args.member)
                if m is None:
                    raise Fail(f"--member: no member with address {args.member}", EX_USAGE)
                member = s.exec(select(models.Member).where(models.Member.email == m.email)).one()
            q = q.where(models.Case.member_id == member.id)
        if args.status:
            q = q.where(models.Case.status == args.status)
        if viewer:
            q = q.where(sharing.visible_filter(s, app.settings, viewer))
        rows = [views.case_summary(s, c) for c in s.exec(q)]
        _audited(s, viewer or _os_user(), "cases", cases=[r["reference"] for r in rows],
                 detail={"member": args.member, "status": args.status, "json": args.json,
                         "shown": len(rows)})
    if args.json:
        _print_json(rows)
    else:
        print(_table([[r["reference"], r["status"], r["member"]["name"],
                       r["constituent"]["name"] or r["constituent"]["email"] or "",
                       r["category"] or "-", r["subject"][:50]] for r in rows],
                     ["REFERENCE", "STATUS", "MEMBER", "CONSTITUENT", "CATEGORY", "SUBJECT"])
              if rows else "no cases")
    return 0


def _viewer(app: App, address: str, what: str, case_ref: str | None = None) -> str:
    """`--as EMAIL`: a member (any of their addresses) or staff; anyone else is refused, and
    the refusal recorded."""
    address = address.strip().lower()
    if not (app.settings.member_for(address) or app.settings.is_staff(address)):
        raise _refused(app, address, what, f"--as: {address} is not a member or member services",
                       EX_USAGE, case_ref)
    return address


def cmd_case(args: argparse.Namespace) -> int:
    from mailflow.casework import audit
    from mailflow.tokens import normalise_reference

    app = _reading(args)
    ref = normalise_reference(args.reference, app.settings.council.reference_prefix)
    what = "audit" if args.audit else "case"
    viewer = _viewer(app, args.as_, what, ref) if args.as_ else None
    now = clock.now()
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).first()
        if case is None:
            raise Fail(f"no case {args.reference}" + (f" visible to {viewer}" if viewer else ""),
                       1)
        if viewer and not sharing.can_see(s, app.settings, case, viewer):
            # the same words as for no case at all: a refusal does not say the case exists
            raise _refused(app, viewer, what, f"no case {args.reference} visible to {viewer}",
                           1, ref, session=s)
        _audited(s, viewer or _os_user(), what, case_ref=ref, detail={"json": args.json})
        if args.audit:
            trail = audit.rows(s, ref)
        else:
            data = views.case_dict(s, case, app.calendar.local(now).date(), app.settings, viewer)
    if args.audit:
        if args.json:
            _print_json(trail)
        else:
            print(f"{case.reference}: audit trail")
            _print_trail(trail)
        return 0
    if args.json:
        _print_json(data)
        return 0
    c = data["constituent"]
    print(f"{data['reference']}  {data['status']}  {data['subject']}")
    print(f"  member:      {data['member']['name']} <{data['member']['email']}> ({data['ward']})")
    print(f"  constituent: {c['name'] or ''} <{c['email'] or ''}>")
    print(f"  category:    {data['category'] or '-'} ({data['enquiry_type']}, "
          f"{data['priority']} priority)")
    print(f"  sharing:     {data['shared']}" + (f" (asked: {data['share']}, consent not "
                                                 "recorded)" if data["shared"] != data["share"]
                                                 else ""))
    for link in data["links"]:
        other = link["case"] or "(a ward colleague's case)"
        print(f"  linked:      {link['kind']} {other}"
              + (f" ({link['reason']})" if link["reason"] else ""))
    for r in data["requests"]:
        print(f"  request:     {r['service']} <{r['contact']}> {r['state']}, due {r['due']}")
    print("  timeline:")
    for e in data["timeline"]:
        print(f"    {e['at']}  {e['kind']:<16} {e['from'] or ''}")
        for line in (e["text"] or "").strip().splitlines()[:12]:
            print(f"        {line}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """The controller's trail: who read or changed what, oldest first."""
    from mailflow.casework import audit
    from mailflow.tokens import normalise_reference

    app = _reading(args)
    ref = (normalise_reference(args.case, app.settings.council.reference_prefix)
           if args.case else None)
    by = args.by.strip().lower() if args.by else None
    since = _date(args.since, "--since")
    # --since is a council-local day: from its midnight
    start = (datetime.combine(since, time(0), tzinfo=app.calendar.tz).astimezone(UTC)
             if since else None)
    with app.session() as s:
        # Reading the trail is itself a read: it shows who saw which cases.
        _audited(s, _os_user(), "audit", case_ref=ref,
                 detail={"by": by, "since": args.since, "json": args.json})
        trail = audit.rows(s, ref, by, start)
    if args.json:
        _print_json(trail)
    elif trail:
        _print_trail(trail)
    else:
        print("no audit rows")
    return 0


def _print_trail(trail: list[dict[str, Any]]) -> None:
    def about(t: dict[str, Any]) -> str:
        if t["cases"]:
            return t["cases"][0] if len(t["cases"]) == 1 else f"{len(t['cases'])} cases"
        return t["case"] or ""

    def said(t: dict[str, Any]) -> str:
        data = {k: v for k, v in t["data"].items() if k not in ("reason", "os_user")}
        text = (t["text"] or "").strip().split("\n")[0]
        return (text or (json.dumps(data, ensure_ascii=False) if t["action"] != "change"
                         and data else ""))[:60]

    print(_table([[t["at"], t["action"], t["who"], t["what"], about(t), t["via"],
                   t["message"] or "", said(t)] for t in trail],
                 ["AT", "ACTION", "WHO", "WHAT", "CASE", "VIA", "MESSAGE", "TEXT"]))


def cmd_import(args: argparse.Namespace) -> int:
    from mailflow.casework import imports

    app = _load(args)
    path = Path(args.file)
    try:
        text = imports.decode(path.read_bytes())
    except OSError as e:
        raise Fail(f"{args.file}: {e.strerror}", EX_NOINPUT) from None
    now = clock.now()
    _ready(app, 1)
    app.start(now)  # the directory, synchronised, before rows are checked against it
    rows, problems = imports.check(app.context, text, now)
    for p in problems:
        print(f"{path.name}: {p}", file=sys.stderr)
    if args.dry_run:
        print(f"{len(rows)} row(s) can be imported, {len(problems)} problem(s)")
        return 1 if problems else 0
    who = _os_user()
    done = skipped = 0
    bar = _Progress(len(rows)) if sys.stderr.isatty() else None
    with app.session() as s:
        for i, row in enumerate(rows, 1):
            if imports.take(app.context, s, row, now, who, path.name) is None:
                skipped += 1
            else:
                done += 1
            if i % 200 == 0 or i == len(rows):
                s.commit()
                if bar:
                    bar.show(i)
                elif i % 1000 == 0:
                    print(f"{i} of {len(rows)} rows")
    if bar:
        bar.end()
    print(f"imported {done} case(s); {skipped} already imported; {len(problems)} problem(s)")
    return 1 if problems else 0


class _Progress:
    """A one-line progress bar on a terminal's standard error."""

    def __init__(self, total: int):
        self.total = max(total, 1)

    def show(self, done: int) -> None:
        filled = 30 * done // self.total
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}")
        sys.stderr.flush()

    def end(self) -> None:
        sys.stderr.write("\n")


def cmd_holding(args: argparse.Namespace) -> int:
    _pin(args)
    app = _load(args)
    if args.action:
        return _work_holding(_started(args), args)
    if args.retry is not None:
        return _retry(_started(args), args.retry, args.json, _actor(args))
    _ready(app, 1)
    with app.session() as s:
        q = select(models.Holding).order_by(col(models.Holding.id))
        if not args.all:
            q = q.where(col(models.Holding.resolved_at).is_(None))
        rows = [views.holding_dict(s, h) for h in s.exec(q)]
        shown = {r["case"] for r in rows if r["case"]}
        shown |= {c["case"] for r in rows for c in r["candidates"] if c.get("case")}
        _audited(s, _os_user(), "holding", cases=shown,
                 detail={"all": args.all, "json": args.json, "shown": len(rows)})
    if args.json:
        _print_json(rows)
    else:
        print(_table([[r["id"], r["kind"], r["from"] or "", r["case"] or "",
                       r["resolution"] or "", r["reason"][:70]] for r in rows],
                     ["ID", "KIND", "FROM", "CASE", "RESOLUTION", "REASON"])
              if rows else "the holding pen is empty")
    return 0


def _actor(args: argparse.Namespace) -> str:
    """`--as EMAIL`, else the operating-system user at the console."""
    who = getattr(args, "as_", None)
    if who is None:
        return _os_user()
    who = who.strip().lower()
    if "@" not in who or any(c.isspace() for c in who):
        raise Fail(f"--as: not an email address: {who!r}", EX_USAGE)
    return who


# HoldingError.why -> exit code (README, Exit codes)
_HOLDING_EXIT = {"not_found": 1, "invalid": 1, "resolved": 2, "refused": EX_NOPERM}


def _work_holding(app: App, args: argparse.Namespace) -> int:
    """`holding file|open|dismiss`: one transaction; a refusal is audited on its own."""
    from mailflow.casework import holding
    from mailflow.inbound.dispatch import held

    actor, now, action = _actor(args), clock.now(), args.action
    try:
        with app.session() as s:
            ctx = app.context
            if action == "file":
                done = holding.file(ctx, s, args.id, args.reference, actor, now,
                                    lambda h: held(ctx, s, h))
            elif action == "open":
                done = holding.open_case(ctx, s, args.id, args.member, args.service, actor, now,
                                         lambda h: held(ctx, s, h))
            else:
                done = holding.dismiss(ctx, s, args.id, args.reason, actor, now)
            s.commit()
            row = views.holding_dict(s, done.item)
    except holding.HoldingError as e:
        if e.why == "refused":
            with app.session() as s:
                holding.refused(s, action, args.id, actor, str(e), now, "cli")
                s.commit()
        raise Fail(str(e), _HOLDING_EXIT[e.why]) from None
    if args.json:
        _print_json({**row, "outcome": done.outcome.reason})
    else:
        print(f"holding {args.id}: {row['resolution']}"
              + (f" {row['case']}" if row["case"] and action != "dismiss" else "")
              + f" ({done.outcome.reason})")
    return 0


def _retry(app: App, holding_id: int, as_json: bool, actor: str) -> int:
    """Mailman's unshunt: a message quarantined by a pipeline error goes through again."""
    from mailflow.inbound import pipeline

    if not (actor.endswith(" (os user)") or app.settings.is_staff(actor)):
        with app.session() as s:
            from mailflow.casework import holding

            holding.refused(s, "retry", holding_id, actor, "not member services", clock.now(),
                            "cli")
            s.commit()
        raise Fail(f"--as: {actor} is not member services", EX_NOPERM)
    try:
        raw_id, result = pipeline.retry(app, holding_id, clock.now(), actor)
    except pipeline.CannotRetry as e:
        raise Fail(str(e), 2 if e.found else 1) from None
    with app.session() as s:
        raw = s.get(models.RawMessage, raw_id)
        message_id = raw.message_id if raw else None
    if as_json:
        _print_json({"file": None, "message_id": message_id, "disposition": result.disposition,
                     "case": result.case, "reason": result.reason, "rule": result.rule or None})
    else:
        print(f"holding {holding_id}: {result.disposition}"
              + (f" {result.case}" if result.case else "") + f" ({result.reason})")
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    app = _reading(args)
    if args.release is not None:
        with app.session() as s:
            # Conditional, so two people releasing at once (or a release racing a
            # flush) change the row once.
            if not db.claim(s, models.Outbox, {"id": args.release, "state": "held"},
                            {"state": "queued", "held_reason": None,
                             "next_attempt_at": clock.now()}):
                if s.get(models.Outbox, args.release) is None:
                    raise Fail(f"no outbox message {args.release}")
                raise Fail(f"outbox message {args.release} is not held", 2)
            _audited(s, _os_user(), "outbox.release", action="change",
                     case_ref=_reference(s, s.get(models.Outbox, args.release)),
                     detail={"id": args.release})
        print(f"outbox message {args.release} released: the next tick sends it")
        return 0
    with app.session() as s:
        q = select(models.Outbox).order_by(col(models.Outbox.id))
        if args.state:
            q = q.where(models.Outbox.state == args.state)
        mails = list(s.exec(q))
        rows = [views.outbox_dict(o) for o in mails]
        ids = {o.case_id for o in mails if o.case_id}
        shown = set(s.exec(select(models.Case.reference)
                           .where(col(models.Case.id).in_(ids)))) if ids else set()
        _audited(s, _os_user(), "outbox", cases=shown,
                 detail={"state": args.state, "json": args.json, "shown": len(rows)})
    if args.json:
        _print_json(rows)
    else:
        print(_table([[r["id"], r["state"], r["kind"], ",".join(r["to"]), r["subject"][:50],
                       r["last_error"] or ""] for r in rows],
                     ["ID", "STATE", "KIND", "TO", "SUBJECT", "LAST ERROR"])
              if rows else "the outbox is empty")
    return 0


def _reference(s: Session, row: models.Outbox | None) -> str | None:
    case = s.get(models.Case, row.case_id) if row is not None and row.case_id else None
    return case.reference if case else None


def _date(value: str | None, flag: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise Fail(f"{flag}: not a date (YYYY-MM-DD): {value!r}", EX_USAGE) from None


def cmd_search(args: argparse.Namespace) -> int:
    from mailflow.casework.visibility import NotAllowed
    from mailflow.reports import search

    app = _reading(args)
    query = " ".join(args.query)
    filters = search.Filters(member=args.member, ward=args.ward, service=args.service,
                             status=args.status, since=_date(args.since, "--since"),
                             until=_date(args.until, "--until"), as_email=args.as_email)
    asked = {"query": query, "member": args.member, "ward": args.ward,
             "service": args.service, "status": args.status, "since": args.since,
             "until": args.until, "limit": args.limit, "json": args.json}
    who = args.as_email.strip().lower() if args.as_email else _os_user()
    with app.session() as s:
        try:
            rows = search.search(s, app.settings, app.calendar, query, filters,
                                 limit=args.limit)
        except search.UnknownFilter as e:
            raise Fail(str(e), EX_USAGE) from None
        except NotAllowed as e:
            raise _refused(app, who, "search", f"--as: {e}", EX_USAGE, detail=asked,
                           session=s) from None
        _audited(s, who, "search", cases=[r["reference"] for r in rows],
                 detail={**asked, "shown": len(rows)})
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no cases found")
    for r in rows:
        who = r["constituent"]["name"] or r["constituent"]["email"] or ""
        print(f"{r['reference']}  {r['status']:<8} {r['member']['name']}  {who}  {r['subject']}")
        print(f"    {r['snippet']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mailflow.reports import formats, html, period, report

    _pin(args)
    app = _reading(args)
    today = app.calendar.local(clock.now()).date()
    try:
        by = report.parse_groupings(args.by)
        if args.period and (args.date_from or args.date_to):
            raise ValueError("use --period or --from/--to, not both")
        if args.period:
            p = period.parse(args.period)
        elif args.date_from or args.date_to:
            start = _date(args.date_from, "--from") or date(today.year, 1, 1)
            p = period.between(start, _date(args.date_to, "--to") or today)
        else:  # the last whole month, like the monthly report
            p = period.month_of(today).previous()
    except ValueError as e:
        raise Fail(str(e), EX_USAGE) from None
    with app.session() as s:
        rows, total = report.with_total(s, p, by, today)
        # Statistics name no constituent; the read is recorded all the same (what, whose).
        _audited(s, _os_user(), "report", detail={
            "from": p.start.isoformat(), "to": p.end.isoformat(), "by": args.by,
            "format": "html" if args.html else "json" if args.json else "csv" if args.csv
            else "text", "file": args.html})
        page = html.page(app, s, p, by, rows, total, today) if args.html else None
    if page is not None:
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"wrote {args.html}")
    elif args.json:
        _print_json(rows)
    elif args.csv:
        sys.stdout.write(formats.to_csv(rows, by))
    else:
        print(formats.to_text(rows, by, p, total))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from mailflow.jobs import retention

    _pin(args)
    app = _started(args)
    items = retention.run(app, clock.now(), dry_run=args.dry_run)
    if args.json:
        _print_json(items)
        return 0
    if not items:
        print("nothing has passed its retention period")
    for i in items:
        what = f"case {i['case']}" if i["kind"] == "case" else f"{i['kind']} {i['id']}"
        held = i["legal_hold"]
        when = f" (since {i['since']}, due {i['due_at']})" if i["due_at"] else ""
        print(f"{i['action']:<12} {what} under {i['rule']}{when}"
              + (f"; legal hold until {held['until'] or 'released'}" if held else ""))
    counts = retention.summary(items) if not args.dry_run else None
    if counts:
        print("deleted: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    from mailflow.casework import holds
    from mailflow.tokens import normalise_reference

    _pin(args)
    app = _load(args)
    if args.release == bool(args.reason):
        raise Fail("give --reason TEXT to hold, or --release", EX_USAGE)
    if args.release and args.until:
        raise Fail("--until goes with --reason, not --release", EX_USAGE)
    now = clock.now()
    today = app.calendar.local(now).date()
    until = _date(args.until, "--until")
    if until and until < today:
        raise Fail(f"--until: {until} has passed", EX_USAGE)
    ref = normalise_reference(args.reference, app.settings.council.reference_prefix)
    who = _os_user()
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).first()
        if case is None:
            raise Fail(f"no case {args.reference}")
        if args.release:
            released = holds.release(s, case, by=who, now=now, today=today)
            if not released:
                others = holds.active(s, case.id, today)  # type: ignore[arg-type]
                s.rollback()
                raise Fail(f"{ref} has no legal hold placed by hand to release"
                           + (f" (held by {', '.join(h.source for h in others)})"
                              if others else ""), 2)
            s.commit()
            print(f"{ref}: legal hold released")
            return 0
        holds.place(s, case, reason=args.reason.strip(), by=who, now=now, until=until)
        s.commit()
    print(f"{ref}: on legal hold" + (f" until {until}" if until else " until released")
          + ": retention will not delete it")
    return 0


def _as_member(app: App, s: Any, address: str | None) -> tuple[str, int | None, str | None]:
    """(who acts, the member's id when `--as` names a member, that member's address)."""
    if not address:
        return _os_user(), None, None
    who = _viewer(app, address, "sar")
    m = app.settings.member_for(who)
    if m is None:  # member services act for the council: every member's cases
        return who, None, None
    row = s.exec(select(models.Member).where(models.Member.email == m.email)).one()
    return who, row.id, m.email


def cmd_sar(args: argparse.Namespace) -> int:
    from mailflow.casework import sar
    from mailflow.reports import search

    _pin(args)
    app = _load(args)
    now = clock.now()
    today = app.calendar.local(now).date()
    who_default = _os_user()
    register = args.list or args.extend is not None or args.answered is not None
    if register and args.email:
        raise Fail("give EMAIL --out FILE.zip for a new request, or --list, --extend ID or "
                   "--answered ID, not both", EX_USAGE)
    with app.session() as s:
        try:
            if args.extend is not None:
                if args.months is None or not args.reason:
                    raise Fail("--extend ID needs --months N and --reason TEXT", EX_USAGE)
                row = sar.extend(s, args.extend, args.months, args.reason, by=who_default,
                                 now=now)
                s.commit()
                print(f"subject access request {row.id}: due {row.due} "
                      f"(extended by {row.extended_months} month(s))")
                return 0
            if args.answered is not None:
                row, until, moved = sar.answered(s, args.answered, by=who_default, now=now,
                                                 today=today)
                s.commit()
                print(f"subject access request {row.id}: answered; {moved} case(s) held until "
                      f"{until}")
                return 0
        except sar.RegisterError as e:
            raise Fail(str(e), 2) from None
        if args.list:
            rows = [sar.register_dict(r, today) for r in s.exec(
                select(models.SarRequest).order_by(col(models.SarRequest.id)))]
            audit_read(s, who_default, "sar.list", now)
            s.commit()
            if args.json:
                _print_json(rows)
            elif not rows:
                print("no subject access requests")
            else:
                print(_table([[str(r["id"]), r["email"], r["received"][:10], r["due"],
                               r["answered"][:10] if r["answered"] else
                               ("OVERDUE" if r["overdue"] else "open"), str(r["cases"]),
                               r["extend_reason"] or ""] for r in rows],
                             ["ID", "EMAIL", "RECEIVED", "DUE", "ANSWERED", "CASES",
                              "EXTENDED BECAUSE"]))
            return 0
        if not args.email or "@" not in args.email:
            raise Fail("EMAIL: give the requester's email address", EX_USAGE)
        if not args.out:
            raise Fail("--out FILE.zip: where to write the answer", EX_USAGE)
        out = Path(args.out)
        if not out.parent.is_dir():
            raise Fail(f"--out: no directory {out.parent}", EX_USAGE)
        who, member_id, scope = _as_member(app, s, args.as_)
        person = sar.Person(args.email.strip().lower(), (args.name or "").strip() or None,
                            (args.phone or "").strip() or None)
        found = sar.find(s, person, lambda term: search.every_match(s, term), member_id)
        data = sar.write_zip(s, found, str(out), title=f"Subject access request: "
                             f"{person.email}", person=person, today=today, now=now,
                             ours=app.settings.is_ours)
        row = sar.register(s, person, found, by=who, scope=scope, now=now, today=today,
                           files=data["files"])
        s.commit()
        result = {"id": row.id, "out": str(out), "due": row.due.isoformat(),
                  "cases": [c.reference for c in found.cases], "messages": len(found.raws),
                  "sent": len(found.outbox), "attachments": len(found.attachments),
                  "holding": len(found.holding), "audit": len(found.audit),
                  "scanned": found.scanned}
    if args.json:
        _print_json(result)
    else:
        print(f"subject access request {result['id']}: {len(result['cases'])} case(s), "
              f"{result['messages']} message(s), {result['sent']} sent, "
              f"{result['attachments']} attachment(s) written to {out}; due {result['due']}; "
              "review review.txt before release")
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from mailflow.casework import erasure, sar
    from mailflow.jobs.retention import compact_search_index
    from mailflow.reports import search

    _pin(args)
    app = _load(args)
    if "@" not in args.email:
        raise Fail(f"EMAIL: not an address: {args.email!r}", EX_USAGE)
    now = clock.now()
    today = app.calendar.local(now).date()
    who = _os_user()
    with app.session() as s:
        person, values = erasure.person_of(s, args.email.strip(), args.name, args.phone)
        found = sar.find(s, person, lambda term: search.every_match(s, term))
        if not (found.cases or found.raws or found.holding or found.outbox
                or erasure.constituents(s, person.email)):
            raise Fail(f"nothing about {person.email} is stored", 1)
        try:
            result = erasure.erase(s, person.email, found, values, by=who, now=now,
                                   today=today)
        except erasure.Refused as e:
            s.rollback()
            raise Fail(f"refused: {e}; nothing was erased", 2) from None
        if args.dry_run:
            s.rollback()
        else:
            s.commit()
    if not args.dry_run:
        compact_search_index(app)
        _scrub_free_pages(app)
    result = {"email": person.email, "dry_run": args.dry_run, **result}
    if args.json:
        _print_json(result)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in result.items()
                           if k not in ("email", "dry_run", "cases"))
        print(("would erase " if args.dry_run else "erased ") + f"{person.email} from "
              f"{len(result['cases'])} case(s) ({', '.join(result['cases']) or 'none'}): "
              f"{counts}")
    return 0


def cmd_member(args: argparse.Namespace) -> int:
    from mailflow.casework import endterm

    _pin(args)
    app = _started(args)
    now = clock.now()
    today = app.calendar.local(now).date()
    member = app.settings.member_for(args.email)
    if member is None:
        raise Fail(f"EMAIL: no member with address {args.email}", EX_USAGE)
    successor = app.settings.member_for(args.successor) if args.successor else None
    if args.successor and successor is None:
        raise Fail(f"--successor: no member with address {args.successor}", EX_USAGE)
    if successor is not None and successor.email == member.email:
        raise Fail("--successor: a member cannot succeed themselves", EX_USAGE)
    on = _date(args.on, "--on") or today
    with app.session() as s:
        try:
            row = endterm.declare(s, member.email, successor.email if successor else None, on,
                                  by=_os_user(), now=now)
        except endterm.EndError as e:
            raise Fail(str(e), 2) from None
        cases = endterm.listing(s, row, now)
        s.commit()
    result = {"member": member.email, "successor": row.successor, "on": on.isoformat(),
              "open_cases": cases}
    if args.json:
        _print_json(result)
        return 0
    print(f"{member.name}: term ends {on}; from then no new case opens for them"
          + (f"; successor {successor.name} <{successor.email}>" if successor else
             "; no successor"))
    if not cases:
        print("no open cases")
    for c in cases:
        print(f"  {c['reference']}  {c['status']:<8} {c['action']:<9} {c['subject'][:50]}")
    print("Cases with the constituent's consent (#consent handover) pass to the successor; "
          "the rest close on the day and are deleted after [retention] end_of_term_days. "
          f"Export first: mailflow export --member {member.email} --out FILE.zip")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mailflow.casework import audit, sar

    _pin(args)
    app = _load(args)
    now = clock.now()
    member = app.settings.member_for(args.member)
    if member is None:
        raise Fail(f"--member: no member with address {args.member}", EX_USAGE)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise Fail(f"--out: no directory {out.parent}", EX_USAGE)
    who = _os_user()
    with app.session() as s:
        row = s.exec(select(models.Member).where(models.Member.email == member.email)).one()
        cases = list(s.exec(select(models.Case).where(models.Case.member_id == row.id)
                            .order_by(col(models.Case.id))))
        found = sar.for_cases(s, cases)
        data = sar.write_zip(s, found, str(out), title=f"Casework of {member.name}",
                             person=None, today=app.calendar.local(now).date(), now=now)
        audit.record(s, actor=who, action="read", what="export", now=now,
                     detail={"member": member.email, "cases": len(cases),
                             "files": data["files"]})
        s.commit()
    result = {"member": member.email, "out": str(out), "cases": [c.reference for c in cases],
              "messages": len(found.raws), "sent": len(found.outbox),
              "attachments": len(found.attachments)}
    if args.json:
        _print_json(result)
    else:
        print(f"{len(cases)} case(s) of {member.name} written to {out}")
    return 0


def _scrub_free_pages(app: App) -> None:
    """SQLite keeps old values in free pages and the write-ahead log until they are reused:
    after an erasure, rewrite the file (VACUUM) and empty the log, so the person's data is
    not left in it. PostgreSQL's routine VACUUM does the same for dead rows in time."""
    eng = db.engine(app.url)
    if eng.dialect.name != "sqlite":
        return
    raw = eng.raw_connection()  # outside a transaction (VACUUM cannot run in one)
    try:
        cur = raw.cursor()
        cur.execute("VACUUM")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()


def audit_read(s: Any, who: str, what: str, now: Any) -> None:
    from mailflow.casework import audit

    audit.record(s, actor=who, action="read", what=what, now=now)


# -- parser ------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """Bad arguments exit 64 (EX_USAGE) as the README says, not argparse's own 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def _holding_common(p: argparse.ArgumentParser, default: Any) -> None:
    """`--as`, `--now`, `--json`, before or after a holding action (its parser must not
    reset what `holding --json file …` already set: SUPPRESS)."""
    p.add_argument("--as", dest="as_", metavar="EMAIL", default=default,
                   help="the staff user (or member) acting (default: the OS user)")
    p.add_argument("--now", default=default, help="pin the clock for this run (ISO-8601)")
    p.add_argument("--json", action="store_true",
                   default=default if default is argparse.SUPPRESS else False)
    p.set_defaults(**({} if default is argparse.SUPPRESS else {"action": None}))


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="config file (default: $MAILFLOW_CONFIG or config/mailflow.toml)")
    p = _Parser(prog="mailflow", parents=[common],
                                description="Email-driven casework for councils.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str
            ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("check", cmd_check, "validate the config file and summarise the council directory")
    sp.add_argument("--connect", action="store_true",
                    help="also try the database, the IMAP login and the outbound relay login")
    sp = add("backup", cmd_backup, "a consistent copy of the database while mailflow runs")
    sp.add_argument("--out", required=True, metavar="FILE")
    add("init", cmd_init, "create or upgrade the database (safe to run twice)")
    sp = add("ingest", cmd_ingest, "take messages from files or standard input (MTA pipe)")
    sp.add_argument("files", nargs="*", metavar="FILE")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true", help="one JSON object per message")
    sp = add("inspect", cmd_inspect,
             "show what mailflow sees in messages, changing nothing (read-only)")
    sp.add_argument("files", nargs="+", metavar="FILE")
    sp.add_argument("--json", action="store_true", help="one JSON object per message")
    sp = add("tick", cmd_tick, "run every due job once and exit")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true")
    sp = add("serve", cmd_serve, "run the SMTP or LMTP receiver and the scheduled jobs")
    sp.add_argument("--host", help="override [smtp] host")
    sp.add_argument("--port", type=int, help="override [smtp] port")
    sp.add_argument("--lmtp", action="store_true",
                    help="speak LMTP (Postfix lmtp: transport) instead of SMTP")
    sp.add_argument("--web-port", type=int, metavar="PORT", help="override [web] port")
    sp = add("web", cmd_web, "run the web server alone: /livez, /readyz, /metrics")
    sp.add_argument("--port", type=int, help="override [web] port")
    sp = add("poll", cmd_poll, "fetch mail from the [imap] mailbox (until SIGTERM, or --once)")
    sp.add_argument("--once", action="store_true",
                    help="fetch what is there, process it, print a summary and exit (cron)")
    sp.add_argument("--json", action="store_true", help="the --once summary as JSON")
    sp = add("cases", cmd_cases, "list cases")
    sp.add_argument("--member", help="only this member's cases (address or alias)")
    sp.add_argument("--status", choices=["triage", "open", "answered", "closed"])
    sp.add_argument("--as", dest="as_", metavar="EMAIL",
                    help="only the cases this member (or staff) may see")
    sp.add_argument("--json", action="store_true")
    sp = add("case", cmd_case, "show one case, its requests and its timeline (the read is "
             "recorded)")
    sp.add_argument("reference")
    sp.add_argument("--as", dest="as_", metavar="EMAIL",
                    help="read as this member or staff (refused when not shared with them)")
    sp.add_argument("--audit", action="store_true",
                    help="the audit trail: every change and every read")
    sp.add_argument("--json", action="store_true")
    sp = add("audit", cmd_audit, "the audit trail: who read or changed what, oldest first")
    sp.add_argument("--case", metavar="REF",
                    help="reads of this case (listings that showed it too) and its changes")
    sp.add_argument("--by", metavar="EMAIL",
                    help="only what this person did (an address, or `NAME (os user)`)")
    sp.add_argument("--since", metavar="DATE", help="from this day on (YYYY-MM-DD)")
    sp.add_argument("--json", action="store_true")
    sp = add("import", cmd_import, "import existing casework from a CSV file")
    sp.add_argument("file", metavar="FILE.csv")
    sp.add_argument("--dry-run", action="store_true",
                    help="check every row and report what cannot be taken; change nothing")
    sp = add("holding", cmd_holding, "list the holding pen, or work one item of it")
    sp.add_argument("--all", action="store_true", help="include resolved items")
    sp.add_argument("--retry", type=int, metavar="ID",
                    help="put a message quarantined by an error (kind failed) through the "
                         "pipeline again, once the cause is fixed")
    _holding_common(sp, None)
    acts = sp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    file_ = acts.add_parser("file", parents=[common],
                            help="file a held message on a case, as if it had matched it (an "
                                 "update, a service's answer, its commands)")
    file_.add_argument("id", type=int, metavar="ID")
    file_.add_argument("reference", metavar="REF")
    open_ = acts.add_parser("open", parents=[common],
                            help="open a case from a held message for a member")
    open_.add_argument("id", type=int, metavar="ID")
    open_.add_argument("--member", required=True, metavar="EMAIL",
                       help="the member whose case it is")
    open_.add_argument("--service", metavar="NAME",
                       help="send the request to this service (default: routed by keywords)")
    dismiss = acts.add_parser("dismiss", parents=[common],
                              help="take a held message out of the queue (kept)")
    dismiss.add_argument("id", type=int, metavar="ID")
    dismiss.add_argument("--reason", required=True, metavar="TEXT", help="why, in words")
    for a in (file_, open_, dismiss):
        _holding_common(a, argparse.SUPPRESS)
    sp = add("outbox", cmd_outbox, "list outbound mail")
    sp.add_argument("--state", choices=["queued", "sending", "sent", "held", "failed"])
    sp.add_argument("--release", type=int, metavar="ID",
                    help="send a held message after all (a person decided it should go)")
    sp.add_argument("--json", action="store_true")
    sp = add("search", cmd_search, "full-text search over cases, best match first")
    sp.add_argument("query", nargs="+", help='words (all must match), "a phrase", or prefix*')
    sp.add_argument("--member", help="only this member's cases (address or alias)")
    sp.add_argument("--ward", help="only cases of this ward")
    sp.add_argument("--service", help="only cases with a request to this service")
    sp.add_argument("--status", choices=["triage", "open", "answered", "closed"])
    sp.add_argument("--since", help="opened on or after this date (YYYY-MM-DD)")
    sp.add_argument("--until", help="opened on or before this date (YYYY-MM-DD)")
    sp.add_argument("--as", dest="as_email", metavar="EMAIL",
                    help="search as this member or staff user (sees only what they may see)")
    sp.add_argument("--limit", type=int, default=20, help="at most this many cases (20)")
    sp.add_argument("--json", action="store_true")
    sp = add("report", cmd_report, "volumes and timeliness, grouped, over a period")
    sp.add_argument("--by", metavar="GROUPS",
                    help="group by ward, member, category, service, type and/or month, "
                         "comma-separated (e.g. service,month); default: the whole council")
    sp.add_argument("--period", help="2026, 2026H1, 2026Q3 or 2026-10 (default: last month)")
    sp.add_argument("--from", dest="date_from", metavar="DATE", help="first day (YYYY-MM-DD)")
    sp.add_argument("--to", dest="date_to", metavar="DATE", help="last day (YYYY-MM-DD)")
    fmt = sp.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV on standard output")
    fmt.add_argument("--json", action="store_true", help="JSON on standard output")
    fmt.add_argument("--html", metavar="FILE", help="a self-contained HTML report with charts")
    sp.add_argument("--now", help="pin the clock (what is overdue now) (ISO-8601)")
    sp = add("retention", cmd_retention,
             "delete what has passed its [retention] period now (the daily job's work)")
    sp.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true", help="a list, one object per item")
    sp = add("hold", cmd_hold, "put a case on legal hold (retention never deletes it), or "
             "release it")
    sp.add_argument("reference")
    sp.add_argument("--reason", help="why it is held (kept with the hold)")
    sp.add_argument("--until", metavar="DATE", help="held until this date (YYYY-MM-DD), "
                    "inclusive; default: until released")
    sp.add_argument("--release", action="store_true", help="release the hold placed by hand")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp = add("sar", cmd_sar, "subject access: everything about a person, as a zip they can "
             "read; the register of requests")
    sp.add_argument("email", nargs="?", metavar="EMAIL")
    sp.add_argument("--name", help="their name, to find them named in text")
    sp.add_argument("--phone", help="their phone number, to find it in text")
    sp.add_argument("--out", metavar="FILE.zip", help="where to write the answer")
    sp.add_argument("--as", dest="as_", metavar="EMAIL",
                    help="answer as this member (only their casework) or staff")
    sp.add_argument("--list", action="store_true", help="the register of requests")
    sp.add_argument("--extend", type=int, metavar="ID",
                    help="extend a complex request (with --months N and --reason TEXT)")
    sp.add_argument("--months", type=int, help="with --extend: 1 or 2 (two at most in all)")
    sp.add_argument("--reason", help="with --extend: why (told to the requester)")
    sp.add_argument("--answered", type=int, metavar="ID",
                    help="the request was answered: its holds end in four months")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true")
    sp = add("erase", cmd_erase, "anonymise a constituent across every case (refused while "
             "a legal hold applies)")
    sp.add_argument("email", metavar="EMAIL")
    sp.add_argument("--name", help="another form of their name to erase as well")
    sp.add_argument("--phone", help="another phone number of theirs to erase as well")
    sp.add_argument("--dry-run", action="store_true", help="count what would change; change "
                    "nothing")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true")
    sp = add("member", lambda a: a.member_fn(a), "a member's end of term")
    msub = sp.add_subparsers(dest="member_command", required=True, metavar="SUBCOMMAND")
    ep = msub.add_parser("end-of-term", parents=[common],
                         help="no new case opens for the member from the date; their open "
                              "cases are handed over (with consent) or closed")
    ep.set_defaults(member_fn=cmd_member)
    ep.add_argument("email", metavar="EMAIL")
    ep.add_argument("--successor", metavar="EMAIL", help="the member who takes over the "
                    "cases whose constituent consented (#consent handover)")
    ep.add_argument("--on", metavar="DATE", help="the day the term ends: from this date no new "
                    "case opens for them (default: today)")
    ep.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    ep.add_argument("--json", action="store_true")
    sp = add("export", cmd_export, "a member's own casework as a zip (the format of a subject "
             "access answer)")
    sp.add_argument("--member", required=True, metavar="EMAIL")
    sp.add_argument("--out", required=True, metavar="FILE.zip")
    sp.add_argument("--now", help="pin the clock for this run (ISO-8601)")
    sp.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(logging.INFO if args.verbose or args.command == "serve"
                   or (args.command == "poll" and not args.once) else logging.WARNING)
    try:
        code = args.fn(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `mailflow cases | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except settings.ConfigError as e:
        for problem in e.problems:
            print(f"{e.path}: {problem}", file=sys.stderr)
        return EX_CONFIG
    except Fail as e:
        print(f"mailflow {args.command}: {e}", file=sys.stderr)
        return e.code
    except SQLAlchemyError as e:  # the database went away or refused mid-command
        print(f"mailflow {args.command}: database cannot be used: {_why(e)}", file=sys.stderr)
        return 1
    except OSError as e:  # a file or folder: named, with the reason, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"mailflow {args.command}: {where}{e.strerror or e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
