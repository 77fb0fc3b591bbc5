"""The bulk write paths — a roster imported, a round opened, the sweep's misses — write exactly
what the one-at-a-time paths wrote, on SQLite and PostgreSQL: the same units, case rows, events
(hash chains), outbox rows, operator events and counts. A version conflict in a batch is retried
on fresh rows; an error leaves nothing of its batch, or of its import, written.

The one-at-a-time reference is the same services with the store's bulk methods replaced by loops
over the one-at-a-time methods (``create``, ``get``, ``append``, the sweep's notices through
``outbox.add`` as it wrote them, ``add_unit``), run on a twin database; the batches are made small
so that every path runs over several of them.
"""
from __future__ import annotations

import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from workflow import files as files_module
from workflow.adapters.db import counts
from workflow.adapters.db import store as sql_store
from workflow.adapters.db.directory import SqlDirectory
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import upgrade
from workflow.adapters.db.store import Database, SqlCaseStore
from workflow.adapters.rosters import read_units, stream_units
from workflow.domain.errors import ConflictError, InvalidInput
from workflow.files import import_units_data
from workflow.service import deadlines
from workflow.service import directory as directory_service
from workflow.service.audit import verify
from workflow.service.cases import perform_action, take
from workflow.service.deadlines import sweep
from workflow.service.directory import add_coordinator, give_contact_form, import_unit_rows
from workflow.service.ports import OutboxEntry
from workflow.service.rounds import open_round, roll_over

from ..conftest import PG_SKIP_REASON, PG_URL, TABLES, pg_schema_url
from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    OPERATOR_NOW,
    RUBRICS,
    attach_documents,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    unit_actor,
)

CST = ZoneInfo("Asia/Shanghai")
IMPORTED = datetime(2021, 5, 20, 1, 0, tzinfo=UTC)
OPENED = datetime(2021, 5, 26, 1, 0, tzinfo=UTC)
SOURCE = "名单.csv"


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


# ---------------------------------------------------------------- twin databases of one backend

@pytest.fixture(scope="module")
def pg_twin_schema() -> Iterator[str]:
    """A second PostgreSQL schema, migrated (the first is the ``pg_url`` fixture's)."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wf_twin_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(pg_schema_url(schema))
    upgrade(engine)
    engine.dispose()
    yield schema
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def _emptied(url: str) -> str:
    engine = make_engine(url)
    with engine.begin() as conn:  # as the pg_url fixture empties its schema
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        conn.execute(text("UPDATE operator_streams SET version = 0, last_hash = :genesis"), {"genesis": "0" * 64})
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def twins(request: pytest.FixtureRequest, sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two empty databases of one backend: the one-at-a-time reference, and the bulk paths."""
    if request.param == "sqlite":
        urls = []
        for name in ("one.db", "bulk.db"):
            shutil.copy(sqlite_template, tmp_path / name)
            urls.append(f"sqlite:///{tmp_path / name}")
    else:
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        urls = [request.getfixturevalue("pg_url"), _emptied(pg_schema_url(request.getfixturevalue("pg_twin_schema")))]
    one, bulk = (Database(make_engine(url)) for url in urls)
    yield one, bulk
    one.engine.dispose()
    bulk.engine.dispose()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a few rows, so that each path runs over several."""
    monkeypatch.setattr(deadlines, "BATCH", 4)
    monkeypatch.setattr(sql_store, "_CHUNK", 3)
    monkeypatch.setattr(directory_service, "ADD_BATCH", 5)


def _one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's bulk methods as loops over the one-at-a-time ones (the paths before them)."""
    def create_each(self: SqlCaseStore, round_id: str, units: Any, actor: str, now: datetime) -> list[int]:
        return [self.create(round_id, unit_id, actor, now, carried)[0].id for unit_id, carried in units]

    def append_each(self: SqlCaseStore, changes: Any) -> None:
        for before, event, after in changes:
            self.append(before, event, after)

    def notify_each(self: SqlCaseStore, notices: Any, now: datetime) -> int:  # as the sweep wrote them before
        return sum(self.outbox.add([OutboxEntry(n.dedupe_key, n.kind, case.round_id, n.milestone, n.due_on,
                                                case_id=case.id)], now) for case, n in notices)

    monkeypatch.setattr(SqlCaseStore, "create_many", create_each)
    monkeypatch.setattr(SqlCaseStore, "get_many", lambda self, ids: {i: self.get(i) for i in ids})
    monkeypatch.setattr(SqlCaseStore, "append_many", append_each)
    monkeypatch.setattr(SqlCaseStore, "notify_many", notify_each)
    monkeypatch.setattr(SqlDirectory, "add_units", lambda self, units, now: len([self.add_unit(u, now) for u in units]))


# ---------------------------------------------------------------- a province's year, both ways

def roster(units: int = 22, changed: int = 0) -> bytes:
    """Shanxi's units (two certified before the system, most with a contact) and Hunan's; the
    first ``changed`` with another category and contact."""
    places = ["shanxi", "shanxi-taiyuan", "shanxi-datong", "shanxi", "hunan", "hunan-changsha"]
    lines = ["单位名称,所属地区,类别,联系人,联系电话,电子邮箱,已建成年份,建成依据"]
    for i in range(units):
        place = places[i % len(places)]
        contact = f"联系人{i},0351-{i:07d},u{i}@units.example.cn" if i % 5 else ",,"
        category = "行政机关" if i % 3 else "党的机关"
        if i < changed:
            category, contact = "人民团体", f"新联系人{i},0351-{i + 100:07d},"
        certified = "2019,2019年名单" if i in (3, 9) else ","
        lines.append(f"创建单位{i:02d},{place},{category},{contact},{certified}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _import(db: Database, data: bytes, bulk: bool, update: bool = False) -> Any:
    if bulk:
        return import_units_data(db, data, SOURCE, IMPORTED, update=update, actor=OPERATOR)
    return import_unit_rows(db, read_units(data, SOURCE), SOURCE, IMPORTED, update=update, actor=OPERATOR)


def _walk(db: Database, case_id: int, unit_id: int, total: str, last: str, now: datetime) -> None:
    with db.unit_of_work() as uow:
        rubric = uow.round_context(uow.get(case_id).round_id).rubric
    ready_to_submit(db, case_id, unit_id, "90", now, rubric)
    attach_documents(db, case_id, unit_id, now)
    perform_action(db, case_id, "submit", {}, unit_actor(unit_id), now)
    perform_action(db, case_id, "verify", {"entries": sheet_for(rubric, total)}, COORDINATOR, now)
    perform_action(db, case_id, last, {}, COORDINATOR, now)


def a_year(db: Database, *, bulk_import: bool) -> dict[str, Any]:
    """Import the roster, open Shanxi's and Hunan's 2021 rounds, act on a few cases, sweep past the
    contact form's and the self-assessment's due dates, and open Hunan's 2022 round (carrying
    its failed unit over). What the services answered."""
    seed_jurisdictions(db)
    imported = _import(db, roster(), bulk_import)
    for place, name in (("shanxi", "王协调"), ("shanxi-taiyuan", "赵协调"), ("hunan", "李协调")):
        add_coordinator(db, place, name, f"{place}@bureau.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    answers: dict[str, Any] = {"imported": imported}
    for province, rubric, calendar in (("shanxi", "shanxi-2020", "shanxi-2021"), ("hunan", "hunan-2020", "hunan")):
        answers[province] = open_round(db, RUBRICS, CALENDARS, province_id=province, year=2021, rubric_id=rubric,
                                       calendar_id=calendar, target_share="0.5", actor=ADMIN, now=OPENED)
    with db.unit_of_work() as uow:
        shanxi = [c for c in (uow.find("shanxi-2021", u) for u in range(1, 23)) if c is not None]
        hunan = [c for c in (uow.find("hunan-2021", u) for u in range(1, 23)) if c is not None]
    give_contact_form(db, shanxi[1].unit_id, None, unit_actor(shanxi[1].unit_id), at(date(2021, 6, 1)))
    answers["june"] = sweep(db, CALENDARS, at(date(2021, 6, 6)))  # the contact form's misses
    _walk(db, shanxi[2].id, shanxi[2].unit_id, "95", "certify", at(date(2021, 9, 1)))  # submitted: owes nothing
    _walk(db, hunan[0].id, hunan[0].unit_id, "70", "fail", at(date(2021, 9, 1)))
    answers["october"] = sweep(db, CALENDARS, at(date(2021, 10, 21)))  # the self-assessment's misses
    answers["hunan-2022"] = roll_over(db, RUBRICS, CALENDARS, "hunan-2021", target_share="0.6", actor=ADMIN,
                                      now=at(date(2022, 1, 5)))
    answers["updated"] = _import(db, roster(25, changed=7), bulk_import, update=True)  # 7 changed, 3 new
    return answers


# Every table the paths write, in a stable order (counts: the kept ones, n ≠ 0 — a count moved
# back to 0 one case at a time leaves a row of 0 that a batch never writes).
DUMPED = {"units": "id", "cases": "id", "events": "position", "outbox": "id", "sweep_marks": "round_id, milestone, stage",
          "rounds": "id", "operator_events": "stream, seq", "duty_events": "round_id, jurisdiction_id, seq",
          "case_counts": "round_id, jurisdiction_id, level, state, overdue, missed",
          "agency_counts": "jurisdiction_id, level, certified_since"}


def dump(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.engine.connect() as conn:
        return {table: [tuple(r) for r in conn.exec_driver_sql(
            f"SELECT * FROM {table} {'WHERE n <> 0 ' if table.endswith('_counts') else ''}ORDER BY {order}")]
            for table, order in DUMPED.items()}


def test_a_year_done_in_bulk_writes_what_it_wrote_one_at_a_time(twins: tuple[Database, Database],
                                                                 small_batches: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    one, bulk = twins
    with monkeypatch.context() as patched:
        _one_at_a_time(patched)
        single = a_year(one, bulk_import=False)
    batched = a_year(bulk, bulk_import=True)

    assert batched == single
    assert (batched["shanxi"].registered, batched["hunan"].registered) == (14, 6)  # 2 certified before
    assert (batched["october"].missed, batched["october"].unit_notices) == (13, 13)  # 1 certified
    assert batched["hunan-2022"].carried_over == 1
    assert (batched["updated"].created, batched["updated"].updated, batched["updated"].unchanged) == (3, 7, 15)
    expected, found = dump(one), dump(bulk)
    for table in DUMPED:
        assert found[table] == expected[table], table
    assert len(found["events"]) > 50 and len(found["outbox"]) > 20 and len(found["case_counts"]) > 5
    for db in (one, bulk):
        report = verify(db)
        assert report.ok, report.findings
        assert db.count_differences() == []


# ---------------------------------------------------------------- conflicts, and errors midway

def _shanxi(db: Database, units: int = 12) -> list[int]:
    """``units`` Shanxi units with a contact and the 2021 round opened: the case ids."""
    seed_jurisdictions(db)
    lines = ["name,jurisdiction,category,contact_name,contact_email"]
    lines += [f"单位{i:02d},{'shanxi' if i % 2 else 'shanxi-taiyuan'},行政机关,张联络,u{i}@units.example.cn"
              for i in range(units)]
    import_units_data(db, ("\n".join(lines) + "\n").encode(), SOURCE, IMPORTED, actor=OPERATOR)
    add_coordinator(db, "shanxi", "王协调", "wang@bureau.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
               calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=OPENED)
    with db.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT id FROM cases ORDER BY id")]


def _misses(db: Database, case_id: int) -> list[str]:
    with db.unit_of_work() as uow:
        return [e.payload["milestone"] for e in uow.events(case_id) if e.type == "DeadlineMissed"]


def _outbox(db: Database, kind: str) -> list[int]:
    """The cases of the outbox rows of this kind about the self-assessment (None: a coordinator's), in order."""
    with db.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql(
            f"SELECT case_id FROM outbox WHERE kind = '{kind}' AND milestone = 'self_assessment' ORDER BY id")]


def _counting_conflicts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    raised: list[str] = []
    real = SqlCaseStore.append_many

    def append_many(self: SqlCaseStore, changes: Any) -> None:
        try:
            real(self, changes)
        except ConflictError as exc:
            raised.append(str(exc))
            raise

    monkeypatch.setattr(SqlCaseStore, "append_many", append_many)
    return raised


def test_a_batch_with_a_case_changed_after_it_was_read_is_retried_on_fresh_rows(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _shanxi(db)
    monkeypatch.setattr(deadlines, "BATCH", 5)
    sweep(db, CALENDARS, at(date(2021, 6, 6)))  # (the contact form's misses: not this test's)
    real = SqlCaseStore.get_many
    raced: list[int] = []

    def get_many(self: SqlCaseStore, ids: Any) -> Any:
        found = real(self, ids)
        if not raced:  # after the sweep read its first batch, the unit of its third case acts on it (in the
            # sweep's transaction: on SQLite nobody else can write while the sweep holds the write lock)
            case = found[ids[2]]
            take(self, case, "give_contact_form", {"how": "confirmed", "contacts": 1}, unit_actor(case.unit_id),
                 at(date(2021, 10, 21)))
            raced.append(case.id)
        return found

    monkeypatch.setattr(SqlCaseStore, "get_many", get_many)
    conflicts = _counting_conflicts(monkeypatch)
    report = sweep(db, CALENDARS, at(date(2021, 10, 21)))

    assert raced == [cases[2]]
    assert len(conflicts) == 1 and f"case {cases[2]} changed" in conflicts[0]
    assert (report.missed, report.unit_notices) == (12, 12)
    assert all(_misses(db, c) == ["contact_form", "self_assessment"] for c in cases)
    assert _outbox(db, "missed") == cases  # one notice each, in case order
    with db.unit_of_work() as uow:  # the first attempt, the racing action with it, was rolled back whole
        assert "ContactFormGiven" not in [e.type for e in uow.events(cases[2])]
    assert verify(db).ok and db.count_differences() == []


@pytest.mark.postgres
def test_on_postgres_a_case_changed_by_another_transaction_after_the_sweep_read_it_is_retried(
        pg_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _shanxi(pg_db)
    monkeypatch.setattr(deadlines, "BATCH", 5)
    sweep(pg_db, CALENDARS, at(date(2021, 6, 6)))
    real = SqlCaseStore.get_many
    raced: list[int] = []

    def get_many(self: SqlCaseStore, ids: Any) -> Any:
        found = real(self, ids)
        if not raced:  # another connection: the unit confirms its contact form, committed
            raced.append(found[ids[2]].id)
            give_contact_form(pg_db, found[ids[2]].unit_id, None, unit_actor(found[ids[2]].unit_id),
                              at(date(2021, 10, 21)))
        return found

    monkeypatch.setattr(SqlCaseStore, "get_many", get_many)
    conflicts = _counting_conflicts(monkeypatch)
    report = sweep(pg_db, CALENDARS, at(date(2021, 10, 21)))

    assert len(conflicts) == 1 and f"case {cases[2]} changed" in conflicts[0]
    assert report.missed == 12
    with pg_db.unit_of_work() as uow:
        assert [e.type for e in uow.events(cases[2])][-2:] == ["ContactFormGiven", "DeadlineMissed"]
    assert all(_misses(pg_db, c) == ["contact_form", "self_assessment"] for c in cases)
    assert verify(pg_db).ok and pg_db.count_differences() == []


def test_a_sweep_stopped_in_a_batch_keeps_the_batches_before_and_nothing_of_it(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = _shanxi(db)
    monkeypatch.setattr(deadlines, "BATCH", 5)
    sweep(db, CALENDARS, at(date(2021, 6, 6)))
    real = deadlines.take_many
    batches: list[int] = []

    def stopping(uow: Any, owing: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(uow, owing, *args, **kwargs)
        batches.append(len(owing))
        if len(batches) == 2:
            raise RuntimeError("the process stopped")  # after the second batch's writes, before its commit
        return result

    with monkeypatch.context() as patched:
        patched.setattr(deadlines, "take_many", stopping)
        with pytest.raises(RuntimeError, match="stopped"):
            sweep(db, CALENDARS, at(date(2021, 10, 21)))
    assert batches == [5, 5]
    assert [len(_misses(db, c)) for c in cases] == [2] * 5 + [1] * 7
    assert _outbox(db, "missed") == cases[:5] and _outbox(db, "digest") == []
    assert verify(db).ok and db.count_differences() == []

    again = sweep(db, CALENDARS, at(date(2021, 10, 21)))
    assert (again.missed, again.unit_notices) == (7, 7) and again.digests > 0
    assert all(_misses(db, c) == ["contact_form", "self_assessment"] for c in cases)
    assert _outbox(db, "missed") == cases
    assert verify(db).ok and db.count_differences() == []


def _units(db: Database) -> tuple[int, list[tuple[Any, ...]], int]:
    with db.engine.connect() as conn:
        return (conn.exec_driver_sql("SELECT COUNT(*) FROM units").scalar_one(),
                [tuple(r) for r in conn.exec_driver_sql("SELECT * FROM agency_counts ORDER BY 1, 2, 3")],
                conn.exec_driver_sql("SELECT COUNT(*) FROM operator_events").scalar_one())


@pytest.mark.parametrize("bad", ["an unknown jurisdiction on the last line", "line 13 repeats line 3",
                                 "a row of too many cells on the last line"])
def test_a_roster_with_a_problem_after_rows_were_written_imports_nothing(
        db: Database, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setattr(directory_service, "ADD_BATCH", 3)  # rows are written before the problem is read
    _shanxi(db, 2)
    before = _units(db)
    lines = ["name,jurisdiction,category"] + [f"新单位{i:02d},shanxi,行政机关" for i in range(12)]
    lines.append({"an unknown jurisdiction on the last line": "新单位99,nowhere,行政机关",
                  "line 13 repeats line 3": "新单位01,shanxi,行政机关",
                  "a row of too many cells on the last line": "新单位99,shanxi,行政机关,多余"}[bad])
    with pytest.raises(InvalidInput) as refused:
        import_units_data(db, ("\n".join(lines) + "\n").encode(), SOURCE, IMPORTED, actor=OPERATOR)
    [problem] = refused.value.problems
    assert problem.where.startswith(f"{SOURCE}:14"), problem
    assert _units(db) == before


def test_the_reader_s_problems_are_reported_before_the_rows_problems_as_before(db: Database) -> None:
    _shanxi(db, 1)
    data = ("name,jurisdiction,category\n新单位,shanxi,不是类别\n好单位,shanxi,行政机关\n坏行,shanxi,行政机关,多余\n"
            "又一个,nowhere,行政机关\n").encode()
    with pytest.raises(InvalidInput) as streamed:
        import_units_data(db, data, SOURCE, IMPORTED, actor=OPERATOR)
    with pytest.raises(InvalidInput) as listed:
        import_unit_rows(db, read_units(data, SOURCE), SOURCE, IMPORTED, actor=OPERATOR)
    wheres = [p.where for p in streamed.value.problems]
    assert wheres == [f"{SOURCE}:4", f"{SOURCE}:2.category", f"{SOURCE}:5.jurisdiction"]
    assert streamed.value.problems == listed.value.problems
    assert (streamed.value.problem_count, str(streamed.value)) == (listed.value.problem_count, str(listed.value))


# ---------------------------------------------------------------- the counts, by hand

def test_the_counts_of_a_round_opened_and_missed_in_bulk_are_the_rows_counted(db: Database,
                                                                               small_batches: None) -> None:
    cases = _shanxi(db, 10)
    sweep(db, CALENDARS, at(date(2021, 6, 6)))
    with db.engine.connect() as conn:
        kept, agencies = counts.kept(counts.OnConnection(conn).rows, None)
    by_place = Counter("shanxi" if i % 2 else "shanxi-taiyuan" for i in range(10))
    level = {"shanxi": "provincial", "shanxi-taiyuan": "city"}
    assert +kept == {("shanxi-2021", j, level[j], "registered", True, "contact_form"): n for j, n in by_place.items()}
    assert +agencies == {(j, level[j], 0): n for j, n in by_place.items()}
    sweep(db, CALENDARS, at(date(2021, 10, 21)))
    with db.engine.connect() as conn:
        kept, _ = counts.kept(counts.OnConnection(conn).rows, None)
    assert +kept == {("shanxi-2021", j, level[j], "registered", True, "contact_form,self_assessment"): n
                     for j, n in by_place.items()}
    assert sum(kept.values()) == len(cases)
    assert db.count_differences() == []


# ---------------------------------------------------------------- a roster read as it is imported

def test_a_roster_is_written_as_it_is_read_not_after_every_row_is_held(db: Database,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    seed_jurisdictions(db)
    monkeypatch.setattr(directory_service, "ADD_BATCH", 3)
    read: list[int] = []
    real_stream = files_module.stream_units

    def counting(*args: Any, **kwargs: Any) -> Any:
        stream = real_stream(*args, **kwargs)
        rows = stream.rows

        def counted() -> Iterator[Any]:
            for r in rows:
                read.append(r.line)
                yield r

        stream._rows = counted()
        return stream

    written_after: list[int] = []
    real_add = SqlDirectory.add_units

    def add_units(self: SqlDirectory, units: Any, now: datetime) -> int:
        written_after.append(len(read))
        return real_add(self, units, now)

    monkeypatch.setattr(files_module, "stream_units", counting)
    monkeypatch.setattr(SqlDirectory, "add_units", add_units)
    data = ("name,jurisdiction,category\n" + "".join(f"单位{i},shanxi,行政机关\n" for i in range(10))).encode()
    assert import_units_data(db, data, SOURCE, IMPORTED, actor=OPERATOR).created == 10
    assert written_after == [3, 6, 9, 10]  # a batch written as soon as it was read; the rest at the end
    assert db.count_differences() == []


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_roster_streamed_has_the_rows_and_problems_of_the_roster_read_whole(kind: str) -> None:
    from ..security.test_spreadsheets import package, row, sheet

    cells = [("单位名称", "所属地区", "类别"), ("甲", "shanxi", "行政机关"), ("乙", "shanxi", "行政机关", "多余"),
             ("", "", ""), ("丙", "hunan", "党的机关")]
    data = (package(sheet(*(row(r, c) for r, c in enumerate(cells, start=1)))) if kind == "xlsx"
            else "\n".join(",".join(c) for c in cells).encode() + b"\n")
    whole = read_units(data, f"名单.{kind}")
    with stream_units(data, f"名单.{kind}") as stream:
        first = next(stream.rows)
        assert (first.line, stream.problem_count) == (2, 0)  # read as asked for: line 3 not yet
        rest = list(stream.rows)
        assert [first, *rest] == whole.rows and [r.line for r in whole.rows] == [2, 5]
        assert (stream.problems, stream.problem_count) == (whole.problems, whole.problem_count) and whole.problems


def test_a_roster_with_a_bad_header_is_refused_before_any_row_is_asked_for() -> None:
    with pytest.raises(InvalidInput, match="bad header"):
        stream_units("名字,地区\n张三,shanxi\n".encode(), SOURCE)
