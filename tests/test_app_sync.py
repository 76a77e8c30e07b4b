"""`serve` starts its receiver and its jobs together, each in a thread, all on one App: the
first sessions must synchronise the directory once, not race to insert the same wards."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlmodel import select

from mailflow import db, models, settings
from mailflow.app import App


def test_first_sessions_from_many_threads(config_file: Path) -> None:
    app = App(settings.load(config_file))
    db.upgrade(app.url)  # tables, but no directory yet
    start, errors = threading.Barrier(6), []

    def first_session() -> None:
        start.wait()
        try:
            with app.session() as s:
                s.exec(select(models.Ward)).all()
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=first_session) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.session() as s:
        assert len(s.exec(select(models.Ward)).all()) == 2
    db.engine(app.url).dispose()
