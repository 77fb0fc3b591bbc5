"""Scoring a sheet against a rubric: entries are the points printed on the form (分项得分),
Decimal only, a count only when given as one, every problem reported, nothing capped."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.adapters.rubric_files import RubricCatalog
from workflow.domain.errors import InvalidInput
from workflow.domain.rubric import Count, Criterion, Rubric, entries_as_points, rubric_from_dict, score_sheet

CATALOG = RubricCatalog()
SHANXI = CATALOG.get("shanxi-2020")
HUNAN = CATALOG.get("hunan-2020")


def full_marks(rubric: Rubric) -> dict[str, Decimal | int]:
    """Every criterion at its cap, in points."""
    return {c.code: c.cap for c in rubric.criteria()}


def problems_of(rubric: Rubric, entries: dict[Any, Any], *, complete: bool = False) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        score_sheet(rubric, entries, complete=complete)
    return {p.where: p.what for p in err.value.problems}


@pytest.mark.parametrize("rubric", [SHANXI, HUNAN], ids=lambda r: r.id)
def test_full_marks_score_100_and_pass(rubric: Rubric) -> None:
    sheet = score_sheet(rubric, full_marks(rubric), complete=True)
    assert sheet.total == Decimal(100)
    assert sheet.complete and sheet.missing == ()
    assert sheet.passed(rubric)
    assert sheet.items == {i.code: i.max_points for i in rubric.items()}
    assert sheet.sections == {s.code: s.max_points for s in rubric.sections}


def test_hunan_79_5_fails_and_80_passes() -> None:
    entries = full_marks(HUNAN)
    entries.update({"1.1.1": 0, "2.1.1": 0, "2.1.2": 0, "3.1.1": 0})  # 100 - 10 - 4 - 4 - 2
    at_80 = score_sheet(HUNAN, entries, complete=True)
    assert at_80.total == Decimal(80) and at_80.passed(HUNAN)
    entries["3.1.3"] = Decimal("1.0")  # 1.5 -> 1.0
    at_79_5 = score_sheet(HUNAN, entries, complete=True)
    assert at_79_5.total == Decimal("79.5") and not at_79_5.passed(HUNAN)
    assert at_79_5.items["3.1"] == Decimal("7.5") and at_79_5.sections["3"] == Decimal("18.5")


def test_shanxi_half_point_award_and_boundary() -> None:
    entries = full_marks(SHANXI)
    entries.update({"1.1.1": 0, "3.2.1": Decimal("0.5"), "3.2.2": 0, "5.1.3": 0})  # 100 - 9 - 2.5 - 3 - 2
    sheet = score_sheet(SHANXI, entries, complete=True)
    assert sheet.total == Decimal("83.5") and sheet.passed(SHANXI)
    entries["2.2.2"] = 1  # per occurrence: 1 分 (one rule) instead of 5
    assert not score_sheet(SHANXI, entries, complete=True).passed(SHANXI)


def must_pass_rubric() -> Rubric:
    return rubric_from_dict(
        {
            "id": "mp", "title": "t", "province": "test", "total": 100, "pass_mark": 80,
            "sections": [{"code": "1", "name": "s", "max_points": 100, "items": [
                {"code": "1.1", "name": "i", "max_points": 100, "criteria": [
                    {"code": "1.1.1", "text": "a", "points": 5, "cap": 5, "per_occurrence": False, "must_pass": True},
                    {"code": "1.1.2", "text": "b", "points": 95, "cap": 95, "per_occurrence": False},
                ]},
            ]}],
        },
        "mp.yaml",
    )


def test_must_pass_criterion_at_zero_fails_even_at_95() -> None:
    rubric = must_pass_rubric()
    failing = score_sheet(rubric, {"1.1.1": 0, "1.1.2": 95}, complete=True)
    assert failing.total == Decimal(95) and not failing.passed(rubric)
    passing = score_sheet(rubric, {"1.1.1": Decimal("0.5"), "1.1.2": 80}, complete=True)
    assert passing.total == Decimal("80.5") and passing.passed(rubric)
    missing = score_sheet(rubric, {"1.1.2": 95}, complete=False)
    assert missing.missing == ("1.1.1",) and not missing.passed(rubric)


def test_passed_refuses_another_rubric() -> None:
    sheet = score_sheet(HUNAN, full_marks(HUNAN), complete=True)
    with pytest.raises(InvalidInput, match="hunan-2020"):
        sheet.passed(SHANXI)


def test_an_entry_is_the_points_printed_on_the_form() -> None:
    """附件3 records 分项得分: 5.1.1 "开展1项活动得2分，累计最高得4分" — a unit that held one
    activity writes 2, and is credited 2 (not 4, as when the entry was read as a count)."""
    sheet = score_sheet(SHANXI, {"5.1.1": 2, "2.2.2": 3, "5.2.2": Decimal("4"), "5.1.3": Decimal("1")}, complete=False)
    assert sheet.criteria["5.1.1"] == Decimal(2)
    assert sheet.criteria["2.2.2"] == Decimal(3)
    assert sheet.criteria["5.2.2"] == Decimal(4)
    assert sheet.criteria["5.1.3"] == Decimal(1)
    assert sheet.total == Decimal(10) and sheet.counts == {}


@pytest.mark.parametrize("code, points, allowed", [
    ("5.1.1", 3, "0, 2, 4"),     # 开展1项活动得2分，累计最高得4分
    ("5.1.1", 6, "0, 2, 4"),
    ("5.2.2", 1, "0, 2, 4"),     # 每次得2分，最高得4分
    ("5.1.3", 3, "0, 1, 2"),     # 每次得1分，最高得2分
    ("2.2.2", Decimal("2.5"), "0, 1, 2, 3, 4, 5"),  # 每项得 1 分，最高得 5 分
])
def test_impossible_points_are_refused_naming_the_values_allowed(code: str, points: Any, allowed: str) -> None:
    """Nothing is ever silently capped: 3 分 on 5.1.1 cannot be written by anyone following the
    form (2 per activity, up to 4), so it is refused with the values it may take."""
    problems = problems_of(SHANXI, {code: points})
    assert list(problems) == [code]
    assert problems[code].startswith(f"{points} 分 is not possible: ")
    assert problems[code].endswith(f"({allowed})")
    with pytest.raises(InvalidInput) as err:
        score_sheet(SHANXI, {code: points}, complete=False)
    assert err.value.problems[0].zh is not None and f"可填 {allowed.replace(', ', '、')}" in err.value.problems[0].zh


def test_the_message_names_the_occurrence_as_the_document_does() -> None:
    """5.1.1: "3 分 is not possible: 2 分 per activity, up to 4 (0, 2, 4)" (the issue's example)."""
    assert problems_of(SHANXI, {"5.1.1": 3}) == {"5.1.1": "3 分 is not possible: 2 分 per activity, up to 4 (0, 2, 4)"}


def test_a_count_is_turned_into_points_and_recorded_as_a_count() -> None:
    """A count only in a form that says so: one activity of 5.1.1 is 2 分; three are 4 分 —
    the document's own cumulative maximum (累计最高得4分), with the count kept beside it."""
    sheet = score_sheet(SHANXI, {"5.1.1": Count(1), "5.1.2": Count(3), "2.2.2": Count(7)}, complete=False)
    assert (sheet.criteria["5.1.1"], sheet.criteria["5.1.2"], sheet.criteria["2.2.2"]) == (2, 3, 5)
    assert dict(sheet.counts) == {"5.1.1": 1, "5.1.2": 3, "2.2.2": 7}
    assert sheet.entered() == {"2.2.2": 5, "5.1.1": 2, "5.1.2": 3}


def test_a_count_for_a_criterion_not_scored_per_occurrence_is_refused() -> None:
    """3.1.1 "推行无纸化办公…得2分" is not scored per occurrence: a count means nothing there."""
    problems = problems_of(SHANXI, {"3.1.1": Count(1), "5.1.1": Count(-1)})
    assert "a count is only for a criterion scored per occurrence" in problems["3.1.1"]
    assert "whole number" in problems["5.1.1"]


def test_hunan_all_or_nothing_criterion() -> None:
    """Hunan 1.1.1: "创建单位完成…年度能源资源消耗量化指标的，得10分，没完成的，不得分" — 0 or 10."""
    assert score_sheet(HUNAN, {"1.1.1": 10}, complete=False).total == 10
    assert score_sheet(HUNAN, {"1.1.1": 0}, complete=False).total == 0
    assert problems_of(HUNAN, {"1.1.1": 5}) == {"1.1.1": "5 分 is not possible: 10 分 or nothing (0, 10)"}


def test_version_1_sheets_are_read_as_they_were_written() -> None:
    """A sheet recorded before entries were points held counts for per-occurrence criteria:
    5.1.1 "2" was two activities (4 分); ordinary criteria were points then too."""
    old = {"entries": {"5.1.1": "2", "2.2.2": "7", "1.1.1": "9.0", "5.1.3": "1E+3"}, "total": "20"}
    assert entries_as_points(old, SHANXI) == {"5.1.1": 4, "2.2.2": 5, "1.1.1": Decimal("9.0"), "5.1.3": 2}
    new = {"v": 2, "entries": {"5.1.1": "2", "2.2.2": "5"}}
    assert entries_as_points(new, SHANXI) == {"5.1.1": 2, "2.2.2": 5}


def test_incomplete_sheet_counts_missing_as_zero_but_names_them() -> None:
    sheet = score_sheet(HUNAN, {"3.3.1": Decimal("2.5")}, complete=False)
    assert sheet.total == Decimal("2.5") and not sheet.complete
    assert len(sheet.missing) == len(HUNAN.criteria()) - 1 and "3.3.1" not in sheet.missing
    assert sheet.criteria["1.1.1"] == 0


def test_complete_sheet_reports_every_missing_criterion() -> None:
    entries = full_marks(SHANXI)
    del entries["1.1.1"], entries["5.2.2"]
    problems = problems_of(SHANXI, entries, complete=True)
    assert set(problems) == {"1.1.1", "5.2.2"} and "missing" in problems["5.2.2"]


def test_every_bad_entry_is_reported_at_once() -> None:
    problems = problems_of(HUNAN, {
        "9.9": 1,
        "1.1.1": -1,
        "2.1.1": 5,
        "3.1.3": Decimal("1.2"),
        "3.1.4": 1.5,
        "3.1.5": "3",
        "2.2.5": Decimal("2.5"),
        "3.2.1": Decimal("NaN"),
        "3.2.2": True,
        "4.1.1": None,
    })
    assert problems == {
        "9.9": "unknown criterion: rubric hunan-2020 has no criterion '9.9'",
        "1.1.1": "-1 分 is not possible: 10 分 or nothing (0, 10)",
        "2.1.1": "5 分 is not possible: up to 4 in steps of 0.5 (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4)",
        "3.1.3": "1.2 分 is not possible: up to 1.5 in steps of 0.5 (0, 0.5, 1, 1.5)",
        "3.1.4": "float 1.5 refused: enter a Decimal or an int",
        "3.1.5": "not a number: str '3'",
        "2.2.5": "2.5 分 is not possible: 1 分 per rule, up to 4 (0, 1, 2, 3, 4)",
        "3.2.1": "not a number: NaN",
        "3.2.2": "not a number: bool True",
        "4.1.1": "not a number: NoneType None",
    }


def test_whole_float_is_still_refused() -> None:
    assert "float" in problems_of(SHANXI, {"2.2.2": 2.0})["2.2.2"]


# --------------------------------------------------------------------------- properties

HALF = Decimal("0.5")


@st.composite
def generated_rubric(draw: st.DrawFn) -> Rubric:
    """A random valid rubric: half-point criteria, some per occurrence, sums made consistent."""
    sections = []
    for s in range(1, draw(st.integers(1, 3)) + 1):
        items = []
        for i in range(1, draw(st.integers(1, 3)) + 1):
            criteria = []
            for c in range(1, draw(st.integers(1, 4)) + 1):
                points = draw(st.integers(1, 8)) * HALF
                per_occurrence = draw(st.booleans())
                cap = points * draw(st.integers(1, 4)) if per_occurrence else points
                criteria.append({
                    "code": f"{s}.{i}.{c}", "text": "t", "points": str(points), "cap": str(cap),
                    "per_occurrence": per_occurrence, "must_pass": draw(st.booleans()),
                })
            items.append({"code": f"{s}.{i}", "name": "i", "criteria": criteria,
                          "max_points": str(sum(Decimal(c["cap"]) for c in criteria))})
        sections.append({"code": str(s), "name": "s", "items": items,
                         "max_points": str(sum(Decimal(i["max_points"]) for i in items))})
    total = sum(Decimal(s["max_points"]) for s in sections)
    data = {"id": "gen", "title": "t", "province": "p", "total": str(total),
            "pass_mark": str(draw(st.integers(0, int(total / HALF))) * HALF), "sections": sections}
    return rubric_from_dict(data, "gen.yaml")


any_rubric = st.one_of(st.just(SHANXI), st.just(HUNAN), generated_rubric())


def valid_entry(criterion: Criterion) -> st.SearchStrategy[Decimal | int | Count]:
    steps = int(criterion.cap / criterion.unit)
    points = st.integers(0, steps).map(lambda k: k * criterion.unit)
    if criterion.per_occurrence:  # points, or a count (any number of occurrences)
        return points | st.integers(0, steps + 3).map(Count)
    return points


def expected_score(criterion: Criterion, value: Decimal | int | Count) -> Decimal:
    if isinstance(value, Count):
        return min(value.n * criterion.points, criterion.cap)
    return Decimal(value)


@st.composite
def valid_sheet(draw: st.DrawFn) -> tuple[Rubric, dict[str, Decimal | int], bool]:
    rubric = draw(any_rubric)
    complete = draw(st.booleans())
    entries = {}
    for c in rubric.criteria():
        if complete or draw(st.booleans()):
            entries[c.code] = draw(valid_entry(c))
    return rubric, entries, complete


@settings(max_examples=200, deadline=None)
@given(valid_sheet())
def test_valid_sheet_scores_within_caps_and_totals_are_sums(case: tuple[Rubric, dict[str, Decimal | int], bool]) -> None:
    rubric, entries, complete = case
    sheet = score_sheet(rubric, entries, complete=complete)
    for c in rubric.criteria():
        score = sheet.criteria[c.code]
        assert type(score) is Decimal and Decimal(0) <= score <= c.cap
        assert score == (expected_score(c, entries[c.code]) if c.code in entries else 0)
    for item in rubric.items():
        assert sheet.items[item.code] == sum((sheet.criteria[c.code] for c in item.criteria), Decimal(0))
        assert sheet.items[item.code] <= item.max_points
    for section in rubric.sections:
        assert sheet.sections[section.code] == sum((sheet.items[i.code] for i in section.items), Decimal(0))
    assert sheet.total == sum(sheet.sections.values(), Decimal(0)) == sum(sheet.criteria.values(), Decimal(0))
    assert Decimal(0) <= sheet.total <= rubric.total
    assert set(sheet.missing) == {c.code for c in rubric.criteria()} - set(entries)
    must_pass_ok = all(sheet.criteria[c.code] > 0 for c in rubric.criteria() if c.must_pass)
    assert sheet.passed(rubric) == (sheet.total >= rubric.pass_mark and must_pass_ok)


def invalid_entry(criterion: Criterion) -> st.SearchStrategy[Any]:
    """Points no one following the form can write: negative, above the cap (never capped),
    between two possible scores; floats; a count for a criterion not scored per occurrence."""
    negative = st.integers(1, 50).map(lambda k: -k * HALF)
    as_float = st.floats(allow_nan=False, allow_infinity=False)
    over_cap = st.integers(1, 50).map(lambda k: criterion.cap + k * criterion.unit)
    bad_fraction = st.integers(0, int(criterion.cap / criterion.unit) - 1).map(
        lambda k: k * criterion.unit + criterion.unit / 4
    )
    bad = [negative, as_float, over_cap, bad_fraction]
    if not criterion.per_occurrence:
        bad.append(st.integers(0, 5).map(Count))
    return st.one_of(*bad)


@settings(max_examples=200, deadline=None)
@given(valid_sheet(), st.data())
def test_any_invalid_entry_is_reported_with_its_code(case: tuple[Rubric, dict[str, Decimal | int], bool], data: st.DataObject) -> None:
    rubric, entries, complete = case
    if data.draw(st.booleans(), label="unknown code"):
        code = data.draw(st.text(min_size=1, max_size=8).filter(lambda s: s not in {c.code for c in rubric.criteria()}))
        entries[code] = 1
    else:
        criterion = data.draw(st.sampled_from(rubric.criteria()))
        code = criterion.code
        entries[code] = data.draw(invalid_entry(criterion), label="bad value")
    with pytest.raises(InvalidInput) as err:
        score_sheet(rubric, entries, complete=complete)
    assert code in {p.where for p in err.value.problems}


def test_a_long_list_of_allowed_values_is_shortened() -> None:
    """Shanxi 1.1.1 (9 分 in half points) has 19 possible scores: the message shows the ends."""
    assert problems_of(SHANXI, {"1.1.1": Decimal("9.25")}) == {
        "1.1.1": "9.25 分 is not possible: up to 9 in steps of 0.5 (0, 0.5, 1, …, 9)"}
