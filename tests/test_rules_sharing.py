"""Sharing per case, duplicates across a ward, the repeat constituent and #merge, through the
real pipeline and the real command line."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlmodel import select

from mailflow import models
from mailflow.app import App
from mailflow.casework import duplicates, sharing, views
from mailflow.jobs import tick
from tests.conftest import run_cli
from tests.mail import ROADS, sent_of_kind
from tests.rules import (
    ALAN,
    BETH,
    FRIDAY,
    JANE,
    STAFF,
    STRANGER,
    TOM,
    cli,
    get_case,
    open_case,
    rules_app,
    run,
    set_case,
)

__all__ = ["rules_app"]

ALAN_FROM = f"Cllr Alan Reid <{ALAN}>"
TOM_FROM = f"Cllr Tom Brown <{TOM}>"
PETER = "Peter Grant <peter.grant@example.org>"
POTHOLE = "Pothole on Main Street"
SIMILAR = "A big pothole on Main Street near the school gates. Someone will get hurt.\n\nPeter"


def _text(msg) -> str:  # type: ignore[no-untyped-def]
    return msg.get_body(("plain",)).get_content()


def _mail(app: App, kind: str, to: str) -> list[str]:
    tick.tick(app, FRIDAY + timedelta(days=60))
    return [_text(m) for m in sent_of_kind(app.settings.maildir, kind) if m["To"] == to]


# -- the one rule ----------------------------------------------------------------------------
def test_listing_filter_and_can_see_agree(rules_app: App) -> None:
    app = rules_app
    refs = {k: open_case(app, subject=f"case {k}") for k in "abcdefg"}
    refs["t"] = open_case(app, member=TOM_FROM, subject="case t")
    refs["h"] = open_case(app, member=ALAN_FROM, subject="case h")
    set_case(app, refs["b"], share="ward")  # no consent: still private
    set_case(app, refs["c"], share="ward", consent=True)
    set_case(app, refs["d"], share="party", consent=True)  # Jane and Alan are Green
    set_case(app, refs["e"], share="ward", consent=False)
    set_case(app, refs["t"], share="ward", consent=True)  # another ward
    set_case(app, refs["f"], share="party", consent=None)
    set_case(app, refs["g"], merged_into_id=None)
    set_case(app, refs["h"], merged_into_id=get_case(app, refs["g"]).id, status="closed")
    everything = set(refs.values())
    jane = {refs[k] for k in "abcdefg"}
    expected = {
        JANE: jane, "jane@home.example": jane, STAFF: everything,
        ALAN: {refs["c"], refs["d"], refs["g"], refs["h"]},  # g: his own case merged into it
        BETH: {refs["c"]},
        TOM: {refs["t"]},
        STRANGER: set(), ROADS: set(),
    }
    with app.session() as s:
        cases = s.exec(select(models.Case)).all()
        for viewer, want in expected.items():
            listed = {c.reference for c in s.exec(
                select(models.Case).where(sharing.visible_filter(s, app.settings, viewer)))}
            seen = {c.reference for c in cases if sharing.can_see(s, app.settings, c, viewer)}
            assert listed == seen == want, viewer


def test_member_b_never_sees_member_a_private_case(rules_app: App) -> None:
    app = rules_app
    secret = open_case(app)  # Jane's, private
    mine = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)  # a duplicate

    listing = run_cli(app.settings.path, "cases", "--as", ALAN, "--json")  # a child process
    assert listing.returncode == 0, listing.stderr
    assert [c["reference"] for c in json.loads(listing.stdout)] == [mine]
    assert secret not in cli(app, "cases", "--as", ALAN).stdout
    shown = cli(app, "case", secret, "--as", ALAN)
    assert shown.returncode == 1 and "visible to" in shown.stderr and "Jane" not in shown.stdout
    assert cli(app, "case", secret, "--as", ALAN, "--audit").returncode == 1
    # his own case links to hers, but does not name it, in the JSON and in the timeline
    own = cli(app, "case", mine, "--as", ALAN, "--json")
    assert own.returncode == 0, own.stderr
    assert secret not in own.stdout and "Jane Smith" not in own.stdout and JANE not in own.stdout
    assert json.loads(own.stdout)["links"] == [
        {"kind": "duplicate", "case": None, "reason": None, "at": "2026-11-20T10:00:00Z"}]
    # and the acknowledgement he got does not name it either
    [ack] = _mail(app, "acknowledgement", ALAN)
    assert secret not in ack and "Jane Smith" not in ack
    assert "a ward colleague has a similar open case; member services can connect them" in ack
    # staff and Jane see everything about it
    assert secret in cli(app, "case", mine, "--as", STAFF, "--json").stdout
    assert cli(app, "cases", "--as", "nobody@example.com").returncode == 64


# -- duplicates ------------------------------------------------------------------------------
def test_duplicate_pair_across_ward_members_without_sharing(rules_app: App) -> None:
    app = rules_app
    first = open_case(app)
    second = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    with app.session() as s:
        links = s.exec(select(models.CaseLink).order_by(models.CaseLink.id)).all()
    pairs = {(lnk.case_id, lnk.other_id, lnk.kind) for lnk in links}
    a, b = get_case(app, first).id, get_case(app, second).id
    assert pairs == {(a, b, "duplicate"), (b, a, "duplicate")}
    assert "main street" in links[0].reason

    [ack] = _mail(app, "acknowledgement", ALAN)
    assert "ward colleague has a similar open case; member services can connect them" in ack
    assert first not in ack
    [notice] = _mail(app, "duplicate", JANE)
    assert "ward colleague has a similar open case" in notice and second not in notice


def test_duplicate_pair_with_sharing_reveals_name_and_case(rules_app: App) -> None:
    app = rules_app
    first = open_case(app)
    set_case(app, first, share="ward", consent=True)
    second = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    [ack] = _mail(app, "acknowledgement", ALAN)
    assert f"Cllr Jane Smith has a similar open case, {first}" in ack
    # Alan's case is private, so Jane is told only that a colleague has one
    [notice] = _mail(app, "duplicate", JANE)
    assert second not in notice and "Alan" not in notice


def test_what_is_not_a_duplicate(rules_app: App) -> None:
    app = rules_app
    first = open_case(app)
    open_case(app, member=TOM_FROM, constituent=PETER, body=SIMILAR)  # another ward
    open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR,
              now=FRIDAY + timedelta(days=31))  # too late
    open_case(app, member=ALAN_FROM, constituent=PETER, subject="Noisy neighbours",
              body="Loud music on High Street every night.")  # elsewhere, another issue
    set_case(app, first, status="closed")
    open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)  # the first is closed
    with app.session() as s:
        assert s.exec(select(models.CaseLink)).all() == []


def test_same_constituent_across_members_is_a_duplicate(rules_app: App) -> None:
    app = rules_app
    open_case(app)
    open_case(app, member=ALAN_FROM, subject="Bins", body="My bins were not emptied.")
    with app.session() as s:
        [link, _] = s.exec(select(models.CaseLink)).all()
    assert link.reason == "the same constituent"


def test_duplicate_candidates_are_looked_up_not_scanned(rules_app: App) -> None:
    """Only cases sharing a place or the constituent are compared, however many are open."""
    app = rules_app
    first = open_case(app)
    for i, name in enumerate(("Elm", "Oak", "Ash", "Birch", "Rowan", "Cedar")):
        # other open cases in the ward: other streets, other constituents
        open_case(app, member=ALAN_FROM if i % 2 else JANE,
                  constituent=f"Resident {i} <r{i}@example.org>",
                  subject=f"Pothole on {name} Road", body=f"A pothole outside {i} {name} Road.")
    second = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    with app.session() as s:
        case = get_case(app, second)
        found = duplicates.candidates(s, app.settings, case, FRIDAY)
        assert [c.reference for c in found] == [first]
        keys = set(s.exec(select(models.CaseKey.key)
                          .where(models.CaseKey.case_id == case.id)).all())
    assert set(duplicates.hashed({"street:main street", "email:peter.grant@example.org"})) <= keys
    assert not any("main" in k or "peter" in k for k in keys)  # no personal data in the clear


def test_places_and_similarity() -> None:
    assert duplicates.places("4 mill road, Linlithgow EH49 7AB") == {
        "street:mill road", "postcode:EH49 7AB"}
    assert "street:main street" in duplicates.places(None, "outside 12 Main Street today")
    potholes = duplicates.similarity("Huge pothole burst my tyre", "Deep pothole, tyre burst")
    bins = duplicates.similarity("Huge pothole burst my tyre", "Bins not emptied again")
    assert potholes > 60 > bins


def test_repeat_constituent_is_counted(rules_app: App) -> None:
    app = rules_app
    for _ in range(3):
        open_case(app)
    open_case(app, member=ALAN_FROM)  # another member's case does not count for Jane
    acks = _mail(app, "acknowledgement", JANE)
    assert "earlier case" not in acks[0]
    assert "raised 1 earlier case with you" in acks[1]
    assert "raised 2 earlier cases with you" in acks[2]


# -- merging ---------------------------------------------------------------------------------
def _merge(app: App, ref: str, other: str, actor: str):  # type: ignore[no-untyped-def]
    with app.session() as s:
        case = s.exec(select(models.Case).where(models.Case.reference == ref)).one()
        r = run(app, s, case, actor, "merge", other, FRIDAY)
        s.commit()
    return r


def test_merge_across_members_needs_the_other_members_agreement(rules_app: App) -> None:
    app = rules_app
    jane = open_case(app)
    alan = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    r = _merge(app, alan, jane, ALAN)
    assert r.ok and f"its member must agree by sending #merge {alan}" in r.text
    assert get_case(app, alan).status == "open" and get_case(app, jane).status == "open"
    again = _merge(app, alan, jane, ALAN)
    assert again.ok
    [ask] = _mail(app, "merge_proposal", JANE)  # asked once
    assert f"#merge {alan}" in ask and "Cllr Alan Reid" in ask
    with app.session() as s:
        assert not sharing.can_see(s, app.settings, get_case(app, jane), ALAN)

    done = _merge(app, jane, alan, JANE)  # Jane agrees
    assert done.ok and "both members agreed" in done.text
    kept, gone = get_case(app, jane), get_case(app, alan)  # the older case is kept
    assert (gone.status, gone.merged_into_id) == ("closed", kept.id)
    assert kept.status == "open"
    with app.session() as s:
        assert sharing.can_see(s, app.settings, kept, ALAN)  # he agreed to one case
        assert not sharing.can_see(s, app.settings, kept, BETH)
        data = views.case_dict(s, kept)
    assert [lk["kind"] for lk in data["links"]] == ["duplicate", "merged"]
    assert "merged" in [e["kind"] for e in data["timeline"]]


def test_merge_by_staff_or_own_cases_is_at_once_and_refusals(rules_app: App) -> None:
    app = rules_app
    jane = open_case(app)
    alan = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    assert _merge(app, alan, jane, STAFF).ok
    assert get_case(app, alan).merged_into_id == get_case(app, jane).id
    assert not _merge(app, jane, alan, JANE).ok  # already merged
    other = open_case(app, subject="Another")
    assert not _merge(app, other, other, JANE).ok
    assert not _merge(app, other, "CW-2026-99999", JANE).ok
    assert not _merge(app, other, "nonsense", JANE).ok
    third = open_case(app, subject="Third")
    r = _merge(app, other, third.lower(), JANE)  # both Jane's: no one else to ask
    assert r.ok and "merged into" in r.text


def test_alerts_follow_the_sharing_rule_after_a_merge(rules_app: App) -> None:
    from tests.mail import reply_to
    from tests.rules import ingest

    app = rules_app
    jane = open_case(app)
    alan = open_case(app, member=ALAN_FROM, constituent=PETER, body=SIMILAR)
    set_case(app, jane, share="ward")  # asked, but no consent: Beth is not told anything
    assert _merge(app, alan, jane, STAFF).ok
    tick.tick(app, FRIDAY)
    request = next(m for m in sent_of_kind(app.settings.maildir, "request")
                   if jane in m["Subject"])
    assert ingest(app, reply_to(request, ROADS, "Filled today.")).disposition == "update"
    tick.tick(app, FRIDAY)
    alerted = sorted(str(m["To"]) for m in sent_of_kind(app.settings.maildir, "alert"))
    assert alerted == [ALAN, JANE]
