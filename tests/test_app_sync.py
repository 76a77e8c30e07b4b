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


def test_a_lazy_directory_merges_only_the_rows_a_message_uses(app: App) -> None:
    """The pipeline's session takes a member or service from the process's copy when first
    asked (directory.warm lazy): a council of a hundred rows costs a message none of them
    up front, and `directory.get` by id costs no query."""
    from sqlalchemy import event

    from mailflow.casework import directory

    with app.session() as s:
        directory.warm(s)  # the process's copy, read once
    statements: list[str] = []
    listen = (db.engine(app.url), "before_cursor_execute",
              lambda *a: statements.append(a[2]))
    event.listen(*listen)
    try:
        with app.session() as s:
            directory.warm(s, lazy=True)
            in_session = [o for o in s.identity_map.values()
                          if isinstance(o, models.Member | models.Service)]
            assert in_session == []
            jane = directory.member_row(s, "jane.smith@council.example")
            assert directory.get(s, models.Member, jane.id) is jane
            assert s.get(models.Member, jane.id) is jane  # in the identity map now
            roads = next(iter(directory.service_names(s).items()))
            assert directory.get(s, models.Service, roads[0]).name == roads[1]
            assert directory.get(s, models.Member, 10**6) is None  # not a member: asked
        with app.session() as s:
            directory.warm(s)  # eager: every row, as the batch jobs want
            assert {o.email for o in s.identity_map.values() if isinstance(o, models.Member)}
    finally:
        event.remove(*listen)
    queries = [q for q in statements if not q.startswith("BEGIN")]
    assert len(queries) == 1 and "FROM member" in queries[0], queries  # the unknown id
