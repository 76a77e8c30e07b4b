"""Subject access: everything mailflow holds about one person, and the zip they can read.

`find` gathers the cases (as constituent: by the indexed email, or by name or phone on the
constituent table; named in a case's text: through the search index, which the caller
passes in as `named_in`), every message of those cases (raw, held in the holding pen, sent
from the outbox), their attachments, notes and audit rows. Mail that reached no case is
found by scanning the holding pen and the caseless raw and sent mail for the person's
address, name or phone: a text search over stored bodies, page by page (`scanned` says how
many rows were read). `write_zip` writes `index.html`, the messages as `.eml`, the
attachments, `data.json`, and `review.txt`: third parties' personal data found in those
messages, for redaction before release (nothing is dropped silently).
"""

from __future__ import annotations

import html
import json
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import audit, holds, views
from mailflow.casework.retention import _raw_messages, add_months

PAGE = 500
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?:\+44\s?|0)(?:\d[\s-]?){9,10}\d?")


@dataclass(frozen=True)
class Person:
    email: str
    name: str | None = None
    phone: str | None = None

    def needles(self) -> list[bytes]:
        """What identifies them in stored bytes (lower case; the phone with and without
        spaces)."""
        out = [self.email.lower()]
        if self.name:
            out.append(self.name.lower())
        if self.phone:
            out += {self.phone.lower(), re.sub(r"\D", "", self.phone)}
        return [n.encode() for n in out if n]

    def is_them(self, value: str) -> bool:
        v = value.strip().lower()
        digits = re.sub(r"\D", "", v)
        return (v == self.email.lower() or (bool(self.name) and v == self.name.lower())  # type: ignore[union-attr]
                or (bool(self.phone) and len(digits) > 6
                    and digits == re.sub(r"\D", "", self.phone or "")))


@dataclass
class Found:
    cases: list[models.Case] = field(default_factory=list)
    raws: dict[int, models.RawMessage] = field(default_factory=dict)
    raw_case: dict[int, str] = field(default_factory=dict)  # raw id -> case reference
    holding: list[models.Holding] = field(default_factory=list)
    outbox: list[models.Outbox] = field(default_factory=list)
    attachments: list[models.Attachment] = field(default_factory=list)
    audit: list[models.AuditEntry] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=dict)


def _contains(data: bytes | str | None, needles: list[bytes]) -> bool:
    if not data:
        return False
    blob = (data.encode() if isinstance(data, str) else bytes(data)).lower()
    return any(n in blob for n in needles)


def find(session: Session, person: Person, named_in: Callable[[str], Iterable[int]],
         member_id: int | None = None) -> Found:
    """Everything about `person`; only `member_id`'s cases when given (a member answering as
    the controller of their own casework)."""
    found = Found()
    needles = person.needles()
    c = models.Constituent
    who = [c.email == person.email]  # ix_constituent_email; addresses are kept lower-case
    if person.name:
        who.append(func.lower(c.name) == person.name.lower())  # scans constituents
    if person.phone:
        who.append(c.phone == person.phone)
    constituents = list(session.exec(select(c.id).where(or_(*who))))
    ids: set[int] = set()
    if constituents:
        ids |= set(session.exec(select(models.Case.id)
                                .where(col(models.Case.constituent_id).in_(constituents))))  # type: ignore[arg-type]
    ids |= set(session.exec(select(models.Event.case_id)  # as sender (ix_event_sender)
                            .where(models.Event.sender == person.email)))
    for term in filter(None, (person.email, person.name, person.phone)):
        ids |= set(named_in(term))
    q = select(models.Case).where(col(models.Case.id).in_(ids)).order_by(col(models.Case.id))
    if member_id is not None:
        q = q.where(models.Case.member_id == member_id)
    found.cases = list(session.exec(q)) if ids else []
    _collect(session, found, person.email)
    if member_id is None:
        _scan_uncased(session, found, person, needles)
    _load_raws(session, found)
    return found


def for_cases(session: Session, cases: list[models.Case]) -> Found:
    """Everything of these cases (a member's export of their own casework)."""
    found = Found(cases=cases)
    _collect(session, found, None)
    _load_raws(session, found)
    return found


def _collect(session: Session, found: Found, email: str | None) -> None:
    """The messages, sent mail, files and audit rows of the cases found (by indexes)."""
    case_ids = [x.id for x in found.cases]
    for case in found.cases:
        requests = list(session.exec(select(models.Request.id)
                                     .where(models.Request.case_id == case.id)))
        for raw_id in _raw_messages(session, case, requests):
            found.raw_case[raw_id] = case.reference
        found.outbox += list(session.exec(
            select(models.Outbox).where(or_(models.Outbox.case_id == case.id,
                                            col(models.Outbox.request_id).in_(requests)))
            .order_by(col(models.Outbox.id))))
    if case_ids:
        found.holding += [h for h in session.exec(
            select(models.Holding).where(col(models.Holding.case_id).in_(case_ids))
            .order_by(col(models.Holding.id))) if h not in found.holding]
        found.attachments = list(session.exec(
            select(models.Attachment).where(col(models.Attachment.case_id).in_(case_ids))
            .order_by(col(models.Attachment.id))))
        refs = [x.reference for x in found.cases]
        found.audit = list(session.exec(
            select(models.AuditEntry).where(or_(col(models.AuditEntry.case_ref).in_(refs),
                                                models.AuditEntry.actor == (email or "")))
            .order_by(col(models.AuditEntry.id))))


def _load_raws(session: Session, found: Found) -> None:
    for raw_id in found.raw_case:
        raw = session.get(models.RawMessage, raw_id)
        if raw is not None:
            found.raws[raw_id] = raw


def _scan_uncased(session: Session, found: Found, person: Person, needles: list[bytes]) -> None:
    """The text search over what reached no case: the holding pen, raw and sent mail."""
    seen = 0
    after = 0
    while True:  # the holding pen, with the raw message of each item
        page = list(session.exec(select(models.Holding).where(col(models.Holding.id) > after)
                                 .order_by(col(models.Holding.id)).limit(PAGE)))
        if not page:
            break
        for h in page:
            seen += 1
            raw = session.get(models.RawMessage, h.raw_message_id) if h.raw_message_id else None
            if h in found.holding:
                continue
            if (h.sender or "").lower() == person.email.lower() or _contains(
                    f"{h.subject} {h.reason}", needles) or (raw and _contains(raw.raw, needles)):
                found.holding.append(h)
                if raw is not None:
                    found.raw_case.setdefault(raw.id, "holding")  # type: ignore[arg-type]
        after = page[-1].id  # type: ignore[assignment]
    found.scanned["holding"] = seen
    seen, after = 0, 0
    while True:
        page = list(session.exec(select(models.RawMessage)
                                 .where(col(models.RawMessage.case_id).is_(None))
                                 .where(col(models.RawMessage.id) > after)
                                 .order_by(col(models.RawMessage.id)).limit(PAGE)))
        if not page:
            break
        for r in page:
            seen += 1
            if r.id not in found.raw_case and _contains(r.raw, needles):
                found.raw_case[r.id] = "other"  # type: ignore[index]
        after = page[-1].id  # type: ignore[assignment]
    found.scanned["raw_messages"] = seen
    seen, after, have = 0, 0, {o.id for o in found.outbox}
    while True:
        page = list(session.exec(select(models.Outbox)
                                 .where(col(models.Outbox.case_id).is_(None))
                                 .where(col(models.Outbox.id) > after)
                                 .order_by(col(models.Outbox.id)).limit(PAGE)))
        if not page:
            break
        for o in page:
            seen += 1
            if o.id not in have and (_contains(o.raw, needles)
                                     or any(person.is_them(a) for a in o.recipients)):
                found.outbox.append(o)
        after = page[-1].id  # type: ignore[assignment]
    found.scanned["outbox"] = seen


# -- the zip --------------------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._")[:80] or "file"


def _iso(v: datetime | date | None) -> str | None:
    return views._iso(v)


def third_parties(person: Person, raw: bytes,
                  ours: Callable[[str], bool] = lambda a: False) -> list[str]:
    """Other people's addresses, names and phone numbers in one message (not mailflow's own
    addresses, `ours`). Names in free text are not recognised: review.txt says so."""
    out: list[str] = []
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        headers = {h: [str(v) for v in msg.get_all(h) or []]
                   for h in ("From", "To", "Cc", "Reply-To", "Sender")}
        body = msg.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
    except Exception:  # noqa: BLE001 - hostile mail: fall back to the bytes as text
        headers, text = {}, raw.decode("utf-8", "replace")
    for h, values in headers.items():
        for name, addr in getaddresses(values):
            if addr and not person.is_them(addr) and not ours(addr):
                out.append(f"address ({h}): {name + ' ' if name else ''}<{addr}>")
            elif name and not person.is_them(name) and not addr:
                out.append(f"name ({h}): {name}")
    for addr in sorted(set(_EMAIL.findall(text))):
        if not person.is_them(addr) and not ours(addr):
            out.append(f"address (text): {addr}")
    for phone in sorted({p.strip() for p in _PHONE.findall(text)}):
        if not person.is_them(phone):
            out.append(f"phone (text): {phone}")
    for m in re.finditer(r"(?m)^(?:From|To|Cc|Sent by|Name):\s*(.+)$", text):
        value = m.group(1).strip()
        if value and not person.is_them(value) and not any(
                person.is_them(a) for _, a in getaddresses([value])):
            out.append(f"quoted header (text): {value[:200]}")
    return list(dict.fromkeys(out))


def write_zip(session: Session, found: Found, path: str, *, title: str, person: Person | None,
              today: date, now: datetime, ours: Callable[[str], bool] = lambda a: False
              ) -> dict[str, Any]:
    """Write the zip; returns its data.json (and the count of files under `files`)."""
    data: dict[str, Any] = {"title": title, "generated_at": _iso(now),
                            "person": vars(person) if person else None,
                            "cases": [], "messages": [], "sent": [], "holding": [],
                            "audit": [], "searched": found.scanned}
    review: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        def put(name: str, blob: bytes) -> str:
            z.writestr(name, blob)
            return name

        for raw_id, where in sorted(found.raw_case.items()):
            raw = found.raws.get(raw_id)
            if raw is None:
                continue
            name = f"messages/{_safe(where)}/{raw_id}.eml"
            if raw.raw:
                put(name, bytes(raw.raw))
            data["messages"].append({"file": name if raw.raw else None, "id": raw_id,
                                     "case": where if where not in ("holding", "other")
                                     else None, "held": where == "holding",
                                     "from": raw.envelope_from, "message_id": raw.message_id,
                                     "received_at": _iso(raw.received_at)})
            if raw.raw and person:
                review += [f"{name}: {x}" for x in third_parties(person, bytes(raw.raw), ours)]
        by_case: dict[int | None, list[dict[str, Any]]] = {}
        for o in found.outbox:
            name = put(f"sent/{o.id}.eml", bytes(o.raw))
            row = {**views.outbox_dict(o), "file": name}
            by_case.setdefault(o.case_id, []).append(row)
            data["sent"].append(row)
            if person:
                review += [f"{name}: {x}" for x in third_parties(person, bytes(o.raw), ours)]
                if o.case_id is None:
                    review.append(f"{name}: mail about several cases ({o.kind}): keep only "
                                  "the lines about the requester")
        files: dict[int, list[dict[str, Any]]] = {}
        for a in found.attachments:
            blob = session.get(models.Blob, a.sha256) if a.stored else None
            ref = next(x.reference for x in found.cases if x.id == a.case_id)
            name = (put(f"attachments/{_safe(ref)}/{a.id}-{_safe(a.name)}", bytes(blob.data))
                    if blob is not None else None)
            files.setdefault(a.case_id, []).append({"name": a.name, "file": name,
                                                    "size": a.size})
        for case in found.cases:
            d = views.case_dict(session, case, today)
            d["sent"] = by_case.get(case.id, [])
            d["files"] = files.get(case.id, [])  # type: ignore[call-overload]
            data["cases"].append(d)
        data["holding"] = [views.holding_dict(session, h) for h in found.holding]
        data["audit"] = [{"at": _iso(a.at), "actor": a.actor, "action": a.action,
                          "what": a.what, "case": a.case_ref, "via": a.via, "detail": a.detail}
                         for a in found.audit]
        put("data.json", json.dumps(data, indent=2, ensure_ascii=False, default=str).encode())
        put("index.html", _html(data).encode())
        put("review.txt", _review(title, review).encode())
        data["files"] = len(z.namelist())
    return data


def _review(title: str, lines: list[str]) -> str:
    head = [f"{title}: third parties' personal data in these messages",
            "Review each before release: redact what is not the requester's own data,",
            "or record why it is disclosed (UK GDPR Art. 15(4); DPA 2018 Sch. 2 para 16).",
            "Addresses and phone numbers are found by pattern; names written in the text",
            "(a neighbour, a relative) are not: read each message before release.", ""]
    return "\n".join(head + (sorted(set(lines)) or ["(none found)"])) + "\n"


def _html(data: dict[str, Any]) -> str:
    e = html.escape
    out = [f"<!doctype html><meta charset=utf-8><title>{e(data['title'])}</title>",
           "<style>body{font:15px/1.4 sans-serif;max-width:60em;margin:2em auto}"
           "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
           "vertical-align:top;text-align:left}pre{white-space:pre-wrap}</style>",
           f"<h1>{e(data['title'])}</h1><p>Prepared {e(data['generated_at'])}. "
           f"{len(data['cases'])} case(s), {len(data['messages'])} message(s) received, "
           f"{len(data['sent'])} sent. The messages are in <code>messages/</code> and "
           "<code>sent/</code> (open them with any mail program), the files in "
           "<code>attachments/</code>, everything as data in <code>data.json</code>.</p>"]
    for c in data["cases"]:
        who = c["constituent"]
        out.append(f"<h2>Case {e(c['reference'])}: {e(c['subject'])}</h2>"
                   f"<p>Status: {e(c['status'])}. Councillor: {e(c['member']['name'])}. "
                   f"From: {e(who['name'] or '')} {e(who['email'] or '')}. "
                   f"Opened {e(str(c['opened_at']))}"
                   + (f", closed {e(str(c['closed_at']))}" if c.get("closed_at") else "")
                   + f".</p><pre>{e(c['issue'])}</pre>")
        if c["member_note"]:
            out.append(f"<p>Councillor's note:</p><pre>{e(c['member_note'])}</pre>")
        out.append("<h3>Timeline</h3><table><tr><th>When</th><th>What</th><th>From</th>"
                   "<th>Text</th></tr>")
        out += [f"<tr><td>{e(t['at'] or '')}</td><td>{e(t['kind'])}</td>"
                f"<td>{e(t['from'] or '')}</td><td><pre>{e(t['text'] or '')}</pre></td></tr>"
                for t in c["timeline"]]
        out.append("</table><h3>What was sent, to whom</h3><table><tr><th>When</th>"
                   "<th>What</th><th>To</th><th>Subject</th><th>State</th><th>File</th></tr>")
        out += [f"<tr><td>{e(s['created_at'] or '')}</td><td>{e(s['kind'])}</td>"
                f"<td>{e(', '.join(s['to']))}</td><td>{e(s['subject'])}</td>"
                f"<td>{e(s['state'])}</td><td><a href='{e(s['file'])}'>{e(s['file'])}</a></td>"
                "</tr>" for s in c["sent"]]
        out.append("</table>")
        if c["files"]:
            out.append("<h3>Files</h3><ul>" + "".join(
                f"<li><a href='{e(f['file'] or '')}'>{e(f['name'])}</a></li>"
                for f in c["files"]) + "</ul>")
    if data["holding"]:
        out.append("<h2>Mail held for staff</h2><ul>" + "".join(
            f"<li>{e(h['created_at'] or '')}: {e(h['subject'] or '')} ({e(h['reason'])})</li>"
            for h in data["holding"]) + "</ul>")
    others = [s for s in data["sent"] if s.get("case") is None and not any(
        s in c["sent"] for c in data["cases"])]
    if others:
        out.append("<h2>Other mail that mentions you</h2><ul>" + "".join(
            f"<li>{e(s['created_at'] or '')} {e(s['kind'])} to {e(', '.join(s['to']))}: "
            f"<a href='{e(s['file'])}'>{e(s['subject'])}</a></li>" for s in others) + "</ul>")
    out.append("<h2>Who read or changed these records</h2><table><tr><th>When</th><th>Who</th>"
               "<th>Action</th><th>What</th><th>Case</th></tr>")
    out += [f"<tr><td>{e(a['at'] or '')}</td><td>{e(a['actor'])}</td><td>{e(a['action'])}</td>"
            f"<td>{e(a['what'])}</td><td>{e(a['case'] or '')}</td></tr>" for a in data["audit"]]
    out.append("</table>")
    return "\n".join(out) + "\n"


# -- the register --------------------------------------------------------------------------------
class RegisterError(Exception):
    pass


def due_date(received: date, months: int) -> date:
    """One calendar month after receipt, plus any extension (31 January -> 28 February)."""
    at = datetime(received.year, received.month, received.day)
    return add_months(at, 1 + months).date()


def source(request: models.SarRequest) -> str:
    return f"sar:{request.id}"


def register(session: Session, person: Person, found: Found, *, by: str, scope: str | None,
             now: datetime, today: date, files: int) -> models.SarRequest:
    """Record the request and hold every case it found until it is answered (plus 4 months)."""
    row = models.SarRequest(email=person.email, name=person.name, phone=person.phone,
                            received_at=now, due=due_date(today, 0), requested_by=by,
                            scope=scope, cases=len(found.cases), files=files)
    session.add(row)
    session.flush()
    for case in found.cases:
        holds.place(session, case, reason=f"subject access request {row.id}", by=by, now=now,
                    source=source(row))
    # The audit row names the request, not the person (the register row holds who it was).
    audit.record(session, actor=by, action="read", what="sar", now=now,
                 detail={"sar": row.id, "cases": [c.reference for c in found.cases],
                         "messages": len(found.raws), "sent": len(found.outbox),
                         "attachments": len(found.attachments), "scanned": found.scanned})
    return row


def get(session: Session, request_id: int) -> models.SarRequest:
    row = session.get(models.SarRequest, request_id)
    if row is None:
        raise RegisterError(f"no subject access request {request_id}")
    return row


def extend(session: Session, request_id: int, months: int, reason: str, *, by: str,
           now: datetime) -> models.SarRequest:
    row = get(session, request_id)
    if row.answered_at is not None:
        raise RegisterError(f"subject access request {request_id} was answered on "
                            f"{row.answered_at.date()}")
    if months < 1 or row.extended_months + months > 2:
        raise RegisterError(f"--months: a request may be extended by two months at most "
                            f"(already {row.extended_months})")
    if not reason.strip():
        raise RegisterError("--reason: say why the request is complex")
    row.extended_months += months
    row.extend_reason = reason.strip()
    row.due = due_date(row.received_at.date(), row.extended_months)
    session.add(row)
    audit.record(session, actor=by, action="change", what="sar.extend", now=now,
                 detail={"sar": row.id, "months": row.extended_months, "due": row.due.isoformat()})
    return row


def answered(session: Session, request_id: int, *, by: str, now: datetime, today: date
             ) -> tuple[models.SarRequest, date, int]:
    """Mark it answered; its holds now last until the answer plus four months."""
    row = get(session, request_id)
    if row.answered_at is not None:
        raise RegisterError(f"subject access request {request_id} was already answered")
    row.answered_at = now
    session.add(row)
    until = add_months(datetime(today.year, today.month, today.day), 4).date()
    moved = 0
    case_ids = session.exec(select(models.LegalHold.case_id)
                            .where(models.LegalHold.source == source(row))).all()
    for case_id in sorted(set(case_ids)):
        case = session.get(models.Case, case_id)
        if case is not None:
            moved += holds.set_until(session, case, source(row), until, by=by, now=now,
                                     today=today)
    audit.record(session, actor=by, action="change", what="sar.answered", now=now,
                 detail={"sar": row.id, "holds_until": until.isoformat()})
    return row, until, moved


def register_dict(row: models.SarRequest, today: date) -> dict[str, Any]:
    return {"id": row.id, "email": row.email, "name": row.name, "phone": row.phone,
            "received": _iso(row.received_at), "due": _iso(row.due),
            "extended_months": row.extended_months, "extend_reason": row.extend_reason,
            "answered": _iso(row.answered_at),
            "overdue": row.answered_at is None and today > row.due,
            "requested_by": row.requested_by, "scope": row.scope, "cases": row.cases}
