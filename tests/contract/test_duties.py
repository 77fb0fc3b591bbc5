"""The duty streams' contract: a jurisdiction's duties in a round are a hash-chained stream of
events and its projection, written together and guarded by the stream's version."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from workflow.domain.duties import DutyEvent, DutyStatus, DutyStream, apply_duty, record_done, record_missed
from workflow.domain.errors import ConflictError, NotFound
from workflow.domain.events import GENESIS_HASH
from workflow.service.audit import verify
from workflow.service.ports import Storage

from ..support import CALENDARS
from .worlds import NOW, add_round, directory, round_record

SHANGHAI = timezone(timedelta(hours=8))
DUTIES = {d.id: d for d in CALENDARS.get("shanxi-2021").duties()}
CITY_REPORT = DUTIES["city_report"]
REPORT = [{"sha256": "0" * 64, "filename": "年度创建情况.pdf", "size": 10, "type": "pdf"}]
DUE = date(2021, 11, 30)
ACTOR = "coordinator:wang"


@pytest.fixture
def db(storage: Storage) -> Storage:
    directory(storage)
    add_round(storage, round_record())
    add_round(storage, round_record("hunan-2021", "hunan", 2021))
    return storage


def done(db: Storage, jurisdiction: str, at: datetime, round_id: str = "shanxi-2021") -> DutyEvent:
    """Record city_report done for the jurisdiction (its own unit of work)."""
    with db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream(round_id, jurisdiction)
        event = record_done(stream, CITY_REPORT, actor=ACTOR, now=at, due_on=DUE, attachments=REPORT)
        uow.duties.append(stream, event, apply_duty(stream, event), at)
        uow.commit()
    return event


def missed(db: Storage, jurisdiction: str, at: datetime) -> DutyEvent:
    with db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream("shanxi-2021", jurisdiction)
        event = record_missed(stream, CITY_REPORT, actor="system:sweep", now=at, due_on=DUE,
                              noticed_on=date(2021, 12, 1))
        assert event is not None
        uow.duties.append(stream, event, apply_duty(stream, event), at)
        uow.commit()
    return event


def test_a_stream_nothing_was_recorded_on_is_empty(db: Storage) -> None:
    assert db.duties.stream("shanxi-2021", "shanxi-taiyuan") == DutyStream("shanxi-2021", "shanxi-taiyuan")
    assert db.duties.streams("shanxi-2021") == {}
    assert db.duties.events("shanxi-2021", "shanxi-taiyuan") == []


def test_events_and_the_projection_are_stored_together(db: Storage) -> None:
    at = datetime(2021, 12, 1, 9, 0, tzinfo=SHANGHAI)
    first = missed(db, "shanxi-taiyuan", at)
    second = done(db, "shanxi-taiyuan", at + timedelta(days=2))
    other = done(db, "shanxi-datong", at + timedelta(days=1))
    stream = db.duties.stream("shanxi-2021", "shanxi-taiyuan")
    assert (stream.version, stream.last_hash, stream.updated_at) == (2, second.hash, at + timedelta(days=2))
    assert stream.duties == {"city_report": DutyStatus(at + timedelta(days=2), ACTOR, date(2021, 12, 1))}
    assert stream.updated_at is not None and stream.updated_at.utcoffset() == timedelta(0)
    events = db.duties.events("shanxi-2021", "shanxi-taiyuan")
    assert [(e.seq, e.type, e.hash, e.prev_hash) for e in events] == [
        (1, "DutyMissed", first.hash, GENESIS_HASH), (2, "DutyDone", second.hash, first.hash)]
    assert all(e.expected_hash() == e.hash and e.position is not None for e in events)
    assert events[1].payload == second.payload and events[1].occurred_at == at + timedelta(days=2)
    assert events[0].position < events[1].position  # type: ignore[operator]
    assert set(db.duties.streams("shanxi-2021")) == {"shanxi-taiyuan", "shanxi-datong"}
    assert db.duties.streams("shanxi-2021")["shanxi-datong"].last_hash == other.hash
    assert db.duties.streams("hunan-2021") == {}


def test_a_stale_stream_is_a_conflict_and_nothing_is_written(db: Storage) -> None:
    first = missed(db, "shanxi-taiyuan", NOW)
    stale = DutyStream("shanxi-2021", "shanxi-taiyuan")  # read before the miss was recorded
    event = record_done(stale, CITY_REPORT, actor=ACTOR, now=NOW, due_on=DUE, attachments=REPORT)
    with pytest.raises(ConflictError, match="shanxi-taiyuan"), db.unit_of_work(core=True) as uow:
        uow.duties.append(stale, event, apply_duty(stale, event), NOW)
    moved_on = apply_duty(stale, first)
    later = record_done(stale, CITY_REPORT, actor=ACTOR, now=NOW, due_on=DUE, attachments=REPORT)
    with pytest.raises(ConflictError), db.unit_of_work(core=True) as uow:  # at version 1, but event #1 is taken
        uow.duties.append(moved_on, later, apply_duty(stale, later), NOW)
    assert [e.hash for e in db.duties.events("shanxi-2021", "shanxi-taiyuan")] == [first.hash]
    assert db.duties.stream("shanxi-2021", "shanxi-taiyuan").version == 1
    with db.unit_of_work(core=True) as uow:
        current = uow.duties.stream("shanxi-2021", "shanxi-taiyuan")
        event = record_done(current, CITY_REPORT, actor=ACTOR, now=NOW, due_on=DUE, attachments=REPORT)
        uow.duties.append(current, event, apply_duty(current, event), NOW)
        assert uow.duties.stream("shanxi-2021", "shanxi-taiyuan").version == 2
        with pytest.raises(ConflictError):  # the same read again: the unit of work's own write moved it on
            uow.duties.append(current, event, apply_duty(current, event), NOW)
    assert db.duties.stream("shanxi-2021", "shanxi-taiyuan").version == 1  # not committed


def test_the_stream_version_guards_an_append_whatever_the_events_number(db: Storage) -> None:
    first = missed(db, "shanxi-taiyuan", NOW)
    done(db, "shanxi-taiyuan", NOW + timedelta(hours=1))
    stale = db.duties.stream("shanxi-2021", "shanxi-taiyuan")
    stale = DutyStream(stale.round_id, stale.jurisdiction_id, 1, first.hash, {}, NOW)  # as it was at version 1
    event = record_done(DutyStream("shanxi-2021", "shanxi-taiyuan", 2, "f" * 64), DUTIES["spot_checks"],
                        actor=ACTOR, now=NOW, due_on=DUE, spot_checks=["s-1"])  # event #3: a number still free
    with pytest.raises(ConflictError), db.unit_of_work(core=True) as uow:
        uow.duties.append(stale, event, apply_duty(DutyStream("shanxi-2021", "shanxi-taiyuan", 2), event), NOW)
    assert [e.seq for e in db.duties.events("shanxi-2021", "shanxi-taiyuan")] == [1, 2]


def test_the_projection_is_stamped_with_the_time_of_the_append(db: Storage) -> None:
    with db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream("shanxi-2021", "shanxi-taiyuan")
        event = record_done(stream, CITY_REPORT, actor=ACTOR, now=NOW, due_on=DUE, attachments=REPORT)
        uow.duties.append(stream, event, apply_duty(stream, event), (NOW + timedelta(minutes=3)).astimezone(SHANGHAI))
        uow.commit()
    stream = db.duties.stream("shanxi-2021", "shanxi-taiyuan")
    assert stream.updated_at == NOW + timedelta(minutes=3) and stream.updated_at.utcoffset() == timedelta(0)
    assert stream.status("city_report").done_at == NOW


def test_the_audit_verifies_the_chains_by_subtree(db: Storage) -> None:
    missed(db, "shanxi-taiyuan", NOW)
    done(db, "shanxi-taiyuan", NOW + timedelta(hours=1))
    done(db, "shanxi-datong", NOW)
    done(db, "hunan-changsha", NOW, round_id="hunan-2021")
    report = verify(db)
    assert (report.ok, report.duty_streams, report.duty_events) == (True, 3, 4)
    assert [(s.round_id, s.jurisdiction_id) for s in db.all_duty_streams()] == [
        ("hunan-2021", "hunan-changsha"), ("shanxi-2021", "shanxi-datong"), ("shanxi-2021", "shanxi-taiyuan")]
    assert [(e.jurisdiction_id, e.seq) for e in db.all_duty_events()] == [
        ("hunan-changsha", 1), ("shanxi-datong", 1), ("shanxi-taiyuan", 1), ("shanxi-taiyuan", 2)]
    taiyuan = db.within("/shanxi/shanxi-taiyuan/")
    assert [s.jurisdiction_id for s in taiyuan.all_duty_streams()] == ["shanxi-taiyuan"]
    assert [e.seq for e in taiyuan.all_duty_events()] == [1, 2]
    assert (verify(taiyuan).duty_streams, verify(taiyuan).duty_events) == (1, 2)


# ---------------------------------------------------------------- known bugs of the SQL adapters

def test_a_stream_of_an_unknown_jurisdiction_is_not_found(db: Storage) -> None:
    with pytest.raises(NotFound, match="nowhere"), db.unit_of_work(core=True) as uow:
        stream = uow.duties.stream("shanxi-2021", "nowhere")
        event = record_done(stream, CITY_REPORT, actor=ACTOR, now=NOW, due_on=DUE, attachments=REPORT)
        uow.duties.append(stream, event, apply_duty(stream, event), NOW)
