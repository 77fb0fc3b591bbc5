"""Scoring a sheet against a rubric: Decimal only, capped per-occurrence, every problem reported."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.adapters.rubric_files import RubricCatalog
from workflow.domain.errors import InvalidInput
from workflow.domain.rubric import Criterion, Rubric, rubric_from_dict, score_sheet

CATALOG = RubricCatalog()
SHANXI = CATALOG.get("shanxi-2020")
HUNAN = CATALOG.get("hunan-2020")


def full_marks(rubric: Rubric) -> dict[str, Decimal | int]:
    """Every criterion at its cap: points for ordinary ones, the capping count for the others."""
    return {c.code: int(c.cap / c.points) if c.per_occurrence else c.cap for c in rubric.criteria()}


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
    entries["2.2.2"] = 1  # per occurrence: 1 × 1 instead of 5
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


def test_per_occurrence_counts_are_capped_not_refused() -> None:
    sheet = score_sheet(SHANXI, {"2.2.2": 3, "5.1.1": 7, "5.2.2": Decimal("1"), "5.1.3": Decimal("1E+3")}, complete=False)
    assert sheet.criteria["2.2.2"] == Decimal(3)
    assert sheet.criteria["5.1.1"] == Decimal(4)
    assert sheet.criteria["5.2.2"] == Decimal(2)
    assert sheet.criteria["5.1.3"] == Decimal(2)
    assert sheet.total == Decimal(11)


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
        "1.1.1": "negative: -1",
        "2.1.1": "5 is above the cap 4",
        "3.1.3": "1.2 is not a multiple of 0.5 (the smallest allowed fraction)",
        "3.1.4": "float 1.5 refused: enter a Decimal or an int",
        "3.1.5": "not a number: str '3'",
        "2.2.5": "occurrence count must be a whole number, got 2.5",
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


def valid_entry(criterion: Criterion) -> st.SearchStrategy[Decimal | int]:
    if criterion.per_occurrence:
        return st.integers(0, int(criterion.cap / criterion.points) + 3) | st.integers(0, 9).map(Decimal)
    steps = int(criterion.cap / criterion.step)
    return st.integers(0, steps).map(lambda k: k * criterion.step)


def expected_score(criterion: Criterion, value: Decimal | int) -> Decimal:
    if criterion.per_occurrence:
        return min(Decimal(value) * criterion.points, criterion.cap)
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
    negative = st.integers(1, 50).map(lambda k: -k * HALF)
    as_float = st.floats(allow_nan=False, allow_infinity=False)
    if criterion.per_occurrence:
        fraction = st.tuples(st.integers(0, 20), st.sampled_from(["0.25", "0.5", "0.75"])).map(
            lambda t: t[0] + Decimal(t[1])
        )
        return st.one_of(negative, as_float, fraction)
    over_cap = st.integers(1, 50).map(lambda k: criterion.cap + k * criterion.step)
    bad_fraction = st.integers(0, int(criterion.cap / criterion.step) - 1).map(
        lambda k: k * criterion.step + criterion.step / 4
    )
    return st.one_of(negative, as_float, over_cap, bad_fraction)


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
