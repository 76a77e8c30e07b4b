"""The holding pen page (`/holding`, member services only; 404 for anyone else): each
unresolved item with why it is held, its sender, subject, when it came and its candidate
cases, and a button for each way to clear it: file it on a case, open a new case from it,
dismiss it, or (a message the pipeline failed on) retry it.

The buttons call what `mailflow holding file|open|dismiss|--retry` and `#file/#open/#dismiss`
call (casework/holding.py, inbound/pipeline.retry): the same checks, the same conditional
update (two people pressing at once clear an item once), the same audit rows, with `via`
`web`. Each listing is a `holding` read on the trail, as the CLI's is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailflow import clock, models, oneline
from mailflow.casework import audit, holding, views
from mailflow.web import files

if TYPE_CHECKING:
    from mailflow.web.pages import Site

PAGE = 100  # items a page shows; the rest wait their turn (the oldest first)
ACTIONS = ("file", "open", "dismiss", "retry")
STATUS = {"not_found": 404, "invalid": 400, "resolved": 409, "refused": 403}


class Pen:
    def __init__(self, site: Site):
        self.site = site
        self.app = site.app

    # -- reading ----------------------------------------------------------------------------
    def _listing(self, actor: str, show_all: bool) -> dict[str, Any]:
        H = models.Holding
        with self.app.session() as s:
            where = [] if show_all else [col(H.resolved_at).is_(None)]
            total = s.exec(select(func.count()).select_from(H).where(*where)).one()
            # Waiting items oldest first (a queue); with the resolved ones, newest first.
            order = col(H.id).desc() if show_all else col(H.id)
            items = list(s.exec(select(H).where(*where).order_by(order).limit(PAGE)))
            kept = _preload(s, items)
            rows = [views.holding_dict(s, h) for h in items]
            raws = {r.id: bool(r.size) for r in kept if isinstance(r, models.RawMessage)}
            for r in rows:
                r["kept"] = raws.get(r["message"], False)
            shown = {r["case"] for r in rows if r["case"]}
            shown |= {c["case"] for r in rows for c in r["candidates"] if c.get("case")}
            audit.record(s, actor=actor, action="read", what="holding", now=clock.now(),
                         via="web", cases=shown,
                         detail={"shown": len(rows)} | ({"all": True} if show_all else {}))
            s.commit()
        settings = self.app.settings
        return {"rows": rows, "total": total, "show_all": show_all,
                "members": [(m.name, m.email) for m in settings.members],
                "services": [v.name for v in settings.services]}

    def _staff(self, request: Request) -> bool:
        return self.app.settings.is_staff(request.state.actor)

    def not_found(self, request: Request) -> Response:
        return self.site.render(request, "message", 404, actor=request.state.actor,
                                title="Page not found", text="There is no such page.")

    async def page(self, request: Request, result: dict[str, Any] | None = None,
                   code: int = 200) -> Response:
        """GET /holding[?all=yes]."""
        actor = request.state.actor
        if not self._staff(request):
            return self.not_found(request)
        show_all = request.query_params.get("all") == "yes"
        data = await run_in_threadpool(self._listing, actor, show_all)
        return self.site.render(request, "holding", code, actor=actor, result=result, **data)

    def _raw(self, actor: str, holding_id: int) -> tuple[bool, bytes | None]:
        """(the item exists, its raw message's bytes if still kept); the read audited."""
        with self.app.session() as s:
            h = s.get(models.Holding, holding_id)
            raw = s.get(models.RawMessage, h.raw_message_id) if h and h.raw_message_id \
                else None
            audit.record(s, actor=actor, action="read", what="message", now=clock.now(),
                         case_ref=None, via="web",
                         detail={"holding": holding_id, "message": h and h.raw_message_id})
            s.commit()
            return h is not None, bytes(raw.raw) if raw is not None and raw.size else None

    async def message(self, request: Request) -> Response:
        """GET /holding/ID/message: the held message as received, as plain text."""
        actor, holding_id = request.state.actor, request.path_params["id"]
        if not self._staff(request) or not 0 < holding_id <= files.MAX_ID:
            return self.not_found(request)
        found, data = await run_in_threadpool(self._raw, actor, holding_id)
        if not found:
            return self.not_found(request)
        if data is None:
            return self.site.render(request, "message", 410, actor=actor,
                                    title="Message not kept",
                                    text=f"Held item {holding_id} has no message as received "
                                         "(it was our own mail, or it is no longer kept).")
        download = request.query_params.get("download") == "yes"
        return files.raw_response(data, f"held-{holding_id}.eml", download)

    # -- acting -----------------------------------------------------------------------------
    def _act(self, actor: str, holding_id: int, action: str, form: dict[str, str]
             ) -> tuple[str, str]:
        """(`done` or HoldingError.why, what to tell the person)."""
        from mailflow.inbound import dispatch, pipeline  # the web pages load without them

        now, ctx = clock.now(), self.app.context
        text = {k: oneline.one_line(form.get(k, ""))[:1000].strip()
                for k in ("reference", "candidate", "member", "service", "reason")}
        try:
            if action == "retry":
                with self.app.session() as s:
                    h = s.get(models.Holding, holding_id)
                    if h is not None and h.kind != "failed":
                        raise holding.HoldingError(f"holding item {holding_id} is {h.kind}, "
                                                   "not a failed message", "invalid")
                try:
                    _, out = pipeline.retry(self.app, holding_id, now, actor, via="web")
                except pipeline.CannotRetry as e:
                    # found: it was failed, so another person retried it first
                    raise holding.HoldingError(str(e), "resolved" if e.found else
                                               "not_found") from None
                return "done", (f"Message {holding_id} retried: {out.disposition}"
                                + (f" {out.case}" if out.case else "") + f" ({out.reason})")
            with self.app.session() as s:
                read = lambda h: dispatch.held(ctx, s, h)  # noqa: E731
                if action == "file":
                    ref = text["reference"] or text["candidate"]
                    if not ref:
                        raise holding.HoldingError("choose a candidate case or type a case "
                                                   "reference", "invalid")
                    done = holding.file(ctx, s, holding_id, ref, actor, now, read, via="web")
                    said = f"Message {holding_id} filed on {done.outcome.case}"
                elif action == "open":
                    done = holding.open_case(ctx, s, holding_id, text["member"] or None,
                                             text["service"] or None, actor, now, read,
                                             via="web")
                    said = f"Message {holding_id} opened as {done.outcome.case}"
                else:
                    done = holding.dismiss(ctx, s, holding_id, text["reason"], actor, now,
                                           via="web")
                    said = f"Message {holding_id} dismissed"
                s.commit()
            return "done", f"{said}: {done.outcome.reason}"
        except holding.HoldingError as e:
            if e.why == "refused":
                with self.app.session() as s:
                    holding.refused(s, action, holding_id, actor, str(e), now, "web")
                    s.commit()
            return e.why, str(e)

    async def act(self, request: Request) -> Response:
        """POST /holding/ID/ACTION (file, open, dismiss, retry): the form checked as every
        POST is, then the page again with what was done or why not."""
        if not self._staff(request):
            return self.not_found(request)
        form = await self.site.guard(request)
        action, holding_id = request.path_params["action"], request.path_params["id"]
        if action not in ACTIONS or not 0 < holding_id <= files.MAX_ID:
            return self.not_found(request)
        why, said = await run_in_threadpool(self._act, request.state.actor, holding_id,
                                            action, form)
        return await self.page(request, {"done": why == "done", "text": said},
                               200 if why == "done" else STATUS[why])


def _preload(session: Session, items: list[models.Holding]) -> list[Any]:
    """The items' cases and raw messages (without their bytes) in the session, so each row
    costs no query of its own."""
    raws = {h.raw_message_id for h in items} - {None}
    cases = {h.case_id for h in items} - {None}
    loaded: list[Any] = []
    if raws:
        R = models.RawMessage
        loaded += session.exec(select(R).options(defer(R.raw))  # type: ignore[arg-type]
                               .where(col(R.id).in_(raws))).all()
    if cases:
        loaded += session.exec(select(models.Case).where(col(models.Case.id).in_(cases))).all()
    return loaded
