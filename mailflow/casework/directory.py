"""Synchronise the council directory (wards, members, services) from the config into tables.

Rows are never deleted: a member or service that leaves the config is marked inactive, so
their past cases and reports keep their names.

The directory changes only here, so each process keeps it (`warm`) and the pipeline reads
members and services without a query; `sync` drops the copy (App.start calls it).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from sqlmodel import Session, select

from mailflow import models
from mailflow.settings import Settings

# database URL -> (members, services), detached: the process's copy of the directory.
_CACHE: dict[str, tuple[list[models.Member], list[models.Service]]] = {}
# database URL -> ward id -> name (wards are only ever added, by `sync`).
_WARDS: dict[str, dict[int, str]] = {}


def forget(session: Session) -> None:
    _CACHE.pop(str(session.get_bind().url), None)
    _WARDS.pop(str(session.get_bind().url), None)


def ward_names(session: Session) -> dict[int, str]:
    """Ward id -> name, read once per process (a ward unknown to the copy reads it again)."""
    url = str(session.get_bind().url)
    if url not in _WARDS:
        _WARDS[url] = {w.id: w.name for w in session.exec(select(models.Ward))}  # type: ignore[misc]
    return _WARDS[url]


def ward_name(session: Session, ward_id: int | None) -> str | None:
    if ward_id is None:
        return None
    names = ward_names(session)
    if ward_id not in names:
        forget(session)
        names = ward_names(session)
    return names.get(ward_id)


def warm(session: Session, lazy: bool = False) -> None:
    """Put the directory into this session without a query (after the first in the process):
    `session.get` of a member or service, and `member_row` / `service_row`, then cost none.
    The session holds them, so they are not dropped from its identity map between uses.

    `lazy` (the pipeline: one message uses a row or three of a council's hundred): a row is
    merged into the session when first asked for by `member_row`, `service_row` or `get`,
    not all of them up front; a plain `session.get` of one not asked for yet is a query."""
    if "directory" in session.info:
        return
    url = str(session.get_bind().url)
    if url not in _CACHE:
        members = list(session.exec(select(models.Member)))
        services = list(session.exec(select(models.Service)))
        for row in (*members, *services):
            session.expunge(row)
        _CACHE[url] = (members, services)
    members, services = _CACHE[url]
    merged = (_Merged(session, {m.email: m for m in members}),
              _Merged(session, {sv.name: sv for sv in services}))
    if not lazy:
        for rows in merged:
            for key in rows:
                rows[key]
    session.info["directory"] = merged


class _Merged(Mapping[Any, Any]):
    """Key -> the process's row merged into this session, on first use."""

    def __init__(self, session: Session, by_key: dict[Any, Any]):
        # A weak reference: the session's info holds this, and this must not keep it alive.
        self.session, self.by_key, self.done = weakref.ref(session), by_key, {}
        self.key_of_id = {row.id: key for key, row in by_key.items()}

    def __getitem__(self, key: Any) -> Any:
        if (row := self.done.get(key)) is None:
            session = self.session()
            assert session is not None, "the session this directory was warmed for is gone"
            row = self.done[key] = session.merge(self.by_key[key], load=False)
        return row

    def __contains__(self, key: object) -> bool:
        return key in self.by_key

    def __iter__(self) -> Iterator[Any]:
        return iter(self.by_key)

    def __len__(self) -> int:
        return len(self.by_key)


def get(session: Session, model: type[models.Member] | type[models.Service],
        row_id: int | None) -> Any:
    """`session.get` of a member or service, from the session's directory when warm."""
    if row_id is None:
        return None
    if warm_rows := session.info.get("directory"):
        rows = warm_rows[0] if model is models.Member else warm_rows[1]
        if (key := rows.key_of_id.get(row_id)) is not None:
            return rows[key]
    return session.get(model, row_id)


def sync(session: Session, settings: Settings) -> None:
    forget(session)
    wards = {w.name: w for w in session.exec(select(models.Ward))}
    for w in settings.wards:
        if w.name not in wards:
            wards[w.name] = models.Ward(name=w.name)
            session.add(wards[w.name])
    session.flush()

    members = {m.email: m for m in session.exec(select(models.Member))}
    for m in members.values():
        m.active = False
    for m in settings.members:
        row = members.get(m.email) or models.Member(email=m.email, name=m.name)
        row.name, row.party, row.active = m.name, m.party, True
        row.ward_id = wards[m.ward].id
        session.add(row)

    services = {s.name: s for s in session.exec(select(models.Service))}
    for s in services.values():
        s.active = False
    for s in settings.services:
        row = services.get(s.name) or models.Service(name=s.name, contact=s.contact)
        row.contact, row.escalation, row.response_days = s.contact, s.escalation, s.response_days
        row.active = True
        session.add(row)
    session.flush()
    forget(session)


def member_row(session: Session, email: str) -> models.Member:
    if (warm_rows := session.info.get("directory")) and email in warm_rows[0]:
        return warm_rows[0][email]
    return session.exec(select(models.Member).where(models.Member.email == email)).one()


def service_row(session: Session, name: str) -> models.Service:
    if (warm_rows := session.info.get("directory")) and name in warm_rows[1]:
        return warm_rows[1][name]
    return session.exec(select(models.Service).where(models.Service.name == name)).one()


def service_names(session: Session) -> dict[int, str]:
    """Service id -> name, from the session's directory when it has one."""
    if warm_rows := session.info.get("directory"):  # the process's rows: nothing merged
        return {sv.id: sv.name for sv in warm_rows[1].by_key.values()}
    return {sv.id: sv.name for sv in session.exec(select(models.Service))}  # type: ignore[misc]
