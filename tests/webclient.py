"""A small HTTP client for the web tests: a real socket, its own cookie jar, no redirects
followed (the tests look at each answer), and the form token read from the page."""

from __future__ import annotations

import email
import email.policy
import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from sqlmodel import col, select

from mailflow import models
from mailflow.app import App
from mailflow.web import health
from mailflow.web.server import WebServer


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    data: bytes = b""  # the body's bytes (a download need not be UTF-8)

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def cookies(self) -> list[str]:
        return self.headers.get_all("Set-Cookie") or []


@dataclass
class Client:
    base: str
    jar: dict[str, str] = field(default_factory=dict)
    csrf: str = ""

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        u = urlsplit(self.base)
        conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=30)
        h = {"Host": u.netloc, **(headers or {})}
        if self.jar:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        body = None
        if form is not None:
            body = urlencode(form)
            h["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        answer = Answer(r.status, r.headers, data.decode("utf-8", "replace"), data)
        conn.close()
        for line in answer.cookies():
            name, _, rest = line.partition("=")
            value = rest.split(";")[0].strip('"')
            if "max-age=0" in line.lower() or not value:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', answer.body)
        if found:
            self.csrf = found.group(1)
        return answer

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, form: dict[str, str], same_site: bool = True,
             **headers: str) -> Answer:
        h = {"Sec-Fetch-Site": "same-origin", "Origin": self.base} if same_site else {}
        return self.request("POST", path, {"csrf": self.csrf, **form}, {**h, **headers})


@contextmanager
def served(app: App) -> Iterator[str]:
    """The app's web server on a free port of this process (so `clock.pin` holds)."""
    web = WebServer(health.create(app), "127.0.0.1", 0).start()
    try:
        yield web.address
    finally:
        web.stop()


def sign_in_mail(app: App, address: str) -> tuple[str, str]:
    """(the link's token, the code) from the newest sign-in mail to `address`."""
    with app.session() as s:
        rows = s.exec(select(models.Outbox).where(models.Outbox.kind == "sign_in")
                      .order_by(col(models.Outbox.id).desc())).all()
    row = next(r for r in rows if address in r.recipients)
    msg = email.message_from_bytes(row.raw, policy=email.policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    token = re.search(r"/login/link\?token=([\w-]+)", text)
    code = re.search(r"code with your address on the sign-in page: (\d{6})", text)
    assert token and code, text
    return token.group(1), code.group(1)


def sign_in(client: Client, app: App, address: str) -> Answer:
    client.get("/login")
    assert client.post("/login", {"address": address}).status == 200
    token, _ = sign_in_mail(app, address)
    client.get(f"/login/link?token={token}")
    return client.post("/login/link", {"token": token})
