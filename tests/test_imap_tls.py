"""IMAP over TLS against a real Dovecot with `ssl = required` and a certificate made by the
test: `tls = "starttls"` on the IMAP port, `tls = "ssl"` on the IMAPS port, `ca_file` to trust
the council's own CA, and a certificate we do not trust refused with the reason."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlmodel import select

from mailflow import clock, db, models
from mailflow.app import App
from mailflow.inbound import imap
from tests.conftest import CI
from tests.dovecot import PASSWORD, Dovecot, free_port
from tests.mail import outlook_forward, wire
from tests.test_imap import processing, with_imap
from tests.test_relay_tls import cert  # noqa: F401 - the fixture

FRIDAY = clock.parse("2026-11-20T10:00:00Z")


class TlsDovecot:
    def __init__(self, server: Dovecot, imaps_port: int, ca_file: Path):
        self.server, self.imaps_port, self.ca_file = server, imaps_port, ca_file

    def append(self, raw: bytes) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with IMAPClient("localhost", port=self.imaps_port, ssl=True, ssl_context=context,
                        timeout=30) as c:
            c.login(self.server.user, PASSWORD)
            c.append("INBOX", raw)


@pytest.fixture(scope="module")
def tls_dovecot(cert: tuple[Path, Path]) -> Iterator[TlsDovecot]:  # noqa: F811
    crt, key = cert
    imaps_port = free_port()
    extra = (f"ssl = required\nssl_cert = <{crt}\nssl_key = <{key}\n"
             "service imap-login {\n  inet_listener imaps {\n    address = 127.0.0.1\n"
             f"    port = {imaps_port}\n  }}\n}}\n")
    try:
        server = Dovecot(extra)
    except (FileNotFoundError, RuntimeError) as e:
        if CI:
            pytest.fail(f"CI=true but Dovecot cannot run: {e}")
        pytest.skip(str(e))
    yield TlsDovecot(server, imaps_port, crt)
    server.stop()


def settle(config_file: Path, tls: TlsDovecot, mode: str, trust: bool = True) -> App:
    port = tls.imaps_port if mode == "ssl" else tls.server.port
    app = with_imap(config_file, tls.server, host="localhost", port=port, tls=mode,
                    ca_file=str(tls.ca_file) if trust else None)
    db.upgrade(app.url)
    app.start(FRIDAY)
    return app


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_a_forward_arrives_over_tls(config_file: Path, tls_dovecot: TlsDovecot,
                                    mode: str) -> None:
    clock.pin(FRIDAY)
    app = settle(config_file, tls_dovecot, mode)
    tls_dovecot.append(wire(outlook_forward(subject=f"Pothole by {mode}")))
    assert processing(app).once() == imap.Counts(stored=1)
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.subject.contains(mode))).one()
    assert case.category == "Roads"


def test_a_certificate_we_do_not_trust_is_refused(config_file: Path,
                                                  tls_dovecot: TlsDovecot) -> None:
    app = settle(config_file, tls_dovecot, "ssl", trust=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        processing(app).once()
