"""The member and staff pages: sign-in (auth.py does the rules), the case list, a case with
the actions the person's role allows, and search. Server-rendered from templates/web/ with
the app's template environment; no JavaScript needed.

Every POST passes `_guard`: the browser must say the form came from this site
(`Sec-Fetch-Site`, else `Origin`) and carry the token bound to its cookie. Every read is
audited as the CLI's are; case actions go through the email commands' one door
(casework/actions.py, with casework/authz.py's matrix)."""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from sqlalchemy import exists, func
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from mailflow import clock, db, models, oneline, resources
from mailflow.app import App
from mailflow.casework import actions, audit, authz, parties, sharing, views
from mailflow.casework.visibility import visible_cases
from mailflow.reports import search
from mailflow.reports.search import _utc as local_midnight
from mailflow.tokens import normalise_reference
from mailflow.web import auth, files, pen

log = logging.getLogger(__name__)
PAGE = 100  # cases per page of the list
# htmx 2.0.11 (0BSD), vendored from the npm registry: it only enhances (the case page's
# buttons update the page in place and keep its address); every page works without it.
HTMX = (resources.TEMPLATES / "web" / "htmx.min.js").read_bytes()
# The buttons a case page may offer, in page order (note before the rarer ones: the
# keyboard reaches the everyday actions first).
ACTIONS = ("close", "reopen", "chase", "note", "deadline", "service", "share", "consent",
           "resend", "contact")
STATUSES = ("open", "answered", "closed")
# Whom a case waits on, as the digests count it: a service (a request sent and not yet
# answered: the service digest's open requests), the member (an answered case to close,
# #reopen or #reject, or a service's new date to agree), member services (a case in
# triage: the staff digest's queue), or a new address (an undeliverable request: the staff
# digest's bounced requests).
WAITING = {"service": "a service", "member": "the member", "staff": "member services",
           "address": "a new address (undeliverable request)"}
FILTERS = ("status", "ward", "service", "overdue", "waiting", "member", "from", "to")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action "
                               "'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, browsers send `Origin: null` on our own forms. same-origin
    # still keeps the sign-in link's token from leaking to any other site.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A POST that did not come from our own form."""


class Site:
    def __init__(self, app: App):
        self.app = app
        secure = not app.settings.web.insecure_cookies
        self.secure = secure
        # __Host-: the browser keeps it to this host and path / only, and only if Secure.
        self.cookie = "__Host-mailflow" if secure else "mailflow"
        self.pre_cookie = "__Host-mailflow-csrf" if secure else "mailflow-csrf"

    # -- plumbing ---------------------------------------------------------------------------
    def render(self, request: Request, name: str, code: int = 200, **context: Any
               ) -> Response:
        env = self.app.templates
        basis = request.state.basis
        context.setdefault("actor", None)
        context["staff"] = bool(context["actor"]) and self.app.settings.is_staff(
            context["actor"])
        body = env.get_template(f"web/{name}.html").render(
            council=self.app.settings.council, csrf=auth.csrf_token(self.app.settings, basis),
            **context)
        response = HTMLResponse(body, status_code=code, headers=HEADERS)
        if request.state.new_pre:
            self._set(response, self.pre_cookie, basis, max_age=None)
        return response

    def _set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure,
                            httponly=True, samesite="lax")

    def origin(self, request: Request) -> str:
        base = self.app.settings.web.base_url
        if base:
            u = urlsplit(base)
            return f"{u.scheme}://{u.netloc}"
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    async def guard(self, request: Request) -> dict[str, str]:
        """The form, once it is proven to come from our own page."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            raise Refused(f"Sec-Fetch-Site {site}")
        origin = request.headers.get("origin")
        if origin is not None and origin != self.origin(request):
            raise Refused(f"Origin {origin}")
        form = await _form(request)
        want = auth.csrf_token(self.app.settings, request.state.basis)
        if request.state.new_pre or not hmac.compare_digest(form.get("csrf", ""), want):
            raise Refused("no valid form token")
        return form

    def visitor(self, request: Request) -> str | None:
        """Who is signed in (in a thread: it reads the database), and the CSRF basis."""
        token = request.cookies.get(self.cookie)
        with self.app.session() as s:
            ws = auth.current(s, token, clock.now())
            s.commit()
            actor = ws.actor if ws else None
        if actor and token:
            request.state.basis, request.state.new_pre = token, False
        else:
            pre = request.cookies.get(self.pre_cookie)
            request.state.basis = pre or secrets.token_urlsafe(32)
            request.state.new_pre = not pre
        request.state.actor = actor
        return actor

    def page(self, fn: Callable[[Request], Awaitable[Response]], signed_in: bool = True
             ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            actor = await run_in_threadpool(self.visitor, request)
            if signed_in and actor is None:
                if request.method == "POST":
                    return self.render(request, "message", 403, title="Signed out",
                                       text="You are not signed in. Sign in and try again.")
                # Back here after sign-in: the path rides along, checked at every step.
                here = request.url.path + (f"?{request.url.query}" if request.url.query
                                           else "")
                back = auth.local_path(here)
                return RedirectResponse("/login" + (f"?next={quote(back, safe='/')}"
                                                    if back and back not in ("/", "/cases")
                                                    else ""),
                                        303, headers=HEADERS)
            try:
                return await fn(request)
            except Refused as e:
                log.warning("web: %s %s refused: %s", request.method, request.url.path, e)
                return self.render(request, "message", 403, actor=actor,
                                   title="Form refused",
                                   text="This form did not come from this site, or has expired."
                                   " Go back, reload the page and try again.")
        return endpoint

    # -- sign-in ----------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.render(request, "login", actor=request.state.actor,
                               next=auth.local_path(request.query_params.get("next")))
        form = await self.guard(request)
        back = auth.local_path(form.get("next"))
        address = oneline.one_line(form.get("address", ""))[:254].strip()
        if "@" not in address:
            return self.render(request, "login", 400, error="Enter your email address.",
                               next=back)
        client = request.client.host if request.client else "unknown"
        base = self.app.settings.web.base_url or self.origin(request)

        def ask() -> bool:
            now = clock.now()
            with self.app.session() as s:
                try:
                    auth.ask(self.app.context, s, address, client, now, base.rstrip("/"),
                             back)
                except auth.Limited:
                    return False
                s.commit()
            return True
        if not await run_in_threadpool(ask):
            return self.render(request, "message", 429, title="Too many requests",
                               text="Too many sign-in links were asked for. Wait 15 minutes "
                               "and try again.")
        return self.render(request, "login_sent", address=address, next=back)

    async def link(self, request: Request) -> Response:
        """GET only shows the button (mail scanners open every link); POST signs in."""
        if request.method == "GET":
            token = request.query_params.get("token", "")
            return self.render(request, "link", token=token[:100],
                               next=auth.local_path(request.query_params.get("next")))
        form = await self.guard(request)
        return await self._signed_in(request, "link", lambda s, now: auth.redeem(
            self.app.settings, s, form.get("token", ""), now), form.get("next"))

    async def code(self, request: Request) -> Response:
        form = await self.guard(request)
        return await self._signed_in(request, "code", lambda s, now: auth.redeem_code(
            self.app.settings, s, form.get("address", ""), form.get("code", ""), now),
            form.get("next"))

    async def _signed_in(self, request: Request, how: str,
                         use: Callable[[Session, Any], str | None],
                         back: str | None = None) -> Response:
        def sign_in() -> str | None:
            now = clock.now()
            with self.app.session() as s:
                actor = use(s, now)
                before = auth.current(s, request.cookies.get(self.cookie), now)
                if actor and before is not None:  # the browser's old session ends here
                    auth.end(s, before, now, everywhere=False)
                token = auth.start(s, actor, now, how) if actor else None
                if actor is None:
                    audit.record(s, actor="unknown", action="refused", what="sign_in",
                                 now=now, via="web", detail={"how": how})
                s.commit()
            return token
        token = await run_in_threadpool(sign_in)
        if token is None:
            return self.render(request, "message", 400, title="Sign-in failed",
                               text="This link or code has expired, has been used, or a newer "
                               "one was sent. Ask for a new link.", login=True)
        response = RedirectResponse(auth.local_path(back) or "/cases", 303, headers=HEADERS)
        self._set(response, self.cookie, token, max_age=int(auth.ABSOLUTE.total_seconds()))
        response.delete_cookie(self.pre_cookie, path="/", secure=self.secure, httponly=True,
                               samesite="lax")
        return response

    async def logout(self, request: Request) -> Response:
        form = await self.guard(request)
        everywhere = form.get("everywhere") == "yes"

        def end() -> None:
            now = clock.now()
            with self.app.session() as s:
                ws = auth.current(s, request.cookies.get(self.cookie), now)
                if ws is not None:
                    auth.end(s, ws, now, everywhere)
                s.commit()
        await run_in_threadpool(end)
        response = RedirectResponse("/login", 303, headers=HEADERS)
        response.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True,
                               samesite="lax")
        return response

    # -- cases ------------------------------------------------------------------------------
    def _case_list(self, actor: str, args: dict[str, str]) -> dict[str, Any]:
        settings, now = self.app.settings, clock.now()
        dates: dict[str, date] = {}
        errors: list[str] = []
        for key, label in (("from", "Opened from"), ("to", "Opened to")):
            if args.get(key):
                try:
                    dates[key] = date.fromisoformat(args[key])
                except ValueError:
                    errors.append(f"{label}: enter a date like 2026-11-01.")
        today = self.app.calendar.today(now)
        Case, Req = models.Case, models.Request
        with self.app.session() as s:
            where = [visible_cases(s, settings, actor)]
            if args.get("status") in STATUSES:
                where.append(Case.status == args["status"])
            if args.get("ward"):
                where.append(col(Case.ward_id).in_(select(models.Ward.id).where(
                    models.Ward.name == args["ward"])))
            if args.get("service"):
                svc = select(models.Service.id).where(models.Service.name == args["service"])
                where.append(exists().where(Req.case_id == Case.id,
                                            col(Req.service_id).in_(svc))
                             | (col(Case.category) == args["service"]))
            if args.get("overdue") == "yes":
                where.append(exists().where(Req.case_id == Case.id, Req.state == "sent",
                                            col(Req.due) < today))
            where += _waiting(args.get("waiting", ""))
            if args.get("member"):
                m = settings.member_for(args["member"])
                where.append(col(Case.member_id).in_(select(models.Member.id).where(
                    models.Member.email == (m.email if m else ""))))
            # Council-local days, as `search --since/--until`.
            if "from" in dates:
                where.append(col(Case.opened_at) >= local_midnight(self.app.calendar,
                                                                   dates["from"]))
            if "to" in dates and dates["to"] < date.max:
                where.append(col(Case.opened_at) < local_midnight(
                    self.app.calendar, dates["to"] + timedelta(days=1)))
            total = s.exec(select(func.count()).select_from(Case).where(*where)).one()
            page = min(max(1, int(args["page"][:7])), 10**6) \
                if args.get("page", "").isdigit() else 1
            found = s.exec(select(Case).where(*where).order_by(col(Case.id).desc())
                           .offset((page - 1) * PAGE).limit(PAGE)).all()
            kept = _preload(s, found)  # noqa: F841 - the session holds objects weakly
            overdue = set(s.exec(select(Req.case_id).where(
                col(Req.case_id).in_([c.id for c in found]), Req.state == "sent",
                col(Req.due) < today)).all())
            rows = [{**views.case_summary(s, c), "overdue": c.id in overdue} for c in found]
            audit.record(s, actor=actor, action="read", what="cases", now=now, via="web",
                         detail={k: v for k, v in args.items() if v} | {"shown": len(rows)},
                         cases=[c.reference for c in found])
            s.commit()
        return {"rows": rows, "total": total, "page": page, "pages": -(-total // PAGE),
                "wards": [w.name for w in settings.wards],
                "services": [v.name for v in settings.services],
                "members": [(m.email, m.name) for m in settings.members],
                "waiting": WAITING, "errors": errors,
                "query": urlencode({k: args[k] for k in FILTERS if args.get(k)})}

    async def cases(self, request: Request) -> Response:
        args = {k: request.query_params.get(k, "")[:100] for k in (*FILTERS, "page")}
        data = await run_in_threadpool(self._case_list, request.state.actor, args)
        return self.render(request, "cases", actor=request.state.actor, args=args,
                           statuses=STATUSES, **data)

    def _case(self, s: Session, actor: str, raw_ref: str) -> models.Case | None:
        """The case if this person may see it; a refusal is audited (and is a 404)."""
        ref = normalise_reference(raw_ref, self.app.settings.council.reference_prefix)
        case = ref and s.exec(select(models.Case).where(models.Case.reference == ref)).first()
        if case and sharing.can_see(s, self.app.settings, case, actor):
            return case
        audit.record(s, actor=actor, action="refused", what="case", now=clock.now(),
                     case_ref=(ref or raw_ref)[:40], via="web")
        s.commit()
        return None

    def _case_page(self, actor: str, ref: str, result: actions.Result | None = None
                   ) -> dict[str, Any] | None:
        now = clock.now()
        with self.app.session() as s:
            case = self._case(s, actor, ref)
            if case is None:
                return None
            audit.record(s, actor=actor, action="read", what="case", now=now,
                         case_ref=case.reference, via="web")
            data = views.case_dict(s, case, self.app.calendar.today(now), self.app.settings,
                                   actor)
            role = parties.role_of(s, self.app.settings, case, actor)[0]
            downloads = files.on_case_page(s, self.app.settings, case, actor, data)
            s.commit()
        states = {r["state"] for r in data["requests"]}
        live = data["status"] != "closed" and not data["merged_into"]
        useful = {  # a button that could only be refused is not offered
            "service": live, "resend": live and "undeliverable" in states,
            "contact": live and bool(states & {"undeliverable", "sent", "overdue"}),
            "reopen": data["status"] in ("answered", "closed"),
            "close": data["status"] != "closed"}
        allowed = [a for a in ACTIONS if authz.allowed(role, a)[0] and useful.get(a, True)]
        failed = sorted({r["service"] for r in data["requests"]
                         if r["state"] == "undeliverable" and r["service"]})
        return {"case": data, "allowed": allowed, "result": result, "role": role,
                "services": [v.name for v in self.app.settings.services],
                "shares": sharing.SHARES, "failed": failed,
                "waiting": sorted({r["service"] for r in data["requests"] if r["service"]
                                   and r["state"] in ("undeliverable", "sent", "overdue")}),
                **downloads}

    async def case(self, request: Request) -> Response:
        actor, ref = request.state.actor, request.path_params["ref"]
        data = await run_in_threadpool(self._case_page, actor, ref)
        if data is None:
            return self.not_found(request)
        return self.render(request, "case", actor=actor, **data)

    async def act(self, request: Request) -> Response:
        """A case action's button: the same command, authorisation and timeline as by mail."""
        form = await self.guard(request)
        actor, ref = request.state.actor, request.path_params["ref"]
        name = form.get("command", "")
        text = _arguments(name, form)
        forbidden = False

        def run() -> actions.Result | None | str:
            nonlocal forbidden
            now = clock.now()
            with self.app.session() as s:
                case = self._case(s, actor, ref)
                if case is None:
                    return None
                if name not in ACTIONS:
                    return "unknown"
                role = parties.role_of(s, self.app.settings, case, actor)[0]
                forbidden = not authz.allowed(role, name)[0]
                # Refused or not, the same door as by mail: the refusal is on the timeline.
                result = actions.execute(self.app.context, s, case, actor,
                                         f"#{name} {text}".strip(), now, reply=False)
                audit.record(s, actor=actor, action="change" if result.done else "refused",
                             what=f"command.{name}", now=now, case_ref=case.reference,
                             via="web", detail={"done": result.done, "refused": result.refused})
                s.commit()
            return result
        result = await run_in_threadpool(run)
        if result is None:
            return self.not_found(request)
        if result == "unknown":
            return self.render(request, "message", 400, actor=actor, title="Unknown action",
                               text="That action is not offered on this page.")
        assert isinstance(result, actions.Result)
        data = await run_in_threadpool(self._case_page, actor, ref, result)
        if data is None:
            return self.not_found(request)
        return self.render(request, "case", 403 if forbidden else 200, actor=actor, **data)

    def not_found(self, request: Request) -> Response:
        return self.render(request, "message", 404, actor=request.state.actor,
                           title="Case not found",
                           text="There is no case with that reference that you can see.")

    # -- search -----------------------------------------------------------------------------
    async def search(self, request: Request) -> Response:
        actor = request.state.actor
        q = request.query_params.get("q", "")[:200]
        status = request.query_params.get("status", "")
        status = status if status in STATUSES else ""

        def find() -> list[dict[str, Any]]:
            if not q.strip():
                return []
            with self.app.session() as s:
                rows = search.search(s, self.app.settings, self.app.calendar, q,
                                     search.Filters(status=status or None, as_email=actor))
                audit.record(s, actor=actor, action="read", what="search", now=clock.now(),
                             via="web", detail={"query": q, "status": status,
                                                "found": len(rows)},
                             cases=[r["reference"] for r in rows])
                s.commit()
            return rows
        rows = await run_in_threadpool(find)
        return self.render(request, "search", actor=actor, q=q, status=status,
                           statuses=STATUSES, rows=rows)

    # -- the outbox (staff) -----------------------------------------------------------------
    def _outbox(self, actor: str, release: int | None = None) -> dict[str, Any]:
        """Held and failed mail (what `mailflow outbox` shows), after releasing one if asked:
        the same conditional update as `outbox --release`, so two people release it once."""
        now, released = clock.now(), None
        with self.app.session() as s:
            if release is not None:
                released = db.claim(s, models.Outbox, {"id": release, "state": "held"},
                                    {"state": "queued", "held_reason": None,
                                     "next_attempt_at": now})
                audit.record(s, actor=actor, action="change" if released else "refused",
                             what="outbox.release", now=now, via="web",
                             detail={"outbox": release})
            rows = [views.outbox_dict(o) for o in s.exec(
                select(models.Outbox).where(col(models.Outbox.state).in_(("held", "failed")))
                .order_by(col(models.Outbox.id).desc()).limit(PAGE))]
            audit.record(s, actor=actor, action="read", what="outbox", now=now, via="web",
                         detail={"shown": len(rows)})
            s.commit()
        return {"rows": rows, "released": released, "release": release}

    async def outbox(self, request: Request) -> Response:
        actor = request.state.actor
        if not self.app.settings.is_staff(actor):
            return self.render(request, "message", 404, actor=actor, title="Page not found",
                               text="There is no such page.")
        release = None
        if request.method == "POST":
            form = await self.guard(request)
            release = int(form["id"]) if form.get("id", "").isdigit() else -1
        data = await run_in_threadpool(self._outbox, actor, release)
        return self.render(request, "outbox", actor=actor, **data)

    # -- reports (staff) ----------------------------------------------------------------------
    def _report(self, actor: str, args: dict[str, str]) -> dict[str, Any] | str:
        """`mailflow report` for a period (default: last month) by groupings (default:
        service): the same rows, charts and CSV. A bad period or grouping: its message."""
        from mailflow.reports import formats, html, period, report

        now = clock.now()
        today = self.app.calendar.local(now).date()
        try:
            by = report.parse_groupings(args.get("by") or "service")
            p = period.parse(args["period"]) if args.get("period") else \
                period.month_of(today).previous()
        except ValueError as e:
            return str(e)
        with self.app.session() as s:
            rows, total = report.with_total(s, p, by, today)
            ctx = html.context(self.app, s, p, by, rows, total, today)
            audit.record(s, actor=actor, action="read", what="report", now=now, via="web",
                         detail={"period": p.label, "by": by, "csv": bool(args.get("csv"))})
            s.commit()
        ctx["csv"] = formats.to_csv(rows, by)
        return ctx

    async def reports(self, request: Request) -> Response:
        actor = request.state.actor
        if not self.app.settings.is_staff(actor):
            return self.render(request, "message", 404, actor=actor, title="Page not found",
                               text="There is no such page.")
        args = {k: request.query_params.get(k, "")[:40] for k in ("period", "by")}
        csv = request.url.path.endswith(".csv")
        data = await run_in_threadpool(self._report, actor, {**args, "csv": "1" if csv else ""})
        if isinstance(data, str):
            return self.render(request, "message", 400, actor=actor, title="Report not made",
                               text=data)
        if csv:
            return Response(data["csv"], media_type="text/csv; charset=utf-8", headers={
                **HEADERS, "Content-Disposition": 'attachment; filename="report.csv"'})
        data.pop("council")
        return self.render(request, "reports", actor=actor, args=args, **data)

    async def css(self, request: Request) -> Response:
        body = self.app.templates.get_template("web/web.css").render()
        return Response(body, media_type="text/css",
                        headers={"Cache-Control": "max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

    async def htmx(self, request: Request) -> Response:
        # Shipped, never the council's templates folder, and never through Jinja2.
        return Response(HTMX, media_type="text/javascript",
                        headers={"Cache-Control": "max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/cases", 303, headers=HEADERS)


def _waiting(on: str) -> list[Any]:
    """The condition for cases waiting on `on` (see WAITING); none for anything else."""
    Case, Req = models.Case, models.Request
    if on == "service":
        return [exists().where(Req.case_id == Case.id, Req.state == "sent")]
    if on == "member":
        return [(Case.status == "answered")
                | exists().where(Req.case_id == Case.id, Req.state == "sent",
                                 col(Req.proposed_due).is_not(None))]
    if on == "staff":
        return [Case.status == "triage"]
    if on == "address":
        return [exists().where(Req.case_id == Case.id, Req.state == "undeliverable")]
    return []


def _arguments(name: str, form: dict[str, str]) -> str:
    """A button's fields as the command's arguments, on one line (so no field can add a
    second command)."""
    field = {"deadline": "date", "service": "service", "share": "share",
             "consent": "consent", "resend": "service"}.get(name, "text")
    if name == "deadline" and form.get("clear") == "yes":
        args = "none"
    elif name == "contact":
        args = f"{form.get('address', '').strip()} {form.get('service', '')}"
    else:
        args = form.get(field, "")
    return oneline.one_line(args)[:2000].strip()


async def _form(request: Request) -> dict[str, str]:
    """A url-encoded form (the only kind our pages send), at most 64 KiB."""
    if request.headers.get("content-type", "").split(";")[0].strip() != \
            "application/x-www-form-urlencoded":
        raise Refused("not a form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > 65536:
            raise Refused("form too large")
    try:
        return dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
    except ValueError:
        raise Refused("too many fields") from None


def _preload(session: Session, cases: list[models.Case]) -> list[Any]:
    """Three queries put the cases' people in the session, so the summaries cost none each."""
    loaded: list[Any] = []
    for model, attr in ((models.Member, "member_id"), (models.Ward, "ward_id"),
                        (models.Constituent, "constituent_id")):
        wanted = {getattr(c, attr) for c in cases} - {None}
        if wanted:
            loaded += session.exec(select(model).where(col(model.id).in_(wanted))).all()  # type: ignore[attr-defined]
    return loaded


def routes(app: App) -> list[Route]:
    site = Site(app)
    holding, downloads = pen.Pen(site), files.Files(site)
    return [
        Route("/", site.page(site.home)),
        Route("/web.css", site.css),
        Route("/htmx.min.js", site.htmx),
        Route("/login", site.page(site.login, signed_in=False), methods=["GET", "POST"]),
        Route("/login/link", site.page(site.link, signed_in=False), methods=["GET", "POST"]),
        Route("/login/code", site.page(site.code, signed_in=False), methods=["POST"]),
        Route("/logout", site.page(site.logout), methods=["POST"]),
        Route("/cases", site.page(site.cases)),
        Route("/cases/{ref}", site.page(site.case)),
        Route("/cases/{ref}/act", site.page(site.act), methods=["POST"]),
        Route("/search", site.page(site.search)),
        Route("/outbox", site.page(site.outbox), methods=["GET", "POST"]),
        Route("/reports", site.page(site.reports)),
        Route("/reports.csv", site.page(site.reports)),
        Route("/cases/{ref}/messages/{id:int}", site.page(downloads.message)),
        Route("/cases/{ref}/attachments/{id:int}", site.page(downloads.attachment)),
        Route("/holding", site.page(holding.page)),
        Route("/holding/{id:int}/message", site.page(holding.message)),
        Route("/holding/{id:int}/{action}", site.page(holding.act), methods=["POST"]),
    ]
