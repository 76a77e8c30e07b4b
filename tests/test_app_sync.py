"""The directory and the calendar are brought in step with the config file by an explicit
start (`init`, `serve`, `tick`, `ingest`, `poll`), safe when several start at once; reading
commands never write anything but their audit rows."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from mailflow import db, models, settings
from mailflow.app import App
from tests.conftest import run_cli
from tests.test_loop import FRIDAY


def test_starts_from_many_threads_at_once(config_file: Path) -> None:
    app = App(settings.load(config_file))
    db.upgrade(app.url)  # tables, but no directory yet
    barrier, errors = threading.Barrier(6), []

    def start() -> None:
        barrier.wait()
        try:
            app.start(FRIDAY)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.session() as s:
        assert len(s.exec(select(models.Ward)).all()) == 2
    db.engine(app.url).dispose()


def test_reading_commands_do_not_sync(config_file: Path) -> None:
    app = App(settings.load(config_file))
    db.upgrade(app.url)
    for command in (["cases"], ["search", "pothole"], ["holding"], ["outbox"]):
        done = run_cli(config_file, *command)
        assert done.returncode == 0, done.stderr
    with app.session() as s:
        assert s.exec(select(func.count()).select_from(models.Ward)).one() == 0
    assert run_cli(config_file, "tick", "--now", "2026-11-20T10:00:00Z").returncode == 0
    with app.session() as s:
        assert s.exec(select(func.count()).select_from(models.Ward)).one() == 2
    db.engine(app.url).dispose()
