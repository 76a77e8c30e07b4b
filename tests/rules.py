"""A council for the casework-rules tests: Linlithgow is a multi-member ward (Jane and Alan,
both Green; Beth, Labour), Tom sits for Bathgate. Built on the shared test council."""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from mailflow import clock, db, models, settings
from mailflow.app import App
from mailflow.casework import actions
from mailflow.cli import main
from mailflow.inbound import pipeline
from tests.conftest import COUNCIL
from tests.mail import CASEWORK, JANE, outlook_forward

ALAN = "alan.reid@council.example"
BETH = "beth.kerr@council.example"
TOM = "tom.brown@council.example"
STAFF = "member.services@council.example"
STRANGER = "someone@gmail.example"
FRIDAY = clock.parse("2026-11-20T10:00:00Z")

MORE_MEMBERS = """
[[members]]
name = "Cllr Alan Reid"
email = "alan.reid@council.example"
ward = "Linlithgow"
party = "Green"

[[members]]
name = "Cllr Beth Kerr"
email = "beth.kerr@council.example"
ward = "Linlithgow"
party = "Labour"
"""


def council(db_url: str, extra: str = "", jane: str = "") -> str:
    text = COUNCIL.format(db_url=db_url)
    # Jane is Green; `jane` adds more of her settings (e.g. constituent_mail = true).
    text = text.replace('aliases = ["jane@home.example"]\nward = "Linlithgow"\n',
                        'aliases = ["jane@home.example"]\nward = "Linlithgow"\n'
                        f'party = "Green"\n{jane}\n')
    return extra + "\n" + text + MORE_MEMBERS


def make_app(tmp_path: Path, db_url: str, extra: str = "", jane: str = "") -> App:
    path = tmp_path / "mailflow.toml"
    path.write_text(council(db_url, extra, jane))
    a = App(settings.load(path))
    db.upgrade(a.url)
    a.start(clock.now())
    return a


@pytest.fixture
def rules_app(tmp_path: Path, db_url: str) -> Iterator[App]:
    a = make_app(tmp_path, db_url)
    yield a
    db.engine(a.url).dispose()


def ingest(app: App, msg, now: datetime = FRIDAY) -> pipeline.Outcome:  # type: ignore[no-untyped-def]
    raw_id, _ = pipeline.receive(app, msg.as_bytes(), source="ingest", now=now)
    out = pipeline.process(app, raw_id, now)
    assert out is not None
    return out


def open_case(app: App, member: str = JANE, now: datetime = FRIDAY, **kw: str) -> str:
    """A forward from `member` (a name-less address is fine); returns the reference."""
    out = ingest(app, outlook_forward(member=member, **kw), now)
    assert out.disposition == "case_opened", out.reason
    assert out.case
    return out.case


def get_case(app: App, ref: str) -> models.Case:
    with app.session() as s:
        return s.exec(select(models.Case).where(models.Case.reference == ref)).one()


def set_case(app: App, ref: str, **values: object) -> None:
    with app.session() as s:
        c = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        for k, v in values.items():
            setattr(c, k, v)
        s.add(c)
        s.commit()


__all__ = ["ALAN", "BETH", "CASEWORK", "FRIDAY", "JANE", "STAFF", "STRANGER", "TOM"]


def cli(app: App, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, in this process (faster than `run_cli`'s child process)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--config", str(app.settings.path), *args])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@dataclass
class Said:
    ok: bool
    text: str


def run(app: App, s: Session, case: models.Case, actor: str, command: str, arg: str,
        now: datetime, message: int | None = None) -> Said:
    """One command, by email's own path: the role from the sender, the production `run`."""
    r = actions.execute(app.context, s, case, actor, f"#{command} {arg}".strip(), now,
                        raw_message_id=message)
    return Said(not r.refused, "; ".join([*r.done, *r.refused]))
