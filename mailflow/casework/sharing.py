"""Who may see a case: the one rule, used by every listing, digest, search and alert.

Each member is the data controller of their own casework, so a case is private unless its
member shares it and the constituent's consent is recorded (ICO position):

- `private`: the member and staff only (the default);
- `ward`: also every member of the case's ward;
- `party`: also the members of the case's ward in the case member's party.

The member sets `#share` and `#consent` in either order: the sharing takes effect while both
say so (`share` beyond private *and* `consent` yes). A member also sees a case that one of
their own cases was merged into. Staff see everything; anyone else sees nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, false, or_, true
from sqlmodel import Session, col, select

from mailflow import models
from mailflow.casework import directory
from mailflow.settings import Settings

SHARES = ("private", "ward", "party")


def effective_share(case: models.Case) -> str:
    return case.share if case.consent is True else "private"


def _viewer(session: Session, settings: Settings, viewer: str | None) -> models.Member | None:
    member = settings.member_for(viewer)
    if member is None:
        return None
    if (warm := session.info.get("directory")) and member.email in warm[0]:
        return warm[0][member.email]  # the process's copy (casework/directory.warm)
    return session.exec(select(models.Member).where(models.Member.email == member.email)).first()


def can_see(session: Session, settings: Settings, case: models.Case, viewer: str | None) -> bool:
    if settings.is_staff(viewer):
        return True
    me = _viewer(session, settings, viewer)
    if me is None:
        return False
    if case.member_id == me.id:
        return True
    merged_here = session.exec(
        select(models.Case.id).where(models.Case.merged_into_id == case.id)
        .where(models.Case.member_id == me.id)
    ).first()
    if merged_here is not None:
        return True
    share = effective_share(case)
    if share == "private" or me.ward_id is None or case.ward_id != me.ward_id:
        return False
    if share == "ward":
        return True
    owner = directory.get(session, models.Member, case.member_id)
    return bool(owner and owner.party and owner.party == me.party)


def visible_filter(session: Session, settings: Settings, viewer: str | None) -> Any:
    """A where-clause on `Case` that keeps exactly the cases `can_see` allows."""
    if settings.is_staff(viewer):
        return true()
    me = _viewer(session, settings, viewer)
    if me is None:
        return false()
    case = models.Case
    own = col(case.member_id) == me.id
    merged = col(case.id).in_(
        select(case.merged_into_id).where(col(case.member_id) == me.id)
        .where(col(case.merged_into_id).is_not(None))
    )
    if me.ward_id is None:
        return or_(own, merged)
    shared = [col(case.share) == "ward"]
    if me.party:
        same_party = select(models.Member.id).where(models.Member.party == me.party)
        shared.append(and_(col(case.share) == "party", col(case.member_id).in_(same_party)))
    return or_(own, merged, and_(col(case.consent).is_(True), col(case.ward_id) == me.ward_id,
                                 or_(*shared)))
