"""The directory's contract (jurisdictions, units, coordinators) and the tokens': records in
their order, subtrees by path prefix, a unique key taken refused with AlreadyExists."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone

import pytest

from workflow.domain.errors import AlreadyExists, NotFound
from workflow.service.ports import CoordinatorRecord, JurisdictionRecord, NewUnit, Storage, TokenRecord

from .worlds import CONTACT, JURISDICTIONS, NOW, World, deactivate_coordinator, directory

SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def world(storage: Storage) -> World:
    return directory(storage)


def ids_of(records: list[JurisdictionRecord]) -> list[str]:
    return [j.id for j in records]


# ---------------------------------------------------------------- jurisdictions

def test_jurisdictions_in_path_order_and_by_subtree(world: World) -> None:
    county = JurisdictionRecord("a-xian", "某县", "county", "shanxi-datong", "/shanxi/shanxi-datong/a-xian/")
    with world.db.unit_of_work(core=True) as uow:
        uow.directory.add_jurisdiction(county)
        uow.commit()
    d = world.db.directory
    assert d.jurisdictions() == sorted((*JURISDICTIONS, county), key=lambda j: j.path)
    assert ids_of(d.jurisdictions("/shanxi/")) == ["shanxi", "shanxi-datong", "a-xian", "shanxi-taiyuan",
                                                   "shanxi-taiyuan-xiaodian"]
    assert ids_of(d.jurisdictions("/shanxi/shanxi-taiyuan/")) == ["shanxi-taiyuan", "shanxi-taiyuan-xiaodian"]
    assert d.jurisdictions("/nowhere/") == []
    assert d.jurisdiction("shanxi-taiyuan") == JURISDICTIONS[1]
    assert d.jurisdiction("nowhere") is None


def test_a_subtree_is_a_plain_prefix(storage: Storage) -> None:
    """``_`` and ``%`` in a path are characters, not wildcards."""
    with storage.unit_of_work(core=True) as uow:
        for record in (JurisdictionRecord("a_b", "甲", "province", None, "/a_b/"),
                       JurisdictionRecord("axb", "乙", "province", None, "/axb/"),
                       JurisdictionRecord("a%", "丙", "province", None, "/a%/"),
                       JurisdictionRecord("az", "丁", "province", None, "/az/")):
            uow.directory.add_jurisdiction(record)
        uow.directory.add_unit(NewUnit("axb", "单位", "provincial", "行政机关", [], None, None), NOW)
        uow.commit()
    assert ids_of(storage.directory.jurisdictions("/a_b/")) == ["a_b"]
    assert ids_of(storage.directory.jurisdictions("/a%/")) == ["a%"]
    assert storage.directory.units("/a_b/") == []
    assert ids_of(storage.directory.jurisdictions("/a")) == ["a%", "a_b", "axb", "az"]


def test_a_jurisdiction_taken_is_refused(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        with pytest.raises(AlreadyExists, match="shanxi"):
            uow.directory.add_jurisdiction(JurisdictionRecord("shanxi", "又一个山西", "province", None, "/shanxi2/"))
        with pytest.raises(AlreadyExists):
            uow.directory.add_jurisdiction(JurisdictionRecord("shanxi2", "路径重复", "province", None, "/shanxi/"))
        uow.directory.add_jurisdiction(JurisdictionRecord("shanxi-jinzhong", "晋中市", "city", "shanxi",
                                                          "/shanxi/shanxi-jinzhong/"))
        uow.commit()
    assert world.db.directory.jurisdiction("shanxi") == JURISDICTIONS[0]
    assert world.db.directory.jurisdiction("shanxi2") is None
    assert world.db.directory.jurisdiction("shanxi-jinzhong") is not None


def test_rename_a_jurisdiction(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        uow.directory.add_coordinator("shanxi-taiyuan", "王丽", "wang@example.gov.cn")
        uow.directory.rename_jurisdiction("shanxi-taiyuan", "太原市（新）")
        uow.directory.rename_jurisdiction("nowhere", "无")
        assert uow.directory.jurisdiction("shanxi-taiyuan").name == "太原市（新）"  # type: ignore[union-attr]
        assert world.db.directory.jurisdiction("shanxi-taiyuan").name == "太原市"  # type: ignore[union-attr]
        uow.commit()
    assert world.db.directory.jurisdiction("shanxi-taiyuan") == replace(JURISDICTIONS[1], name="太原市（新）")
    assert world.db.directory.coordinators()[0].jurisdiction_name == "太原市（新）"
    assert world.db.directory.jurisdiction("nowhere") is None


# ---------------------------------------------------------------- units

def test_add_unit_gives_it_an_id_and_its_path(storage: Storage) -> None:
    with storage.unit_of_work(core=True) as uow:
        for record in JURISDICTIONS:
            uow.directory.add_jurisdiction(record)
        unit = uow.directory.add_unit(NewUnit("shanxi-taiyuan", "太原单位", "city", "行政机关", [CONTACT], 2020,
                                              "2020年名单"), NOW.astimezone(SHANGHAI))
        uow.commit()
    assert (unit.jurisdiction_id, unit.name, unit.level, unit.category, unit.contacts, unit.certified_year,
            unit.certified_note, unit.path) == ("shanxi-taiyuan", "太原单位", "city", "行政机关", [CONTACT], 2020,
                                                "2020年名单", "/shanxi/shanxi-taiyuan/")
    assert unit.created_at == unit.updated_at == NOW and unit.created_at.utcoffset() == timedelta(0)
    assert storage.directory.unit(unit.id) == unit
    assert storage.directory.unit_named("shanxi-taiyuan", "太原单位") == unit
    assert storage.directory.unit_named("shanxi", "太原单位") is None
    assert storage.directory.unit(unit.id + 1000) is None


def test_units_by_subtree_in_id_order_and_paged(world: World) -> None:
    d = world.db.directory
    everyone = sorted(world.units.values())
    assert [u.id for u in d.units()] == everyone
    assert [u.name for u in d.units("/shanxi/shanxi-taiyuan/")] == ["太原丙", "小店丁"]
    assert [u.name for u in d.units("/hunan/")] == ["长沙己"]
    assert [u.id for u in d.units(limit=2)] == everyone[:2]
    assert [u.id for u in d.units(after_id=everyone[1], limit=3)] == everyone[2:5]
    assert [u.id for u in d.units("/shanxi/", after_id=everyone[3])] == [world.unit("大同戊")]
    assert d.units(after_id=everyone[-1]) == []
    assert {u.path for u in d.units("/shanxi/shanxi-taiyuan/")} == {"/shanxi/shanxi-taiyuan/",
                                                                   "/shanxi/shanxi-taiyuan/shanxi-taiyuan-xiaodian/"}


def test_a_unit_name_taken_in_its_jurisdiction_is_refused(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        with pytest.raises(AlreadyExists, match="省直甲"):
            uow.directory.add_unit(NewUnit("shanxi", "省直甲", "provincial", "党的机关", [], None, None), NOW)
        elsewhere = uow.directory.add_unit(NewUnit("hunan", "省直甲", "provincial", "党的机关", [], None, None), NOW)
        uow.commit()
    assert world.db.directory.unit_named("hunan", "省直甲") == elsewhere
    assert world.db.directory.unit_named("shanxi", "省直甲").category == "行政机关"  # type: ignore[union-attr]


def test_save_unit_writes_what_may_change(world: World) -> None:
    before = world.db.directory.unit(world.unit("省直乙"))
    assert before is not None
    later = NOW + timedelta(days=3)
    changed = replace(before, name="省直乙（更名）", category="人民团体", contacts=[CONTACT], certified_year=2020,
                      certified_note="名单", updated_at=later, jurisdiction_id="hunan", level="city",
                      created_at=later)
    with world.db.unit_of_work(core=True) as uow:
        saved = uow.directory.save_unit(changed)
        with pytest.raises(AlreadyExists):
            uow.directory.save_unit(replace(saved, name="省直甲"))
        uow.commit()
    expected = replace(before, name="省直乙（更名）", category="人民团体", contacts=[CONTACT], certified_year=2020,
                       certified_note="名单", updated_at=later)
    assert saved == expected
    assert world.db.directory.unit(before.id) == expected
    assert world.db.directory.unit_named("shanxi", "省直乙") is None


def test_records_handed_out_are_copies(world: World) -> None:
    unit = world.db.directory.unit(world.unit("省直甲"))
    assert unit is not None
    unit.contacts.append({"name": "李四"})
    unit.contacts[0]["name"] = "改过"
    assert world.db.directory.unit(world.unit("省直甲")).contacts == [CONTACT]  # type: ignore[union-attr]


# ---------------------------------------------------------------- coordinators

def test_coordinators_in_id_order_with_their_jurisdiction(world: World) -> None:
    with world.db.unit_of_work(core=True) as uow:
        first = uow.directory.add_coordinator("shanxi-taiyuan", "王丽", "wang@example.gov.cn")
        second = uow.directory.add_coordinator("shanxi", "李明", "li@example.gov.cn")
        third = uow.directory.add_coordinator("shanxi", "王丽", "wang@example.gov.cn")  # same email elsewhere
        with pytest.raises(AlreadyExists, match="wang@example.gov.cn"):
            uow.directory.add_coordinator("shanxi-taiyuan", "王丽丽", "wang@example.gov.cn")
        uow.commit()
    assert first == CoordinatorRecord(first.id, "shanxi-taiyuan", "王丽", "wang@example.gov.cn", True, "太原市")
    assert world.db.directory.coordinators() == [first, second, third]
    assert world.db.directory.coordinators(active_only=True) == [first, second, third]
    deactivate_coordinator(world.db, second.id)
    assert world.db.directory.coordinators(active_only=True) == [first, third]
    assert world.db.directory.coordinators() == [first, replace(second, active=False), third]


# ---------------------------------------------------------------- tokens

def add_token(db: Storage, name: str, role: str, token_hash: str, *, unit_id: int | None = None,
              jurisdiction_id: str | None = None, expires: bool = False) -> int:
    with db.unit_of_work(core=True) as uow:
        token_id = uow.tokens.add(name=name, role=role, unit_id=unit_id, jurisdiction_id=jurisdiction_id,
                                  token_hash=token_hash, created_at=NOW.astimezone(SHANGHAI), created_by="admin:test",
                                  expires_at=NOW + timedelta(days=30) if expires else None)
        uow.commit()
    return token_id


def test_tokens_with_their_scopes_paths(world: World) -> None:
    admin = add_token(world.db, "管理员", "admin", "h-admin")
    coordinator = add_token(world.db, "太原协调员", "coordinator", "h-coord", jurisdiction_id="shanxi-taiyuan",
                            expires=True)
    unit = add_token(world.db, "小店丁", "unit", "h-unit", unit_id=world.unit("小店丁"))
    assert world.db.tokens.by_hash("h-coord") == TokenRecord(
        coordinator, "太原协调员", "coordinator", None, "shanxi-taiyuan", NOW, "admin:test", NOW + timedelta(days=30),
        None, "/shanxi/shanxi-taiyuan/", None)
    assert world.db.tokens.by_hash("h-unit") == TokenRecord(
        unit, "小店丁", "unit", world.unit("小店丁"), None, NOW, "admin:test", None, None, None,
        "/shanxi/shanxi-taiyuan/shanxi-taiyuan-xiaodian/")
    assert world.db.tokens.by_hash("h-admin") == TokenRecord(admin, "管理员", "admin", None, None, NOW, "admin:test",
                                                             None, None, None, None)
    assert world.db.tokens.by_hash("h-none") is None
    assert [t.id for t in world.db.tokens.all()] == [admin, coordinator, unit]


def test_revoke_a_token_once(world: World) -> None:
    token = add_token(world.db, "管理员", "admin", "h-admin")
    later = NOW + timedelta(hours=2)
    with world.db.unit_of_work(core=True) as uow:
        assert uow.tokens.revoke(token, later.astimezone(SHANGHAI), "admin:王科长")
        assert not uow.tokens.revoke(token, later + timedelta(hours=1), "admin:x")
        assert not uow.tokens.revoke(token + 1000, later, "admin:x")
        assert world.db.tokens.by_hash("h-admin").revoked_at is None  # type: ignore[union-attr]
        uow.commit()
    assert world.db.tokens.by_hash("h-admin").revoked_at == later  # type: ignore[union-attr]
    assert world.db.tokens.all()[0].revoked_at == later
    assert world.db.tokens.all()[0].revoked_by == "admin:王科长"  # who revoked it, not who tried again


# ---------------------------------------------------------------- known bugs of the SQL adapters

def test_a_token_hash_taken_is_refused_as_already_existing(world: World) -> None:
    add_token(world.db, "管理员", "admin", "h-admin")
    with pytest.raises(AlreadyExists):
        add_token(world.db, "又一个", "admin", "h-admin")
    assert [t.name for t in world.db.tokens.all()] == ["管理员"]


@pytest.mark.parametrize("what", ["unit", "coordinator", "jurisdiction"])
def test_an_unknown_jurisdiction_is_not_found_not_already_existing(world: World, what: str) -> None:
    with pytest.raises(NotFound, match="nowhere"), world.db.unit_of_work(core=True) as uow:
        if what == "unit":
            uow.directory.add_unit(NewUnit("nowhere", "无处", "city", "行政机关", [], None, None), NOW)
        elif what == "coordinator":
            uow.directory.add_coordinator("nowhere", "王丽", "wang@example.gov.cn")
        else:
            uow.directory.add_jurisdiction(JurisdictionRecord("orphan", "孤儿", "city", "nowhere", "/nowhere/orphan/"))


def test_saving_an_unknown_unit_is_not_found(world: World) -> None:
    unit = world.db.directory.unit(world.unit("省直甲"))
    assert unit is not None
    with pytest.raises(NotFound), world.db.unit_of_work(core=True) as uow:
        uow.directory.save_unit(replace(unit, id=unit.id + 1000))
