"""Idempotency keys: what a request did is remembered in its own unit of work, recalled later,
never remembered twice, and not remembered at all when the unit of work does not commit."""
from __future__ import annotations

import pytest

from workflow.domain.errors import ConflictError
from workflow.service.cases import perform_action
from workflow.service.ports import Remembered, Storage

from ..support import unit_actor
from .worlds import NOW, World, add_round, directory, register, round_record


@pytest.fixture
def world(storage: Storage) -> World:
    world = directory(storage)
    add_round(storage, round_record())
    register(world, "省直甲")
    return world


def remember(db: Storage, key: str, what: str = "submit", *, fingerprint: str = "f1", case_id: int | None = 7,
             seq: int | None = 3, ref: str | None = None) -> None:
    with db.unit_of_work() as uow:
        uow.remember(key, what, NOW, fingerprint=fingerprint, case_id=case_id, seq=seq, ref=ref)
        uow.commit()


def recall(db: Storage, key: str) -> Remembered | None:
    with db.unit_of_work() as uow:
        return uow.recall(key)


def test_remember_then_recall_gives_back_what_was_remembered(storage: Storage) -> None:
    remember(storage, "key-1", "verify", fingerprint="abc", case_id=12, seq=4)
    remember(storage, "key-2", "spot_check", fingerprint="def", case_id=None, seq=None, ref="shanxi-2021-spot-1")
    assert recall(storage, "key-1") == Remembered("verify", 12, 4, None, "abc")
    assert recall(storage, "key-2") == Remembered("spot_check", None, None, "shanxi-2021-spot-1", "def")
    assert recall(storage, "key-3") is None
    with storage.reader() as reader:
        assert reader.recall("key-1") == Remembered("verify", 12, 4, None, "abc")


def test_a_unit_of_work_recalls_the_key_it_remembered(storage: Storage) -> None:
    with storage.unit_of_work() as uow:
        uow.remember("key-1", "submit", NOW, fingerprint="f", case_id=1, seq=2)
        assert uow.recall("key-1") == Remembered("submit", 1, 2, None, "f")
        assert recall_elsewhere(storage, "key-1") is None
        uow.commit()
    assert recall(storage, "key-1") == Remembered("submit", 1, 2, None, "f")


def recall_elsewhere(db: Storage, key: str) -> Remembered | None:
    """What a reader (another transaction) recalls meanwhile."""
    with db.reader() as reader:
        return reader.recall(key)


def test_remembering_a_key_twice_is_a_conflict(storage: Storage) -> None:
    remember(storage, "key-1", "submit", fingerprint="first")
    with pytest.raises(ConflictError, match="key-1"), storage.unit_of_work() as uow:
        uow.remember("key-1", "verify", NOW, fingerprint="second", case_id=8, seq=1)
        uow.commit()
    assert recall(storage, "key-1") == Remembered("submit", 7, 3, None, "first")


def test_remembering_a_key_twice_in_one_unit_of_work_is_a_conflict(storage: Storage) -> None:
    with pytest.raises(ConflictError, match="key-1"), storage.unit_of_work() as uow:
        uow.remember("key-1", "submit", NOW, fingerprint="first")
        uow.remember("key-1", "submit", NOW, fingerprint="second")
    assert recall(storage, "key-1") is None


def test_nothing_is_remembered_without_a_commit(storage: Storage) -> None:
    with storage.unit_of_work() as uow:
        uow.remember("key-1", "submit", NOW, fingerprint="first")
    with pytest.raises(RuntimeError), storage.unit_of_work() as uow:
        uow.remember("key-2", "submit", NOW, fingerprint="first")
        raise RuntimeError("crash before the commit")
    assert recall(storage, "key-1") is None
    assert recall(storage, "key-2") is None
    remember(storage, "key-1", "verify", fingerprint="again")  # the key is free
    assert recall(storage, "key-1") == Remembered("verify", 7, 3, None, "again")


def test_a_retried_action_is_answered_from_its_key(world: World) -> None:
    case_id, unit = world.cases["省直甲"], unit_actor(world.unit("省直甲"))
    data = {"entries": {"1.1.1": "9"}}
    first = perform_action(world.db, case_id, "self_assess", data, unit, NOW, idempotency_key="req-1")
    again = perform_action(world.db, case_id, "self_assess", data, unit, NOW, idempotency_key="req-1")
    assert again.event.hash == first.event.hash and again.case.version == first.case.version == 2
    with world.db.reader() as uow:
        assert len(uow.events(case_id)) == 2
        found = uow.recall("req-1")
    assert found is not None and (found.what, found.case_id, found.seq, found.ref) == ("self_assess", case_id, 2, None)
    assert len(found.fingerprint) == 64  # a sha256 of the request
    with pytest.raises(ConflictError, match="other input"):
        perform_action(world.db, case_id, "self_assess", {"entries": {"1.1.1": "8"}}, unit, NOW,
                       idempotency_key="req-1")
