"""Synchronise the council directory (wards, members, services) from the config into tables.

Rows are never deleted: a member or service that leaves the config is marked inactive, so
their past cases and reports keep their names.
"""

from __future__ import annotations

from sqlmodel import Session, select

from mailflow import models
from mailflow.settings import Settings


def sync(session: Session, settings: Settings) -> None:
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


def member_row(session: Session, email: str) -> models.Member:
    return session.exec(select(models.Member).where(models.Member.email == email)).one()


def service_row(session: Session, name: str) -> models.Service:
    return session.exec(select(models.Service).where(models.Service.name == name)).one()
