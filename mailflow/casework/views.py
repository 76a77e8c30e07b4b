"""Cases, the holding pen and the outbox as plain dicts: the stable JSON the CLI prints
(documented in the README) and the source of its text tables."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import sharing
from mailflow.settings import Settings


def _iso(v: datetime | date | None) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return v.isoformat()


def request_dict(session: Session, r: models.Request, today: date | None = None) -> dict[str, Any]:
    service = session.get(models.Service, r.service_id)
    state = r.state
    if today and state == "sent" and r.due < today:
        state = "overdue"
    return {
        "id": r.id,
        "service": service.name if service else None,
        "contact": r.contact,
        "state": state,
        "sent_at": _iso(r.sent_at),
        "due": _iso(r.due),
        "due_rule": r.due_rule,
        "answered_at": _iso(r.answered_at),
        "answered_by": r.answered_by,
        "target_days": r.target_days,
        "target_due": _iso(r.target_due),
        "proposed_due": _iso(r.proposed_due),
        "ack_due": _iso(r.ack_due),
        "acknowledged_at": _iso(r.acknowledged_at),
        "chase_step": r.chase_step,
        "next_step": r.next_step,
        "next_step_on": _iso(r.next_step_on),
        "due_from": _iso(r.due_from),
        "follow_up_of": r.follow_up_of,
        "follow_up_reason": r.follow_up_reason,
        "chased_at": _iso(r.chased_at),
        "undeliverable_reason": r.undeliverable_reason,
        "undeliverable_at": _iso(r.undeliverable_at),
    }


def case_summary(session: Session, case: models.Case) -> dict[str, Any]:
    member = session.get(models.Member, case.member_id)
    ward = session.get(models.Ward, case.ward_id) if case.ward_id else None
    constituent = session.get(models.Constituent, case.constituent_id) if case.constituent_id \
        else None
    return {
        "reference": case.reference,
        "status": case.status,
        "subject": case.subject,
        "member": {"name": member.name, "email": member.email} if member else None,
        "ward": ward.name if ward else None,
        "constituent": {
            "name": constituent.name if constituent else None,
            "email": constituent.email if constituent else None,
        },
        "category": case.category,
        "enquiry_type": case.enquiry_type,
        "received_at": _iso(case.received_at),
        "opened_at": _iso(case.opened_at),
        "closed_at": _iso(case.closed_at),
        "open_until": _iso(case.open_until),
        "share": case.share,
        "consent": case.consent,
        "shared": sharing.effective_share(case),
        "priority": case.priority,
        "deadline": _iso(case.deadline),
        "merged_into": _merged_into(session, case),
    }


def _merged_into(session: Session, case: models.Case) -> str | None:
    other = session.get(models.Case, case.merged_into_id) if case.merged_into_id else None
    return other.reference if other else None


def links(session: Session, case: models.Case, settings: Settings | None = None,
          viewer: str | None = None) -> list[dict[str, Any]]:
    """The case's links; with a viewer, a linked case they may not see is named by no one."""
    rows = session.exec(select(models.CaseLink).where(models.CaseLink.case_id == case.id)
                        .order_by(col(models.CaseLink.id))).all()
    out = []
    for link in rows:
        other = session.get(models.Case, link.other_id)
        if other is None:
            continue
        seen = viewer is None or settings is None or sharing.can_see(session, settings, other,
                                                                     viewer)
        out.append({"kind": link.kind, "case": other.reference if seen else None,
                    "reason": link.reason if seen else None, "at": _iso(link.created_at)})
    return out


def case_dict(session: Session, case: models.Case, today: date | None = None,
              settings: Settings | None = None, viewer: str | None = None) -> dict[str, Any]:
    out = case_summary(session, case)
    constituent = session.get(models.Constituent, case.constituent_id) if case.constituent_id \
        else None
    if constituent:
        out["constituent"].update(phone=constituent.phone, address=constituent.address)
    out["issue"] = case.issue
    out["member_note"] = case.member_note
    requests = session.exec(select(models.Request).where(models.Request.case_id == case.id)
                            .order_by(col(models.Request.id))).all()
    out["requests"] = [request_dict(session, r, today) for r in requests]
    out["links"] = links(session, case, settings, viewer)
    events = session.exec(select(models.Event).where(models.Event.case_id == case.id)
                          .order_by(col(models.Event.at), col(models.Event.id))).all()
    out["attachments"] = [
        {"id": a.id, "name": a.name, "content_type": a.content_type, "size": a.size,
         "sha256": a.sha256,
         "stored": a.stored, "message": a.raw_message_id, "at": _iso(a.created_at)}
        for a in session.exec(select(models.Attachment)
                              .where(models.Attachment.case_id == case.id)
                              .order_by(col(models.Attachment.id)))
    ]
    out["timeline"] = [_event_dict(session, e, settings, viewer) for e in events]
    out["legal_hold"] = legal_hold(session, case, today)
    return out


def legal_hold(session: Session, case: models.Case, today: date | None) -> dict[str, Any] | None:
    """The legal hold in force that lasts longest (casework/holds.py), or None."""
    q = select(models.LegalHold).where(models.LegalHold.case_id == case.id)
    q = q.where(models.LegalHold.in_force(today) if today else
                col(models.LegalHold.released_at).is_(None))
    rows = sorted(session.exec(q.order_by(col(models.LegalHold.id))),
                  key=lambda h: h.until or date.max, reverse=True)
    if not rows:
        return None
    h = rows[0]
    return {"reason": h.reason, "source": h.source, "by": h.placed_by, "at": _iso(h.placed_at),
            "until": _iso(h.until)}


def _event_dict(session: Session, e: models.Event, settings: Settings | None,
                viewer: str | None) -> dict[str, Any]:
    text, data = e.text, e.data or {}
    other_ref = data.get("other")
    if viewer and settings and other_ref:
        other = session.exec(select(models.Case).where(models.Case.reference == other_ref)).first()
        if other is not None and not sharing.can_see(session, settings, other, viewer):
            text, data = "Linked to a ward colleague's case (not shared with you).", {}
    return {"at": _iso(e.at), "kind": e.kind, "from": e.sender, "text": text,
            "request": e.request_id, "message": e.raw_message_id, "data": data}


def holding_dict(session: Session, h: models.Holding) -> dict[str, Any]:
    case = session.get(models.Case, h.case_id) if h.case_id else None
    raw = session.get(models.RawMessage, h.raw_message_id) if h.raw_message_id else None
    return {
        "id": h.id,
        "kind": h.kind,
        "reason": h.reason,
        "from": h.sender,
        "subject": h.subject,
        "case": case.reference if case else None,
        "message_id": raw.message_id if raw else None,
        "message": h.raw_message_id,
        "created_at": _iso(h.created_at),
        "received_at": _iso(raw.received_at if raw and raw.received_at else h.created_at),
        "candidates": h.candidates or [],
        "resolution": h.resolution,
        "resolved_by": h.resolved_by,
        "resolved_at": _iso(h.resolved_at),
        "resolution_note": h.resolution_note,
    }


def outbox_dict(o: models.Outbox) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind,
        "to": o.recipients,
        "subject": o.subject,
        "message_id": o.message_id,
        "state": o.state,
        "attempts": o.attempts,
        "created_at": _iso(o.created_at),
        "next_attempt_at": _iso(o.next_attempt_at) if o.state in ("queued", "sending") else None,
        "sent_at": _iso(o.sent_at),
        "last_error": o.last_error,
        "held_reason": o.held_reason,
        "recipients_status": o.outcomes(),
    }
