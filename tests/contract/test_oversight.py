"""The oversight store's contract: the cases a draw or a batch is made from, and spot checks and
filing batches read back as written, by subtree, in time order."""
from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal

import pytest

from workflow.domain.errors import AlreadyExists
from workflow.domain.lifecycle import CERTIFIED_STATES
from workflow.service.oversight import file_round, get_filing, list_filings, list_spot_checks, spot_check
from workflow.service.ports import FilingRecord, SpotCheckRecord, Storage

from ..support import COORDINATOR
from .worlds import NOW, World, rich_world

SHANGHAI = timezone(timedelta(hours=8))
HOUR = timedelta(hours=1)


@pytest.fixture
def world(storage: Storage) -> World:
    return rich_world(storage)


def spot(record_id: str, jurisdiction: str, at_hours: float, round_id: str = "shanxi-2021") -> SpotCheckRecord:
    return SpotCheckRecord(record_id, round_id, jurisdiction, 7, Decimal("0.20"), [3, 1, 2], [1],
                           (NOW + at_hours * HOUR).astimezone(SHANGHAI), "coordinator:wang")


def filing(record_id: str, jurisdiction: str, at_hours: float, round_id: str = "shanxi-2021") -> FilingRecord:
    return FilingRecord(record_id, round_id, jurisdiction,
                        [{"case_id": 1, "unit_id": 1, "unit_name": "省直甲", "score": "86.5", "rechecked": False}],
                        {"cases": 1, "after_recheck": 0, "filed_on": "2021-06-01"},
                        (NOW + at_hours * HOUR).astimezone(SHANGHAI), "coordinator:wang")


def test_the_cases_of_a_subtree_in_states(world: World) -> None:
    o, c = world.db.oversight, world.cases
    assert o.cases_in("shanxi-2021", "/shanxi/", CERTIFIED_STATES) == [c["省直甲"]]
    assert o.cases_in("shanxi-2021", "/shanxi/", ("registered",)) == [c["省直乙"], c["小店丁"], c["省直庚"]]
    assert o.cases_in("shanxi-2021", "/shanxi/shanxi-taiyuan/", ("registered", "rectification")) == [
        c["太原丙"], c["小店丁"]]
    assert o.cases_in("hunan-2021", "/shanxi/", ("registered",)) == []
    assert o.unit_names([c["太原丙"], c["省直甲"], 4242]) == {c["太原丙"]: "太原丙", c["省直甲"]: "省直甲"}
    assert o.unit_names([]) == {}


def test_spot_checks_by_subtree_in_time_order(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        uow.oversight.add_spot_check(spot("shanxi-2021-spot-1", "shanxi", 2))
        uow.oversight.add_spot_check(spot("shanxi-2021-spot-2", "shanxi-taiyuan", 1))
        uow.oversight.add_spot_check(spot("shanxi-2021-spot-3", "shanxi-datong", 1))
        uow.oversight.add_spot_check(spot("hunan-2021-spot-1", "hunan", 0, "hunan-2021"))
        assert uow.oversight.count_spot_checks("shanxi-2021") == 3
        assert world.db.oversight.count_spot_checks("shanxi-2021") == 0
        uow.commit()
    o = world.db.oversight
    assert [s.id for s in o.spot_checks("shanxi-2021")] == ["shanxi-2021-spot-2", "shanxi-2021-spot-3",
                                                            "shanxi-2021-spot-1"]
    assert [s.id for s in o.spot_checks("shanxi-2021", "/shanxi/shanxi-taiyuan/")] == ["shanxi-2021-spot-2"]
    assert o.spot_checks("shanxi-2021", "/hunan/") == []
    assert (o.count_spot_checks("shanxi-2021"), o.count_spot_checks("hunan-2021"), o.count_spot_checks("x")) == (
        3, 1, 0)
    first = o.spot_checks("shanxi-2021", "/shanxi/shanxi-taiyuan/")[0]
    assert first == SpotCheckRecord("shanxi-2021-spot-2", "shanxi-2021", "shanxi-taiyuan", 7, Decimal("0.20"),
                                    [3, 1, 2], [1], NOW + HOUR, "coordinator:wang", "/shanxi/shanxi-taiyuan/")
    assert first.drawn_at.utcoffset() == timedelta(0)


def test_filing_batches_by_subtree_in_time_order(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        uow.oversight.add_filing(filing("shanxi-2021-filing-1", "shanxi", 3))
        uow.oversight.add_filing(filing("shanxi-2021-filing-2", "shanxi-taiyuan", 3))
        uow.oversight.add_filing(filing("hunan-2021-filing-1", "hunan", 0, "hunan-2021"))
        assert uow.oversight.filing("shanxi-2021-filing-1") is not None
        assert world.db.oversight.filing("shanxi-2021-filing-1") is None
        uow.commit()
    o = world.db.oversight
    assert o.filing("shanxi-2021-filing-2") == FilingRecord(
        "shanxi-2021-filing-2", "shanxi-2021", "shanxi-taiyuan",
        [{"case_id": 1, "unit_id": 1, "unit_name": "省直甲", "score": "86.5", "rechecked": False}],
        {"cases": 1, "after_recheck": 0, "filed_on": "2021-06-01"}, NOW + 3 * HOUR, "coordinator:wang",
        "/shanxi/shanxi-taiyuan/")
    assert o.filing("nowhere") is None
    assert [f.id for f in o.filings("shanxi-2021")] == ["shanxi-2021-filing-1", "shanxi-2021-filing-2"]  # by id
    assert [f.id for f in o.filings("shanxi-2021", "/shanxi/shanxi-taiyuan/")] == ["shanxi-2021-filing-2"]
    assert (o.count_filings("shanxi-2021"), o.count_filings("hunan-2021")) == (2, 1)


def test_a_draw_and_a_batch_through_the_services(world: World) -> None:
    db, a = world.db, world.cases["省直甲"]
    drawn = spot_check(db, "shanxi-2021", "shanxi", share="0.5", seed=7, actor=COORDINATOR, now=NOW + HOUR,
                       idempotency_key="draw-1")
    assert (drawn.id, drawn.population, drawn.drawn, drawn.path) == ("shanxi-2021-spot-1", [a], [a], "/shanxi/")
    again = spot_check(db, "shanxi-2021", "shanxi", share="0.5", seed=7, actor=COORDINATOR, now=NOW + 2 * HOUR,
                       idempotency_key="draw-1")
    assert again == drawn
    assert list_spot_checks(db, "shanxi-2021") == [drawn]
    batch = file_round(db, "shanxi-2021", "shanxi", actor=COORDINATOR, now=NOW + 2 * HOUR, idempotency_key="file-1")
    assert (batch.id, [c["case_id"] for c in batch.cases], batch.totals["cases"]) == ("shanxi-2021-filing-1", [a], 1)
    assert file_round(db, "shanxi-2021", "shanxi", actor=COORDINATOR, now=NOW + 3 * HOUR,
                      idempotency_key="file-1") == batch
    assert get_filing(db, batch.id) == batch and list_filings(db, "shanxi-2021", "/shanxi/") == [batch]
    with db.reader() as uow:
        assert uow.get(a).state == "filed"
        assert [e.type for e in uow.events(a)][-2:] == ["SpotCheckDrawn", "CaseFiled"]


# ---------------------------------------------------------------- known bugs of the SQL adapters

@pytest.mark.parametrize("what", ["spot_check", "filing"])
def test_an_id_taken_is_refused_as_already_existing(world: World, what: str) -> None:
    with world.db.unit_of_work(core=True) as uow:
        if what == "spot_check":
            uow.oversight.add_spot_check(spot("shanxi-2021-x-1", "shanxi", 1))
            with pytest.raises(AlreadyExists):
                uow.oversight.add_spot_check(spot("shanxi-2021-x-1", "shanxi-taiyuan", 2))
        else:
            uow.oversight.add_filing(filing("shanxi-2021-x-1", "shanxi", 1))
            with pytest.raises(AlreadyExists):
                uow.oversight.add_filing(filing("shanxi-2021-x-1", "shanxi-taiyuan", 2))
