"""Who may see which cases: the one place that decides, for search (and anything else that
lists cases on someone's behalf).

Staff see every case; a member sees their own and those shared with them under the sharing
rules of casework/sharing.py (which this module only asks).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, true
from sqlmodel import Session

from mailflow.casework import sharing
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
    return sharing.visible_filter(session, settings, member.email)
