"""The outbox contract: a dedupe key is written once, reminders go to the cases the domain's rule
says owe, a due row is handed to one claimant at a time with a lease, an outcome is written only
by the lease's holder, and the sweep's marks are remembered."""
from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from workflow.domain.case import Notice
from workflow.domain.lifecycle import OPEN_STATES, Owing
from workflow.service.ports import OutboxEntry, OutboxRecord, Storage

from ..support import unit_actor
from .worlds import NOW, World, act, add_round, directory, rectify, register, round_record

DUE = date(2021, 10, 20)
LEASE = timedelta(minutes=5)
SHANGHAI = timezone(timedelta(hours=8))
SELF_ASSESSMENT = Owing(("registered", "self_assessed"))
CONTACT_FORM = Owing(OPEN_STATES, contact_form_missing=True)


@pytest.fixture
def world(storage: Storage) -> World:
    """shanxi-2021 with 省直甲 registered, 省直乙 self-assessed, 太原丙 registered with its contact form,
    小店丁 withdrawn, 大同戊 registered; hunan-2021 with 长沙己 registered; a coordinator of shanxi."""
    world = directory(storage)
    add_round(storage, round_record())
    add_round(storage, round_record("hunan-2021", "hunan", 2021))
    for name in ("省直甲", "省直乙", "太原丙", "小店丁", "大同戊"):
        register(world, name)
    register(world, "长沙己", "hunan-2021")
    act(world, world.cases["省直乙"], "self_assess", {"entries": {"1.1.1": "9"}}, actor=unit_actor(world.unit("省直乙")))
    act(world, world.cases["太原丙"], "give_contact_form", {"how": "form", "contacts": 1})
    act(world, world.cases["小店丁"], "withdraw", {"reason": "合并"})
    with storage.unit_of_work(core=True) as uow:
        uow.directory.add_coordinator("shanxi", "王丽", "wang.li@example.gov.cn")
        uow.commit()
    return world


def entry(key: str, *, case_id: int | None = None, coordinator_id: int | None = None, kind: str = "missed",
          tier: int | None = None, context: dict[str, Any] | None = None) -> OutboxEntry:
    return OutboxEntry(key, kind, "shanxi-2021", "self_assessment", DUE, case_id, coordinator_id, tier, context)


def add(db: Storage, entries: list[OutboxEntry], now: datetime = NOW) -> int:
    with db.unit_of_work(core=True) as uow:
        written = uow.outbox.add(entries, now)
        uow.commit()
    return written


def remind(db: Storage, tier: int, owing: Owing, milestone: str = "self_assessment", round_id: str = "shanxi-2021"
           ) -> int:
    with db.unit_of_work(core=True) as uow:
        written = uow.outbox.remind_owing(round_id, milestone, tier, DUE, owing, NOW)
        uow.commit()
    return written


def claim(db: Storage, now: datetime, batch: int = 10) -> list[OutboxRecord]:
    with db.unit_of_work(core=True) as uow:
        rows = uow.outbox.claim(now, now + LEASE, batch)
        uow.commit()
    return rows


def settle(db: Storage, row_id: int, lease: datetime | None, values: Mapping[str, Any]) -> bool:
    with db.unit_of_work(core=True) as uow:
        held = uow.outbox.settle(row_id, lease, values)
        uow.commit()
    return held


def row(db: Storage, row_id: int) -> OutboxRecord:
    return next(r for r in db.outbox.rows() if r.id == row_id)


def keys(db: Storage) -> list[str]:
    return sorted(r.dedupe_key for r in db.outbox.rows())


# ---------------------------------------------------------------- dedupe keys

def test_add_writes_each_dedupe_key_once(world: World) -> None:
    db, a = world.db, world.cases["省直甲"]
    coordinator = db.directory.coordinators()[0].id
    assert add(db, [entry("missed:a", case_id=a), entry("digest:1", coordinator_id=coordinator, kind="digest",
                                                         tier=2, context={"rows": [{"case_id": a}]})]) == 2
    assert add(db, [entry("missed:a", case_id=a, kind="other"), entry("missed:b")], NOW + LEASE) == 1
    assert add(db, [entry("twice"), entry("twice", kind="other")]) == 1
    assert add(db, [entry("missed:a"), entry("twice"), entry("digest:1")]) == 0
    assert keys(db) == ["digest:1", "missed:a", "missed:b", "twice"]
    first = next(r for r in db.outbox.rows() if r.dedupe_key == "missed:a")
    assert (first.kind, first.round_id, first.case_id, first.coordinator_id, first.milestone, first.tier,
            first.due_on) == ("missed", "shanxi-2021", a, None, "self_assessment", None, DUE)
    assert (first.status, first.attempts, first.next_attempt_at, first.created_at, first.context) == \
        ("pending", 0, NOW, NOW, None)
    assert (first.claimed_until, first.last_error, first.message_id, first.recipients, first.sent_at) == \
        (None, None, None, None, None)
    assert first.next_attempt_at.utcoffset() == timedelta(0)
    digest = next(r for r in db.outbox.rows() if r.dedupe_key == "digest:1")
    assert (digest.kind, digest.case_id, digest.coordinator_id, digest.tier) == ("digest", None, coordinator, 2)
    assert digest.context is not None and json.loads(digest.context) == {"rows": [{"case_id": a}]}
    assert next(r for r in db.outbox.rows() if r.dedupe_key == "twice").kind == "missed"


def test_remind_owing_writes_to_the_cases_that_owe_once_per_tier(world: World) -> None:
    db, c = world.db, world.cases
    assert remind(db, 1, SELF_ASSESSMENT) == 4  # not the withdrawn case, not the other round's
    owing = [c["省直甲"], c["省直乙"], c["太原丙"], c["大同戊"]]
    assert keys(db) == sorted(f"reminder:{i}:self_assessment:1" for i in owing)
    assert remind(db, 1, SELF_ASSESSMENT) == 0
    assert remind(db, 2, SELF_ASSESSMENT) == 4
    rows = db.outbox.rows(case_id=c["省直乙"])
    assert [(r.kind, r.milestone, r.tier, r.due_on, r.round_id, r.status) for r in rows] == [
        ("reminder", "self_assessment", 2, DUE, "shanxi-2021", "pending"),
        ("reminder", "self_assessment", 1, DUE, "shanxi-2021", "pending")]
    assert db.outbox.rows(case_id=c["小店丁"]) == []
    assert remind(db, 1, SELF_ASSESSMENT, round_id="hunan-2021") == 1
    assert [r.case_id for r in db.outbox.rows() if r.round_id == "hunan-2021"] == [c["长沙己"]]


def test_remind_owing_follows_the_contact_form_rule(world: World) -> None:
    db, c = world.db, world.cases
    assert remind(db, 1, CONTACT_FORM, milestone="contact_form") == 3  # not 太原丙 (form given), not withdrawn
    assert keys(db) == sorted(f"reminder:{c[n]}:contact_form:1" for n in ("省直甲", "省直乙", "大同戊"))
    assert remind(db, 1, Owing(("self_assessed",)), milestone="contact_form") == 0  # 省直乙's key is written
    assert remind(db, 1, Owing(("submitted",))) == 0


def test_a_key_written_by_add_is_skipped_by_remind_owing(world: World) -> None:
    db, a = world.db, world.cases["省直甲"]
    assert add(db, [entry(f"reminder:{a}:self_assessment:1", case_id=a, kind="earlier")]) == 1
    assert remind(db, 1, SELF_ASSESSMENT) == 3
    assert [r.kind for r in db.outbox.rows(case_id=a)] == ["earlier"]


def test_notify_writes_a_notice_once_per_key(world: World) -> None:
    db = world.db
    case = rectify(world, "大同戊", world.cases["大同戊"])
    notices = db.outbox.rows(case_id=case.id)
    assert [(r.kind, r.milestone, r.due_on, r.status) for r in notices] == [
        ("rectification_notice", "rectification", case.rectification_due, "pending")]
    assert case.rectification_due is not None
    again = Notice("rectification_notice", notices[0].dedupe_key, "rectification", case.rectification_due)
    other = Notice("rectification_notice", "rectification_notice:other", "rectification", case.rectification_due)
    with db.unit_of_work() as uow:
        uow.notify(case, again, NOW)
        uow.notify(case, other, NOW)
        uow.notify(case, other, NOW)
        uow.commit()
    assert [r.dedupe_key for r in db.outbox.rows(case_id=case.id)] == ["rectification_notice:other",
                                                                       notices[0].dedupe_key]


# ---------------------------------------------------------------- claims and leases

def test_two_claims_never_take_the_same_row(world: World) -> None:
    db = world.db
    add(db, [entry(f"k{i}") for i in range(3)])
    add(db, [entry("later")], NOW + timedelta(hours=1))
    first = claim(db, NOW, batch=2)
    second = claim(db, NOW)
    assert [r.dedupe_key for r in first] == ["k0", "k1"]
    assert [r.dedupe_key for r in second] == ["k2"]
    assert {r.id for r in first}.isdisjoint({r.id for r in second})
    assert all((r.status, r.claimed_until, r.attempts) == ("sending", NOW + LEASE, 0) for r in first + second)
    assert claim(db, NOW + timedelta(minutes=1)) == []
    assert claim(db, NOW + LEASE) == []  # a lease still runs at its last instant
    assert db.outbox.count_by_status() == {"sending": 3, "pending": 1}


def test_claims_at_the_same_time_take_disjoint_rows(world: World) -> None:
    db = world.db
    add(db, [entry(f"k{i}") for i in range(5)])
    start = threading.Barrier(3)
    taken: list[list[int]] = []

    def dispatcher() -> None:
        start.wait()
        taken.append([r.id for r in claim(db, NOW, batch=2)])

    threads = [threading.Thread(target=dispatcher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(len(ids) for ids in taken) == [1, 2, 2]
    assert sorted(i for ids in taken for i in ids) == sorted(r.id for r in db.outbox.rows())
    assert db.outbox.count_by_status() == {"sending": 5}


def test_a_lapsed_lease_is_claimable_again_and_the_old_holder_cannot_settle(world: World) -> None:
    db = world.db
    add(db, [entry("k0"), entry("k1")])
    add(db, [entry("later")], NOW + timedelta(hours=1))
    held = claim(db, NOW)
    retaken = claim(db, NOW + timedelta(hours=1))
    assert [r.dedupe_key for r in retaken] == ["k0", "k1", "later"]
    new_lease = NOW + timedelta(hours=1) + LEASE
    assert {r.claimed_until for r in retaken} == {new_lease}
    sent = {"status": "sent", "attempts": 1, "sent_at": NOW, "recipients": '["a@example.gov.cn"]',
            "message_id": "<k0@example>", "claimed_until": None}
    assert not settle(db, held[0].id, held[0].claimed_until, sent)  # the stale lease
    assert row(db, held[0].id) == retaken[0]
    assert settle(db, retaken[0].id, new_lease.astimezone(SHANGHAI), sent)  # the same instant, written in +08:00
    done = row(db, retaken[0].id)
    assert (done.status, done.attempts, done.sent_at, done.claimed_until, done.message_id, done.recipients) == (
        "sent", 1, NOW, None, "<k0@example>", '["a@example.gov.cn"]')
    assert not settle(db, done.id, None, {"status": "failed"})  # no longer held by anyone
    assert not settle(db, done.id, new_lease, {"status": "failed"})
    assert row(db, done.id).status == "sent"


def test_settle_refuses_a_row_that_is_not_claimed(world: World) -> None:
    db = world.db
    add(db, [entry("k0")])
    pending = db.outbox.rows()[0]
    assert not settle(db, pending.id, None, {"status": "cancelled"})
    assert not settle(db, pending.id, NOW + LEASE, {"status": "cancelled"})
    assert not settle(db, 4242, None, {"status": "cancelled"})
    assert row(db, pending.id) == pending


def test_a_retry_is_due_again_at_its_next_attempt(world: World) -> None:
    db = world.db
    add(db, [entry("k0")])
    held = claim(db, NOW)[0]
    retry_at = NOW + timedelta(minutes=30)
    assert settle(db, held.id, held.claimed_until, {"status": "pending", "attempts": 1, "last_error": "421 busy",
                                                    "claimed_until": None, "next_attempt_at": retry_at})
    assert claim(db, retry_at - timedelta(seconds=1)) == []
    again = claim(db, retry_at)
    assert [(r.id, r.attempts, r.last_error, r.next_attempt_at) for r in again] == [(held.id, 1, "421 busy",
                                                                                     retry_at)]


def test_release_claims_hands_sending_rows_back(world: World) -> None:
    db = world.db
    add(db, [entry(f"k{i}") for i in range(3)])
    held = claim(db, NOW, batch=2)
    with db.unit_of_work(core=True) as uow:
        assert uow.outbox.release_claims() == 2
        uow.commit()
    assert db.outbox.count_by_status() == {"pending": 3}
    assert all(r.claimed_until is None for r in db.outbox.rows())
    with db.unit_of_work(core=True) as uow:
        assert uow.outbox.release_claims() == 0
        uow.commit()
    assert [r.id for r in claim(db, NOW, batch=2)] == [r.id for r in held]


# ---------------------------------------------------------------- reading

def test_rows_newest_first_with_filters_and_counts_by_status(world: World) -> None:
    db, a, b = world.db, world.cases["省直甲"], world.cases["省直乙"]
    assert db.outbox.count_by_status() == {}
    add(db, [entry("r1", case_id=a), entry("r2", case_id=a), entry("r3"), entry("r4", case_id=b), entry("r5")])
    ids = {r.dedupe_key: r.id for r in db.outbox.rows()}
    held = claim(db, NOW, batch=3)  # r1, r2, r3
    settle(db, ids["r1"], held[0].claimed_until, {"status": "sent", "sent_at": NOW, "claimed_until": None})
    settle(db, ids["r2"], held[1].claimed_until, {"status": "failed", "claimed_until": None})
    assert db.outbox.count_by_status() == {"sent": 1, "failed": 1, "sending": 1, "pending": 2}
    assert [r.dedupe_key for r in db.outbox.rows()] == ["r5", "r4", "r3", "r2", "r1"]
    assert [r.dedupe_key for r in db.outbox.rows(status="")] == ["r5", "r4", "r3", "r2", "r1"]
    assert [r.dedupe_key for r in db.outbox.rows(status="pending")] == ["r5", "r4"]
    assert [r.dedupe_key for r in db.outbox.rows(case_id=a)] == ["r2", "r1"]
    assert [r.dedupe_key for r in db.outbox.rows(status="sent", case_id=a)] == ["r1"]
    assert [r.dedupe_key for r in db.outbox.rows(status="sent", case_id=b)] == []
    assert [r.dedupe_key for r in db.outbox.rows(limit=2)] == ["r5", "r4"]


def test_marks_are_remembered(world: World) -> None:
    db = world.db
    assert not db.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
    with db.unit_of_work(core=True) as uow:
        uow.outbox.mark("shanxi-2021", "self_assessment", "tier:1", NOW)
        assert uow.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
        assert not db.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
        uow.commit()
    with db.unit_of_work(core=True) as uow:
        uow.outbox.mark("shanxi-2021", "self_assessment", "tier:1", NOW + LEASE)  # again: nothing happens
        uow.commit()
    assert db.outbox.marked("shanxi-2021", "self_assessment", "tier:1")
    assert not db.outbox.marked("shanxi-2021", "self_assessment", "tier:2")
    assert not db.outbox.marked("shanxi-2021", "self_assessment", "missed")
    assert not db.outbox.marked("hunan-2021", "self_assessment", "tier:1")
