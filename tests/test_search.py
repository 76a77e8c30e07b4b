"""`mailflow search`: ranked full text over cases on SQLite FTS5 and PostgreSQL tsvector, its
filters, who sees what (`--as`), and an index that follows every change to the data."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import delete
from sqlmodel import select

from mailflow import models
from mailflow.app import App
from mailflow.casework import cases
from mailflow.casework.visibility import NotAllowed
from mailflow.reports import search
from tests import reportdata as rd
from tests.conftest import run_cli

STAFF = "member.services@council.example"


def find(app: App, query: str, **filters: object) -> list[str]:
    with app.session() as s:
        found = search.search(s, app.settings, app.calendar, query,
                              search.Filters(**filters))  # type: ignore[arg-type]
    return [r["subject"] for r in found]


@pytest.fixture
def council(app: App) -> dict[str, int]:
    ids = rd.council_autumn(app)
    ids["bins"] = rd.open_case(app, rd.TOM, "Waste", "2026-12-02T10:00:00Z",
                               "Bins not emptied", name="Eve Stone",
                               issue="The pothole crew blocked the bin lorry again.",
                               address="7 Quarry Lane, Bathgate")
    with app.session() as s:
        case = s.get(models.Case, ids["c6"])
        cases.event(s, case, "member_update", rd.at("2026-12-03T10:00:00Z"),  # type: ignore
                    sender=rd.TOM, text="Constituent says the hill was resurfaced badly.")
        s.commit()
    return ids


def test_words_in_every_field_are_found(app: App, council: dict[str, int]) -> None:
    assert find(app, "fly-tipping") == ["Fly-tipping in the lane"]  # the subject
    assert find(app, "Peter Grant") == ["Broken street light"]  # the constituent's name
    assert find(app, "Mill Road") == ["Broken street light"]  # their address
    assert find(app, "peter.grant@example.org") == ["Broken street light"]
    assert find(app, "filled by Friday") == ["Pothole on Main Street"]  # a service's reply
    assert find(app, "resurfaced") == ["Gritting on Hill Road"]  # a member's update
    assert find(app, "lorry") == ["Bins not emptied"]  # the constituent's own words
    assert find(app, "acknowledgement") == []  # mailflow's own events are not indexed
    assert find(app, "zebra") == []


def test_stems_ranking_and_several_words(app: App, council: dict[str, int]) -> None:
    # "potholes" finds "pothole"; a match in the subject ranks above one in the text.
    assert find(app, "potholes") == ["Pothole on Main Street", "Bins not emptied"]
    assert find(app, "pothole lorry bin") == ["Bins not emptied"]  # every word must match
    assert find(app, "pothole zebra") == []
    assert find(app, '"huge pothole"') == ["Pothole on Main Street"]  # a phrase
    assert find(app, '"pothole huge"') == []
    assert find(app, "pot*") == ["Pothole on Main Street", "Bins not emptied"] or \
        app.url.startswith("postgresql")  # prefixes are an FTS5 feature


@pytest.mark.parametrize("query", ['"unbalanced', "AND OR NOT", "(pothole", "col:umn", "*",
                                   "pothole -", "NEAR(a b)", "'; DROP TABLE case; --"])
def test_any_input_is_safe(app: App, council: dict[str, int], query: str) -> None:
    find(app, query)  # no syntax error, whatever the user types


def test_filters(app: App, council: dict[str, int]) -> None:
    assert find(app, "pothole", member="tom.brown@council.example") == ["Bins not emptied"]
    assert find(app, "pothole", member="jane@home.example") == ["Pothole on Main Street"]
    assert find(app, "pothole", ward="Linlithgow") == ["Pothole on Main Street"]
    assert find(app, "pothole", service="Waste") == ["Bins not emptied"]
    assert find(app, "pothole", status="closed") == ["Pothole on Main Street"]
    assert find(app, "pothole", since=date(2026, 12, 1)) == ["Bins not emptied"]
    assert find(app, "pothole", until=date(2026, 11, 30)) == ["Pothole on Main Street"]
    assert find(app, "pothole", since=date(2026, 11, 20), until=date(2026, 11, 20)) == \
        ["Pothole on Main Street"]
    with pytest.raises(search.UnknownFilter):
        find(app, "pothole", ward="Atlantis")


def test_members_see_their_own_cases_and_staff_see_all(app: App,
                                                        council: dict[str, int]) -> None:
    assert find(app, "pothole", as_email=rd.JANE) == ["Pothole on Main Street"]
    assert find(app, "pothole", as_email="jane@home.example") == ["Pothole on Main Street"]
    assert find(app, "pothole", as_email=rd.TOM) == ["Bins not emptied"]
    assert find(app, "Mary Jones", as_email=rd.TOM) == []
    assert len(find(app, "pothole", as_email=STAFF)) == 2
    # A member filtering on a colleague's cases still sees none of them.
    assert find(app, "pothole", as_email=rd.TOM, member=rd.JANE) == []
    with pytest.raises(NotAllowed):
        find(app, "pothole", as_email="roads.enquiries@council.example")


def test_the_index_follows_changes_and_deletions(app: App, council: dict[str, int]) -> None:
    with app.session() as s:
        grant = s.exec(select(models.Constituent)
                       .where(models.Constituent.name == "Peter Grant")).one()
        grant.address = "9 Canal Basin, Linlithgow"
        s.add(grant)
        case = s.get(models.Case, council["c5"])
        case.subject = "Dumped mattress in the lane"  # type: ignore[union-attr]
        case.issue = "Someone left a mattress."  # type: ignore[union-attr]
        s.add(case)
        reply = s.exec(select(models.Event).where(models.Event.case_id == council["c1"],
                                                  models.Event.kind == "service_reply")).one()
        reply.text = "[removed under the retention policy]"
        s.add(reply)
        s.commit()
    assert find(app, "Mill Road") == [] and find(app, "Canal Basin") == ["Broken street light"]
    assert find(app, "mattress") == ["Dumped mattress in the lane"]
    assert find(app, "fly-tipping") == []
    assert find(app, "filled by Friday") == []
    with app.session() as s:
        cid = council["bins"]
        for table in (models.Outbox, models.Notification, models.Attachment,
                      models.Event, models.Holding, models.Request):
            s.execute(delete(table).where(table.case_id == cid))  # type: ignore[attr-defined]
        s.execute(delete(models.Case).where(models.Case.id == cid))
        s.commit()
    assert find(app, "lorry") == []


def test_search_command(app: App, council: dict[str, int], config_file: Path) -> None:
    done = run_cli(config_file, "search", "pothole", "--as", rd.JANE, "--json")
    assert done.returncode == 0, done.stderr
    [hit] = json.loads(done.stdout)
    assert hit["reference"] == "CW-2026-00002" and hit["member"]["email"] == rd.JANE
    assert hit["score"] > 0 and "[" in hit["snippet"]
    done = run_cli(config_file, "search", "Mill", "Road")
    assert done.returncode == 0 and "Broken street light" in done.stdout
    done = run_cli(config_file, "search", "pothole", "--as", "stranger@example.com")
    assert done.returncode == 64 and "not a member or staff" in done.stderr
    done = run_cli(config_file, "search", "pothole", "--service", "Parks")
    assert done.returncode == 64


def test_bulk_import_with_the_index_suspended(app: App) -> None:
    from mailflow import db

    with search.index_suspended(db.engine(app.url)):
        rd.open_case(app, rd.JANE, "Roads", "2026-11-20T10:00:00Z", "Cracked flagstones")
        assert find(app, "flagstones") == []  # not indexed row by row
    assert find(app, "flagstones") == ["Cracked flagstones"]  # indexed at the end
    rd.open_case(app, rd.JANE, "Roads", "2026-11-20T11:00:00Z", "Loose manhole cover")
    assert find(app, "manhole") == ["Loose manhole cover"]  # and the triggers are back


def test_a_very_common_word_ranks_only_the_newest_matches(app: App, council: dict[str, int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    everything = find(app, "pothole")
    assert everything == ["Pothole on Main Street", "Bins not emptied"]
    monkeypatch.setattr(search, "WINDOW", 1)
    assert find(app, "pothole") == ["Bins not emptied"]  # the newer of the two
    assert find(app, "pothole", until=date(2026, 11, 30)) == ["Pothole on Main Street"]


def test_newest_first_finds_the_same_window_wherever_it_starts(
        app: App, council: dict[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # On PostgreSQL common words are looked for among the newest ids first (from a cut the
    # statistics suggest), the rest only when those hold fewer than WINDOW matches. Any cut
    # must give what one plain pass gives: a cut too high, too low, or in between.
    for day in range(4, 10):
        rd.open_case(app, rd.JANE, "Roads", f"2026-12-{day:02d}T10:00:00Z",
                     f"Pothole number {day}")
    monkeypatch.setattr(search, "WINDOW", 3)
    monkeypatch.setattr(search, "_newest_cut", lambda s, q: None)
    plain = find(app, "pothole")
    assert sorted(plain) == [f"Pothole number {d}" for d in (7, 8, 9)]  # the newest
    with app.session() as s:
        ids = sorted(s.exec(select(models.Case.id)).all())
    for cut in (ids[-1], ids[-2], ids[len(ids) // 2], ids[0], 0):
        monkeypatch.setattr(search, "_newest_cut", lambda s, q, cut=cut: cut)
        assert find(app, "pothole") == plain, cut
    monkeypatch.undo()
    monkeypatch.setattr(search, "WINDOW", 3)
    assert find(app, "pothole") == plain  # with the statistics, whatever they say
