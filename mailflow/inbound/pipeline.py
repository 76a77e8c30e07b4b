"""receive -> spool -> pipeline. Every receiver stores through `spool.store` (`receive` for one
message); the pipeline then handles each stored message in one transaction: parse, dispatch,
the case change and the mail it causes commit together, or not at all."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import bindparam, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from mailflow import db, metrics, models
from mailflow.app import App
from mailflow.casework import audit, directory
from mailflow.inbound import spool
from mailflow.inbound.dispatch import Outcome, dispatch
from mailflow.inbound.parse import Parsed, parse

log = logging.getLogger(__name__)


def receive(app: App, raw: bytes, *, source: str, now: datetime,
            envelope_from: str | None = None, envelope_to: list[str] | None = None
            ) -> tuple[int, bool]:
    """Store one raw message durably (`spool.store`); returns (spool id, duplicate). Raises if
    it could not be stored, so the receiver can tell the sender to try again (EX_TEMPFAIL)."""
    with db.session(app.url) as session:
        return spool.store(session, [spool.Incoming(raw, source, envelope_from, envelope_to)],
                           now)[0]


def process(app: App, raw_id: int, now: datetime) -> Outcome | None:
    """Dispatch one spooled message. Returns None when another worker already took it (on
    PostgreSQL also while an earlier message of its case waits: inbound/claiming.py)."""
    with metrics.PIPELINE.time():
        if db.is_postgres(db.engine(app.url)):
            from mailflow.inbound import claiming
            taken = claiming.process_one(app, [raw_id], now)
            return taken[1] if taken else None
        return _process(app, raw_id, now)


def _process(app: App, raw_id: int, now: datetime) -> Outcome | None:
    try:
        with app.session() as session:
            # Read and parse before the write transaction: on SQLite it holds the one write
            # lock, and senders wait behind it for their 250. The read takes no lock.
            db.reading(session)
            raw = session.exec(select(models.RawMessage).where(
                models.RawMessage.id == raw_id, models.RawMessage.state == "new")).first()
            session.commit()  # ends the read; the row stays loaded
            if raw is None:
                return None
            parsed = parse(raw.raw)
            if not take(session, raw, now):
                session.rollback()
                return None
            outcome = handle(app, session, raw, parsed, now)
            session.commit()
            return outcome
    except Exception as e:  # noqa: BLE001 - a message we cannot handle goes to quarantine
        log.exception("message %s could not be processed", raw_id)
        return quarantine(app, raw_id, now, f"{type(e).__name__}: {e}")


def take(session: Session, raw: models.RawMessage, now: datetime) -> bool:
    """Claim a `new` spool row in the session's transaction (db.claim's conditional UPDATE:
    of two workers that both read it `new`, the row count says which one won), and leave
    the loaded row as the claim left it, without reading it again."""
    if not session.execute(_TAKE, {"w_id": raw.id, "v_at": now}).rowcount:  # type: ignore[attr-defined]
        return False
    set_committed_value(raw, "state", "done")
    set_committed_value(raw, "processed_at", now)
    return True


# Built once with bound parameters: building it for each message cost more than running it.
_R = models.RawMessage.__table__  # type: ignore[attr-defined]
_TAKE = (update(_R).where(_R.c.id == bindparam("w_id"), _R.c.state == "new")
         .values(state="done", processed_at=bindparam("v_at")))


def handle(app: App, session: Session, raw: models.RawMessage, parsed: Parsed,
           now: datetime) -> Outcome:
    """Dispatch a spool row the caller has claimed, in the caller's transaction, and record
    its outcome on the row in one UPDATE (inbound/claiming.py claims on PostgreSQL)."""
    directory.warm(session, lazy=True)  # members and services without a query
    outcome = dispatch(app.context, session, raw, parsed, now)
    done: dict[str, object] = {"w_id": raw.id, "v_disposition": outcome.disposition,
                               "v_reason": outcome.reason[:1000]}
    if outcome.case:
        done["v_case_id"] = _case_id(session, outcome.case)
    session.flush()  # what dispatch wrote, before the row's outcome (a Core UPDATE does not)
    session.execute(_DONE[outcome.case is not None], done)
    return outcome


# The outcome's UPDATE, without and with the case, built once like _TAKE.
_DONE = {with_case: update(_R).where(_R.c.id == bindparam("w_id")).values(
    disposition=bindparam("v_disposition"), reason=bindparam("v_reason"),
    **({"case_id": bindparam("v_case_id")} if with_case else {})) for with_case in (False, True)}


def _case_id(session: Session, reference: str) -> int:
    """The case the outcome names: nearly always already in this session."""
    for obj in list(session.identity_map.values()):
        if isinstance(obj, models.Case) and obj.reference == reference and obj.id:
            return obj.id
    return session.exec(select(models.Case.id)
                        .where(models.Case.reference == reference)).one()  # type: ignore[return-value]


def quarantine(app: App, raw_id: int, now: datetime, reason: str,
               state: str | None = None) -> Outcome:
    """`state`: quarantine only if the row is still in it (a claim: of two workers that both
    failed on it, one files it)."""
    reason = f"could not be processed: {reason}"[:1000]
    with app.session() as session:
        failed = {"state": "failed", "disposition": "holding_pen", "reason": reason,
                  "processed_at": now}
        if state is not None and not db.claim(session, models.RawMessage,
                                               {"id": raw_id, "state": state}, failed):
            session.rollback()
            return describe(app, raw_id)
        raw = session.get(models.RawMessage, raw_id)
        assert raw is not None
        raw.state, raw.disposition, raw.reason, raw.processed_at = (
            "failed", "holding_pen", reason, now)
        session.add(raw)
        session.add(models.Holding(raw_message_id=raw_id, kind="failed", reason=reason,
                                   created_at=now))
        session.commit()
    return Outcome("holding_pen", None, reason, rule="failed")


def pending(app: App, limit: int = 1000) -> list[int]:
    with app.session() as session:
        return list(session.exec(
            select(models.RawMessage.id).where(models.RawMessage.state == "new")
            .order_by(models.RawMessage.id).limit(limit)
        ).all())  # type: ignore[arg-type]


def drain(app: App, now: datetime) -> int:
    """Process everything waiting in the spool (after a crash, or behind a fast receiver).
    On PostgreSQL through the claim that serve's workers use, so it keeps their order."""
    if db.is_postgres(db.engine(app.url)):
        from mailflow.inbound import claiming
        return claiming.drain(app, now)
    done = 0
    while ids := pending(app):
        for raw_id in ids:
            done += process(app, raw_id, now) is not None
    return done


def describe(app: App, raw_id: int) -> Outcome:
    """The recorded outcome of a stored message (for a duplicate delivery's report)."""
    with app.session() as session:
        raw = session.get(models.RawMessage, raw_id)
        assert raw is not None
        case = session.get(models.Case, raw.case_id) if raw.case_id else None
        return Outcome(raw.disposition or "pending", case.reference if case else None,
                       raw.reason or "")


class CannotRetry(Exception):
    def __init__(self, message: str, found: bool):
        super().__init__(message)
        self.found = found  # False: there is no such holding item


def retry(app: App, holding_id: int, now: datetime, by: str = "mailflow", via: str = "cli"
          ) -> tuple[int, Outcome]:
    """Mailman's unshunt: a message quarantined by a pipeline error (holding kind `failed`)
    goes through `process` again, once the cause is fixed. The item is resolved and the raw
    message claimed back from failed to new in one transaction, so it is retried once however
    many people ask; if it fails again it is quarantined again, with a new item."""
    with app.session() as session:
        h = session.get(models.Holding, holding_id)
        if h is None:
            raise CannotRetry(f"no holding item {holding_id}", found=False)
        raw_id = h.raw_message_id
        if h.kind != "failed" or raw_id is None:
            raise CannotRetry(f"holding item {holding_id} is {h.kind}, not a failed message",
                              found=True)
        resolved = {"resolved_at": now, "resolution": "retried", "resolved_by": by}
        if not (db.claim(session, models.Holding, {"id": holding_id, "resolved_at": None},
                         resolved)
                and db.claim(session, models.RawMessage, {"id": raw_id, "state": "failed"},
                             {"state": "new", "disposition": None, "reason": None,
                              "processed_at": None})):
            session.rollback()
            raise CannotRetry(f"holding item {holding_id} was already "
                              f"{h.resolution or 'retried'}", found=True)
        audit.record(session, actor=by, action="change", what="holding.retry", now=now,
                     via=via, detail={"holding": holding_id, "kind": h.kind, "message": raw_id})
        session.commit()
    return raw_id, process(app, raw_id, now) or describe(app, raw_id)
