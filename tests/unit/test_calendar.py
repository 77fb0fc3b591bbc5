"""Calendars as data: the documents' dates, reminders moved to working days, tiers, bad files."""
from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.workdays import WorkdayCalendar
from workflow.config import REPO_ROOT
from workflow.domain.calendar import reminder_date, tier_due
from workflow.domain.errors import InvalidInput

CALENDARS = CalendarCatalog(REPO_ROOT / "calendars")
WORKDAYS = WorkdayCalendar()
SELF_ASSESSMENT_DUE = date(2021, 10, 20)  # a Wednesday
TIERS = (14, 7, 3, 1)


# ---------------------------------------------------------------- the documents' dates

def test_shanxi_2021_has_the_dates_of_the_notice() -> None:
    cal = CALENDARS.get("shanxi-2021")

    assert (cal.province, cal.year, cal.recurring, cal.source) == ("shanxi", 2021, False, "晋直管发〔2021〕39号")
    assert {m.id: m.due_on(2021) for m in cal.milestones} == {
        "contact_form": date(2021, 6, 5),
        "self_assessment": date(2021, 10, 20),
        "evaluation": date(2021, 11, 30),   # 11月组织评价验收
        "city_report": date(2021, 11, 30),
        "spot_checks": date(2021, 12, 31),  # 12月实地抽查
        "national_filing": date(2022, 3, 31),
    }
    sa = cal.milestone("self_assessment")
    assert sa.owes_states == {"registered", "self_assessed"}
    assert (sa.remind, sa.escalate, sa.tiers) == (("unit",), ("unit", "coordinators"), (14, 7, 3, 1))
    assert cal.milestone("contact_form").owes_contacts
    assert cal.milestone("city_report").informational and cal.milestone("spot_checks").informational
    assert cal.policy.on_fail == "rectification" and cal.policy.rectification_days == 20
    assert cal.rectification is not None and cal.rectification.tiers == (7, 3, 1)
    assert cal.serves(2021) and not cal.serves(2022)


def test_hunan_recurs_every_year_with_the_plan_dates() -> None:
    cal = CALENDARS.get("hunan")

    assert cal.recurring and cal.year is None and cal.serves(2021) and cal.serves(2022)
    for year in (2021, 2022):
        assert {m.id: m.due_on(year) for m in cal.milestones} == {
            "self_assessment": date(year, 10, 31),
            "evaluation": date(year, 11, 30),
            "results": date(year, 12, 31),
            "city_filing": date(year + 1, 3, 10),
            "national_filing": date(year + 1, 3, 31),
        }
    assert cal.policy.on_fail == "not_certified" and cal.policy.carry_over
    assert cal.rectification is None
    assert cal.milestone("self_assessment").tiers == (14, 7, 3, 1)


def test_published_due_dates_never_move_even_on_a_day_off() -> None:
    contact_form = CALENDARS.get("shanxi-2021").milestone("contact_form")

    assert not WORKDAYS(date(2021, 6, 5))  # a Saturday
    assert contact_form.due_on(2021) == date(2021, 6, 5)


# ---------------------------------------------------------------- working days

@pytest.mark.parametrize("holiday", [date(2021, 10, d) for d in range(1, 8)])
def test_a_tier_in_the_national_day_holiday_moves_to_september_30(holiday: date) -> None:
    assert reminder_date(holiday + timedelta(days=3), 3, WORKDAYS) == date(2021, 9, 30)


def test_the_14_day_self_assessment_reminder_goes_out_before_the_holiday() -> None:
    assert SELF_ASSESSMENT_DUE - timedelta(days=14) == date(2021, 10, 6)
    assert reminder_date(SELF_ASSESSMENT_DUE, 14, WORKDAYS) == date(2021, 9, 30)


def test_a_sunday_reminder_moves_to_the_friday() -> None:
    assert date(2021, 10, 17).weekday() == 6
    assert reminder_date(SELF_ASSESSMENT_DUE, 3, WORKDAYS) == date(2021, 10, 15)


@pytest.mark.parametrize("makeup", [date(2021, 10, 9), date(2021, 9, 26)])
def test_a_make_up_workday_on_a_weekend_stays(makeup: date) -> None:
    assert makeup.weekday() >= 5
    assert reminder_date(makeup + timedelta(days=11), 11, WORKDAYS) == makeup


def test_a_reminder_on_a_working_day_stays() -> None:
    assert reminder_date(SELF_ASSESSMENT_DUE, 7, WORKDAYS) == date(2021, 10, 13)
    assert reminder_date(SELF_ASSESSMENT_DUE, 1, WORKDAYS) == date(2021, 10, 19)


def test_extra_dates_of_the_calendar_file_win_over_the_package() -> None:
    workdays = WorkdayCalendar(extra_holidays={date(2021, 9, 30)}, extra_workdays={date(2021, 10, 17)})

    assert reminder_date(SELF_ASSESSMENT_DUE, 14, workdays) == date(2021, 9, 29)
    assert reminder_date(SELF_ASSESSMENT_DUE, 3, workdays) == date(2021, 10, 17)


# ---------------------------------------------------------------- which tier is due

@pytest.mark.parametrize("today, expected", [
    (date(2021, 9, 29), None),
    (date(2021, 9, 30), 14),   # 10-06 is in the holiday
    (date(2021, 10, 12), 14),
    (date(2021, 10, 13), 7),
    (date(2021, 10, 14), 7),
    (date(2021, 10, 15), 3),   # 10-17 is a Sunday
    (date(2021, 10, 18), 3),
    (date(2021, 10, 19), 1),
    (date(2021, 10, 20), 1),   # due means by the end of the day
    (date(2021, 10, 21), None),
    (date(2022, 1, 1), None),
])
def test_tier_due_is_the_latest_tier_come_until_the_due_date(today: date, expected: int | None) -> None:
    assert tier_due(SELF_ASSESSMENT_DUE, TIERS, today, WORKDAYS) == expected


def test_after_downtime_only_the_latest_tier_is_due() -> None:
    # Nothing between 09-29 and 10-19: 14, 7 and 3 have all come; only 1 is sent.
    assert tier_due(SELF_ASSESSMENT_DUE, TIERS, date(2021, 10, 19), WORKDAYS) == 1
    # Down from 10-15 to 10-25: the deadline passed meanwhile, nothing but the miss.
    assert tier_due(SELF_ASSESSMENT_DUE, TIERS, date(2021, 10, 25), WORKDAYS) is None


# ---------------------------------------------------------------- bad files

def _shanxi() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "calendars" / "shanxi-2021.yaml").read_text(encoding="utf-8"))


def _load(tmp_path: Path, data: dict[str, Any]) -> tuple[Path, Callable[[], Any]]:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path, lambda: CalendarCatalog(tmp_path).get(data["id"])


def _milestone(data: dict[str, Any], ident: str) -> dict[str, Any]:
    return next(m for m in data["milestones"] if m["id"] == ident)


def _unknown_state(d: dict[str, Any]) -> None:
    _milestone(d, "self_assessment")["owes"]["states"] = ["registered", "self_assesed"]


def _tiers_not_a_list(d: dict[str, Any]) -> None:
    _milestone(d, "self_assessment")["tiers"] = "14, 7, 3, 1"


def _informational_with_tiers(d: dict[str, Any]) -> None:
    _milestone(d, "spot_checks")["tiers"] = [7]


def _duplicate_id(d: dict[str, Any]) -> None:
    d["milestones"].append(copy.deepcopy(_milestone(d, "evaluation")))


def _bad_due(d: dict[str, Any]) -> None:
    _milestone(d, "self_assessment")["due"] = "13-40"


def _rectification_under_not_certified(d: dict[str, Any]) -> None:
    d["policy"] = {"on_fail": "not_certified", "carry_over": True}


@pytest.mark.parametrize("break_it, where, what", [
    (_unknown_state, "milestones[1].owes.states", "self_assesed"),
    (_tiers_not_a_list, "milestones[1].tiers", "list"),
    (_informational_with_tiers, "milestones[4]", "informational"),
    (_duplicate_id, "milestones[6].id", "used twice"),
    (_bad_due, "milestones[1].due", "13-40"),
    (_rectification_under_not_certified, "rectification", "no rectification"),
], ids=["unknown-state", "tiers-not-a-list", "informational-with-tiers", "duplicate-id", "bad-due",
        "rectification-under-not_certified"])
def test_a_bad_calendar_file_is_refused_naming_the_file_and_the_path(
        tmp_path: Path, break_it: Callable[[dict[str, Any]], None], where: str, what: str) -> None:
    data = _shanxi()
    break_it(data)
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert str(path) in info.value.message
    [problem] = info.value.problems
    assert problem.where == f"{path}: {where}"
    assert what in problem.what


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    data = _shanxi()
    _bad_due(data)
    _tiers_not_a_list(data)
    _informational_with_tiers(data)
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert sorted(p.where for p in info.value.problems) == [
        f"{path}: milestones[1].due", f"{path}: milestones[1].tiers", f"{path}: milestones[4]"]


def test_owes_states_not_a_list_is_invalid_input(tmp_path: Path) -> None:
    data = _shanxi()
    _milestone(data, "self_assessment")["owes"]["states"] = 5
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert [p.where for p in info.value.problems] == [f"{path}: milestones[1].owes.states"]


def test_milestones_not_a_list_is_invalid_input(tmp_path: Path) -> None:
    data = _shanxi()
    data["milestones"] = 5
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert [p.where for p in info.value.problems] == [f"{path}: milestones"]


def test_an_empty_owes_with_reminders_is_refused(tmp_path: Path) -> None:
    data = _shanxi()
    _milestone(data, "self_assessment")["owes"] = {"states": []}
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert [p.where for p in info.value.problems] == [f"{path}: milestones[1].owes"]
