"""Fixtures: a council config in a temporary folder, on a real SQLite file and, when
MAILFLOW_TEST_DATABASE_URL is set, again on a real PostgreSQL (a fresh schema per test).

Under CI=true a missing or unreachable PostgreSQL fails the run instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from mailflow import clock, db, settings
from mailflow.app import App

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("MAILFLOW_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL or CI else [])
ROOT = Path(__file__).resolve().parent.parent


def _pg_schema_url(schema: str) -> str:
    if not PG_URL:
        pytest.fail("CI=true but MAILFLOW_TEST_DATABASE_URL is not set: PostgreSQL is required")
    base = db.normalise_url(PG_URL)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote('-csearch_path=' + schema)}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/mailflow.db"
        return
    schema = "mf_" + uuid.uuid4().hex[:12]
    admin = create_engine(db.normalise_url(PG_URL or ""), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as e:  # noqa: BLE001
        if CI:
            pytest.fail(f"PostgreSQL at MAILFLOW_TEST_DATABASE_URL is unreachable: {e}")
        pytest.skip(f"PostgreSQL unreachable: {e}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


COUNCIL = """
[council]
name = "Test Council"
casework_address = "casework@council.example"
reference_prefix = "CW"
timezone = "Europe/London"
nation = "SCT"
trusted_domains = ["council.example"]
secret = "test-secret"

[database]
url = "{db_url}"

[outbound]
transport = "maildir"
maildir = "sent"

[smtp]
host = "127.0.0.1"
port = 8025

[scheduler]
outbox_seconds = 1

[web]
port = 0

[[wards]]
name = "Linlithgow"

[[wards]]
name = "Bathgate"

[[members]]
name = "Cllr Jane Smith"
email = "jane.smith@council.example"
aliases = ["jane@home.example"]
ward = "Linlithgow"

[[members]]
name = "Cllr Tom Brown"
email = "tom.brown@council.example"
ward = "Bathgate"

[[services]]
name = "Roads"
contact = "roads.enquiries@council.example"
contact_aliases = ["noreply.roads@council.example"]
escalation = "head.roads@council.example"
response_days = 10
keywords = ["pothole", "road", "pavement", "street light"]

[[services]]
name = "Waste"
contact = "waste@council.example"
escalation = "head.waste@council.example"
response_days = 5
keywords = ["bin", "bins", "recycling", "fly-tipping"]

[[staff]]
name = "Member Services"
email = "member.services@council.example"
"""


@pytest.fixture
def config_file(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "mailflow.toml"
    path.write_text(COUNCIL.format(db_url=db_url))
    return path


@pytest.fixture
def app(config_file: Path) -> Iterator[App]:
    a = App(settings.load(config_file))
    db.upgrade(a.url)
    a.start(clock.now())
    yield a
    clock.pin(None)
    db.engine(a.url).dispose()


@pytest.fixture(autouse=True)
def _unpinned_clock() -> Iterator[None]:
    yield
    clock.pin(None)


def run_cli(config: Path, *args: str, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `mailflow` command in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFLOW_")}
    full_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "mailflow.cli", "--config", str(config), *args],
        input=stdin, capture_output=True, env=full_env, timeout=120, cwd=ROOT,
    )
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode("utf-8", "replace"),
                                       done.stderr.decode("utf-8", "replace"))
