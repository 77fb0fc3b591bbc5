"""Calendars as data: the documents' dates, reminders moved to working days, tiers, bad files."""
from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    assert sa.owes_states == {"registered", "self_assessed"} and sa.owed_by == "unit"
    assert (sa.remind, sa.escalate, sa.tiers) == (("unit",), ("unit", "coordinators"), (14, 7, 3, 1))
    assert cal.milestone("contact_form").owes_contact_form
    # the bureaus' own duties: owed by a jurisdiction, never by the units' cases
    assert {m.id: (m.owed_by, m.needs) for m in cal.duties()} == {
        "evaluation": ("bureau", "nothing"),          # 11月，省机关事务管理局将组织对省级创建单位进行评价验收
        "city_report": ("city", "attachment"),        # 各市…将年度创建总体情况于11月底前报省机关事务管理局
        "spot_checks": ("province", "spot_checks"),   # 12月…组织对各地区创建工作进行实地抽查
        "national_filing": ("province", "filing_batches"),  # 2022年3月…报国管局备案
    }
    assert cal.milestone("evaluation").owes_states == {"submitted", "verified"}
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
    assert {m.id: (m.owed_by, m.needs) for m in cal.duties()} == {
        "evaluation": ("bureau", "nothing"),          # 每年11月…对省直有关创建单位的自评情况进行现场验收
        "results": ("province", "attachment"),        # 每年12月底…汇总评价情况并进行通报表彰
        "city_filing": ("city", "attachment"),        # 各市州…于每年3月初前将创建总体情况报省…备案
        "national_filing": ("province", "filing_batches"),  # 省…于每年3月底前将创建总体情况报国管局备案
    }
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
    return yaml.safe_load((REPO_ROOT / "calendars" / "shanxi.yaml").read_text(encoding="utf-8"))


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
    d["milestones"].append({"id": "note", "name": "a date to show", "due": "12-01", "tiers": [7]})


def _duplicate_id(d: dict[str, Any]) -> None:
    d["milestones"].append(copy.deepcopy(_milestone(d, "evaluation")))


def _bad_due(d: dict[str, Any]) -> None:
    _milestone(d, "self_assessment")["due"] = "13-40"


def _rectification_under_not_certified(d: dict[str, Any]) -> None:
    d["policy"] = {"on_fail": "not_certified", "carry_over": True}


@pytest.mark.parametrize("break_it, where, what", [
    (_unknown_state, "milestones[0].owes.states", "self_assesed"),
    (_tiers_not_a_list, "milestones[0].tiers", "list"),
    (_informational_with_tiers, "milestones[5]", "informational"),
    (_duplicate_id, "milestones[5].id", "used twice"),
    (_bad_due, "milestones[0].due", "13-40"),
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
        f"{path}: milestones[0].due", f"{path}: milestones[0].tiers", f"{path}: milestones[5]"]


def test_owes_states_not_a_list_is_invalid_input(tmp_path: Path) -> None:
    data = _shanxi()
    _milestone(data, "self_assessment")["owes"]["states"] = 5
    path, load = _load(tmp_path, data)

    with pytest.raises(InvalidInput) as info:
        load()

    assert [p.where for p in info.value.problems] == [f"{path}: milestones[0].owes.states"]


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

    assert [p.where for p in info.value.problems] == [f"{path}: milestones[0].owes"]


# ---------------------------------------------------------------- recurring calendars, a year's notice over them

def test_shanxi_recurs_and_the_2021_notice_overrides_its_year() -> None:
    """A province's dates recur; a year's notice (晋直管发〔2021〕39号) overrides them for its year:
    the 2021 notice adds the 附件2 contact form ("请于6月5日前…") and its own wording."""
    standing, notice = CALENDARS.get("shanxi"), CALENDARS.get("shanxi-2021")
    assert standing.recurring and notice.extends == "shanxi" and notice.year == 2021
    assert "contact_form" not in {m.id for m in standing.milestones}
    assert notice.milestone("contact_form").due_on(2021) == date(2021, 6, 5)
    assert notice.milestone("national_filing").what_to_do.startswith("2022年3月")
    assert standing.milestone("national_filing").what_to_do.startswith("梳理总结本年度")
    # everything the notice does not say is the standing calendar's
    assert notice.milestone("city_report") == standing.milestone("city_report")
    assert notice.policy == standing.policy and notice.documents == standing.documents
    assert CALENDARS.for_year("shanxi", 2021).id == "shanxi-2021"
    assert CALENDARS.for_year("shanxi", 2022).id == "shanxi"
    assert CALENDARS.for_year("hunan", 2023).id == "hunan"
    assert standing.title_for(2022) == "山西省2022年节约型机关创建工作"


def test_no_calendar_for_a_province_is_not_found() -> None:
    from workflow.domain.errors import NotFound

    with pytest.raises(NotFound, match="no calendar serves guangdong"):
        CALENDARS.for_year("guangdong", 2022)


def test_targets_are_the_documents_shares_per_year() -> None:
    """Hunan: "至2020年底有25%左右…至2021年底有50%左右…至2022年底有70%左右"; Shanxi: "2021 年底，50%"."""
    hunan = CALENDARS.get("hunan")
    assert [(t.year, t.share) for t in hunan.targets] == [(2020, Decimal("0.25")), (2021, Decimal("0.5")),
                                                           (2022, Decimal("0.7"))]
    assert hunan.overall_target(2021) == Decimal("0.5") and hunan.overall_target(2023) is None
    assert CALENDARS.get("shanxi-2021").overall_target(2021) == Decimal("0.5")
    assert CALENDARS.get("shanxi").overall_target(2022) is None   # no document sets one: a round must be given it


def test_documents_a_submission_needs_are_data() -> None:
    """Shanxi: "10月20日前请将自评报告、自评打分表（见附件3）和佐证材料报省机关事务管理局";
    Hunan: "将自评表和创建工作方案于每年10月底前报送"."""
    assert [d.name for d in CALENDARS.get("shanxi-2021").documents] == ["自评报告", "自评打分表"]
    assert [d.name for d in CALENDARS.get("hunan").documents] == ["自评表", "创建工作方案"]


@pytest.mark.parametrize("targets, where, what", [
    ([{"year": 2021, "share": 0.5}], "targets[0].share", "written as text"),
    ([{"year": 2021, "share": "1.5"}], "targets[0].share", "(0, 1]"),
    ([{"year": 2021, "share": "0.5", "level": "town"}], "targets[0].level", "provincial, city or county"),
    ([{"year": 2021, "share": "0.5"}, {"year": 2021, "share": "0.6"}], "targets[1]", "a second target for 2021"),
    ([{"year": 2021}], "targets[0]", "{year, share"),
], ids=["float", "above-one", "unknown-level", "twice", "no-share"])
def test_a_bad_target_schedule_is_refused(tmp_path: Path, targets: list[dict[str, Any]], where: str,
                                          what: str) -> None:
    data = _shanxi()
    data["targets"] = targets
    path, load = _load(tmp_path, data)
    with pytest.raises(InvalidInput) as info:
        load()
    [problem] = info.value.problems
    assert problem.where == f"{path}: {where}" and what in problem.what


def test_per_level_and_per_jurisdiction_targets_are_read() -> None:
    from workflow.domain.calendar import calendar_from_dict

    data = _shanxi()
    data["targets"] = [{"year": 2022, "share": "0.6"}, {"year": 2022, "share": "0.4", "level": "county"},
                       {"year": 2022, "share": "0.7", "jurisdiction": "shanxi-taiyuan"}]
    cal = calendar_from_dict(data, "t.yaml")
    assert cal.overall_target(2022) == Decimal("0.6")
    assert {(t.level, t.jurisdiction): t.share for t in cal.targets_for(2022)} == {
        (None, None): Decimal("0.6"), ("county", None): Decimal("0.4"), (None, "shanxi-taiyuan"): Decimal("0.7")}


@pytest.mark.parametrize("change, where, what", [
    ({"owed_by": "village"}, "owed_by", "must be one of"),
    ({"owed_by": "city", "owes": {"states": ["submitted"]}}, "owes", "done when recorded"),
    ({"owed_by": "bureau", "owes": None}, "owes", "names the states"),
    ({"needs": "attachment"}, "needs", "only a duty owed by a level"),
    ({"owed_by": "city", "needs": "a letter"}, "needs", "must be one of"),
    ({"owed_by": "city", "remind": ["unit"], "tiers": [7]}, "remind", "coordinators, parent"),
])
def test_a_bad_duty_is_refused(tmp_path: Path, change: dict[str, Any], where: str, what: str) -> None:
    data = _shanxi()
    milestone = _milestone(data, "self_assessment")
    milestone.update(change)
    if milestone.get("owes") is None:
        milestone.pop("owes", None)
    if milestone.get("owed_by") in ("city", "province", "bureau") and "remind" not in change:
        milestone["remind"], milestone["escalate"] = ["coordinators"], ["coordinators"]
    path, load = _load(tmp_path, data)
    with pytest.raises(InvalidInput) as info:
        load()
    assert any(p.where == f"{path}: milestones[0].{where}" and what in p.what for p in info.value.problems), \
        info.value.problems


def test_a_notice_must_extend_a_recurring_calendar(tmp_path: Path) -> None:
    base = {**_shanxi(), "id": "base", "year": 2020}
    del base["recurring"], base["targets"]
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base), encoding="utf-8")
    (tmp_path / "n.yaml").write_text(yaml.safe_dump({"id": "n", "extends": "base", "title": "t", "province": "shanxi",
                                                     "year": 2021}), encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a recurring calendar"):
        CalendarCatalog(tmp_path).get("n")
    (tmp_path / "base.yaml").unlink()
    with pytest.raises(InvalidInput, match="which no calendar file defines"):
        CalendarCatalog(tmp_path).get("n")


# ---------------------------------------------------------------- holiday data ends at some year

def test_a_year_without_official_holiday_data_is_said_out_loud() -> None:
    """The Chinese holiday data ends at some year: past it, say so loudly, and read extra holidays
    from the calendar file (they are days off even where the package knows nothing)."""
    from workflow.adapters.workdays import has_holiday_data

    last = max(y for y in range(2004, 2100) if has_holiday_data(y))
    beyond = last + 1
    new_year = date(beyond, 1, 4 if date(beyond, 1, 4).weekday() < 5 else 5)
    cal = WorkdayCalendar(extra_holidays=[new_year])
    assert cal.warnings([last]) == []
    [warning] = cal.warnings([last, beyond])
    assert f"no official holiday data for {beyond}" in warning and f"1 extra_holidays of {beyond}" in warning
    assert not cal(new_year)  # a weekday, off because the calendar file says so
    weekday = next(new_year + timedelta(days=d) for d in range(1, 8) if (new_year + timedelta(days=d)).weekday() < 5)
    assert cal(weekday) and not cal(next(new_year + timedelta(days=d) for d in range(1, 8)
                                         if (new_year + timedelta(days=d)).weekday() == 5))
