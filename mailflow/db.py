"""Engine, sessions and schema upgrades. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from mailflow import resources

ALEMBIC_DIR = resources.MIGRATIONS


def normalise_url(url: str) -> str:
    """Plain postgresql:// URLs use psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@cache
def engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_pragmas(eng)
        return eng
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(eng: Engine) -> None:
    @event.listens_for(eng, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=FULL")  # 250 means on disk, even after a power cut
        cur.close()

    @event.listens_for(eng, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front: a deferred transaction that later writes
        # can fail with SQLITE_BUSY at once instead of waiting for busy_timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(eng: Engine) -> bool:
    return eng.dialect.name == "postgresql"


@contextmanager
def session(url: str) -> Iterator[Session]:
    with Session(engine(url), expire_on_commit=False) as s:
        yield s


def upgrade(url: str) -> None:
    """Create or upgrade the schema to the newest migration; safe to run twice."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["connection_url"] = normalise_url(url)
    with engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


# Tables the search index owns: created by raw SQL in migrations (FTS5 and its shadow tables on
# SQLite, a tsvector table on PostgreSQL), so they are not in SQLModel.metadata on purpose.
SEARCH_INDEX_TABLES = ("case_fts", "case_search")


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """For Alembic's autogenerate/compare: skip only the search index's own tables."""
    if type_ == "table" and reflected and compare_to is None and name:
        return not any(name == t or name.startswith(t + "_") for t in SEARCH_INDEX_TABLES)
    return True


@contextmanager
def read_only_session(url: str) -> Iterator[Session | None]:
    """A session that cannot write (`mailflow inspect`), or None when there is no database:
    a SQLite file that does not exist is not created, an unreachable or empty PostgreSQL is
    not an error."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).exists():
            yield None
            return
        eng = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    else:
        eng = create_engine(url)

        @event.listens_for(eng, "begin")
        def _read_only(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
    try:
        try:
            with eng.connect() as conn:
                ready = inspect(conn).has_table("case")
        except Exception:  # noqa: BLE001 - no database: inspect still reads the message
            ready = False
        if not ready:
            yield None
            return
        with Session(eng) as s:
            try:
                yield s
            finally:
                s.rollback()
    finally:
        eng.dispose()
