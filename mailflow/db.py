"""Engine, sessions and schema upgrades. SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, event, inspect, or_, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from mailflow import resources

ALEMBIC_DIR = resources.MIGRATIONS


def normalise_url(url: str) -> str:
    """Plain postgresql:// URLs use psycopg 3, the driver we install."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


_early = False  # this process's commits need not wait for the disk (`early_commits`)


def early_commits() -> None:
    """Commits of this process's engines return before the disk has them (SQLite
    `synchronous=NORMAL` in WAL mode; PostgreSQL `synchronous_commit=off`): for serve's
    pipeline workers, before any engine is made. A power cut may then undo the last
    commits, whole and in order, never half of one. Safe for the pipeline because its work
    is redone from the spool, which the receivers commit durably before their 250: an undone
    message is `new` again. What it caused reaches no one first: a mail leaves only after
    the outbox commits its claim durably, and that commit makes everything before it in the
    log durable too; so do a person's actions."""
    global _early
    _early = True


@cache
def engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        _sqlite_pragmas(eng, "NORMAL" if _early else "FULL")
        return eng
    args = {}
    if _early:  # beside any options the URL gives (a search_path, say)
        given = make_url(url).query.get("options", "")
        args["options"] = " ".join([*([given] if isinstance(given, str) else given),
                                    "-c synchronous_commit=off"]).strip()
    return create_engine(url, pool_pre_ping=True, connect_args=args)


def _sqlite_pragmas(eng: Engine, synchronous: str) -> None:
    @event.listens_for(eng, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        # FULL: a 250 means on disk, even after a power cut (early_commits: NORMAL)
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.close()

    @event.listens_for(eng, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front: a deferred transaction that later writes
        # can fail with SQLITE_BUSY at once instead of waiting for busy_timeout. A read
        # (`reading`) needs no lock: in WAL mode readers and the writer never wait for
        # each other.
        read = conn.get_execution_options().get(_READ)
        conn.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")


_READ = "mailflow_read"  # an execution option: this transaction only reads


def reading(session: Session) -> None:
    """Begin the session's next transaction as a read: on SQLite a deferred BEGIN, which
    does not take the one write lock that receivers wait for (on PostgreSQL nothing
    changes). End it before the session writes: a write would have to upgrade its lock,
    which SQLite may refuse at once (SQLITE_BUSY) instead of waiting."""
    session.connection(execution_options={_READ: True})


def is_postgres(eng: Engine) -> bool:
    return eng.dialect.name == "postgresql"


@contextmanager
def session(url: str) -> Iterator[Session]:
    with Session(engine(url), expire_on_commit=False) as s:
        yield s


# -- the claim vocabulary: how two ticks or two nodes agree who does a thing ------------------
def _insert(session: Session, model: type) -> Any:
    """INSERT with ON CONFLICT, which SQLAlchemy spells per dialect."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def insert_once(session: Session, model: type, values: dict[str, Any], keys: list[str]) -> bool:
    """Insert the row unless one with the same `keys` (a unique constraint) exists; True when
    this call inserted it. Inserting a row per (thing, period) is how a job claims a run."""
    stmt = (_insert(session, model).values(**values).on_conflict_do_nothing(index_elements=keys)
            .returning(*(getattr(model, k) for k in keys)))
    # RETURNING, not the row count: SQLAlchemy 2.1 on psycopg reports -1 for an INSERT.
    return session.execute(stmt).first() is not None


def insert_new(session: Session, model: type, rows: list[dict[str, Any]], keys: list[str],
               *returning: Any) -> list[Row[Any]]:
    """Insert many rows in one statement, skipping those whose `keys` (a unique constraint)
    exist already; returns `returning` of the rows this call inserted: claims in bulk."""
    if not rows:
        return []
    stmt = (_insert(session, model).values(rows).on_conflict_do_nothing(index_elements=keys)
            .returning(*returning))
    return list(session.execute(stmt).all())


def upsert(session: Session, model: type, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """Insert rows, one statement for all (executemany); a row whose `keys` (a unique
    constraint) exist already overwrites that row's other columns instead, when they
    differ. Every row names the same columns."""
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(_upsert(dialect, model.__table__, tuple(keys), tuple(rows[0])), rows)  # type: ignore[attr-defined]


@cache
def _upsert(dialect: str, table: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
    """Built once and run as executemany: a multi-row VALUES built per call is compiled
    again each time (it misses SQLAlchemy's compiled cache)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    changed = [c for c in columns if c not in keys]
    # A row already as given is left alone: no write (on PostgreSQL no new row version).
    return ins.on_conflict_do_update(
        index_elements=list(keys), set_={c: ins.excluded[c] for c in changed},
        where=or_(*(table.c[c].is_distinct_from(ins.excluded[c]) for c in changed)))


def increment(session: Session, model: type, key: dict[str, Any], column: str) -> int:
    """Add one to a counter row (created at 1) in one statement and return the new value:
    two nodes never get the same number."""
    ins = _insert(session, model)
    stmt = (ins.values(**key, **{column: 1})
            .on_conflict_do_update(index_elements=list(key),
                                   set_={column: getattr(model, column) + 1})
            .returning(getattr(model, column)))
    return int(session.execute(stmt).scalar_one())


def claim(session: Session, model: type, where: Mapping[str, Any] | ColumnElement[bool],
          values: Mapping[str, Any]) -> bool:
    """A conditional UPDATE of one row: `where` names the state it must still be in (column
    = value, or an expression). True when this worker won: the row count says so, so of two
    workers that both saw the old state only one moves it."""
    cond = where if isinstance(where, ColumnElement) else and_(
        *(getattr(model, k) == v for k, v in where.items()))
    result = session.execute(update(model).where(cond).values(**values)
                             .execution_options(synchronize_session=False))
    return result.rowcount >= 1  # type: ignore[attr-defined]


def page(query: Any, order: Sequence[Any], after: tuple[Any, ...] | None = None,
         limit: int | None = None) -> Any:
    """One page of `query` in `order` (unique, indexed) after the keyset `after`."""
    if after is not None:
        query = query.where(tuple_(*order) > tuple_(*after))
    query = query.order_by(*order)
    return query.limit(limit) if limit else query


def batches(sessions: Callable[[], AbstractContextManager[Session]], query: Any,
            order: Sequence[Any], size: int = 50, ahead: int = 20
            ) -> Iterator[tuple[Session, list[Any]]]:
    """Walk `query` in batches of up to `size` rows, one transaction each (committed when the
    caller asks for the next batch; rolled back if it stops with an error), so memory and
    transactions stay small however much is due. The keys (`order`, unique; its last column
    unique alone, an id) are read a keyset page of `ahead` batches at a time, before the
    caller changes the rows: one sort of what is due per page, not one a batch (rows that
    tie on the first key, as a tick's due steps all do, are sorted whole each time). Each
    batch then reads its rows by that id, still matching `query`; on PostgreSQL locked with
    FOR UPDATE SKIP LOCKED, so two nodes share the work instead of queueing behind each
    other."""
    after: tuple[Any, ...] | None = None
    while True:
        with sessions() as session:
            keys = [tuple(k) for k in session.execute(
                page(query.with_only_columns(*order), order, after, size * ahead))]
        if not keys:
            return
        after = keys[-1]
        for i in range(0, len(keys), size):
            with sessions() as session:
                q = query.where(order[-1].in_([k[-1] for k in keys[i:i + size]]))
                q = q.order_by(*order)
                if is_postgres(session.get_bind()):  # type: ignore[arg-type]
                    q = q.with_for_update(skip_locked=True)
                rows = list(session.exec(q))
                if not rows:
                    continue  # taken since the keys were read
                yield session, rows
                session.commit()


def upgrade(url: str) -> None:
    """Create or upgrade the schema to the newest migration; safe to run twice."""
    from alembic import command
    from alembic.config import Config

    if path := _sqlite_file(url):  # `init` makes the folder; nothing else does
        path.parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.attributes["connection_url"] = normalise_url(url)
    with engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_revisions(url: str) -> tuple[str | None, str | None]:
    """(the database's migration, the code's newest): equal when `mailflow init` has run
    since the last upgrade (`check --connect`, `/readyz`)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine(url).connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, ScriptDirectory(str(ALEMBIC_DIR)).get_current_head()


def _sqlite_file(url: str) -> Path | None:
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def unready(url: str) -> str | None:
    """Why the database cannot be used yet (`does not exist`, `is not initialised`), or
    None. A SQLite file that is not there is not created by asking; an unreachable server
    raises."""
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return "does not exist"
    with engine(url).connect() as conn:
        return None if inspect(conn).has_table("case") else "is not initialised"


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
