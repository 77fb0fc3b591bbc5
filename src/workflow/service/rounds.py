"""Opening a round: the round and a case for every in-scope unit, in one transaction."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..domain.calendar import Calendar
from ..domain.case import Actor, CaseState
from ..domain.dates import require_aware
from ..domain.errors import ActionRefused, AlreadyExists, InvalidInput, NotFound, Problem, ProblemList, zh_of
from ..domain.rubric import Rubric, rubric_to_data
from ..domain.units import JURISDICTION_LEVEL_NAMES
from .ports import Calendars, Catalog, RoundRecord, Storage


@dataclass(frozen=True, slots=True)
class OpenedRound:
    round_id: str
    registered: int
    carried_over: int
    already_certified: int
    calendar_id: str = ""
    target_share: Decimal | None = None
    warnings: tuple[str, ...] = ()  # e.g. a year without official holiday data


def _share(value: Any, problems: ProblemList) -> Decimal | None:
    if value is None:
        return None
    try:
        share = Decimal(str(value))
    except InvalidOperation:
        share = None
    if isinstance(value, float) or share is None or not share.is_finite() or not Decimal(0) < share <= Decimal(1):
        problems.add("target_share", f"must be a decimal share in (0, 1], e.g. 0.5; got {value!r}",
                     f"须为大于0且不超过1的小数比例（如 0.5），填写的是 {value!r}")
        return None
    return share


def open_round(db: Storage, rubrics: Catalog, calendars: Calendars, *, province_id: str, year: int,
               rubric_id: str, calendar_id: str | None, target_share: Any, actor: Actor, now: datetime) -> OpenedRound:
    """Open ``province_id``'s round of ``year``. Without a calendar it takes the one that
    serves the year (that year's notice, else the province's recurring calendar); without a
    target share it takes the calendar's schedule for the year, and says so if there is none."""
    require_aware(now, "now")
    problems = ProblemList()
    share = _share(target_share, problems)
    if not 2000 <= year <= 2100:
        problems.add("year", f"must be from 2000 to 2100, got {year}", f"须为2000至2100年，填写的是{year}")
    rubric = calendar = None
    try:
        rubric = rubrics.get(rubric_id)
    except Exception as exc:  # NotFound or a bad file: reported with the rest
        problems.add("rubric", str(exc), zh_of(exc) or f"评价标准 {rubric_id!r} 无法使用：{exc}")
    try:
        calendar = calendars.get(calendar_id) if calendar_id else calendars.for_year(province_id, year)
    except Exception as exc:
        problems.add("calendar", str(exc), zh_of(exc) or f"工作日程无法使用：{exc}")
    if isinstance(calendar, Calendar) and target_share is None:
        share = calendar.overall_target(year)
        if share is None:
            problems.add("target_share", *_no_target(calendar, year))
    round_id = f"{province_id}-{year}"
    if len(round_id) > 64:
        problems.add("province", f"the round id {round_id!r} would be longer than 64 characters",
                     f"轮次编号 {round_id!r} 将超过64个字符")
    opened = _open(db, problems=problems, round_id=round_id, province_id=province_id, year=year,
                   rubric=rubric, calendar=calendar, share=share, actor=actor, now=now)
    assert isinstance(calendar, Calendar)
    warnings = calendars.workdays(calendar).warnings(m.due_on(year).year for m in calendar.milestones)
    return OpenedRound(round_id, *opened, calendar.id, share, tuple(warnings))


def _no_target(calendar: Calendar, year: int) -> tuple[str, str]:
    """Why a round of ``year`` has no target by default, and what to give: the years the
    calendar's documents do set one for (Shanxi's set 50% for 2021 and nothing after it)."""
    known = sorted({t.year for t in calendar.targets if t.level is None and t.jurisdiction is None})
    source = f" ({calendar.source})" if calendar.source else ""
    last = calendar.overall_target(known[-1]) if known else None
    if last is None:
        said, said_zh = f"its documents{source} set no target", "其依据的文件未规定任何年度目标"
        example = "0.5"
    else:
        percent = format((last * 100).normalize(), "f")
        said = (f"its documents{source} set one only for {', '.join(map(str, known))} "
                f"({percent}% by the end of {known[-1]})")
        said_zh = f"其依据的文件只规定了{'、'.join(map(str, known))}年的目标（{known[-1]}年底{percent}%）"
        example = format(last, "f")
    return (f"calendar {calendar.id} sets no target for {year}: {said}; give the round's target share, e.g. "
            f"{example} (--target {example} on the command line, target_share in the API)",
            f"日历 {calendar.id} 未规定{year}年的目标：{said_zh}；请填写本轮目标占比，如 {example}"
            f"（命令行 --target {example}，接口 target_share）")


def _open(db: Storage, *, problems: ProblemList, round_id: str, province_id: str, year: int, rubric: Any,
          calendar: Any, share: Decimal | None, actor: Actor, now: datetime) -> tuple[int, int, int]:
    """The checks that need the database, then the round and its cases, in one transaction:
    (registered, carried over, already certified)."""
    with db.unit_of_work(core=True) as uow:
        province = uow.directory.jurisdiction(province_id)
        if province is None:
            problems.add("province", f"unknown jurisdiction {province_id!r}", f"地区 {province_id!r} 不存在")
        elif province.level != "province":
            problems.add("province", f"{province_id} is a {province.level}, not a province",
                         f"{province_id} 是{JURISDICTION_LEVEL_NAMES.get(province.level, province.level)}级地区"
                         f"（{province.level}），不是省")
        if isinstance(calendar, Calendar):
            if calendar.province != province_id:
                problems.add("calendar", f"{calendar.id} is the calendar of {calendar.province}, not {province_id}",
                             f"{calendar.id} 是 {calendar.province} 的工作日程，不是 {province_id} 的")
            if not calendar.serves(year):
                problems.add("calendar", f"{calendar.id} serves {calendar.year}, not {year}",
                             f"{calendar.id} 适用于{calendar.year}年度，不适用于{year}年度")
        if isinstance(rubric, Rubric) and rubric.province != province_id:
            problems.add("rubric", f"{rubric.id} is the rubric of {rubric.province}, not {province_id}",
                         f"{rubric.id} 是 {rubric.province} 的评价标准，不是 {province_id} 的")
        problems.raise_if_any(f"cannot open round {round_id}", f"无法开启轮次 {round_id}")
        assert isinstance(rubric, Rubric) and isinstance(calendar, Calendar) and share is not None
        assert province is not None
        if uow.rounds.round(round_id) is not None:
            raise AlreadyExists(f"round {round_id} is already open", f"轮次 {round_id} 已开启", round_id=round_id)
        policy = calendar.policy
        uow.rounds.add(RoundRecord(
            round_id, province_id, year, rubric.id, calendar.id, share, rubric.pass_mark, rubric.total,
            policy.to_data(), rubric_to_data(rubric), [d.to_data() for d in calendar.documents],
            [t.to_data() for t in calendar.targets_for(year)], now, str(actor)))
        done = uow.rounds.units_done_by(province_id, year)
        carried = uow.rounds.not_certified_in(f"{province_id}-{year - 1}") if policy.carry_over else {}
        units = uow.directory.unit_ids(province.path)
        # a case for each unit not certified yet, registered as ``create`` does, a batch at a time
        registered = len(uow.create_many(round_id, [(unit_id, carried.get(unit_id)) for unit_id in units
                                                     if unit_id not in done], str(actor), now))
        uow.operator.append("rounds", "RoundOpened", str(actor), now, {
            "round": round_id, "province": province_id, "year": year, "rubric": rubric.id, "calendar": calendar.id,
            "target_share": share, "registered": registered})
        uow.commit()
    return registered, sum(1 for u in units if u in carried), len(done & set(units))


def roll_over(db: Storage, rubrics: Catalog, calendars: Calendars, round_id: str, *, rubric_id: str | None = None,
              calendar_id: str | None = None, target_share: Any = None, actor: Actor, now: datetime) -> OpenedRound:
    """Open next year's round of ``round_id``'s province: the same rubric unless given; the
    calendar that serves next year (its notice, else the recurring calendar) unless given;
    the target from that calendar's schedule unless given."""
    row = db.rounds.round(round_id)
    if row is None:
        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
    return open_round(db, rubrics, calendars, province_id=row.province_id, year=row.year + 1,
                      rubric_id=rubric_id or row.rubric_id, calendar_id=calendar_id, target_share=target_share,
                      actor=actor, now=now)


def register_unit(db: Storage, round_id: str, unit_id: int, *, actor: Actor, now: datetime,
                  within_path: str | None = None) -> CaseState:
    """Register a unit in a round already open — a unit added to the roster after the round
    opened (the rule of ``open_round``: a unit of the province, not certified in an earlier
    round or before the system, one case per round; carried over when the province carries
    failed units into the next round). Deadlines already past when it is registered are not
    recorded as missed against it (the sweep records each miss once, on the day after the due
    date); what it still owes shows in ``cases due``. ``within_path``: the caller's subtree."""
    require_aware(now, "now")
    with db.unit_of_work(core=True) as uow:
        rnd = uow.rounds.round(round_id)
        if rnd is None:
            raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
        unit = uow.directory.unit(unit_id)
        province = uow.directory.jurisdiction(rnd.province_id)
        if unit is None or (within_path is not None and not unit.path.startswith(within_path)):
            raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在", unit_id=unit_id)
        if province is None or not unit.path.startswith(province.path):
            raise InvalidInput(f"unit {unit_id} is not a unit of {rnd.province_id}",
                               [Problem("unit_id", f"{unit.name} belongs to {unit.jurisdiction_id}, outside the "
                                                   f"province of round {round_id}",
                                        f"{unit.name}属于 {unit.jurisdiction_id}，不在轮次 {round_id} 所在省份")],
                               f"单位 {unit_id} 不是 {rnd.province_id} 的单位")
        if unit_id in uow.rounds.units_done_by(rnd.province_id, rnd.year):
            raise ActionRefused(f"unit {unit_id} ({unit.name}) is already certified (in an earlier round or before "
                                "the system): it is not registered again",
                                f"单位 {unit_id}（{unit.name}）已获认定（在以往轮次或本系统启用前），不再登记",
                                unit_id=unit_id)
        carried = uow.rounds.not_certified_in(f"{rnd.province_id}-{rnd.year - 1}") \
            if (rnd.policy or {}).get("carry_over") else {}
        case, _ = uow.create(round_id, unit_id, str(actor), now, carried.get(unit_id))
        uow.operator.append("rounds", "UnitRegistered", str(actor), now,
                            {"round": round_id, "unit": unit_id, "case": case.id})
        uow.commit()
    return case
