"""Every way of reaching the outbound relay that the README offers, against a real aiosmtpd:
STARTTLS with a login, implicit TLS, a relay that refuses the login, a certificate we do
not trust, and XOAUTH2 (Microsoft 365) with a token command that we control, including a
refused token followed by a fresh one. The certificate is made by the test with openssl."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from sqlmodel import select

from mailflow import clock, db, models, settings
from mailflow.app import App
from mailflow.jobs import tick
from mailflow.outbound import outbox
from mailflow.outbound.transports import SmtpTransport
from tests.conftest import CI
from tests.mail import CASEWORK, message, outgoing
from tests.test_relay import free_port

NOW = clock.parse("2026-11-22T10:00:00Z")
USER, PASSWORD = "casework@council.example", "relay-secret"


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        if CI:
            pytest.fail("CI=true but openssl is not installed")
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, crt = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


class Sink:
    """Takes every mail; `auth_XOAUTH2` accepts only the token in `good_token`."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bool]] = []  # sender, recipients, authenticated
        self.good_token = "fresh-token"
        self.tokens_seen: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), session.authenticated))
        return "250 OK"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:  # no initial response
            return AuthResult(success=False, handled=False)
        fields = base64.b64decode(args[1]).decode().split("\x01")
        user = fields[0].removeprefix("user=")
        token = fields[1].removeprefix("auth=Bearer ")
        self.tokens_seen.append(token)
        if user == USER and token == self.good_token:
            return AuthResult(success=True, auth_data=user)
        # As Microsoft and Google do: the error as a challenge, then 535 after the client's
        # empty answer.
        await server.challenge_auth('{"status":"401","schemes":"bearer"}')
        return AuthResult(success=False, handled=False)


def check_password(server: SMTP, session: object, envelope: object, mechanism: str,
                   auth_data: object) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535 itself


@pytest.fixture
def sink() -> Sink:
    return Sink()


def start(sink: Sink, cert: tuple[Path, Path], mode: str) -> Controller:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*cert)
    port = free_port()
    if mode == "ssl":
        controller = Controller(sink, hostname="127.0.0.1", port=port, ssl_context=context,
                                # aiosmtpd counts only STARTTLS as TLS; this is TLS throughout
                                authenticator=check_password, auth_require_tls=False,
                                server_hostname="localhost")
    else:
        controller = Controller(sink, hostname="127.0.0.1", port=port, tls_context=context,
                                require_starttls=True, authenticator=check_password,
                                auth_required=True, server_hostname="localhost")
    controller.start()
    return controller


@pytest.fixture
def relay(sink: Sink, cert: tuple[Path, Path], request: pytest.FixtureRequest
          ) -> Iterator[Controller]:
    controller = start(sink, cert, request.param)
    try:
        yield controller
    finally:
        controller.stop()


def configure(config_file: Path, controller: Controller, extra: str, table: str = "") -> App:
    text = config_file.read_text().replace(
        'transport = "maildir"',
        f'transport = "smtp"\nsmtp_host = "localhost"\nsmtp_port = {controller.port}\n'
        f'connect_timeout = 5\ncommand_timeout = 5\n{extra}').replace(
        'maildir = "sent"\n', f'maildir = "sent"\n{table}\n')
    config_file.write_text(text)
    app = App(settings.load(config_file))
    db.upgrade(app.url)
    return app


def queue_one(app: App) -> int:
    with app.session() as s:
        row = outbox.queue(s, outgoing(message(CASEWORK, "roads@council.example", "Notice",
                                                "Hello.")),
                           kind="update", now=NOW, limit=None)
        s.commit()
        assert row.id is not None
        return row.id


def delivered(app: App, row_id: int) -> models.Outbox:
    tick.deliver_outbox(app, NOW)
    with app.session() as s:
        row = s.exec(select(models.Outbox).where(models.Outbox.id == row_id)).one()
        s.expunge(row)
        return row


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_starttls_and_login(config_file: Path, relay: Controller, sink: Sink,
                            cert: tuple[Path, Path]) -> None:
    app = configure(config_file, relay, f'tls = "starttls"\nca_file = "{cert[0]}"\n'
                                        f'smtp_user = "{USER}"\nsmtp_password = "{PASSWORD}"')
    row = delivered(app, queue_one(app))
    assert row.state == "sent", row.last_error
    assert sink.got == [(CASEWORK, ["roads@council.example"], True)]


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_the_older_starttls_flag_still_works(config_file: Path, relay: Controller, sink: Sink,
                                             cert: tuple[Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILFLOW_SMTP_PASSWORD", PASSWORD)  # overrides the file's
    app = configure(config_file, relay, f'starttls = true\nca_file = "{cert[0]}"\n'
                                        f'smtp_user = "{USER}"\nsmtp_password = "wrong"')
    assert delivered(app, queue_one(app)).state == "sent"
    assert len(sink.got) == 1


@pytest.mark.parametrize("relay", ["ssl"], indirect=True)
def test_implicit_tls(config_file: Path, relay: Controller, sink: Sink,
                      cert: tuple[Path, Path]) -> None:
    app = configure(config_file, relay, f'tls = "ssl"\nca_file = "{cert[0]}"\n'
                                        f'smtp_user = "{USER}"\nsmtp_password = "{PASSWORD}"')
    assert delivered(app, queue_one(app)).state == "sent"
    assert sink.got == [(CASEWORK, ["roads@council.example"], True)]


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_a_refused_login_keeps_the_mail_and_says_why(config_file: Path, relay: Controller,
                                                     sink: Sink,
                                                     cert: tuple[Path, Path]) -> None:
    app = configure(config_file, relay, f'tls = "starttls"\nca_file = "{cert[0]}"\n'
                                        f'smtp_user = "{USER}"\nsmtp_password = "nope"')
    row = delivered(app, queue_one(app))
    assert row.state == "queued", row.last_error  # retried later, and says why:
    assert "SMTPAuthenticationError" in (row.last_error or ""), row.last_error
    assert sink.got == []


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_a_certificate_we_do_not_trust_is_refused(config_file: Path, relay: Controller,
                                                  sink: Sink) -> None:
    app = configure(config_file, relay, f'tls = "starttls"\nsmtp_user = "{USER}"\n'
                                        f'smtp_password = "{PASSWORD}"')
    row = delivered(app, queue_one(app))
    assert row.state == "queued" and "CERTIFICATE_VERIFY_FAILED" in (row.last_error or "")
    assert sink.got == []


def token_command(tmp_path: Path, tokens: list[str]) -> str:
    """A token command that hands out `tokens` in turn, as a token cache that refreshes."""
    state = tmp_path / "tokens.txt"
    state.write_text("\n".join(tokens))
    script = tmp_path / "token.py"
    script.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(state)!r})\n"
        "lines = p.read_text().splitlines()\n"
        "print(lines[0]); p.write_text('\\n'.join(lines[1:] or lines))\n")
    return f"{sys.executable} {script}"


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_xoauth2_with_a_token_refresh(config_file: Path, relay: Controller, sink: Sink,
                                      cert: tuple[Path, Path], tmp_path: Path) -> None:
    command = token_command(tmp_path, ["expired-token", "fresh-token"])
    app = configure(config_file, relay,
                    f'tls = "starttls"\nca_file = "{cert[0]}"\nsmtp_user = "{USER}"',
                    f'[outbound.oauth2]\ntoken_command = "{command}"')
    row = delivered(app, queue_one(app))
    assert row.state == "sent", row.last_error
    assert sink.tokens_seen == ["expired-token", "fresh-token"]
    assert sink.got == [(CASEWORK, ["roads@council.example"], True)]


@pytest.mark.parametrize("relay", ["starttls"], indirect=True)
def test_connect_logs_in_without_sending(config_file: Path, relay: Controller, sink: Sink,
                                         cert: tuple[Path, Path]) -> None:
    app = configure(config_file, relay, f'tls = "starttls"\nca_file = "{cert[0]}"\n'
                                        f'smtp_user = "{USER}"\nsmtp_password = "{PASSWORD}"')
    smtp = SmtpTransport(app.settings.outbound, cert[0]).connect()
    smtp.quit()
    assert sink.got == []


def test_a_password_in_clear_text_is_refused(config_file: Path) -> None:
    text = config_file.read_text().replace(
        'transport = "maildir"',
        'transport = "smtp"\ntls = "none"\nsmtp_user = "u"\nsmtp_password = "p"')
    config_file.write_text(text)
    with pytest.raises(settings.ConfigError) as e:
        settings.load(config_file)
    assert any("clear text" in p for p in e.value.problems)
