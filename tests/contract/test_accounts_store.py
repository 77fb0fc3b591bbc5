"""The ``AccountStore`` and ``OperatorLog`` ports: the same answers from the memory store,
SQLite and PostgreSQL (the memory store is what fast tests use in their place)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from workflow.domain.errors import AlreadyExists
from workflow.domain.events import GENESIS_HASH
from workflow.service.ports import AccountRecord, Storage

from .worlds import NOW, directory


def _account(login: str, name: str, role: str = "unit", *, unit_id: int | None = None,
             jurisdiction_id: str | None = None, home: str = "shanxi") -> AccountRecord:
    return AccountRecord(0, login, name, role, unit_id, jurisdiction_id, None, None, None, NOW, "admin:test", home)


def test_accounts_are_stored_found_and_joined_to_their_scope(storage: Storage) -> None:
    world = directory(storage)
    with storage.unit_of_work(core=True) as uow:
        unit_id = uow.accounts.add(_account("li", "李", unit_id=world.unit("太原丙"), home="shanxi-taiyuan"))
        city_id = uow.accounts.add(_account("wang", "王", "coordinator", jurisdiction_id="shanxi-taiyuan",
                                            home="shanxi-taiyuan"))
        admin_id = uow.accounts.add(_account("ops", "运维", "admin", home=""))
        uow.commit()
    li = storage.accounts.get(unit_id)
    assert li is not None and (li.login, li.name, li.path, li.created_at) == ("li", "李", "/shanxi/shanxi-taiyuan/",
                                                                             NOW)
    assert storage.accounts.by_login("wang") == storage.accounts.get(city_id)
    assert storage.accounts.by_name("shanxi-taiyuan", "王") == storage.accounts.get(city_id)
    assert storage.accounts.by_name("shanxi", "王") is None and storage.accounts.by_login("nobody") is None
    assert [a.id for a in storage.accounts.all()] == [unit_id, city_id, admin_id]
    assert [a.id for a in storage.accounts.all("/shanxi/shanxi-taiyuan/")] == [unit_id, city_id]
    assert storage.accounts.all("/shanxi/shanxi-datong/") == []


def test_a_login_or_a_name_taken_is_already_exists_and_the_unit_of_work_goes_on(storage: Storage) -> None:
    directory(storage)
    with storage.unit_of_work(core=True) as uow:
        first = uow.accounts.add(_account("li", "李"))
        with pytest.raises(AlreadyExists):
            uow.accounts.add(_account("li", "李二"))
        with pytest.raises(AlreadyExists):
            uow.accounts.add(_account("li2", "李"))
        second = uow.accounts.add(_account("li2", "李二"))
        uow.commit()
    saved = storage.accounts.get(first)
    assert saved is not None and second != first
    with storage.unit_of_work(core=True) as uow:
        uow.accounts.save(replace(saved, email="li@example.gov.cn", disabled_at=NOW, disabled_by="admin:test"))
        uow.commit()
    after = storage.accounts.get(first)
    assert after is not None and (after.email, after.disabled_at, after.disabled_by) == (
        "li@example.gov.cn", NOW, "admin:test")


def test_the_operator_log_chains_each_stream_and_a_failed_unit_of_work_leaves_nothing(storage: Storage) -> None:
    with storage.unit_of_work(core=True) as uow:
        a = uow.operator.append("accounts", "AccountCreated", "admin:test", NOW, {"account": 1})
        b = uow.operator.append("accounts", "AccountChanged", "admin:test", NOW, {"account": 1})
        c = uow.operator.append("units", "UnitCreated", "admin:test", NOW, {"unit": 1})
        uow.commit()
    assert (a.seq, a.prev_hash, b.seq, b.prev_hash, c.seq, c.prev_hash) == (1, GENESIS_HASH, 2, a.hash, 1,
                                                                          GENESIS_HASH)
    assert all(e.expected_hash() == e.hash for e in (a, b, c))
    with pytest.raises(RuntimeError), storage.unit_of_work(core=True) as uow:
        uow.operator.append("units", "UnitChanged", "admin:test", NOW, {"unit": 1})
        raise RuntimeError("crash")
    assert [(e.stream_name, e.seq, e.type) for e in storage.operator.events()] == [
        ("accounts", 1, "AccountCreated"), ("accounts", 2, "AccountChanged"), ("units", 1, "UnitCreated")]
    assert [e.hash for e in storage.operator.events("units")] == [c.hash]
    assert [e.hash for e in storage.all_operator_events()] == [a.hash, b.hash, c.hash]
    assert list(storage.within("/shanxi/").all_operator_events()) == []  # the whole system's only
    with pytest.raises(ValueError, match="unknown operator stream"), storage.unit_of_work(core=True) as uow:
        uow.operator.append("nonsense", "UnitCreated", "admin:test", NOW, {})
