"""The rounds' contract: a round is opened once per id and per province's year, read back as it
was written (with its province's path), and answers which units are done and which failed."""
from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal

import pytest

from workflow.domain.errors import AlreadyExists, NotFound
from workflow.domain.rubric import rubric_to_data
from workflow.service.cases import register_case
from workflow.service.ports import RoundRecord, Storage

from ..support import ADMIN
from .worlds import (
    DOCUMENTS,
    NOW,
    RECTIFICATION_POLICY,
    RUBRIC,
    UNITS,
    World,
    act,
    add_round,
    certify,
    directory,
    register,
    round_record,
)

SHANGHAI = timezone(timedelta(hours=8))


def test_rounds_are_read_back_as_written(storage: Storage) -> None:
    directory(storage)
    add_round(storage, round_record("shanxi-2022", year=2022, documents=DOCUMENTS,
                                    opened_at=(NOW + timedelta(days=365)).astimezone(SHANGHAI)))
    add_round(storage, round_record())
    add_round(storage, round_record("hunan-2021", "hunan", 2021))
    assert [r.id for r in storage.rounds.rounds()] == ["hunan-2021", "shanxi-2021", "shanxi-2022"]
    record = storage.rounds.round("shanxi-2022")
    assert record == RoundRecord("shanxi-2022", "shanxi", 2022, "shanxi-2020", "shanxi-2021", Decimal("0.5"),
                                 Decimal(80), Decimal(100), RECTIFICATION_POLICY, rubric_to_data(RUBRIC), DOCUMENTS,
                                 [{"year": 2022, "share": "0.5"}], NOW + timedelta(days=365), "admin:test", "/shanxi/")
    assert record is not None and record.opened_at.utcoffset() == timedelta(0)
    assert storage.rounds.round("hunan-2021").province_path == "/hunan/"  # type: ignore[union-attr]
    assert storage.rounds.round("nowhere-2021") is None


def test_decimals_keep_their_exact_text(storage: Storage) -> None:
    directory(storage)
    add_round(storage, RoundRecord("shanxi-2021", "shanxi", 2021, "shanxi-2020", "shanxi-2021", Decimal("0.50"),
                                   Decimal("80.0"), Decimal("100"), RECTIFICATION_POLICY, rubric_to_data(RUBRIC), [],
                                   [], NOW, "admin:test"))
    record = storage.rounds.round("shanxi-2021")
    assert record is not None
    assert (str(record.target_share), str(record.pass_mark), str(record.max_total)) == ("0.50", "80.0", "100")


def test_a_round_taken_is_refused_and_the_unit_of_work_goes_on(storage: Storage) -> None:
    directory(storage)
    add_round(storage, round_record())
    with storage.unit_of_work(core=True) as uow:
        with pytest.raises(AlreadyExists, match="shanxi-2021"):
            uow.rounds.add(round_record(year=2022))  # the same id
        with pytest.raises(AlreadyExists):
            uow.rounds.add(round_record("shanxi-2021b", year=2021))  # the same province's year
        uow.rounds.add(round_record("hunan-2021", "hunan", 2021))
        uow.commit()
    assert [(r.id, r.year) for r in storage.rounds.rounds()] == [("hunan-2021", 2021), ("shanxi-2021", 2021)]


def test_lock_says_whether_the_round_exists(storage: Storage) -> None:
    directory(storage)
    add_round(storage, round_record())
    with storage.unit_of_work(core=True) as uow:
        assert uow.rounds.lock("shanxi-2021")
        assert not uow.rounds.lock("nowhere-2021")
        uow.commit()


@pytest.fixture
def history(storage: Storage) -> World:
    """shanxi-2020: 省直甲 certified, 省直乙 filed, 太原丙 not certified, 小店丁 registered; hunan-2020: 大同戊
    certified there; 长沙己 recorded as certified before the system in 2019; shanxi-2021 open."""
    world = directory(storage, {**UNITS, "长沙己": (*UNITS["长沙己"][:4], 2019)})
    for record in (round_record("shanxi-2020", year=2020), round_record("hunan-2020", "hunan", 2020),
                   round_record()):
        add_round(storage, record)
    for name in ("省直甲", "省直乙", "太原丙", "小店丁"):
        register(world, name, "shanxi-2020")
    register(world, "大同戊", "hunan-2020")
    certify(world, "省直甲", world.cases["省直甲"])
    certify(world, "省直乙", world.cases["省直乙"])
    act(world, world.cases["省直乙"], "file", {"batch": "shanxi-2020-filing-1"})
    act(world, world.cases["太原丙"], "close", {"reason": "本轮结束"})
    certify(world, "大同戊", world.cases["大同戊"])
    return world


def test_units_done_by_a_year(history: World) -> None:
    shanxi = {u.id for u in history.db.directory.units("/shanxi/")}
    assert history.db.rounds.units_done_by("shanxi", 2021) & shanxi == {history.unit("省直甲"), history.unit("省直乙")}
    assert history.db.rounds.units_done_by("shanxi", 2020) & shanxi == set()  # the 2020 round is not before 2020
    assert history.unit("长沙己") in history.db.rounds.units_done_by("hunan", 2019)
    assert history.unit("长沙己") not in history.db.rounds.units_done_by("hunan", 2018)
    assert history.db.rounds.units_done_by("hunan", 2021) & shanxi == {history.unit("大同戊")}


def test_the_units_not_certified_in_a_round(history: World) -> None:
    assert history.db.rounds.not_certified_in("shanxi-2020") == {history.unit("太原丙"): history.cases["太原丙"]}
    assert history.db.rounds.not_certified_in("hunan-2020") == {}
    assert history.db.rounds.not_certified_in("nowhere-2020") == {}


# ---------------------------------------------------------------- known bugs of the SQL adapters

def test_a_round_of_an_unknown_province_is_not_found(storage: Storage) -> None:
    directory(storage)
    with pytest.raises(NotFound, match="nowhere"), storage.unit_of_work(core=True) as uow:
        uow.rounds.add(round_record("nowhere-2021", "nowhere", 2021))


def test_a_round_rolled_back_does_not_exist(storage: Storage) -> None:
    units = directory(storage).units
    with storage.unit_of_work(core=True) as uow:
        uow.rounds.add(round_record())
        assert uow.round_context("shanxi-2021").round_id == "shanxi-2021"
    assert storage.rounds.round("shanxi-2021") is None
    with pytest.raises(NotFound, match="round"):
        register_case(storage, "shanxi-2021", units["省直甲"], ADMIN, NOW)
