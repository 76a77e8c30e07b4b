"""Downloads from a case page: the raw message of a timeline entry (as plain text) and the
case's attachments. Only member services and the case's own member may have them: the raw
mail and its files name third parties, and a colleague the case is shared with reads the
timeline, not the mail behind it. Anyone else gets the case page's 404 (and a refusal on
the trail); every download is a read on the audit trail.

Nothing downloaded is ever rendered by the browser: raw mail is `text/plain` and files are
`application/octet-stream` sent as attachments (the declared type came from outside), with
`nosniff` and a sandboxing CSP; a file's name is made safe before it goes into a header."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailflow import clock, models, oneline
from mailflow.casework import attachments, audit
from mailflow.settings import Settings

if TYPE_CHECKING:
    from mailflow.web.pages import Site

DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # Even if a browser were to render it, it runs nothing and reaches nothing.
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAME_MAX = 120  # characters of a file's name kept in Content-Disposition
MAX_ID = 2**31 - 1  # a larger number in a path names nothing (and would overflow INTEGER)


def may_have_files(session: Session, settings: Settings, case: models.Case,
                   actor: str | None) -> bool:
    """Staff, or the case's own member (by any of their addresses)."""
    if settings.is_staff(actor):
        return True
    me = settings.member_for(actor)
    owner = session.get(models.Member, case.member_id)
    return bool(me and owner and owner.email == me.email)


def kept(session: Session, raw_ids: set[int]) -> dict[int, bool]:
    """For each raw message: are its bytes still kept? (Retention's `raw_message_days`
    empties them, size 0; a holding-pen item's retention deletes the row.) One query, the
    bytes not read."""
    if not raw_ids:
        return {}
    R = models.RawMessage
    sizes = dict(session.exec(select(R.id, R.size).where(col(R.id).in_(raw_ids))).all())
    return {i: bool(sizes.get(i)) for i in raw_ids}


def on_case_page(session: Session, settings: Settings, case: models.Case, actor: str,
                 data: dict[str, Any]) -> dict[str, Any]:
    """What the case page needs to offer downloads: whether this person may have them, and
    which of the timeline's and attachments' raw messages are still kept."""
    if not may_have_files(session, settings, case, actor):
        return {"files": False, "messages": {}}
    for a in data["attachments"]:  # shown as it would be saved: no bidi tricks on the page
        a["shown"] = safe_name(a["name"], f"attachment-{a['id']}")
    ids = {e["message"] for e in data["timeline"] if e["message"]}
    ids |= {a["message"] for a in data["attachments"] if a["message"]}
    return {"files": True, "messages": kept(session, ids),
            "raw_days": settings.retention.raw_message_days}


def _of_case(session: Session, case: models.Case, raw_id: int) -> bool:
    """Is this raw message part of the case (an entry of its timeline, its first message,
    or the one its attachments came in)? Index lookups, not the case's whole timeline."""
    if case.source_message_id == raw_id:
        return True
    for model in (models.Event, models.Attachment):
        if session.exec(select(model.id).where(model.case_id == case.id,  # type: ignore[attr-defined]
                                               model.raw_message_id == raw_id)  # type: ignore[attr-defined]
                        .limit(1)).first() is not None:
            return True
    return False


def safe_name(name: str | None, fallback: str) -> str:
    """A file's name as it may be offered for saving: no path, no controls or invisible
    formatting characters, no leading dots, at most NAME_MAX characters (the extension kept)."""
    text = oneline.one_line(name).replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] not in "CZ" or c == " ")
    text = text.strip(" .")
    if len(text) > NAME_MAX:
        stem, dot, ext = text.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 10 else ""
        text = text[:NAME_MAX - len(ext) - 1].rstrip(" .") + (f".{ext}" if ext else "")
    return text or fallback


def disposition(kind: str, name: str | None, fallback: str) -> str:
    """`Content-Disposition` (RFC 6266): an ASCII `filename` for old clients and the name in
    full as `filename*` (RFC 8187, UTF-8, percent-encoded), so no character of it can end
    the header or the parameter."""
    full = safe_name(name, fallback)
    plain = re.sub(r"[^A-Za-z0-9 ._()+-]+", "_", full).strip(" ._") or fallback
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"


def raw_response(data: bytes, name: str, download: bool) -> Response:
    """A raw message as plain text: read in the browser, or saved as a .eml file."""
    return Response(data, media_type="text/plain; charset=utf-8", headers={
        **DOWNLOAD_HEADERS,
        "Content-Disposition": disposition("attachment" if download else "inline", name,
                                           "message.eml")})


class Files:
    def __init__(self, site: Site):
        self.site = site
        self.app = site.app

    def _fetch(self, actor: str, ref: str, what: str, item: int
               ) -> tuple[str, Any] | None:
        """("raw", bytes | None) or ("file", (row, bytes | None)) when this person may have
        it; None (a 404, the refusal audited) otherwise."""
        now = clock.now()
        if not 0 < item <= MAX_ID:
            item = 0  # no such row: refused like any other
        with self.app.session() as s:
            case = self.site._case(s, actor, ref)  # a case they cannot see: audited there
            if case is None:
                return None
            found: tuple[str, Any] | None = None
            if may_have_files(s, self.app.settings, case, actor):
                if what == "message" and _of_case(s, case, item):
                    raw = s.get(models.RawMessage, item)
                    found = ("raw", bytes(raw.raw) if raw is not None and raw.size else None)
                elif what == "attachment":
                    row = s.get(models.Attachment, item)
                    if row is not None and row.case_id == case.id:
                        found = ("file", (row, attachments.load(s, row)))
            audit.record(s, actor=actor, action="read" if found else "refused", what=what,
                         now=now, case_ref=case.reference, via="web", detail={what: item})
            s.commit()
        return found

    async def message(self, request: Request) -> Response:
        """GET /cases/REF/messages/ID: the raw message of a timeline entry, as received."""
        actor, ref = request.state.actor, request.path_params["ref"]
        raw_id = request.path_params["id"]
        found = await run_in_threadpool(self._fetch, actor, ref, "message", raw_id)
        if found is None:
            return self.site.not_found(request)
        if found[1] is None:
            return self.gone(request, ref)
        download = request.query_params.get("download") == "yes"
        return raw_response(found[1], f"{ref}-message-{raw_id}.eml", download)

    async def attachment(self, request: Request) -> Response:
        """GET /cases/REF/attachments/ID: one file, always as a download."""
        actor, ref = request.state.actor, request.path_params["ref"]
        item = request.path_params["id"]
        found = await run_in_threadpool(self._fetch, actor, ref, "attachment", item)
        if found is None:
            return self.site.not_found(request)
        row, data = found[1]
        if data is None:
            return self.site.render(
                request, "message", 410, actor=actor, title="File not kept",
                text=f"{safe_name(row.name, 'This file')} was not kept as a separate file"
                     + (" (it was over the size limit): it is in the message as received, "
                        "if that is still kept." if not row.stored else "."))
        return Response(data, media_type="application/octet-stream", headers={
            **DOWNLOAD_HEADERS,
            "Content-Disposition": disposition("attachment", row.name, f"attachment-{item}")})

    def gone(self, request: Request, ref: str) -> Response:
        days = self.app.settings.retention.raw_message_days
        return self.site.render(
            request, "message", 410, actor=request.state.actor,
            title="Message no longer kept",
            text="The message as received is no longer kept: its bytes were deleted under the "
                 "council's retention rule" + (f" (raw messages are kept {days} days)"
                                               if days else "")
                 + f". What was read from it is still on {ref}'s timeline.")
