"""Worlds the contract tests stand on, built the same way on every backend: through the ports
(a unit of work's stores) and the services, never with a backend's own tools (but for
``deactivate_coordinator``, which no port offers)."""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from workflow.adapters.memory import MemoryDatabase
from workflow.domain.case import CaseState
from workflow.domain.rubric import rubric_to_data
from workflow.service.cases import perform_action, register_case
from workflow.service.ports import JurisdictionRecord, NewUnit, RoundRecord, Storage

from ..support import COORDINATOR, RUBRICS, SYSTEM, ready_to_submit, sheet_for, unit_actor

NOW = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
RUBRIC = RUBRICS.get("shanxi-2020")
RECTIFICATION_POLICY = {"on_fail": "rectification", "rectification_days": 20, "carry_over": False}
DOCUMENTS = [{"id": "self_report", "name": "自评报告", "note": ""}, {"id": "score_sheet", "name": "自评打分表",
                                                                  "note": "附件3，单位盖章"}]

JURISDICTIONS = (
    JurisdictionRecord("shanxi", "山西省", "province", None, "/shanxi/"),
    JurisdictionRecord("shanxi-taiyuan", "太原市", "city", "shanxi", "/shanxi/shanxi-taiyuan/"),
    JurisdictionRecord("shanxi-taiyuan-xiaodian", "小店区", "county", "shanxi-taiyuan",
                       "/shanxi/shanxi-taiyuan/shanxi-taiyuan-xiaodian/"),
    JurisdictionRecord("shanxi-datong", "大同市", "city", "shanxi", "/shanxi/shanxi-datong/"),
    JurisdictionRecord("hunan", "湖南省", "province", None, "/hunan/"),
    JurisdictionRecord("hunan-changsha", "长沙市", "city", "hunan", "/hunan/hunan-changsha/"),
)
CONTACT = {"name": "张三", "position": "科长", "phone": "0351-1234567", "email": "zhang@example.gov.cn"}
# name → (jurisdiction, level, category, contacts, certified before the system in)
UNITS: dict[str, tuple[str, str, str, list[dict[str, str]], int | None]] = {
    "省直甲": ("shanxi", "provincial", "行政机关", [CONTACT], None),
    "省直乙": ("shanxi", "provincial", "党的机关", [], None),
    "太原丙": ("shanxi-taiyuan", "city", "行政机关", [CONTACT], None),
    "小店丁": ("shanxi-taiyuan-xiaodian", "county", "行政机关", [], None),
    "大同戊": ("shanxi-datong", "city", "人大机关", [], None),
    "长沙己": ("hunan-changsha", "city", "行政机关", [], None),
}


@dataclass
class World:
    """A storage with the jurisdictions and units above (and whatever a test adds)."""

    db: Storage
    units: dict[str, int]  # unit name → id
    cases: dict[str, int] = field(default_factory=dict)  # unit name → the case registered last for it

    def unit(self, name: str) -> int:
        return self.units[name]


def directory(db: Storage, units: Mapping[str, tuple[str, str, str, list[dict[str, str]], int | None]] = UNITS,
              now: datetime = NOW) -> World:
    """The jurisdictions and units, in one unit of work."""
    with db.unit_of_work(core=True) as uow:
        for record in JURISDICTIONS:
            uow.directory.add_jurisdiction(record)
        ids = {name: uow.directory.add_unit(NewUnit(j, name, level, category, contacts, certified,
                                                    None if certified is None else f"{certified}年名单"), now).id
               for name, (j, level, category, contacts, certified) in units.items()}
        uow.commit()
    return World(db, ids)


def round_record(round_id: str = "shanxi-2021", province: str = "shanxi", year: int = 2021, *,
                 policy: Mapping[str, Any] = RECTIFICATION_POLICY, documents: Iterable[Mapping[str, str]] = (),
                 opened_at: datetime = NOW) -> RoundRecord:
    return RoundRecord(round_id, province, year, "shanxi-2020", "shanxi-2021", Decimal("0.5"), RUBRIC.pass_mark,
                       RUBRIC.total, dict(policy), rubric_to_data(RUBRIC), [dict(d) for d in documents],
                       [{"year": year, "share": "0.5"}], opened_at, "admin:test")


def add_round(db: Storage, record: RoundRecord) -> None:
    with db.unit_of_work(core=True) as uow:
        uow.rounds.add(record)
        uow.commit()


def register(world: World, name: str, round_id: str = "shanxi-2021", now: datetime = NOW) -> int:
    """Register the unit's case in the round (the world keeps it under the unit's name)."""
    case, _ = register_case(world.db, round_id, world.unit(name), COORDINATOR, now)
    world.cases[name] = case.id
    return case.id


def act(world: World, case_id: int, action: str, data: Mapping[str, Any] | None = None, actor: Any = COORDINATOR,
        now: datetime = NOW) -> CaseState:
    return perform_action(world.db, case_id, action, dict(data or {}), actor, now).case


def certify(world: World, name: str, case_id: int, now: datetime = NOW) -> CaseState:
    """Take a registered case to certified (a complete sheet of 86.5, verified as such)."""
    ready_to_submit(world.db, case_id, world.unit(name), "86.5", now)
    act(world, case_id, "submit", actor=unit_actor(world.unit(name)), now=now)
    act(world, case_id, "verify", {"entries": sheet_for(RUBRIC, "86.5")}, now=now)
    return act(world, case_id, "certify", now=now)


def rectify(world: World, name: str, case_id: int, now: datetime = NOW) -> CaseState:
    """Take a registered case to rectification (verified at 79.5, under the pass mark)."""
    ready_to_submit(world.db, case_id, world.unit(name), "86.5", now)
    act(world, case_id, "submit", actor=unit_actor(world.unit(name)), now=now)
    act(world, case_id, "verify", {"entries": sheet_for(RUBRIC, "79.5")}, now=now)
    return act(world, case_id, "order_rectification", now=now)


def miss(world: World, case_id: int, milestone: str, owed_in: list[str], now: datetime = NOW) -> CaseState:
    """Record a missed deadline on the case (as the sweep does)."""
    return act(world, case_id, "record_missed_deadline",
               {"milestone": milestone, "due_on": "2021-05-31", "noticed_on": "2021-06-01", "owed_in": owed_in},
               actor=SYSTEM, now=now)


def rich_world(db: Storage) -> World:
    """The round shanxi-2021 with a case in every interesting shape, and a case in hunan-2021:

    - 省直甲 (shanxi): certified
    - 省直乙 (shanxi): registered, missed self_assessment (owed in registered/self_assessed): overdue;
      its contact form given
    - 太原丙 (taiyuan): in rectification
    - 小店丁 (xiaodian, a county of taiyuan): registered, missed contact_form: overdue
    - 大同戊 (datong; certified before the system in 2020): withdrawn after missing self_assessment
      (not overdue any more)
    - 省直庚 (shanxi, 检察机关): registered, missed self_assessment: overdue (no contact form)
    - 长沙己 (hunan-changsha): registered in hunan-2021
    """
    units = {**UNITS, "大同戊": (*UNITS["大同戊"][:4], 2020), "省直庚": ("shanxi", "provincial", "检察机关", [], None)}
    world = directory(db, units)
    add_round(db, round_record(documents=DOCUMENTS))
    add_round(db, round_record("hunan-2021", "hunan", 2021))
    for name in ("省直甲", "省直乙", "太原丙", "小店丁", "大同戊", "省直庚"):
        register(world, name)
    register(world, "长沙己", "hunan-2021")
    later = NOW + timedelta(days=1)
    certify(world, "省直甲", world.cases["省直甲"])
    miss(world, world.cases["省直乙"], "self_assessment", ["registered", "self_assessed"], later)
    act(world, world.cases["省直乙"], "give_contact_form", {"how": "form", "contacts": 1}, now=later)
    rectify(world, "太原丙", world.cases["太原丙"])
    miss(world, world.cases["小店丁"], "contact_form", ["contact_form"], later)
    miss(world, world.cases["大同戊"], "self_assessment", ["registered", "self_assessed"], later)
    act(world, world.cases["大同戊"], "withdraw", {"reason": "合并"}, now=later)
    miss(world, world.cases["省直庚"], "self_assessment", ["registered", "self_assessed"], later)
    return world


def deactivate_coordinator(db: Storage, coordinator_id: int) -> None:
    """No port deactivates a coordinator: done here with each backend's own means."""
    if isinstance(db, MemoryDatabase):
        state = copy.copy(db._state)
        state.coordinators = dict(state.coordinators)
        state.coordinators[coordinator_id] = replace(state.coordinators[coordinator_id], active=False)
        db._state = state
        return
    engine = db.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("UPDATE coordinators SET active = FALSE WHERE id = :id"), {"id": coordinator_id})
