"""The write side: cases and their events in plain SQL on the pooled DB-API connection.

Every transition is: load the case row, decide, UPDATE the row guarded by its version,
INSERT the hash-chained event, commit. Building SQLAlchemy statements per call costs
more than the fsync (see docs/benchmarks.md), so this path uses fixed SQL text on the
driver's cursor; the same contract tests run it on SQLite and PostgreSQL.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from ... import faults
from ...domain.calendar import RequiredDocument
from ...domain.case import CaseState, Notice, RoundContext, apply, registration_event
from ...domain.duties import stream_key
from ...domain.errors import AlreadyExists, ConflictError, NotFound
from ...domain.events import GENESIS_HASH, Event, canonical_json
from ...domain.lifecycle import CERTIFIED_STATES, TERMINAL_STATES
from ...domain.operator import OperatorEvent
from ...domain.operator import stream_key as operator_key
from ...domain.policy import policy_from_dict
from ...domain.rubric import rubric_from_dict
from ...service.ports import ChainHead, FilingRecord, Remembered
from . import counts
from .accounts import SqlAccounts
from .audit_runs import SqlAuditRuns
from .channels import SqlChannels
from .directory import SqlDirectory
from .duty_store import SqlDuties
from .engine import SQLITE_BEGIN_OPTION, prepare_sqlite_connection
from .operator_log import SqlOperatorLog, all_operator_events
from .outbox import SqlOutbox
from .oversight import SqlOversight
from .read import SqlReadModels
from .rounds import SqlRounds
from .sign_ins import SqlSignIns
from .simulations import SqlSimulations
from .tokens import SqlTokens

S = TypeVar("S")
T = TypeVar("T")


def _each_call(engine: Engine, store: Callable[[Connection], S]) -> S:
    """The store ``S``, each of whose methods runs on a connection of its own (the proxy has
    the store's methods, which is what the cast says)."""
    return cast(S, _EachCall(engine, store))


class _EachCall:
    """A store read on a connection of its own for each call (outside a unit of work)."""

    def __init__(self, engine: Engine, store: Callable[[Connection], Any]) -> None:
        self._engine, self._store = engine, store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name in getattr(self._store, "WRITES", ()):
            raise RuntimeError(f"{name} writes: call it through a unit of work (uow.<store>.{name}), where it "
                               "commits with the rest or not at all")

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._engine.connect() as conn:
                return method(self._store(conn), *args, **kwargs)

        call.__name__ = name
        return call

class _Within:
    """The ``EventSource`` of one jurisdiction subtree."""

    def __init__(self, db: Database, path: str | None) -> None:
        self.db, self.path = db, path

    def all_cases(self) -> Iterator[CaseState]:
        return self.db.all_cases(self.path)

    def all_events(self) -> Iterator[Event]:
        return self.db.all_events(self.path)

    def rubric_of(self, round_id: str) -> Any:
        return self.db.rubric_of(round_id)

    def all_duty_streams(self) -> Iterator[Any]:
        return self.db.all_duty_streams(self.path)

    def all_duty_events(self) -> Iterator[Any]:
        return self.db.all_duty_events(self.path)

    def chain_heads(self) -> Iterator[ChainHead]:
        return self.db.chain_heads(self.path)

    def all_operator_events(self) -> Iterator[OperatorEvent]:
        return self.db.all_operator_events(self.path)

    def all_filings(self) -> Iterator[FilingRecord]:
        return self.db.all_filings(self.path)

    def count_differences(self) -> list[str]:
        return self.db.count_differences(self.path)


_CASE_COLUMNS = ("id, round_id, unit_id, state, version, last_hash, carried_over_from, self_total, "
                 "verified_total, recheck_total, passed, rectification_due, registered_at, updated_at, "
                 "self_entries, evidence, missed, overdue, documents, contact_form, held_title")
_EVENT_COLUMNS = "position, case_id, seq, type, actor, occurred_at, payload, prev_hash, hash"

_SQL = {
    "get_case": f"SELECT {_CASE_COLUMNS} FROM cases WHERE id = :id",
    "find_case": f"SELECT {_CASE_COLUMNS} FROM cases WHERE round_id = :round_id AND unit_id = :unit_id",
    "insert_case": (
        "INSERT INTO cases (round_id, unit_id, state, version, last_hash, carried_over_from, passed, "
        "registered_at, updated_at, overdue, contact_form) VALUES (:round_id, :unit_id, 'registered', 0, :last_hash, "
        ":carried_over_from, NULL, :now, :now, FALSE, FALSE) RETURNING id"
    ),
    "update_case": (
        "UPDATE cases SET state = :state, version = :version, last_hash = :last_hash, "
        "self_total = :self_total, verified_total = :verified_total, recheck_total = :recheck_total, "
        "passed = :passed, rectification_due = :rectification_due, updated_at = :updated_at, "
        "self_entries = :self_entries, evidence = :evidence, missed = :missed, overdue = :overdue, "
        "documents = :documents, contact_form = :contact_form, held_title = :held_title "
        "WHERE id = :id AND version = :expected"
    ),
    "insert_event": (
        "INSERT INTO events (case_id, seq, type, actor, occurred_at, payload, prev_hash, hash) "
        "VALUES (:case_id, :seq, :type, :actor, :occurred_at, :payload, :prev_hash, :hash)"
    ),
    "case_events": f"SELECT {_EVENT_COLUMNS} FROM events WHERE case_id = :case_id ORDER BY seq",
    "round": "SELECT id, policy, pass_mark, max_total, rubric_data, documents FROM rounds WHERE id = :id",
    "unit_exists": "SELECT 1 FROM units WHERE id = :id",
    "case_exists": "SELECT 1 FROM cases WHERE id = :id",
    "open_cases": ("SELECT id FROM cases WHERE unit_id = :unit_id AND state NOT IN "
                   f"({', '.join(repr(s) for s in sorted(TERMINAL_STATES))}) ORDER BY id"),
    "recall": "SELECT what, case_id, seq, ref, fingerprint FROM idempotency_keys WHERE key = :key",
    "notice": ("INSERT INTO outbox (dedupe_key, kind, round_id, case_id, milestone, due_on, status, attempts, "
               "next_attempt_at, created_at) VALUES (:key, :kind, :round_id, :case_id, :milestone, :due_on, "
               "'pending', 0, :now, :now) ON CONFLICT (dedupe_key) DO NOTHING"),
    "remember": ("INSERT INTO idempotency_keys (key, what, case_id, seq, ref, fingerprint, created_at) "
                 "VALUES (:key, :what, :case_id, :seq, :ref, :fingerprint, :created_at)"),
}
_PARAM = re.compile(r"(?<!:):(\w+)")


def _pg(sql: str) -> str:
    return _PARAM.sub(r"%(\1)s", sql)


# The bulk paths (``get_many``, ``create_many``, ``append_many``): a batch of ids is one parameter,
# a JSON array on SQLite (one statement text whatever the batch's size, so it stays in the
# driver's statement cache) and an array on PostgreSQL.
_IN_IDS = {True: "IN (SELECT value FROM json_each(:ids))", False: "= ANY(:ids)"}
_MANY_TEXT = {
    "get_cases": f"SELECT {_CASE_COLUMNS} FROM cases WHERE id {{in_ids}} ORDER BY id",
    "heads": "SELECT id, last_hash FROM cases WHERE id {in_ids}",
    "unit_places": "SELECT id, jurisdiction_id, level FROM units WHERE id {in_ids}",
    "round_cases": "SELECT unit_id, id FROM cases WHERE round_id = :round_id AND unit_id {in_ids}",
    "cases_exist": "SELECT id FROM cases WHERE id {in_ids}",
    # the one-at-a-time INSERT without its RETURNING (executemany returns no rows)
    "insert_cases": _SQL["insert_case"].removesuffix(" RETURNING id"),
}


def _many_sql(sqlite: bool) -> dict[str, str]:
    texts = {k: v.replace("{in_ids}", _IN_IDS[sqlite]) for k, v in _MANY_TEXT.items()}
    return texts if sqlite else {k: _pg(v) for k, v in texts.items()}


_MANY_SQL = {True: _many_sql(True), False: _many_sql(False)}
_CHUNK = 1000  # ids per statement of a bulk read
_NOTHING_READ: tuple[tuple[Any, Any], ...] = ((object(), None),) * 4  # a case row not read in this unit of work


def _json_list(value: Any) -> str | None:
    """A list column's text, as ``append`` writes it."""
    return json.dumps(value, ensure_ascii=False) if value else None


def _chunks(items: Sequence[T], size: int | None = None) -> Iterator[Sequence[T]]:
    size = size or _CHUNK
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Codec:
    """Python values ↔ driver values, per dialect (what SQLAlchemy's types do on the ORM side)."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def dt_out(self, value: datetime) -> Any:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: times must be timezone-aware")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds") if self.sqlite else value

    def dt_in(self, value: datetime | str) -> datetime:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def date_out(self, value: date | None) -> Any:
        return None if value is None else (value.isoformat() if self.sqlite else value)

    @staticmethod
    def date_in(value: Any) -> date | None:
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(value)

    @staticmethod
    def dec_out(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    @staticmethod
    def dec_in(value: Any) -> Decimal | None:
        return None if value is None else Decimal(value)

    @staticmethod
    def json_in(value: Any) -> Any:
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def case_from_row(self, row: Any) -> CaseState:
        return CaseState(
            id=row[0], round_id=row[1], unit_id=row[2], state=row[3], version=row[4], last_hash=row[5],
            carried_over_from=row[6], self_total=self.dec_in(row[7]), verified_total=self.dec_in(row[8]),
            recheck_total=self.dec_in(row[9]), passed=None if row[10] is None else bool(row[10]),
            rectification_due=self.date_in(row[11]), registered_at=self.dt_in(row[12]),
            updated_at=self.dt_in(row[13]), self_entries=None if row[14] is None else json.loads(row[14]),
            evidence=tuple(tuple(e) for e in json.loads(row[15])) if row[15] else (),
            missed=tuple((m, tuple(states)) for m, states in json.loads(row[16])) if row[16] else (),
            overdue=bool(row[17]),
            documents=tuple(tuple(d) for d in json.loads(row[18])) if row[18] else (),
            contact_form=bool(row[19]), held_title=row[20],
        )

    def event_from_row(self, row: Any) -> Event:
        return Event(case_id=row[1], seq=row[2], type=row[3], actor=row[4], occurred_at=self.dt_in(row[5]),
                     payload=json.loads(row[6]), prev_hash=row[7], hash=row[8], position=row[0],
                     payload_text=row[6])


class SqlCaseStore:
    """A unit of work over one pooled connection and one transaction.

    The hot path runs on the pooled DB-API connection itself (checking out a
    SQLAlchemy ``Connection`` costs about as much as the rest of a transition);
    ``core=True`` also opens a SQLAlchemy ``Connection`` on the same transaction for
    set-based statements (opening a round, reports).
    """

    def __init__(self, database: Database, core: bool = False, read_only: bool = False) -> None:
        self._db = database
        self._codec = database.codec
        self._sql = database.sql
        self._done = False
        self._conn = None
        self._texts: dict[int, tuple[tuple[Any, Any], ...]] = {}
        self._rounds_read: dict[str, RoundContext] = {}
        self._raw: Any  # the driver's DB-API connection (sqlite3 or psycopg): typed by neither
        if core:
            self._conn = database.engine.connect()
            if database.is_sqlite and not read_only:  # a reader does not queue behind writers
                self._conn.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            self._tx = self._conn.begin()
            self._raw = self._conn.connection.dbapi_connection
            self._cur = self._raw.cursor()
        elif database.is_sqlite:
            self._raw = database.sqlite_connection()
            self._cur = self._raw.cursor()
            # Take the write lock up front: upgrading a read lock later can fail
            # with SQLITE_BUSY instead of waiting for the busy timeout.
            self._cur.execute("BEGIN IMMEDIATE")
        else:
            self._raw = database.engine.raw_connection()
            self._cur = self._raw.cursor()

    @property
    def connection(self) -> Connection:
        """The SQLAlchemy connection of this unit of work (same transaction); only with core=True."""
        if self._conn is None:
            raise RuntimeError("this unit of work was opened without core=True: open it with "
                               "unit_of_work(core=True) to use the other stores in its transaction")
        return self._conn

    # -- the other stores, bound to this transaction
    @property
    def directory(self) -> SqlDirectory:
        return SqlDirectory(self.connection)

    @property
    def tokens(self) -> SqlTokens:
        return SqlTokens(self.connection)

    @property
    def accounts(self) -> SqlAccounts:
        return SqlAccounts(self.connection)

    @property
    def sign_ins(self) -> SqlSignIns:
        return SqlSignIns(self.connection)

    @property
    def audit_runs(self) -> SqlAuditRuns:
        return SqlAuditRuns(self.connection)

    @property
    def channels(self) -> SqlChannels:
        return SqlChannels(self.connection)

    @property
    def operator(self) -> SqlOperatorLog:
        return SqlOperatorLog(self.connection)

    @property
    def rounds(self) -> SqlRounds:
        return SqlRounds(self.connection)

    @property
    def outbox(self) -> SqlOutbox:
        return SqlOutbox(self.connection)

    @property
    def oversight(self) -> SqlOversight:
        return SqlOversight(self.connection)

    @property
    def duties(self) -> SqlDuties:
        return SqlDuties(self.connection)

    @property
    def simulations(self) -> SqlSimulations:
        return SqlSimulations(self.connection)

    @property
    def read(self) -> SqlReadModels:
        return SqlReadModels(self.connection)

    # -- reads
    def round_context(self, round_id: str) -> RoundContext:
        cached = self._db.round_cache.get(round_id) or self._rounds_read.get(round_id)
        if cached is not None:
            return cached
        self._cur.execute(self._sql["round"], {"id": round_id})
        row = self._cur.fetchone()
        if row is None:
            raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
        policy = policy_from_dict(self._codec.json_in(row[1]), f"round {round_id} policy")
        rubric = rubric_from_dict(self._codec.json_in(row[4]), f"round {round_id} rubric")
        documents = tuple(RequiredDocument(**d) for d in self._codec.json_in(row[5]) or ())
        ctx = RoundContext(row[0], policy, Decimal(row[2]), Decimal(row[3]), rubric, documents)
        # Kept for the other units of work once this one commits: a round read in a transaction
        # that rolls back (the one that was opening it) must not outlive it.
        self._rounds_read[round_id] = ctx
        return ctx

    def _case(self, row: Any) -> CaseState:
        return self._codec.case_from_row(row)

    def get(self, case_id: int) -> CaseState:
        self._cur.execute(self._sql["get_case"], {"id": case_id})
        row = self._cur.fetchone()
        if row is None:
            raise NotFound(f"case {case_id} does not exist", f"案件 {case_id} 不存在", case_id=case_id)
        case = self._case(row)
        # The JSON columns as read: written back as they are when a transition leaves them alone.
        self._texts[case_id] = ((case.self_entries, row[14]), (case.evidence, row[15]), (case.missed, row[16]),
                                (case.documents, row[18]))
        return case

    def find(self, round_id: str, unit_id: int) -> CaseState | None:
        self._cur.execute(self._sql["find_case"], {"round_id": round_id, "unit_id": unit_id})
        row = self._cur.fetchone()
        return None if row is None else self._case(row)

    def open_case_ids(self, unit_id: int) -> list[int]:
        self._cur.execute(self._sql["open_cases"], {"unit_id": unit_id})
        return [row[0] for row in self._cur.fetchall()]

    def events(self, case_id: int) -> list[Event]:
        self._cur.execute(self._sql["case_events"], {"case_id": case_id})
        return [self._codec.event_from_row(r) for r in self._cur.fetchall()]

    # -- writes
    def create(self, round_id: str, unit_id: int, actor: str, now: datetime,
               carried_over_from: int | None = None) -> tuple[CaseState, Event]:
        self.round_context(round_id)
        self._cur.execute(self._sql["unit_exists"], {"id": unit_id})
        if self._cur.fetchone() is None:
            raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在", unit_id=unit_id)
        if self.find(round_id, unit_id) is not None:
            raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                f"单位 {unit_id} 在轮次 {round_id} 中已有案件", round_id=round_id, unit_id=unit_id)
        if carried_over_from is not None:  # rare (a carried-over unit): checked, not left to the foreign key
            self._cur.execute(self._sql["case_exists"], {"id": carried_over_from})
            if self._cur.fetchone() is None:
                raise NotFound(f"case {carried_over_from} (carried over from) does not exist",
                               f"结转来源案件 {carried_over_from} 不存在", case_id=carried_over_from)
        c = self._codec
        try:
            self._cur.execute(self._sql["insert_case"], {
                "round_id": round_id, "unit_id": unit_id, "last_hash": GENESIS_HASH,
                "carried_over_from": carried_over_from, "now": c.dt_out(now)})
        except self._db.integrity_errors as exc:  # registered at the same moment by someone else
            raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                f"单位 {unit_id} 在轮次 {round_id} 中已有案件",
                                round_id=round_id, unit_id=unit_id) from exc
        (case_id,) = self._cur.fetchone()
        event = registration_event(case_id, round_id, unit_id, actor, now, carried_over_from)
        after = apply(None, event)
        before = CaseState(case_id, round_id, unit_id, "registered", 0, GENESIS_HASH, carried_over_from,
                           registered_at=now, updated_at=now)
        self.append(before, event, after)
        return after, event

    def append(self, before: CaseState, event: Event, after: CaseState) -> None:
        c = self._codec
        # SQLite keeps times as naive UTC text: the hashed UTC ISO text, reshaped.
        when = f"{event.occurred_iso[:10]} {event.occurred_iso[11:26]}" if c.sqlite else event.occurred_at
        self._cur.execute(self._sql["update_case"], {
            "state": after.state, "version": after.version, "last_hash": after.last_hash,
            "self_total": c.dec_out(after.self_total), "verified_total": c.dec_out(after.verified_total),
            "recheck_total": c.dec_out(after.recheck_total), "passed": after.passed,
            "rectification_due": c.date_out(after.rectification_due),
            "updated_at": when if after.updated_at in (None, event.occurred_at) else c.dt_out(after.updated_at),
            "self_entries": self._text(before.id, 0, after.self_entries,
                                       lambda v: None if v is None else canonical_json(v)),
            "evidence": self._text(before.id, 1, after.evidence,
                                   lambda v: json.dumps(v, ensure_ascii=False) if v else None),
            "missed": self._text(before.id, 2, after.missed,
                                 lambda v: json.dumps(v, ensure_ascii=False) if v else None),
            "overdue": after.overdue,
            "documents": self._text(before.id, 3, after.documents,
                                    lambda v: json.dumps(v, ensure_ascii=False) if v else None),
            "contact_form": after.contact_form, "held_title": after.held_title,
            "id": before.id, "expected": before.version,
        })
        if self._cur.rowcount != 1:
            raise ConflictError(
                f"case {before.id} changed since it was read (expected version {before.version}); reload and retry",
                f"案件 {before.id} 在读取后已被他人修改（读取时为第 {before.version} 版），请刷新后重试",
                case_id=before.id, expected_version=before.version)
        try:
            self._cur.execute(self._sql["insert_event"], {
                "case_id": event.case_id, "seq": event.seq, "type": event.type, "actor": event.actor,
                "occurred_at": when, "payload": event.payload_json, "prev_hash": event.prev_hash, "hash": event.hash,
            })
        except self._db.integrity_errors as exc:
            raise ConflictError(f"case {before.id}: event #{event.seq} already exists",
                                f"案件 {before.id}：第 {event.seq} 号事件已存在，请刷新后重试",
                                case_id=before.id) from exc
        self._count(before, after)

    def _count(self, before: CaseState, after: CaseState) -> None:
        """Keep the progress counts (adapters/db/counts.py) in this transaction."""
        was = None if before.version == 0 else (before.state, before.overdue, counts.missed_key(before.missed))
        now = (after.state, after.overdue, counts.missed_key(after.missed))
        certified = (before.state in CERTIFIED_STATES) != (after.state in CERTIFIED_STATES)
        if was == now and not certified:
            return
        run = counts.OnCursor(self._cur, self._codec.sqlite).run
        counts.move_case(run, after.round_id, after.unit_id, was, now)
        if certified:
            counts.recertify(run, after.unit_id)

    def notify(self, case: CaseState, notice: Notice, now: datetime) -> None:
        """Write the notice to the outbox in this transaction (once per dedupe key)."""
        c = self._codec
        self._cur.execute(self._sql["notice"], {"key": notice.dedupe_key, "kind": notice.kind,
                                                "round_id": case.round_id, "case_id": case.id,
                                                "milestone": notice.milestone, "due_on": c.date_out(notice.due_on),
                                                "now": c.dt_out(now)})

    def recall(self, key: str) -> Remembered | None:
        """What the request with this idempotency key did, if it was carried out."""
        self._cur.execute(self._sql["recall"], {"key": key})
        row = self._cur.fetchone()
        return None if row is None else Remembered(*row)

    def remember(self, key: str, what: str, now: datetime, *, fingerprint: str, case_id: int | None = None,
                 seq: int | None = None, ref: str | None = None) -> None:
        """Record the request's result in this transaction (a concurrent twin fails on the key)."""
        self._cur.execute("SAVEPOINT remember")  # a refusal leaves the transaction usable (PostgreSQL)
        try:
            self._cur.execute(self._sql["remember"], {"key": key, "what": what, "case_id": case_id, "seq": seq,
                                                      "ref": ref, "fingerprint": fingerprint,
                                                      "created_at": self._codec.dt_out(now)})
        except self._db.integrity_errors as exc:
            self._cur.execute("ROLLBACK TO SAVEPOINT remember")
            raise ConflictError(f"idempotency key {key!r} is being used by a concurrent request",
                                f"幂等键 {key!r} 正被另一个同时进行的请求使用", key=key) from exc
        self._cur.execute("RELEASE SAVEPOINT remember")

    def _text(self, case_id: int, column: int, value: Any, encode: Any) -> Any:
        """The column's text: as read when the value is the very object read, else encoded."""
        known = self._texts.get(case_id)
        if known is not None and known[column][0] is value:
            return known[column][1]
        return encode(value)

    # -- many at once: a round opened, the sweep's misses (one statement per batch, not per case)
    def _ids(self, ids: Sequence[int]) -> Any:
        return json.dumps(list(ids)) if self._codec.sqlite else list(ids)

    def _many(self, name: str, params: dict[str, Any]) -> list[Any]:
        self._cur.execute(_MANY_SQL[self._codec.sqlite][name], params)
        return list(self._cur.fetchall())

    def get_many(self, case_ids: Sequence[int]) -> dict[int, CaseState]:
        """The cases of ``case_ids`` that exist, as stored, by id (one query per thousand ids)."""
        found: dict[int, CaseState] = {}
        for chunk in _chunks(case_ids):
            for row in self._many("get_cases", {"ids": self._ids(chunk)}):
                case = self._case(row)
                # as ``get``: the JSON columns as read, written back as they are when left alone
                self._texts[case.id] = ((case.self_entries, row[14]), (case.evidence, row[15]),
                                        (case.missed, row[16]), (case.documents, row[18]))
                found[case.id] = case
        return found

    def _unit_places(self, unit_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """unit id → (jurisdiction, level) of those that exist."""
        places: dict[int, tuple[str, str]] = {}
        for chunk in _chunks(unit_ids):
            places.update({r[0]: (r[1], r[2]) for r in self._many("unit_places", {"ids": self._ids(chunk)})})
        return places

    def create_many(self, round_id: str, units: Sequence[tuple[int, int | None]], actor: str, now: datetime
                    ) -> list[int]:
        """``create`` for each (unit, carried over from), with the same checks and refusals, a
        thousand at a time (one INSERT statement for their case rows, then their registrations
        appended as ``append_many`` does); the counts moved once for the whole call. The new
        cases' ids, in the order given."""
        self.round_context(round_id)
        created: list[int] = []
        deltas: Counter[counts.CaseKey] = Counter()
        certified: set[int] = set()
        for chunk in _chunks(units):
            places = self._refuse_registrations(round_id, chunk)
            changes = self._create_chunk(round_id, chunk, actor, now)
            self._write_many(changes)
            self._moves(changes, places, deltas, certified)
            created += [before.id for before, _, _ in changes]
        self._count_moves(deltas, certified)
        return created

    def _refuse_registrations(self, round_id: str, units: Sequence[tuple[int, int | None]]
                              ) -> dict[int, tuple[str, str]]:
        """What ``create`` refuses, for a batch: an unknown unit, a unit with a case in the round
        (or twice in the batch), an unknown case carried over from. The units' places."""
        unit_ids = [u for u, _ in units]
        known = self._unit_places(unit_ids)
        taken = {r[0] for r in self._many("round_cases", {"round_id": round_id, "ids": self._ids(unit_ids)})}
        carried = [c for _, c in units if c is not None]
        origins = {r[0] for r in self._many("cases_exist", {"ids": self._ids(carried)})} if carried else set()
        seen: set[int] = set()
        for unit_id, carried_over_from in units:
            if unit_id not in known:
                raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在", unit_id=unit_id)
            if unit_id in taken or unit_id in seen:
                raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                    f"单位 {unit_id} 在轮次 {round_id} 中已有案件", round_id=round_id, unit_id=unit_id)
            if carried_over_from is not None and carried_over_from not in origins:
                raise NotFound(f"case {carried_over_from} (carried over from) does not exist",
                               f"结转来源案件 {carried_over_from} 不存在", case_id=carried_over_from)
            seen.add(unit_id)
        return known

    def _create_chunk(self, round_id: str, units: Sequence[tuple[int, int | None]], actor: str, now: datetime
                      ) -> list[tuple[CaseState, Event, CaseState]]:
        """The batch's case rows inserted (as ``create`` inserts one), and their registrations."""
        at = self._codec.dt_out(now)
        try:
            self._cur.executemany(_MANY_SQL[self._codec.sqlite]["insert_cases"], [
                {"round_id": round_id, "unit_id": unit_id, "last_hash": GENESIS_HASH,
                 "carried_over_from": carried_over_from, "now": at} for unit_id, carried_over_from in units])
        except self._db.integrity_errors as exc:  # registered at the same moment by someone else
            raise AlreadyExists(f"a unit of the batch already has a case in round {round_id}",
                                f"本批单位中已有单位在轮次 {round_id} 中登记了案件", round_id=round_id) from exc
        ids = dict(self._many("round_cases", {"round_id": round_id, "ids": self._ids([u for u, _ in units])}))
        changes = []
        for unit_id, carried_over_from in units:
            case_id = ids[unit_id]
            event = registration_event(case_id, round_id, unit_id, actor, now, carried_over_from)
            before = CaseState(case_id, round_id, unit_id, "registered", 0, GENESIS_HASH, carried_over_from,
                               registered_at=now, updated_at=now)
            changes.append((before, event, apply(None, event)))
        return changes

    def _row_params(self, before: CaseState, event: Event, after: CaseState) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parameters ``append`` gives its UPDATE of the case row and its INSERT of the event
        (the same values: tests/integration/test_bulk_writes.py compares every column written
        both ways, so a column added to ``append`` must be added here too)."""
        c = self._codec
        when = f"{event.occurred_iso[:10]} {event.occurred_iso[11:26]}" if c.sqlite else event.occurred_at
        # the JSON columns as read when the value is the very object read (as ``_text``), else encoded
        known = self._texts.get(before.id) or _NOTHING_READ
        row = {
            "state": after.state, "version": after.version, "last_hash": after.last_hash,
            "self_total": c.dec_out(after.self_total), "verified_total": c.dec_out(after.verified_total),
            "recheck_total": c.dec_out(after.recheck_total), "passed": after.passed,
            "rectification_due": c.date_out(after.rectification_due),
            "updated_at": when if after.updated_at in (None, event.occurred_at) else c.dt_out(after.updated_at),
            "self_entries": known[0][1] if known[0][0] is after.self_entries else (
                None if after.self_entries is None else canonical_json(after.self_entries)),
            "evidence": known[1][1] if known[1][0] is after.evidence else _json_list(after.evidence),
            "missed": known[2][1] if known[2][0] is after.missed else _json_list(after.missed),
            "overdue": after.overdue,
            "documents": known[3][1] if known[3][0] is after.documents else _json_list(after.documents),
            "contact_form": after.contact_form, "held_title": after.held_title,
            "id": before.id, "expected": before.version,
        }
        return row, {"case_id": event.case_id, "seq": event.seq, "type": event.type, "actor": event.actor,
                     "occurred_at": when, "payload": event.payload_json, "prev_hash": event.prev_hash,
                     "hash": event.hash}

    def append_many(self, changes: Sequence[tuple[CaseState, Event, CaseState]]) -> None:
        """``append`` for each (before, event, after), as one UPDATE statement and one INSERT
        statement for the batch, and the counts moved once per key. A case no longer at its
        ``before.version`` (or an event number taken) is ``ConflictError``, as ``append`` says it;
        what the batch wrote before is then undone with the unit of work (roll it back)."""
        if not changes:
            return
        self._write_many(changes)
        deltas: Counter[counts.CaseKey] = Counter()
        certified: set[int] = set()
        self._moves(changes, None, deltas, certified)
        self._count_moves(deltas, certified)

    def _write_many(self, changes: Sequence[tuple[CaseState, Event, CaseState]]) -> None:
        """The UPDATEs of the case rows (guarded by their versions) and the INSERTs of the events."""
        params = [self._row_params(before, event, after) for before, event, after in changes]
        self._cur.executemany(self._sql["update_case"], [row for row, _ in params])
        if self._cur.rowcount != len(changes):
            raise self._stale(changes)
        try:
            self._cur.executemany(self._sql["insert_event"], [event for _, event in params])
        except self._db.integrity_errors as exc:
            raise ConflictError(f"an event of cases {changes[0][0].id}–{changes[-1][0].id} already exists",
                                f"案件 {changes[0][0].id}–{changes[-1][0].id} 中有事件已存在，请刷新后重试",
                                case_id=changes[0][0].id) from exc

    def _stale(self, changes: Sequence[tuple[CaseState, Event, CaseState]]) -> ConflictError:
        """The ConflictError of the first case of the batch that was not at its version (its row
        does not end with this batch's event: a concurrent writer's version may be the same number)."""
        heads = dict(self._many("heads", {"ids": self._ids([b.id for b, _, _ in changes])}))
        before = next((b for b, _, a in changes if heads.get(b.id) != a.last_hash), changes[0][0])
        return ConflictError(
            f"case {before.id} changed since it was read (expected version {before.version}); reload and retry",
            f"案件 {before.id} 在读取后已被他人修改（读取时为第 {before.version} 版），请刷新后重试",
            case_id=before.id, expected_version=before.version)

    def _moves(self, changes: Sequence[tuple[CaseState, Event, CaseState]], places: dict[int, tuple[str, str]] | None,
               deltas: Counter[counts.CaseKey], certified: set[int]) -> None:
        """What ``_count`` does for each change, added to ``deltas`` (per count key) and
        ``certified`` (the units whose certification may have changed)."""
        moves: list[tuple[str, int, counts.Counted | None, counts.Counted]] = []
        for before, _, after in changes:
            was = None if before.version == 0 else (before.state, before.overdue, counts.missed_key(before.missed))
            now = (after.state, after.overdue, counts.missed_key(after.missed))
            if was != now:
                moves.append((after.round_id, after.unit_id, was, now))
            if (before.state in CERTIFIED_STATES) != (after.state in CERTIFIED_STATES):
                certified.add(after.unit_id)
        if moves and places is None:
            places = self._unit_places(sorted({unit_id for _, unit_id, _, _ in moves}))
        if moves and places is not None:
            deltas.update(counts.case_deltas((round_id, *places[unit_id], was, now)
                                             for round_id, unit_id, was, now in moves if unit_id in places))

    def _count_moves(self, deltas: Counter[counts.CaseKey], certified: set[int]) -> None:
        """The counts moved: one upsert per key that changes; then each unit whose certification
        may have changed, once (``_count`` in this transaction, for many cases)."""
        counts.move_cases(self._cur.executemany, self._codec.sqlite, deltas)
        run = counts.OnCursor(self._cur, self._codec.sqlite).run
        for unit_id in sorted(certified):
            counts.recertify(run, unit_id)

    def notify_many(self, notices: Sequence[tuple[CaseState, Notice]], now: datetime) -> int:
        """``notify`` for each (case, notice), as one statement: how many were written (a key
        written before is skipped)."""
        if not notices:
            return 0
        c = self._codec
        at = c.dt_out(now)
        self._cur.executemany(self._sql["notice"], [
            {"key": notice.dedupe_key, "kind": notice.kind, "round_id": case.round_id, "case_id": case.id,
             "milestone": notice.milestone, "due_on": c.date_out(notice.due_on), "now": at}
            for case, notice in notices])
        return max(int(self._cur.rowcount), 0)

    def commit(self) -> None:
        self._cur.close()
        if faults.ACTIVE:
            faults.commit_point("before")
        if self._conn is not None:
            self._tx.commit()
        else:
            self._raw.commit()
        self._done = True
        self._db.round_cache.update(self._rounds_read)
        if faults.ACTIVE:
            faults.commit_point("after")

    def rollback(self) -> None:
        if not self._done:
            self._done = True
            self._cur.close()
            if self._conn is not None:
                self._tx.rollback()
            else:
                self._raw.rollback()

    def close(self) -> None:
        try:
            self.rollback()
        finally:
            if self._conn is not None:
                self._conn.close()
            elif not self._db.is_sqlite:
                self._raw.close()  # back to the pool; SQLite connections stay with their thread


class _UnitOfWork:
    def __init__(self, database: Database, core: bool, read_only: bool = False) -> None:
        self._db = database
        self._core = core or read_only
        self._read_only = read_only
        self._store: SqlCaseStore | None = None

    def __enter__(self) -> SqlCaseStore:
        self._store = SqlCaseStore(self._db, self._core, self._read_only)
        return self._store

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self._store is not None
        self._store.close()  # rolls back unless committed


class Database:
    """The SQL adapter: unit-of-work factory and raw reads over one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        self.codec = Codec(self.dialect)
        self.sql = dict(_SQL) if self.is_sqlite else {k: _pg(v) for k, v in _SQL.items()}
        self.round_cache: dict[str, RoundContext] = {}
        dbapi: Any = engine.dialect.dbapi  # the driver module (sqlite3, psycopg)
        self.integrity_errors: tuple[type[BaseException], ...] = (dbapi.IntegrityError, SAIntegrityError)
        self._local = threading.local()
        # The stores, each read on a connection of its own (writes go through a unit of work).
        self.directory = _each_call(engine, SqlDirectory)
        self.tokens = _each_call(engine, SqlTokens)
        self.accounts = _each_call(engine, SqlAccounts)
        self.sign_ins = _each_call(engine, SqlSignIns)
        self.audit_runs = _each_call(engine, SqlAuditRuns)
        self.channels = _each_call(engine, SqlChannels)
        self.operator = _each_call(engine, SqlOperatorLog)
        self.rounds = _each_call(engine, SqlRounds)
        self.outbox = _each_call(engine, SqlOutbox)
        self.oversight = _each_call(engine, SqlOversight)
        self.duties = _each_call(engine, SqlDuties)
        self.simulations = _each_call(engine, SqlSimulations)
        self.read = _each_call(engine, SqlReadModels)

    def prepare(self) -> None:
        """Create or migrate the schema."""
        from .migrate import upgrade

        upgrade(self.engine)

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def sqlite_connection(self) -> sqlite3.Connection:
        """This thread's own connection for the SQLite write path.

        Checking a connection out of the pool and back costs about as much as the rest
        of a transition, so each thread keeps one (SQLite connections are cheap and a
        file database has no server-side limit); reads and Core work still use the pool.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = self.engine.url.database or ""
            conn = sqlite3.connect(path, check_same_thread=True, cached_statements=64)
            prepare_sqlite_connection(conn, getattr(self.engine, "sqlite_busy_timeout_ms", 10_000))
            self._local.conn = conn
        return conn

    def unit_of_work(self, core: bool = False) -> _UnitOfWork:
        return _UnitOfWork(self, core)

    def reader(self) -> _UnitOfWork:
        """A read-only unit of work (on SQLite it takes no write lock, so it never waits for a sweep)."""
        return _UnitOfWork(self, core=True, read_only=True)

    def stream(self, sql: str, params: dict[str, Any] | None = None, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Rows of a read query, fetched in batches (server-side cursor on PostgreSQL)."""
        sql = sql if self.is_sqlite else _pg(sql)
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor(name="wf_stream") if not self.is_sqlite else raw.cursor()
            cur.execute(sql, params or {})
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                yield from rows
            cur.close()
            if not self.is_sqlite:
                raw.rollback()
        finally:
            raw.close()

    def all_cases(self, within_path: str | None = None) -> Iterator[CaseState]:
        """Every case (of the units in the jurisdiction subtree ``within_path``), in id order."""
        where, params = _within(within_path, "unit_id")
        for row in self.stream(f"SELECT {_CASE_COLUMNS} FROM cases {where} ORDER BY id", params):
            yield self.codec.case_from_row(row)

    def rubric_of(self, round_id: str) -> Any:
        with self.reader() as uow:
            return uow.round_context(round_id).rubric

    def within(self, path: str | None) -> _Within:
        """The event source of one jurisdiction subtree (``None``: everything)."""
        return _Within(self, path)

    def _jurisdictions_within(self, within_path: str | None) -> list[str] | None:
        if within_path is None:
            return None
        return [row[0] for row in self.stream("SELECT id FROM jurisdictions WHERE substr(path, 1, :n) = :path",
                                              {"n": len(within_path), "path": within_path})]

    def all_duty_streams(self, within_path: str | None = None) -> Iterator[Any]:
        from .duty_store import all_streams

        ids = self._jurisdictions_within(within_path)
        with self.engine.connect() as conn:
            yield from list(all_streams(conn, ids))

    def all_duty_events(self, within_path: str | None = None) -> Iterator[Any]:
        from .duty_store import all_duty_events

        ids = self._jurisdictions_within(within_path)
        with self.engine.connect() as conn:
            yield from list(all_duty_events(conn, ids))

    def all_events(self, within_path: str | None = None) -> Iterator[Event]:
        """Every event (of those cases), in case and sequence order."""
        where, params = _within(within_path, "case_id", through_cases=True)
        for row in self.stream(f"SELECT {_EVENT_COLUMNS} FROM events {where} ORDER BY case_id, seq", params):
            yield self.codec.event_from_row(row)

    def chain_heads(self, within_path: str | None = None) -> Iterator[ChainHead]:
        """The last stored event of every case (of those units), by id; then of every duty
        stream (of the subtree's jurisdictions), by round and jurisdiction."""
        where, params = _within(within_path, "case_id", through_cases=True)
        for case_id, seq, hash_ in self.stream(
                "SELECT e.case_id, e.seq, e.hash FROM events e JOIN (SELECT case_id, MAX(seq) AS seq FROM events "
                f"{where} GROUP BY case_id) m ON m.case_id = e.case_id AND m.seq = e.seq ORDER BY e.case_id", params):
            yield ChainHead("case", str(case_id), seq, hash_)
        where = "" if within_path is None else (
            "WHERE jurisdiction_id IN (SELECT id FROM jurisdictions WHERE substr(path, 1, :path_len) = :path)")
        for round_id, jurisdiction_id, seq, hash_ in self.stream(
                "SELECT d.round_id, d.jurisdiction_id, d.seq, d.hash FROM duty_events d JOIN (SELECT round_id, "
                f"jurisdiction_id, MAX(seq) AS seq FROM duty_events {where} GROUP BY round_id, jurisdiction_id) m "
                "ON m.round_id = d.round_id AND m.jurisdiction_id = d.jurisdiction_id AND m.seq = d.seq "
                "ORDER BY d.round_id, d.jurisdiction_id", params):
            yield ChainHead("duties", stream_key(round_id, jurisdiction_id), seq, hash_)
        if within_path is None:  # the operator streams are the whole system's
            for stream, seq, hash_ in self.stream(
                    "SELECT o.stream, o.seq, o.hash FROM operator_events o JOIN (SELECT stream, MAX(seq) AS seq "
                    "FROM operator_events GROUP BY stream) m ON m.stream = o.stream AND m.seq = o.seq "
                    "ORDER BY o.stream"):
                yield ChainHead("operator", operator_key(stream), seq, hash_)

    def count_differences(self, within_path: str | None = None) -> list[str]:
        """Where the progress counts kept with every change differ from a recount of the rows."""
        with self.engine.connect() as conn:
            return counts.differences(within_path, counts.OnConnection(conn).rows)

    def all_operator_events(self, within_path: str | None = None) -> Iterator[OperatorEvent]:
        """Every operator event, by stream then seq (none for a subtree)."""
        if within_path is not None:
            return
        with self.engine.connect() as conn:
            yield from all_operator_events(conn)

    def all_filings(self, within_path: str | None = None) -> Iterator[FilingRecord]:
        """Every filing batch of a jurisdiction in the subtree or above it, in id order."""
        from sqlalchemy import select

        from .tables import filing_batches, jurisdictions

        with self.engine.connect() as conn:
            rows = conn.execute(select(filing_batches, jurisdictions.c.path)
                                .join(jurisdictions, jurisdictions.c.id == filing_batches.c.jurisdiction_id)
                                .order_by(filing_batches.c.id)).all()
        for r in rows:
            if within_path is None or r.path.startswith(within_path) or within_path.startswith(r.path):
                yield FilingRecord(r.id, r.round_id, r.jurisdiction_id, list(self.codec.json_in(r.cases)),
                                   dict(self.codec.json_in(r.totals)), r.filed_at, r.filed_by, r.path)


def _within(path: str | None, column: str, through_cases: bool = False) -> tuple[str, dict[str, Any]]:
    """A WHERE clause keeping the rows of units under a jurisdiction path (prefix compared
    with substr, so '_' and '%' in ids are not wildcards)."""
    if path is None:
        return "", {}
    units = ("SELECT u.id FROM units u JOIN jurisdictions j ON j.id = u.jurisdiction_id "
             "WHERE substr(j.path, 1, :path_len) = :path")
    inner = f"SELECT c.id FROM cases c WHERE c.unit_id IN ({units})" if through_cases else units
    return f"WHERE {column} IN ({inner})", {"path": path, "path_len": len(path)}
