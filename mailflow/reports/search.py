"""Full-text search over cases: subjects, constituents (name, email, phone, address), the
constituent's words, members' notes and the text of updates; ranked, filtered, and limited
to what the asker may see (casework/visibility.py).

The index is an FTS5 table on SQLite and a tsvector column with a GIN index on PostgreSQL,
both created by migration 0006 and kept in step by database triggers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    column,
    exists,
    func,
    literal,
    literal_column,
    table,
    text,
    true,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import views
from mailflow.casework.calendar import Calendar
from mailflow.casework.visibility import visible_cases
from mailflow.settings import Settings

_TERM = re.compile(r'"([^"]+)"|([\w][\w\'’.@-]*\*?)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


WINDOW = 2000  # relevance ranks the newest this many matches (see _window)


@dataclass
class Filters:
    member: str | None = None  # the member's address or alias
    ward: str | None = None
    service: str | None = None
    status: str | None = None
    since: date | None = None  # opened on or after, council-local
    until: date | None = None  # opened on or before, council-local
    as_email: str | None = None  # search as this member or staff user


class UnknownFilter(ValueError):
    """A filter names a member, ward or service the council does not have."""


def fts5_query(query: str) -> str:
    """The user's words as an FTS5 query: every word must match (any form of it, thanks to
    the porter stemmer); "a phrase" in quotes matches as a phrase; word* matches a prefix.
    Everything else is quoted away, so no input is an FTS5 syntax error."""
    parts = []
    for phrase, word in _TERM.findall(query):
        words = _WORD.findall(phrase or word)
        if not words:
            continue
        star = "*" if word.endswith("*") and len(words) == 1 else ""
        parts.append('"' + " ".join(words) + '"' + star)
    return " ".join(parts)


def _filters(session: Session, settings: Settings, calendar: Calendar, f: Filters
             ) -> list[ColumnElement[bool]]:
    Case = models.Case
    seen = visible_cases(session, settings, f.as_email)
    out = [] if seen is true() else [seen]
    if f.member:
        m = settings.member_for(f.member)
        row = m and session.exec(select(models.Member)
                                 .where(models.Member.email == m.email)).first()
        if not row:
            raise UnknownFilter(f"--member: no member with address {f.member}")
        out.append(Case.member_id == row.id)
    if f.ward:
        ward = session.exec(select(models.Ward).where(models.Ward.name == f.ward)).first()
        if not ward:
            raise UnknownFilter(f"--ward: no ward called {f.ward!r}")
        out.append(Case.ward_id == ward.id)
    if f.service:
        service = session.exec(select(models.Service)
                               .where(models.Service.name == f.service)).first()
        if not service:
            raise UnknownFilter(f"--service: no service called {f.service!r}")
        out.append(exists().where(models.Request.case_id == Case.id,
                                  models.Request.service_id == service.id)
                   | (col(Case.category) == f.service))
    if f.status:
        out.append(Case.status == f.status)
    if f.since:
        out.append(col(Case.opened_at) >= _utc(calendar, f.since))
    if f.until:
        out.append(col(Case.opened_at) < _utc(calendar, f.until + timedelta(days=1)))
    return out


def _utc(calendar: Calendar, d: date) -> datetime:
    """The start of a council-local day, as the UTC moment the database compares with."""
    return datetime.combine(d, time(), calendar.tz).astimezone(UTC)


def search(session: Session, settings: Settings, calendar: Calendar, query: str,
           filters: Filters | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The best `limit` cases for `query`, best first: each case's summary (as `cases
    --json`) with its `score` (higher is better) and a `snippet` with the matches in [ ]."""
    where = _filters(session, settings, calendar, filters or Filters())
    if session.get_bind().dialect.name == "postgresql":
        rows = _postgres(session, query, where, limit)
    else:
        q = fts5_query(query)
        rows = _sqlite(session, q, where, limit) if q else []
    loaded = _preload(session, [r[0] for r in rows])  # noqa: F841 - held while we read
    out = []
    words = [w.lower() for w in _WORD.findall(query)]
    for case_id, score in rows:
        case = session.get(models.Case, case_id)
        assert case is not None
        out.append({**views.case_summary(session, case), "score": round(float(score), 4),
                    "snippet": snippet(f"{case.subject}. {case.issue} {case.member_note}",
                                       words)})
    return out


def every_match(session: Session, phrase: str) -> list[int]:
    """Every case whose indexed text has `phrase` (a subject access request must find them
    all: no window, no ranking, no visibility filter)."""
    if session.get_bind().dialect.name == "postgresql":
        index = table("case_search", column("case_id"), column("document"))
        tsq = func.phraseto_tsquery("english", phrase)
        return list(session.execute(select(index.c.case_id).select_from(index)
                                    .where(index.c.document.op("@@")(tsq))).scalars())
    words = _WORD.findall(phrase)
    if not words:
        return []
    fts = table("case_fts", column("rowid"))
    q = '"' + " ".join(words) + '"'
    return list(session.execute(select(fts.c.rowid).select_from(fts)
                                .where(text("case_fts MATCH :q").bindparams(q=q))).scalars())


def _same_word(word: str, term: str) -> bool:
    """Near enough for a snippet: the index's stemmer decided the real match."""
    n = max(4, len(term) - 2) if len(term) > 4 else len(term)
    return word.lower().startswith(term[:n])


def snippet(text_: str, words: list[str], size: int = 16) -> str:
    """About `size` words of the case around the first query word, matches in [ ]."""
    tokens = text_.split()
    hits = {i for i, t in enumerate(tokens)
            if any(_same_word(t.strip(".,;:!?()[]\"'"), w) for w in words)}
    start = max(0, min(hits, default=0) - size // 3)
    shown = [f"[{t}]" if i in hits else t
             for i, t in enumerate(tokens[start:start + size], start)]
    return " ".join(["…"] * (start > 0) + shown + ["…"] * (start + size < len(tokens)))


def _preload(session: Session, ids: list[int]) -> list[Any]:
    """One query puts the cases and their people in the session, so the summaries cost no
    query each. Keep what this returns: the session holds its objects only weakly."""
    Case = models.Case
    rows = session.exec(
        select(Case, models.Member, models.Ward, models.Constituent)
        .outerjoin(models.Member, col(models.Member.id) == Case.member_id)
        .outerjoin(models.Ward, col(models.Ward.id) == Case.ward_id)
        .outerjoin(models.Constituent, col(models.Constituent.id) == Case.constituent_id)
        .where(col(Case.id).in_(ids))).all()
    return [obj for row in rows for obj in row if obj is not None]


def _sqlite(session: Session, q: str, where: list[ColumnElement[bool]], limit: int
            ) -> list[Any]:
    fts = table("case_fts", column("rowid"))
    # Columns: subject, people, body; a match in the subject counts most.
    rank = literal_column("bm25(case_fts, 10.0, 5.0, 1.0)")
    match = text("case_fts MATCH :q").bindparams(q=q)
    matches = select(fts.c.rowid).select_from(fts).where(match)
    if where:
        matches = matches.join(models.Case, col(models.Case.id) == fts.c.rowid).where(*where)
    newest = _window(session, matches, fts.c.rowid)
    if newest is not None:
        matches = matches.where(fts.c.rowid >= newest)
    return list(session.execute(matches.add_columns(-rank).order_by(rank).limit(limit)).all())


def _window(session: Session, matches: Any, case_id: Any) -> int | None:
    """The oldest case among the newest WINDOW matches, or None when there are fewer. A word
    found in a third of all cases would otherwise be ranked across tens of thousands (FTS5
    ranks only inside its own query, so this is a query of its own)."""
    return session.execute(matches.with_only_columns(case_id).order_by(case_id.desc())
                           .offset(WINDOW - 1).limit(1)).scalar()


def _postgres(session: Session, query: str, where: list[ColumnElement[bool]], limit: int
              ) -> list[Any]:
    index = table("case_search", column("case_id"), column("document"))
    tsq = func.websearch_to_tsquery("english", query)
    matches = select(index.c.case_id, index.c.document).select_from(index) \
        .where(index.c.document.op("@@")(tsq))
    if where:
        matches = matches.join(models.Case, col(models.Case.id) == index.c.case_id).where(*where)
    # One pass over the index: the newest WINDOW matches, each with the document it was
    # found in, ranked as they are (ranking by id afterwards read each document twice).
    newest = matches.order_by(index.c.case_id.desc()).limit(WINDOW)
    cut = None if where else _newest_cut(session, query)
    if cut is not None:
        # The GIN index gives no order, so the plain pass reads the heap page of every
        # match. When the words are common enough that the ids from `cut` up should hold
        # WINDOW matches, look there first (the primary key narrows the heap pages read);
        # the rest is scanned only when they did not (a one-time filter in the same plan).
        # Neither pass may walk the primary key backwards for its order (`+ 0`), testing
        # every document on the way: psycopg prepares a statement run five times, and a
        # generic plan does that, a second for a rare pair of words. The cut is written
        # into the statement so the plan knows how few ids it leaves.
        at = literal(cut, literal_execute=True)
        by_id = matches.order_by((index.c.case_id + 0).desc()).limit(WINDOW)
        recent = by_id.where(index.c.case_id >= at).cte("recent")
        enough = select(func.count()).select_from(recent).scalar_subquery() >= WINDOW
        rest = by_id.where(index.c.case_id < at, ~enough)
        both = select(recent.c.case_id, recent.c.document).union_all(rest).subquery()
        newest = select(both.c.case_id, both.c.document) \
            .order_by(both.c.case_id.desc()).limit(WINDOW)
    window = newest.subquery("newest")
    score = func.ts_rank(window.c.document, tsq, 1)  # 1: longer documents count less
    return list(session.execute(
        select(window.c.case_id, score).order_by(score.desc(), window.c.case_id.desc())
        .limit(limit)))


_STATS = text("""
    WITH q AS (SELECT websearch_to_tsquery('english', :q)::text AS q),
    words AS (SELECT m[1] AS word FROM q, regexp_matches(q.q, '''([^'']+)''', 'g') m)
    SELECT q.q, (SELECT count(*) FROM words),
           (SELECT array_agg(u.f) FROM pg_stats s,
                unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) u(e, f)
            WHERE s.schemaname = current_schema() AND s.tablename = 'case_search'
              AND s.attname = 'document' AND u.e IN (SELECT word FROM words)),
           (SELECT reltuples FROM pg_class WHERE oid = 'case_search'::regclass),
           (SELECT min(case_id) FROM case_search), (SELECT max(case_id) FROM case_search)
    FROM q""")


def _newest_cut(session: Session, query: str) -> int | None:
    """The id from which the newest cases should hold WINDOW matches of `query`, going by
    the planner's statistics (each word's share of the documents), or None when one plain
    pass is as cheap or the guess too unsure: a word rare or unknown to the statistics, a
    query that is not plain words joined by AND, or a cut reaching back too far."""
    tsq, n_words, freqs, rows, lo, hi = session.execute(_STATS, {"q": query}).one()
    if not n_words or not freqs or len(freqs) != n_words or not rows or rows <= 0 \
            or hi is None or set(re.sub(r"'(?:[^']|'')*'", "", tsq).split()) - {"&"}:
        return None
    # All the words' share is at most the rarest word's: exact for one word, and near for
    # words that come together (a subject's); when they do not, the first pass falls short
    # and costs a second scan of the index, so only a short reach is risked for them.
    width = 1.5 * WINDOW / min(freqs) * (hi - lo + 1) / rows  # ids, with room for error
    reach = (hi - lo) / (2 if n_words == 1 else 4)
    return int(hi - width) if width < reach else None


def rebuild(session: Session) -> None:
    """Index every case afresh from the source view (after a bulk import, or to repair)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("DELETE FROM case_search"))
        session.execute(text("INSERT INTO case_search (case_id, document) "
                             "SELECT case_id, document FROM case_search_source"))
    else:
        session.execute(text("DELETE FROM case_fts"))
        session.execute(text("INSERT INTO case_fts (rowid, subject, people, body) "
                             "SELECT id, subject, people, body FROM case_fts_source"))


@contextmanager
def index_suspended(engine: Engine) -> Iterator[None]:
    """Load many cases without updating the index row by row, then index them all at once
    (50 times faster for an import from an old casework system). Nothing else may write
    cases meanwhile: their changes would be indexed only by the final rebuild."""
    with engine.begin() as c:
        if engine.dialect.name == "postgresql":
            triggers = c.execute(text(
                "SELECT t.tgname, r.relname FROM pg_trigger t JOIN pg_class r ON r.oid = "
                "t.tgrelid WHERE t.tgname LIKE 'case_search_%' AND NOT t.tgisinternal "
                "AND pg_catalog.pg_table_is_visible(r.oid)")).all()
            for name, table_ in triggers:
                c.execute(text(f'ALTER TABLE "{table_}" DISABLE TRIGGER {name}'))
        else:
            triggers = c.execute(text("SELECT name, sql FROM sqlite_master WHERE type = "
                                      "'trigger' AND name LIKE 'case_fts_%'")).all()
            for name, _ in triggers:
                c.execute(text(f"DROP TRIGGER {name}"))
    try:
        yield
    finally:
        with engine.begin() as c:
            for name, other in triggers:
                c.execute(text(f'ALTER TABLE "{other}" ENABLE TRIGGER {name}'
                               if engine.dialect.name == "postgresql" else other))
        with Session(engine) as session:
            rebuild(session)
            session.commit()
