"""The read side's contract: the lists and their filters, scopes, the counts behind the reports,
what a notification refers to, and the timeline; a subtree is every path under a prefix."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from workflow.domain.duties import apply_duty, record_done
from workflow.domain.lifecycle import OPEN_STATES, Owing
from workflow.service.ports import (
    AgencyGroup,
    CaseFilter,
    CaseGroup,
    CaseReferent,
    CaseScope,
    OutboxEntry,
    OwingCase,
    Storage,
    TimelineRow,
)

from ..support import CALENDARS, unit_actor
from .worlds import CONTACT, NOW, World, act, add_round, directory, miss, register, rich_world, round_record

DUE = date(2021, 6, 21)  # 太原丙's rectification: ordered on 2021-06-01, 20 days


@pytest.fixture
def world(storage: Storage) -> World:
    return rich_world(storage)


def ids(world: World, *names: str) -> list[int]:
    return [world.cases[n] for n in names]


def rows(world: World, **query: object) -> list[int]:
    return [r.id for r in world.db.read.case_rows(CaseFilter(**query))]  # type: ignore[arg-type]


def test_case_rows_filters(world: World) -> None:
    everyone = ids(world, "省直甲", "省直乙", "太原丙", "小店丁", "大同戊", "省直庚", "长沙己")
    assert rows(world) == everyone
    assert rows(world, round_id="hunan-2021") == ids(world, "长沙己")
    assert rows(world, round_id="shanxi-2021") == everyone[:-1]
    assert rows(world, round_id="") == everyone
    assert rows(world, state="registered") == ids(world, "省直乙", "小店丁", "省直庚", "长沙己")
    assert rows(world, state="filed") == []
    assert rows(world, within_path="/shanxi/shanxi-taiyuan/") == ids(world, "太原丙", "小店丁")
    assert rows(world, within_path="/shanxi/", filter_path="/shanxi/shanxi-taiyuan/shanxi-taiyuan-xiaodian/") == \
        ids(world, "小店丁")
    assert rows(world, within_path="/shanxi/shanxi-datong/", filter_path="/shanxi/shanxi-taiyuan/") == []
    assert rows(world, filter_path="/hunan/") == ids(world, "长沙己")
    assert rows(world, unit_id=world.unit("太原丙")) == ids(world, "太原丙")
    assert rows(world, overdue=True) == ids(world, "省直乙", "小店丁", "省直庚")
    assert rows(world, overdue=False) == ids(world, "省直甲", "太原丙", "大同戊", "长沙己")
    assert rows(world, category="检察机关") == ids(world, "省直庚")
    assert rows(world, category="人大机关") == ids(world, "大同戊")
    assert rows(world, level="provincial") == ids(world, "省直甲", "省直乙", "省直庚")
    assert rows(world, level="county") == ids(world, "小店丁")
    assert rows(world, round_id="shanxi-2021", level="city", state="withdrawn") == ids(world, "大同戊")
    assert rows(world, round_id="shanxi-2021", level="city", state="registered") == []


def test_case_rows_pages_by_id(world: World) -> None:
    everyone = rows(world)
    assert rows(world, limit=2) == everyone[:2]
    assert rows(world, after_id=everyone[1], limit=2) == everyone[2:4]
    assert rows(world, after_id=everyone[3], limit=100) == everyone[4:]
    assert rows(world, after_id=everyone[-1]) == []
    assert rows(world, state="registered", after_id=world.cases["省直乙"], limit=1) == ids(world, "小店丁")


def test_a_case_row_holds_the_case_and_its_unit(world: World) -> None:
    [row] = world.db.read.case_rows(CaseFilter(unit_id=world.unit("太原丙")))
    with world.db.reader() as uow:
        case = uow.get(world.cases["太原丙"])
    assert (row.id, row.round_id, row.unit_id, row.unit_name, row.jurisdiction_id, row.category, row.state) == (
        case.id, "shanxi-2021", world.unit("太原丙"), "太原丙", "shanxi-taiyuan", "行政机关", "rectification")
    assert (row.version, row.self_total, row.verified_total, row.recheck_total, row.rectification_due) == (
        case.version, Decimal("86.5"), Decimal("79.5"), None, DUE)
    assert row.updated_at == case.updated_at and row.updated_at.utcoffset() == timedelta(0)


def test_scopes_and_a_units_cases(world: World) -> None:
    read = world.db.read
    assert read.case_scope(world.cases["小店丁"]) == CaseScope(
        world.cases["小店丁"], world.unit("小店丁"), "shanxi-2021", "小店丁",
        "/shanxi/shanxi-taiyuan/shanxi-taiyuan-xiaodian/")
    assert read.case_scope(4242) is None
    earlier = world.cases["省直乙"]
    add_round(world.db, round_record("shanxi-2022", year=2022))
    later = register(world, "省直乙", "shanxi-2022")
    assert read.unit_case_ids(world.unit("省直乙")) == [earlier, later]
    assert read.unit_case_ids(4242) == []
    assert read.has_case_in("shanxi-2022", world.unit("省直乙"))
    assert not read.has_case_in("shanxi-2022", world.unit("省直甲"))
    assert read.has_case_in("hunan-2021", world.unit("长沙己"))
    assert not read.has_case_in("hunan-2021", world.unit("省直甲"))


def owing(world: World, name: str, due: date | None = None) -> OwingCase:
    unit = world.units[name]
    jurisdiction = world.db.directory.unit(unit).jurisdiction_id  # type: ignore[union-attr]
    with world.db.reader() as uow:
        state = uow.get(world.cases[name]).state
    return OwingCase(world.cases[name], unit, name, jurisdiction, state, due)


def test_owing_cases_by_states_and_contact_form(world: World) -> None:
    read = world.db.read
    assert read.owing_cases("shanxi-2021", Owing(("registered", "self_assessed"))) == [
        owing(world, n) for n in ("省直乙", "小店丁", "省直庚")]
    assert read.owing_cases("shanxi-2021", Owing(OPEN_STATES, contact_form_missing=True)) == [
        owing(world, "省直甲"), owing(world, "太原丙", DUE), owing(world, "小店丁"), owing(world, "省直庚")]
    assert read.owing_cases("shanxi-2021", Owing(OPEN_STATES, contact_form_missing=True),
                            "/shanxi/shanxi-taiyuan/") == [owing(world, "太原丙", DUE), owing(world, "小店丁")]
    assert read.owing_cases("shanxi-2021", Owing(("rectification",))) == [owing(world, "太原丙", DUE)]
    assert read.owing_cases("shanxi-2021", Owing(("submitted", "verified"))) == []
    assert read.owing_cases("hunan-2021", Owing(("registered",)), "/shanxi/") == []


def test_owing_cases_limited_and_counted(world: World) -> None:
    """The count agrees with the list (each case once over several rules); ``limit`` takes the first."""
    read = world.db.read
    by_states, contact = Owing(("registered", "self_assessed")), Owing(OPEN_STATES, contact_form_missing=True)
    assert read.owing_cases("shanxi-2021", contact, limit=2) == [owing(world, "省直甲"), owing(world, "太原丙", DUE)]
    assert read.owing_count("shanxi-2021", [by_states]) == 3
    assert read.owing_count("shanxi-2021", [contact]) == 4
    # 省直乙 owes only by state; 小店丁 and 省直庚 by both: five cases, not seven
    assert read.owing_count("shanxi-2021", [by_states, contact]) == 5
    assert read.owing_count("shanxi-2021", [contact], "/shanxi/shanxi-taiyuan/") == 2
    assert read.owing_count("shanxi-2021", [by_states], "/shanxi/shanxi-taiyuan/") == 1
    assert read.owing_count("shanxi-2021", [Owing(("rectification",))]) == 1
    assert read.owing_count("shanxi-2021", [Owing(("submitted", "verified"))]) == 0
    assert read.owing_count("hunan-2021", [by_states], "/shanxi/") == 0
    assert read.owing_count("shanxi-2021", []) == 0


def test_overdue_cases_and_rectifications(world: World) -> None:
    read = world.db.read
    assert read.overdue_cases("shanxi-2021", "self_assessment") == [owing(world, n) for n in ("省直乙", "省直庚")]
    assert read.overdue_cases("shanxi-2021", "contact_form") == [owing(world, "小店丁")]
    assert read.overdue_cases("shanxi-2021", "evaluation") == []
    assert read.overdue_cases("hunan-2021", "self_assessment") == []
    assert read.rectifications("shanxi-2021") == [owing(world, "太原丙", DUE)]
    assert read.rectifications("hunan-2021") == []


def test_overdue_cases_are_those_with_a_miss_of_that_milestone(world: World) -> None:
    assert world.db.read.overdue_cases("shanxi-2021", "registered") == []


def test_case_groups_count_by_jurisdiction_state_overdue_and_misses(world: World) -> None:
    groups = sorted(world.db.read.case_groups("shanxi-2021", "/shanxi/"), key=lambda g: (g.jurisdiction_id, g.state))
    assert groups == [
        CaseGroup("shanxi", "certified", False, (), 1),
        CaseGroup("shanxi", "registered", True, ("self_assessment",), 2),
        CaseGroup("shanxi-datong", "withdrawn", False, ("self_assessment",), 1),
        CaseGroup("shanxi-taiyuan", "rectification", False, (), 1),
        CaseGroup("shanxi-taiyuan-xiaodian", "registered", True, ("contact_form",), 1)]
    taiyuan = sorted(world.db.read.case_groups("shanxi-2021", "/shanxi/shanxi-taiyuan/"),
                     key=lambda g: g.jurisdiction_id)
    assert [(g.jurisdiction_id, g.count) for g in taiyuan] == [("shanxi-taiyuan", 1), ("shanxi-taiyuan-xiaodian", 1)]
    assert world.db.read.case_groups("hunan-2021", "/shanxi/") == []


def test_agency_groups_count_units_and_the_certified(world: World) -> None:
    def groups(year: int, root: str) -> list[AgencyGroup]:
        return sorted(world.db.read.agency_groups(year, root), key=lambda g: (g.jurisdiction_id, g.level))

    assert groups(2021, "/shanxi/") == [
        AgencyGroup("shanxi", "provincial", 3, 1),  # 省直甲 certified in the 2021 round
        AgencyGroup("shanxi-datong", "city", 1, 1),  # 大同戊 certified before the system, in 2020
        AgencyGroup("shanxi-taiyuan", "city", 1, 0),
        AgencyGroup("shanxi-taiyuan-xiaodian", "county", 1, 0)]
    assert groups(2020, "/shanxi/shanxi-datong/") == [AgencyGroup("shanxi-datong", "city", 1, 1)]
    assert groups(2020, "/shanxi/")[0] == AgencyGroup("shanxi", "provincial", 3, 0)
    assert groups(2019, "/shanxi/shanxi-datong/") == [AgencyGroup("shanxi-datong", "city", 1, 0)]
    assert groups(2021, "/hunan/") == [AgencyGroup("hunan-changsha", "city", 1, 0)]


def test_case_states_and_cases_by_id(world: World) -> None:
    read = world.db.read
    a, c = world.cases["省直甲"], world.cases["太原丙"]
    assert read.case_states([c, a, 4242]) == {
        a: CaseReferent(a, "certified", None, Decimal("86.5"), False, False, "省直甲", [CONTACT]),
        c: CaseReferent(c, "rectification", DUE, Decimal("79.5"), False, False, "太原丙", [CONTACT])}
    b = world.cases["省直乙"]
    assert read.case_states([b]) == {b: CaseReferent(b, "registered", None, None, True, True, "省直乙", [])}
    assert read.case_states([]) == {}
    assert read.cases_by_id([c, 4242, a]) == [owing(world, "省直甲"), owing(world, "太原丙", DUE)]
    assert read.cases_by_id([]) == []


def test_jurisdictions_with_cases(world: World) -> None:
    assert world.db.read.jurisdictions_with_cases("shanxi-2021") == [
        "shanxi", "shanxi-datong", "shanxi-taiyuan", "shanxi-taiyuan-xiaodian"]
    assert world.db.read.jurisdictions_with_cases("hunan-2021") == ["hunan-changsha"]
    assert world.db.read.jurisdictions_with_cases("nowhere-2021") == []


def test_a_unit_of_work_reads_its_own_writes(storage: Storage) -> None:
    world = directory(storage)
    add_round(storage, round_record())
    with storage.unit_of_work(core=True) as uow:
        case, _ = uow.create("shanxi-2021", world.unit("省直甲"), "admin:test", NOW)
        assert uow.read.has_case_in("shanxi-2021", world.unit("省直甲"))
        assert [r.id for r in uow.read.case_rows(CaseFilter())] == [case.id]
        assert uow.read.unit_case_ids(world.unit("省直甲")) == [case.id]
        assert not storage.read.has_case_in("shanxi-2021", world.unit("省直甲"))
        assert storage.read.case_rows(CaseFilter()) == []
    assert not storage.read.has_case_in("shanxi-2021", world.unit("省直甲"))


def test_the_timeline_of_cases_duties_and_mails(storage: Storage) -> None:
    world = directory(storage)
    add_round(storage, round_record())
    add_round(storage, round_record("hunan-2021", "hunan", 2021))
    hour = timedelta(hours=1)
    a = register(world, "省直甲")
    b = register(world, "省直乙")  # at the same time: in the order stored
    other = register(world, "长沙己", "hunan-2021", now=NOW + hour)
    act(world, a, "self_assess", {"entries": {"1.1.1": "9"}}, actor=unit_actor(world.unit("省直甲")), now=NOW + hour)
    miss(world, a, "self_assessment", ["registered", "self_assessed"], NOW + 2 * hour)
    duty = next(d for d in CALENDARS.get("shanxi-2021").duties() if d.id == "city_report")
    with storage.unit_of_work(core=True) as uow:
        coordinator = uow.directory.add_coordinator("shanxi", "王丽", "wang.li@example.gov.cn").id
        stream = uow.duties.stream("shanxi-2021", "shanxi-taiyuan")
        event = record_done(stream, duty, actor="coordinator:wang", now=NOW + hour / 2, due_on=date(2021, 11, 30),
                            attachments=[{"sha256": "0" * 64, "filename": "报告.pdf", "size": 10, "type": "pdf"}])
        uow.duties.append(stream, event, apply_duty(stream, event), NOW + hour / 2)
        uow.outbox.add([OutboxEntry("mail-a", "missed", "shanxi-2021", "self_assessment", date(2021, 5, 31), a),
                        OutboxEntry("mail-c", "digest", "shanxi-2021", "self_assessment", date(2021, 5, 31),
                                    coordinator_id=coordinator),
                        OutboxEntry("mail-pending", "missed", "shanxi-2021", "self_assessment", date(2021, 5, 31), a),
                        OutboxEntry("mail-hunan", "missed", "hunan-2021", "self_assessment", date(2021, 5, 31),
                                    other)], NOW)
        held = {r.dedupe_key: r for r in uow.outbox.claim(NOW, NOW + hour, 10)}
        for key, at, to in (("mail-a", NOW + 2 * hour, '["a@example.gov.cn", "b@example.gov.cn"]'),
                            ("mail-c", NOW + 3 * hour, '["wang.li@example.gov.cn"]'),
                            ("mail-hunan", NOW + hour, '["c@example.gov.cn"]')):
            assert uow.outbox.settle(held[key].id, held[key].claimed_until,
                                     {"status": "sent", "sent_at": at, "recipients": to, "claimed_until": None})
        uow.commit()
    assert storage.read.timeline(["shanxi-2021"]) == [
        TimelineRow(NOW, f"#{a} 省直甲", "CaseRegistered", ""),
        TimelineRow(NOW, f"#{b} 省直乙", "CaseRegistered", ""),
        TimelineRow(NOW + hour / 2, "太原市", "DutyDone (city_report)", ""),
        TimelineRow(NOW + hour, f"#{a} 省直甲", "SelfAssessmentRecorded (9)", ""),
        TimelineRow(NOW + 2 * hour, f"#{a} 省直甲", "DeadlineMissed (self_assessment)", ""),
        TimelineRow(NOW + 2 * hour, f"#{a} 省直甲", "", "missed self_assessment → a@example.gov.cn, b@example.gov.cn"),
        TimelineRow(NOW + 3 * hour, "coordinator", "", "digest self_assessment → wang.li@example.gov.cn")]
    assert storage.read.timeline(["hunan-2021"]) == [
        TimelineRow(NOW + hour, f"#{other} 长沙己", "CaseRegistered", ""),
        TimelineRow(NOW + hour, f"#{other} 长沙己", "", "missed self_assessment → c@example.gov.cn")]
    assert storage.read.timeline([]) == []
