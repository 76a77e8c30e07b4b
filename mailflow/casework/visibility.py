"""Who may see which cases: the one place that decides, for search (and anything else that
lists cases on someone's behalf).

For now staff see every case and a member sees only their own. The sharing rules (per case:
private, ward, party) belong here too, so no caller has to change when they arrive.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true
from sqlmodel import Session, select

from mailflow import models
from mailflow.settings import Settings


class NotAllowed(Exception):
    """The address is neither a member nor staff: it may see nothing."""


def visible_cases(session: Session, settings: Settings, email: str | None
                  ) -> ColumnElement[bool]:
    """A filter on `Case` for what `email` may see; None means the council itself (the CLI's
    operator, who can read the database anyway)."""
    if email is None or settings.is_staff(email):
        return true()
    member = settings.member_for(email)
    if member is None:
        raise NotAllowed(f"{email} is not a member or staff")
    row = session.exec(select(models.Member).where(models.Member.email == member.email)).first()
    if row is None:
        return false()
    return models.Case.member_id == row.id
