"""All or nothing: everything a unit of work writes, through every store, is committed together
or not at all; until it commits no one else sees it, and it sees its own writes."""
from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from workflow.domain.case import Notice
from workflow.domain.duties import DutyStream, apply_duty, record_done
from workflow.domain.errors import AlreadyExists, ConflictError
from workflow.service.audit import verify
from workflow.service.cases import perform_action, take
from workflow.service.ports import (
    CaseStore,
    FilingRecord,
    JurisdictionRecord,
    NewUnit,
    OutboxEntry,
    SpotCheckRecord,
    Storage,
)

from ..support import CALENDARS, unit_actor
from .worlds import NOW, World, add_round, directory, register, round_record

LATER = NOW + timedelta(days=1)
CITY_REPORT = next(d for d in CALENDARS.get("shanxi-2021").duties() if d.id == "city_report")
STORES = ("directory", "tokens", "rounds", "outbox", "oversight", "duties", "simulations", "read")


@pytest.fixture
def world(storage: Storage) -> World:
    """shanxi-2021 with two registered cases, a coordinator, a token, a pending outbox row, a
    simulation run started."""
    world = directory(storage)
    add_round(storage, round_record())
    register(world, "省直甲")
    register(world, "省直乙")
    with storage.unit_of_work(core=True) as uow:
        uow.directory.add_coordinator("shanxi", "王丽", "wang@example.gov.cn")
        uow.tokens.add(name="管理员", role="admin", unit_id=None, jurisdiction_id=None, token_hash="h-1",
                       created_at=NOW, created_by="admin:test", expires_at=None)
        uow.outbox.add([OutboxEntry("k0", "missed", "shanxi-2021", "self_assessment", date(2021, 5, 31))], NOW)
        uow.simulations.start("d1", "a.yaml")
        uow.commit()
    return world


def everything(db: Storage) -> dict[str, Any]:
    """Whatever the stores of the database show."""
    with db.reader() as uow:
        keys = {k: uow.recall(k) for k in ("key-1", "step-1:refused")}
    return {
        "jurisdictions": db.directory.jurisdictions(), "units": db.directory.units(),
        "coordinators": db.directory.coordinators(), "tokens": db.tokens.all(), "rounds": db.rounds.rounds(),
        "cases": list(db.all_cases()), "events": list(db.all_events()), "outbox": db.outbox.rows(),
        "marked": db.outbox.marked("shanxi-2021", "self_assessment", "tier:1"),
        "spot_checks": db.oversight.spot_checks("shanxi-2021"), "filings": db.oversight.filings("shanxi-2021"),
        "streams": list(db.all_duty_streams()), "duty_events": list(db.all_duty_events()),
        "simulations": (db.simulations.progress("d1"), db.simulations.progress("d2")),
        "refusal": db.simulations.refusal("step-1"), "keys": keys,
    }


def write_everywhere(uow: CaseStore, world: World) -> None:
    """A write through every store of the unit of work, each seen by the unit of work itself."""
    d = uow.directory
    d.add_jurisdiction(JurisdictionRecord("shanxi-jinzhong", "晋中市", "city", "shanxi", "/shanxi/shanxi-jinzhong/"))
    d.rename_jurisdiction("shanxi", "山西")
    unit = d.add_unit(NewUnit("shanxi-jinzhong", "晋中单位", "city", "行政机关", [], None, None), LATER)
    before = d.unit(world.unit("省直乙"))
    assert before is not None
    d.save_unit(replace(before, category="人民团体", updated_at=LATER))
    d.add_coordinator("shanxi-jinzhong", "赵", "zhao@example.gov.cn")
    uow.tokens.add(name="晋中", role="coordinator", unit_id=None, jurisdiction_id="shanxi-jinzhong",
                   token_hash="h-2", created_at=LATER, created_by="admin:test", expires_at=None)
    assert uow.tokens.revoke(uow.tokens.all()[0].id, LATER, "admin:x")
    uow.rounds.add(round_record("shanxi-2022", year=2022))
    case, _ = uow.create("shanxi-2021", unit.id, "admin:test", LATER)
    a = uow.get(world.cases["省直甲"])
    after, _ = take(uow, a, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(a.unit_id), LATER)
    uow.notify(after, Notice("rectification_notice", "notice-1", "rectification", date(2021, 6, 21)), LATER)
    assert uow.outbox.add([OutboxEntry("k1", "missed", "shanxi-2021", "self_assessment", date(2021, 5, 31),
                                       case.id)], LATER) == 1
    uow.outbox.mark("shanxi-2021", "self_assessment", "tier:1", LATER)
    assert len(uow.outbox.claim(LATER, LATER + timedelta(minutes=5), 10)) == 3
    uow.oversight.add_spot_check(SpotCheckRecord("shanxi-2021-spot-1", "shanxi-2021", "shanxi", 7, Decimal("0.2"),
                                                 [a.id], [a.id], LATER, "coordinator:wang"))
    uow.oversight.add_filing(FilingRecord("shanxi-2021-filing-1", "shanxi-2021", "shanxi", [], {"cases": 0}, LATER,
                                          "coordinator:wang"))
    stream = DutyStream("shanxi-2021", "shanxi-jinzhong")
    event = record_done(stream, CITY_REPORT, actor="coordinator:zhao", now=LATER, due_on=date(2021, 11, 30),
                        attachments=[{"sha256": "0" * 64, "filename": "r.pdf", "size": 1, "type": "pdf"}])
    uow.duties.append(stream, event, apply_duty(stream, event), LATER)
    uow.simulations.start("d2", "b.yaml")
    uow.simulations.finish_day("d1", date(2021, 6, 1))
    uow.simulations.remember_refusal("step-1", "refused", LATER)
    uow.remember("key-1", "self_assess", LATER, fingerprint="f", case_id=a.id, seq=after.version)
    # the unit of work reads its own writes
    assert uow.directory.jurisdiction("shanxi") == JurisdictionRecord("shanxi", "山西", "province", None, "/shanxi/")
    assert uow.directory.unit(world.unit("省直乙")).category == "人民团体"  # type: ignore[union-attr]
    assert uow.tokens.by_hash("h-2") is not None and uow.tokens.all()[0].revoked_at == LATER
    assert uow.rounds.round("shanxi-2022") is not None
    assert uow.read.has_case_in("shanxi-2021", unit.id) and uow.get(a.id).version == 2
    assert uow.outbox.count_by_status() == {"sending": 3}
    assert uow.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
    assert uow.oversight.count_spot_checks("shanxi-2021") == uow.oversight.count_filings("shanxi-2021") == 1
    assert uow.duties.stream("shanxi-2021", "shanxi-jinzhong").version == 1
    assert uow.simulations.progress("d1") == (True, date(2021, 6, 1))
    assert uow.simulations.refusal("step-1") == "refused"
    assert uow.recall("key-1") is not None


def test_a_unit_of_work_that_fails_writes_nothing_anywhere(world: World) -> None:
    before = everything(world.db)
    with pytest.raises(RuntimeError, match="crash"), world.db.unit_of_work(core=True) as uow:
        write_everywhere(uow, world)
        raise RuntimeError("crash before the commit")
    assert everything(world.db) == before


def test_a_unit_of_work_left_without_a_commit_writes_nothing_anywhere(world: World) -> None:
    before = everything(world.db)
    with world.db.unit_of_work(core=True) as uow:
        write_everywhere(uow, world)
        assert everything(world.db) == before  # no one else sees it meanwhile
    assert everything(world.db) == before


def test_a_unit_of_work_that_commits_writes_everything_at_once(world: World) -> None:
    before = everything(world.db)
    with world.db.unit_of_work(core=True) as uow:
        write_everywhere(uow, world)
        assert everything(world.db) == before
        uow.commit()
    after = everything(world.db)
    assert [what for what in before if before[what] == after[what]] == []
    assert world.db.directory.jurisdiction("shanxi").name == "山西"  # type: ignore[union-attr]
    assert world.db.simulations.refusal("step-1") == "refused"


def test_a_unit_of_work_without_core_has_no_other_stores(storage: Storage) -> None:
    with storage.unit_of_work() as uow:
        for name in STORES:
            with pytest.raises(RuntimeError, match="core=True"):
                getattr(uow, name)


def test_writers_in_threads_all_commit(world: World) -> None:
    db = world.db
    names = ("太原丙", "小店丁", "大同戊", "长沙己")
    add_round(db, round_record("hunan-2021", "hunan", 2021))
    cases = {name: register(world, name, "hunan-2021" if name == "长沙己" else "shanxi-2021") for name in names}
    start = threading.Barrier(len(names))
    failures: list[BaseException] = []

    def unit(name: str) -> None:
        try:
            start.wait()
            for i in range(10):
                perform_action(db, cases[name], "self_assess", {"entries": {"1.1.1": str(i)}},
                               unit_actor(world.unit(name)), NOW + timedelta(minutes=i))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=unit, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with db.reader() as uow:
        assert [uow.get(cases[n]).version for n in names] == [11] * len(names)
        assert [uow.get(cases[n]).self_entries for n in names] == [{"1.1.1": "9"}] * len(names)
    report = verify(db)
    assert report.ok and report.events == 2 + 11 * len(names)


@pytest.mark.parametrize("refused", ["jurisdiction", "round", "case", "stale case", "key", "duty"])
def test_a_refused_write_leaves_the_unit_of_work_usable(world: World, refused: str) -> None:
    with world.db.unit_of_work(core=True) as uow:
        uow.remember("key-1", "submit", NOW, fingerprint="f")
        stream = DutyStream("shanxi-2021", "shanxi-taiyuan")
        event = record_done(stream, CITY_REPORT, actor="coordinator:wang", now=NOW, due_on=date(2021, 11, 30),
                            attachments=[{"sha256": "0" * 64, "filename": "r.pdf", "size": 1, "type": "pdf"}])
        uow.duties.append(stream, event, apply_duty(stream, event), NOW)
        with pytest.raises((AlreadyExists, ConflictError)):
            if refused == "jurisdiction":
                uow.directory.add_jurisdiction(JurisdictionRecord("shanxi", "山西省", "province", None, "/x/"))
            elif refused == "round":
                uow.rounds.add(round_record())
            elif refused == "case":
                uow.create("shanxi-2021", world.unit("省直甲"), "admin:test", NOW)
            elif refused == "stale case":
                case = uow.get(world.cases["省直甲"])
                take(uow, case, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(case.unit_id), NOW)
                take(uow, case, "self_assess", {"entries": {"1.1.1": "8"}}, unit_actor(case.unit_id), NOW)
            elif refused == "key":
                uow.remember("key-1", "submit", NOW, fingerprint="f")
            else:
                uow.duties.append(stream, event, apply_duty(stream, event), NOW)
        uow.outbox.mark("shanxi-2021", "self_assessment", "tier:1", NOW)
        uow.commit()
    assert world.db.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
    assert world.db.duties.stream("shanxi-2021", "shanxi-taiyuan").version == 1


# ---------------------------------------------------------------- known bugs of the SQL adapters

def test_a_write_outside_a_unit_of_work_is_refused(world: World) -> None:
    with pytest.raises(RuntimeError, match="unit of work"):
        world.db.outbox.mark("shanxi-2021", "self_assessment", "tier:1", NOW)
    assert not world.db.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
