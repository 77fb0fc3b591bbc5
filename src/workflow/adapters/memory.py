"""Every storage port (``service.ports.Storage``) in memory, for fast tests of the services.

It keeps the promises the SQL adapters (``adapters.db``) keep and passes the same contract tests
(``tests/contract``): the same records come back, in the same order; the same refusals are raised
(``AlreadyExists`` for a unique key taken, ``NotFound`` for an unknown row, ``ConflictError`` for
a stale version or an idempotency key remembered twice); the outbox writes a dedupe key once and
hands a due row to one claimant at a time, with a lease; and a unit of work commits everything it
wrote together, or nothing.

How it does it, as plainly as it can:

- The committed data is a snapshot (``_State``: one dict per table, holding immutable rows) that
  is never changed once committed.
- A unit of work takes the store's one write lock for its whole life, so writers go one after
  the other (as SQLite's ``BEGIN IMMEDIATE`` makes them). It writes to its own copies of the
  tables it changes (copy on write) and reads its own writes; ``commit`` makes its state the
  committed one, and leaving without a commit throws it away.
- Reads outside a unit of work (``db.directory.units()``, ...) and readers (``db.reader()``)
  read the snapshot committed at the time, and never wait for a writer.

Rows are copied on the way in (JSON columns as JSON, decimals as their exact text, times in UTC)
and on the way out, so that nothing a caller holds can change what is stored.
"""
from __future__ import annotations

import copy
import itertools
import json
import string
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, cast

from ..domain.calendar import RequiredDocument
from ..domain.case import CaseState, Notice, RoundContext, apply, registration_event
from ..domain.duties import DutyEvent, DutyStatus, DutyStream, stream_key
from ..domain.errors import AlreadyExists, ConflictError, NotFound
from ..domain.events import GENESIS_HASH, Event
from ..domain.lifecycle import CERTIFIED_STATES, STATES, TERMINAL_STATES, Owing
from ..domain.operator import STREAMS as OPERATOR_STREAMS
from ..domain.operator import OperatorEvent, new_operator_event
from ..domain.operator import stream_key as operator_key
from ..domain.policy import policy_from_dict
from ..domain.rubric import Rubric, rubric_from_dict
from ..service.ports import (
    CASE_SORTS,
    AccountRecord,
    AgencyGroup,
    AuditRunRecord,
    CaseFilter,
    CaseGroup,
    CaseReferent,
    CaseRow,
    CaseScope,
    ChainHead,
    ChannelRecord,
    CoordinatorRecord,
    FilingRecord,
    JurisdictionRecord,
    LinkRecord,
    NewUnit,
    OutboxEntry,
    OutboxRecord,
    OutcomeRecord,
    OwingCase,
    Remembered,
    RoundRecord,
    SessionRecord,
    SpotCheckRecord,
    TimelineRow,
    TokenRecord,
    UnitRecord,
)

LOCK_TIMEOUT_SECONDS = 30.0  # how long a unit of work waits for another thread's to end (SQLite: 10 s)


# ---------------------------------------------------------------- values as a database keeps them

def _utc(moment: datetime) -> datetime:
    """An aware time in UTC (as the SQL adapters return times); a naive time is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: times must be timezone-aware")
    return moment.astimezone(UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _dec(value: Any) -> Decimal | None:
    """A decimal as its exact text gives it back (no floating point anywhere)."""
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("floats are not stored; use Decimal")
    return Decimal(format(Decimal(value), "f"))


def _dec_required(value: Any) -> Decimal:
    result = _dec(value)
    if result is None:
        raise ValueError("a decimal is needed here, got None")
    return result


def _json(value: Any) -> Any:
    """The value as a JSON column gives it back (tuples become lists, and nothing is shared)."""
    return json.loads(json.dumps(value, ensure_ascii=False))


def _under(path: str, prefix: str | None) -> bool:
    """Whether ``path`` is in the subtree at ``prefix`` (None: everywhere)."""
    return prefix is None or path.startswith(prefix)


# ---------------------------------------------------------------- the tables

@dataclass(frozen=True, slots=True)
class _Token:
    record: TokenRecord  # without the joined paths
    token_hash: str


@dataclass(frozen=True, slots=True)
class _Simulation:
    scenario: str
    day_done: date | None


@dataclass
class _State:
    """The tables. A committed state is never changed: a unit of work copies a table before it
    writes to it (``_Work.table``), and its rows are immutable."""

    jurisdictions: dict[str, JurisdictionRecord] = field(default_factory=dict)
    units: dict[int, UnitRecord] = field(default_factory=dict)  # path "" (joined when read)
    coordinators: dict[int, CoordinatorRecord] = field(default_factory=dict)  # jurisdiction_name "" (joined)
    rounds: dict[str, RoundRecord] = field(default_factory=dict)  # province_path "" (joined)
    cases: dict[int, CaseState] = field(default_factory=dict)
    events: dict[int, tuple[Event, ...]] = field(default_factory=dict)  # case id → its events, in seq order
    keys: dict[str, Remembered] = field(default_factory=dict)  # idempotency keys (and refusals)
    outbox: dict[int, OutboxRecord] = field(default_factory=dict)
    dedupe: dict[str, int] = field(default_factory=dict)  # the outbox's unique dedupe key → row id
    marks: dict[tuple[str, str, str], datetime] = field(default_factory=dict)  # (round, milestone, stage)
    tokens: dict[int, _Token] = field(default_factory=dict)
    spot_checks: dict[str, SpotCheckRecord] = field(default_factory=dict)  # path "" (joined)
    filings: dict[str, FilingRecord] = field(default_factory=dict)  # path "" (joined)
    outcomes: dict[tuple[str, int], OutcomeRecord] = field(default_factory=dict)  # (check, case)
    streams: dict[tuple[str, str], DutyStream] = field(default_factory=dict)  # (round, jurisdiction)
    duty_events: dict[tuple[str, str], tuple[DutyEvent, ...]] = field(default_factory=dict)
    simulations: dict[str, _Simulation] = field(default_factory=dict)
    accounts: dict[int, AccountRecord] = field(default_factory=dict)  # path None (joined)
    operator_events: dict[str, tuple[OperatorEvent, ...]] = field(default_factory=dict)  # stream → events
    sessions: dict[int, tuple[str, SessionRecord]] = field(default_factory=dict)  # id → (secret hash, session)
    failures: dict[str, tuple[int, datetime, datetime | None]] = field(default_factory=dict)  # login → failures
    links: dict[int, tuple[str, LinkRecord]] = field(default_factory=dict)  # id → (secret hash, link)
    audit_runs: dict[int, AuditRunRecord] = field(default_factory=dict)
    channels: dict[int, ChannelRecord] = field(default_factory=dict)


_TABLES = frozenset(f.name for f in fields(_State))


class _View:
    """What a store reads and where it writes: the committed snapshot, or a unit of work's state."""

    def state(self) -> _State:
        raise NotImplementedError

    def writing(self) -> None:
        """Refuse to write unless this is a unit of work still open for writing."""
        raise NotImplementedError

    def table(self, name: str) -> dict[Any, Any]:
        """The table ``name`` to write to (this unit of work's own copy)."""
        raise NotImplementedError

    def next_id(self, sequence: str) -> int:
        raise NotImplementedError


class _Committed(_View):
    """The data as committed at each call (``db.<store>``): reads only."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db

    def state(self) -> _State:
        return self._db._state

    def writing(self) -> None:
        raise RuntimeError("a store of the database only reads: write through a unit of work "
                           "(with db.unit_of_work(core=True) as uow: uow.<store>...; uow.commit())")

    def table(self, name: str) -> dict[Any, Any]:
        self.writing()
        raise AssertionError("unreachable")

    def next_id(self, sequence: str) -> int:
        self.writing()
        raise AssertionError("unreachable")


class _Work(_View):
    """A unit of work's state: the committed snapshot it started from, with its own copies of
    the tables it wrote to."""

    def __init__(self, db: MemoryDatabase, base: _State, *, writable: bool) -> None:
        self._db = db
        self._state = copy.copy(base)  # shares the committed tables until one is written
        self._copied: set[str] = set()
        self.writable = writable
        self.finished = ""  # "committed" or "rolled back" once it is

    def state(self) -> _State:
        return self._state

    def writing(self) -> None:
        if not self.writable:
            raise RuntimeError("a reader (db.reader()) only reads: write through db.unit_of_work()")
        if self.finished:
            raise RuntimeError(f"this unit of work is {self.finished}: open a new one to write")

    def table(self, name: str) -> dict[Any, Any]:
        self.writing()
        if name not in _TABLES:
            raise KeyError(name)
        if name not in self._copied:
            setattr(self._state, name, dict(getattr(self._state, name)))
            self._copied.add(name)
        table: dict[Any, Any] = getattr(self._state, name)
        return table

    def next_id(self, sequence: str) -> int:
        self.writing()
        return self._db._next_id(sequence)

    def restart(self, base: _State, finished: str) -> None:
        """Read ``base`` from now on; writes are refused (the unit of work is over)."""
        self._state = copy.copy(base)
        self._copied = set()
        self.finished = finished


# ---------------------------------------------------------------- rows in, rows out (the joins)
# A row goes out as a new record: its mutable parts copied, the joined columns (paths, names) filled.

def _unit_out(s: _State, unit: UnitRecord) -> UnitRecord:
    return replace(unit, contacts=copy.deepcopy(unit.contacts), path=s.jurisdictions[unit.jurisdiction_id].path)


def _coordinator_out(s: _State, coordinator: CoordinatorRecord) -> CoordinatorRecord:
    return replace(coordinator, jurisdiction_name=s.jurisdictions[coordinator.jurisdiction_id].name)


def _round_out(s: _State, record: RoundRecord) -> RoundRecord:
    return replace(record, policy=copy.deepcopy(record.policy), rubric_data=copy.deepcopy(record.rubric_data),
                   documents=copy.deepcopy(record.documents), targets=copy.deepcopy(record.targets),
                   province_path=s.jurisdictions[record.province_id].path)


def _account_out(s: _State, account: AccountRecord) -> AccountRecord:
    place = s.jurisdictions.get(account.jurisdiction_id) if account.jurisdiction_id is not None else None
    unit = s.units.get(account.unit_id) if account.unit_id is not None else None
    if place is None and unit is not None:
        place = s.jurisdictions.get(unit.jurisdiction_id)
    return replace(account, path=None if place is None else place.path)


def _token_out(s: _State, token: _Token) -> TokenRecord:
    record = token.record
    account = s.accounts.get(record.account_id) if record.account_id is not None else None
    if account is not None:
        record = replace(record, account_login=account.login, account_name=account.name,
                         account_disabled=account.disabled_at is not None)
    place = s.jurisdictions.get(record.jurisdiction_id) if record.jurisdiction_id is not None else None
    unit = s.units.get(record.unit_id) if record.unit_id is not None else None
    unit_place = s.jurisdictions.get(unit.jurisdiction_id) if unit is not None else None
    return replace(record, path=None if place is None else place.path,
                   unit_path=None if unit_place is None else unit_place.path)


def _spot_check_out(s: _State, record: SpotCheckRecord) -> SpotCheckRecord:
    return replace(record, population=list(record.population), drawn=list(record.drawn),
                   path=s.jurisdictions[record.jurisdiction_id].path)


def _filing_out(s: _State, record: FilingRecord) -> FilingRecord:
    return replace(record, cases=copy.deepcopy(record.cases), totals=copy.deepcopy(record.totals),
                   path=s.jurisdictions[record.jurisdiction_id].path)


def _case_out(case: CaseState) -> CaseState:
    return case if case.self_entries is None else replace(case, self_entries=dict(case.self_entries))


def _event_out(event: Event) -> Event:
    assert event.payload_text is not None
    return replace(event, payload=json.loads(event.payload_text))


def _duty_event_out(event: DutyEvent) -> DutyEvent:
    assert event.payload_text is not None
    return replace(event, payload=json.loads(event.payload_text))


def _stream_out(stream: DutyStream) -> DutyStream:
    return replace(stream, duties=dict(stream.duties))


def _triples(items: Iterable[Sequence[str]]) -> tuple[tuple[str, str, str], ...]:
    """(criterion or document, sha256, file name) entries as tuples, as the JSON column gives them back."""
    return tuple((a, b, c) for a, b, c in items)


def _case_row(after: CaseState, current: CaseState, event: Event) -> CaseState:
    """The stored row after a transition: what an event changes, from ``after`` (updated at the
    event's time when ``after`` does not say); what never changes (the case's id, round, unit,
    origin and registration), from the row as it was."""
    return replace(
        after, id=current.id, round_id=current.round_id, unit_id=current.unit_id,
        carried_over_from=current.carried_over_from, registered_at=current.registered_at,
        updated_at=_utc(event.occurred_at if after.updated_at is None else after.updated_at),
        self_total=_dec(after.self_total),
        verified_total=_dec(after.verified_total), recheck_total=_dec(after.recheck_total),
        passed=None if after.passed is None else bool(after.passed),
        self_entries=None if after.self_entries is None else _json(after.self_entries),
        evidence=_triples(after.evidence),
        missed=tuple((m, tuple(states)) for m, states in after.missed),
        overdue=bool(after.overdue), documents=_triples(after.documents),
        contact_form=bool(after.contact_form))


def _stored_event(event: Event, position: int) -> Event:
    text = event.payload_json
    return replace(event, occurred_at=_utc(event.occurred_at), payload=json.loads(text), payload_text=text,
                   position=position, at_iso=None)


def _stored_duty_event(event: DutyEvent, position: int) -> DutyEvent:
    text = event.payload_json
    return replace(event, occurred_at=_utc(event.occurred_at), payload=json.loads(text), payload_text=text,
                   position=position)


def _stream_row(round_id: str, jurisdiction_id: str, after: DutyStream, now: datetime) -> DutyStream:
    """The stored projection, as its JSON column gives it back."""
    duties = {k: DutyStatus.from_data(v) for k, v in json.loads(after.duties_data()).items()}
    return DutyStream(round_id, jurisdiction_id, after.version, after.last_hash, duties, _utc(now))


def _round_context(record: RoundRecord) -> RoundContext:
    """The round's rules as the case store reads them from its row (as ``SqlCaseStore.round_context``)."""
    policy = policy_from_dict(record.policy, f"round {record.id} policy")
    rubric = rubric_from_dict(record.rubric_data, f"round {record.id} rubric")
    documents = tuple(RequiredDocument(**d) for d in record.documents or ())
    return RoundContext(record.id, policy, Decimal(record.pass_mark), Decimal(record.max_total), rubric, documents)


# What the rows a write refers to are called in Chinese (as ``adapters.db.writes`` names them).
_NAMES_ZH = {"round": "轮次", "jurisdiction": "地区", "province": "省", "unit": "单位", "case": "案件",
             "coordinator": "协调人员", "account": "账号"}


def _require(found: bool, what: str, **details: Any) -> None:
    """NotFound for a row referred to that does not exist (a foreign key in SQL); ``what``: the
    kind of row and its key (``unit 5``, ``round 'shanxi-2021'``)."""
    if not found:
        kind, _, key = what.partition(" ")
        raise NotFound(f"{what} does not exist", f"{_NAMES_ZH.get(kind, kind)} {key} 不存在", **details)


# ---------------------------------------------------------------- the stores

class _Store:
    """A store over a view: the committed data (``db.<store>``) or a unit of work (``uow.<store>``)."""

    def __init__(self, view: _View) -> None:
        self._v = view


class MemoryDirectory(_Store):
    """Jurisdictions, units and coordinators (the ``DirectoryStore`` port)."""

    def jurisdictions(self, within_path: str | None = None) -> list[JurisdictionRecord]:
        """The jurisdictions of the subtree, in path order."""
        s = self._v.state()
        return sorted((j for j in s.jurisdictions.values() if _under(j.path, within_path)), key=lambda j: j.path)

    def jurisdiction(self, jurisdiction_id: str) -> JurisdictionRecord | None:
        return self._v.state().jurisdictions.get(jurisdiction_id)

    def units(self, within_path: str | None = None, *, after_id: int = 0, limit: int | None = None
              ) -> list[UnitRecord]:
        """The units of the subtree in id order, those after ``after_id``, at most ``limit``."""
        s = self._v.state()
        found = [_unit_out(s, u) for unit_id, u in sorted(s.units.items())
                 if unit_id > after_id and _under(s.jurisdictions[u.jurisdiction_id].path, within_path)]
        return found if limit is None else found[:max(limit, 0)]

    def unit(self, unit_id: int) -> UnitRecord | None:
        s = self._v.state()
        unit = s.units.get(unit_id)
        return None if unit is None else _unit_out(s, unit)

    def unit_named(self, jurisdiction_id: str, name: str) -> UnitRecord | None:
        s = self._v.state()
        return next((_unit_out(s, u) for _, u in sorted(s.units.items())
                     if u.jurisdiction_id == jurisdiction_id and u.name == name), None)

    def coordinators(self, active_only: bool = False) -> list[CoordinatorRecord]:
        """The coordinators (the active ones only, if asked), in id order."""
        s = self._v.state()
        return [_coordinator_out(s, c) for _, c in sorted(s.coordinators.items()) if c.active or not active_only]

    # -- writes
    def add_jurisdiction(self, record: JurisdictionRecord) -> None:
        """Add a jurisdiction (AlreadyExists for an id or a path taken; NotFound for an unknown parent)."""
        self._v.writing()
        s = self._v.state()
        if record.id in s.jurisdictions or any(j.path == record.path for j in s.jurisdictions.values()):
            raise AlreadyExists(f"jurisdiction {record.id!r} already exists", f"地区 {record.id!r} 已存在")
        if record.parent_id is not None:
            _require(record.parent_id in s.jurisdictions, f"jurisdiction {record.parent_id!r}",
                     jurisdiction_id=record.parent_id)
        self._v.table("jurisdictions")[record.id] = JurisdictionRecord(record.id, record.name, record.level,
                                                                      record.parent_id, record.path)

    def rename_jurisdiction(self, jurisdiction_id: str, name: str) -> None:
        """Rename a jurisdiction (an unknown one: nothing happens, as an UPDATE of no row)."""
        self._v.writing()
        current = self._v.state().jurisdictions.get(jurisdiction_id)
        if current is not None:
            self._v.table("jurisdictions")[jurisdiction_id] = replace(current, name=name)

    def _name_taken(self, jurisdiction_id: str, name: str, other_than: int | None = None) -> bool:
        return any(u.jurisdiction_id == jurisdiction_id and u.name == name and unit_id != other_than
                   for unit_id, u in self._v.state().units.items())

    def add_unit(self, unit: NewUnit, now: datetime) -> UnitRecord:
        """Add a unit with a new id (AlreadyExists for its name taken in its jurisdiction; NotFound
        for an unknown jurisdiction)."""
        self._v.writing()
        s = self._v.state()
        _require(unit.jurisdiction_id in s.jurisdictions, f"jurisdiction {unit.jurisdiction_id!r}",
                 jurisdiction_id=unit.jurisdiction_id)
        if self._name_taken(unit.jurisdiction_id, unit.name):
            raise AlreadyExists(f"{unit.name} ({unit.jurisdiction_id}) already exists",
                                f"{unit.name}（{unit.jurisdiction_id}）已存在")
        at = _utc(now)
        unit_id = self._v.next_id("units")
        self._v.table("units")[unit_id] = UnitRecord(
            unit_id, unit.jurisdiction_id, unit.name, unit.level, unit.category, list(_json(unit.contacts) or []),
            unit.certified_year, unit.certified_note, at, at)
        return _unit_out(self._v.state(), self._v.state().units[unit_id])

    def save_unit(self, unit: UnitRecord) -> UnitRecord:
        """Write a unit's name, category, contacts, certification before the system and
        ``updated_at`` (its jurisdiction, level and creation stay); NotFound for an unknown unit."""
        self._v.writing()
        current = self._v.state().units.get(unit.id)
        _require(current is not None, f"unit {unit.id}", unit_id=unit.id)
        assert current is not None
        if self._name_taken(current.jurisdiction_id, unit.name, other_than=unit.id):
            raise AlreadyExists(f"{unit.name} ({unit.jurisdiction_id}) already exists",
                                f"{unit.name}（{unit.jurisdiction_id}）已存在")
        self._v.table("units")[unit.id] = replace(
            current, name=unit.name, category=unit.category, contacts=list(_json(unit.contacts) or []),
            certified_year=unit.certified_year, certified_note=unit.certified_note, updated_at=_utc(unit.updated_at))
        return _unit_out(self._v.state(), self._v.state().units[unit.id])

    def add_coordinator(self, jurisdiction_id: str, name: str, email: str) -> CoordinatorRecord:
        """Add an active coordinator (AlreadyExists for the email taken in the jurisdiction)."""
        self._v.writing()
        s = self._v.state()
        _require(jurisdiction_id in s.jurisdictions, f"jurisdiction {jurisdiction_id!r}",
                 jurisdiction_id=jurisdiction_id)
        if any(c.jurisdiction_id == jurisdiction_id and c.email == email for c in s.coordinators.values()):
            raise AlreadyExists(f"{email} is already a coordinator of {jurisdiction_id}",
                                f"{email} 已是地区 {jurisdiction_id} 的协调人员")
        coordinator_id = self._v.next_id("coordinators")
        self._v.table("coordinators")[coordinator_id] = CoordinatorRecord(coordinator_id, jurisdiction_id, name,
                                                                         email, True)
        return _coordinator_out(self._v.state(), self._v.state().coordinators[coordinator_id])


    # -- many at once (a roster imported)
    def unit_keys(self) -> dict[tuple[str, str], int]:
        return {(u.jurisdiction_id, u.name): unit_id for unit_id, u in self._v.state().units.items()}

    def unit_ids(self, within_path: str | None = None) -> list[int]:
        s = self._v.state()
        return [unit_id for unit_id, u in sorted(s.units.items())
                if _under(s.jurisdictions[u.jurisdiction_id].path, within_path)]

    def units_of(self, unit_ids: Sequence[int]) -> list[UnitRecord]:
        s = self._v.state()
        return [_unit_out(s, s.units[i]) for i in sorted(set(unit_ids)) if i in s.units]

    def add_units(self, units: Sequence[NewUnit], now: datetime) -> int:
        """``add_unit`` for each, in order: all of them, or (a refusal) none."""
        self._v.writing()
        s = self._v.state()
        taken = set(self.unit_keys())
        for unit in units:
            _require(unit.jurisdiction_id in s.jurisdictions, f"jurisdiction {unit.jurisdiction_id!r}",
                     jurisdiction_id=unit.jurisdiction_id)
            if (unit.jurisdiction_id, unit.name) in taken:
                raise AlreadyExists(f"{unit.name} ({unit.jurisdiction_id}) already exists",
                                    f"{unit.name}（{unit.jurisdiction_id}）已存在")
            taken.add((unit.jurisdiction_id, unit.name))
        at = _utc(now)
        table = self._v.table("units")
        for unit in units:
            unit_id = self._v.next_id("units")
            table[unit_id] = UnitRecord(unit_id, unit.jurisdiction_id, unit.name, unit.level, unit.category,
                                        list(_json(unit.contacts) or []), unit.certified_year, unit.certified_note,
                                        at, at)
        return len(units)


class MemoryTokens(_Store):
    """API tokens, stored by their hash (the ``TokenStore`` port)."""

    def by_hash(self, token_hash: str) -> TokenRecord | None:
        s = self._v.state()
        return next((_token_out(s, t) for t in s.tokens.values() if t.token_hash == token_hash), None)

    def all(self) -> list[TokenRecord]:
        """Every token, in id order."""
        s = self._v.state()
        return [_token_out(s, t) for _, t in sorted(s.tokens.items())]

    def add(self, *, name: str, role: str, unit_id: int | None, jurisdiction_id: str | None, token_hash: str,
            created_at: datetime, created_by: str, expires_at: datetime | None, account_id: int | None = None) -> int:
        """Store a token; its new id (AlreadyExists for a hash taken; NotFound for an unknown scope)."""
        self._v.writing()
        s = self._v.state()
        if unit_id is not None:
            _require(unit_id in s.units, f"unit {unit_id}", unit_id=unit_id)
        if jurisdiction_id is not None:
            _require(jurisdiction_id in s.jurisdictions, f"jurisdiction {jurisdiction_id!r}",
                     jurisdiction_id=jurisdiction_id)
        if any(t.token_hash == token_hash for t in s.tokens.values()):
            raise AlreadyExists("a token with this hash already exists", "已有相同哈希值的令牌")
        created, expires = _utc(created_at), _utc_or_none(expires_at)
        token_id = self._v.next_id("tokens")
        self._v.table("tokens")[token_id] = _Token(
            TokenRecord(token_id, name, role, unit_id, jurisdiction_id, created, created_by, expires, None,
                        account_id=account_id),
            token_hash)
        return token_id


    def revoke(self, token_id: int, now: datetime, by: str) -> bool:
        """Revoke a token not revoked yet (False: unknown or revoked already)."""
        self._v.writing()
        token = self._v.state().tokens.get(token_id)
        if token is None or token.record.revoked_at is not None:
            return False
        at = _utc(now)
        self._v.table("tokens")[token_id] = replace(token, record=replace(token.record, revoked_at=at, revoked_by=by))
        return True


class MemoryAccounts(_Store):
    """People's accounts (the ``AccountStore`` port)."""

    def get(self, account_id: int) -> AccountRecord | None:
        s = self._v.state()
        account = s.accounts.get(account_id)
        return None if account is None else _account_out(s, account)

    def by_login(self, login: str) -> AccountRecord | None:
        s = self._v.state()
        return next((_account_out(s, a) for a in s.accounts.values() if a.login == login), None)

    def by_name(self, home: str, name: str) -> AccountRecord | None:
        s = self._v.state()
        return next((_account_out(s, a) for a in s.accounts.values() if a.home == home and a.name == name), None)

    def all(self, within_path: str | None = None) -> list[AccountRecord]:
        s = self._v.state()
        out = [_account_out(s, a) for _, a in sorted(s.accounts.items())]
        return [a for a in out if within_path is None or (a.path is not None and a.path.startswith(within_path))]

    def _taken(self, account: AccountRecord) -> None:
        for other in self._v.state().accounts.values():
            if other.id != account.id and (other.login == account.login
                                           or (other.home, other.name) == (account.home, account.name)):
                raise AlreadyExists(f"an account with the login {account.login!r} or the name {account.name!r} "
                                    "already exists there",
                                    f"{account.home or '系统'} 内已有登录名为 {account.login!r} 或名为 "
                                    f"{account.name!r} 的账号", login=account.login)

    def add(self, account: AccountRecord) -> int:
        self._v.writing()
        s = self._v.state()
        if account.unit_id is not None:
            _require(account.unit_id in s.units, f"unit {account.unit_id}", unit_id=account.unit_id)
        if account.jurisdiction_id is not None:
            _require(account.jurisdiction_id in s.jurisdictions, f"jurisdiction {account.jurisdiction_id!r}")
        account_id = self._v.next_id("accounts")
        stored = replace(account, id=account_id, path=None, created_at=_utc(account.created_at))
        self._taken(stored)
        self._v.table("accounts")[account_id] = stored
        return account_id

    def save(self, account: AccountRecord) -> None:
        self._v.writing()
        self._taken(account)
        self._v.table("accounts")[account.id] = replace(account, path=None,
                                                         disabled_at=_utc_or_none(account.disabled_at))


class MemorySignIns(_Store):
    """The console's sessions, failed sign-ins and password links (the ``SignInStore`` port)."""

    def add_session(self, *, account_id: int, secret_hash: str, csrf: str, created_at: datetime,
                    expires_at: datetime, address: str | None) -> int:
        self._v.writing()
        s = self._v.state()
        _require(account_id in s.accounts, f"account {account_id}")
        if any(h == secret_hash for h, _ in s.sessions.values()):
            raise AlreadyExists("a session with this secret already exists", "已有相同密钥的会话")
        session_id = self._v.next_id("sessions")
        self._v.table("sessions")[session_id] = (secret_hash, SessionRecord(
            session_id, account_id, csrf, _utc(created_at), _utc(expires_at)))
        return session_id

    def session(self, secret_hash: str) -> SessionRecord | None:
        return next((r for h, r in self._v.state().sessions.values() if h == secret_hash), None)

    def end_session(self, session_id: int, now: datetime) -> bool:
        self._v.writing()
        found = self._v.state().sessions.get(session_id)
        if found is None or found[1].ended_at is not None:
            return False
        self._v.table("sessions")[session_id] = (found[0], replace(found[1], ended_at=_utc(now)))
        return True

    def end_sessions_of(self, account_id: int, now: datetime) -> int:
        self._v.writing()
        ids = [i for i, (_, r) in self._v.state().sessions.items() if r.account_id == account_id and r.ended_at is None]
        return sum(self.end_session(i, now) for i in ids)

    def failures(self, login: str) -> tuple[int, datetime | None, datetime | None]:
        found = self._v.state().failures.get(login)
        return (0, None, None) if found is None else found

    def set_failures(self, login: str, failures: int, first_at: datetime, locked_until: datetime | None) -> None:
        self._v.writing()
        self._v.table("failures")[login] = (failures, _utc(first_at), _utc_or_none(locked_until))

    def clear_failures(self, login: str) -> None:
        self._v.writing()
        self._v.table("failures").pop(login, None)

    def add_link(self, *, account_id: int, purpose: str, secret_hash: str, created_at: datetime, created_by: str,
                 expires_at: datetime) -> int:
        self._v.writing()
        s = self._v.state()
        _require(account_id in s.accounts, f"account {account_id}")
        if any(h == secret_hash for h, _ in s.links.values()):
            raise AlreadyExists("a link with this secret already exists", "已有相同密钥的链接")
        link_id = self._v.next_id("links")
        self._v.table("links")[link_id] = (secret_hash, LinkRecord(link_id, account_id, purpose, _utc(created_at),
                                                                   created_by, _utc(expires_at)))
        return link_id

    def link(self, secret_hash: str) -> LinkRecord | None:
        return next((r for h, r in self._v.state().links.values() if h == secret_hash), None)

    def use_link(self, link_id: int, now: datetime) -> bool:
        self._v.writing()
        found = self._v.state().links.get(link_id)
        if found is None or found[1].used_at is not None:
            return False
        self._v.table("links")[link_id] = (found[0], replace(found[1], used_at=_utc(now)))
        return True


class MemoryAuditRuns(_Store):
    """The chain checks asked for and their results (the ``AuditRunStore`` port)."""

    def add(self, *, scope: str, requested_by: str, requested_at: datetime) -> int:
        self._v.writing()
        run_id = self._v.next_id("audit_runs")
        self._v.table("audit_runs")[run_id] = AuditRunRecord(run_id, scope, requested_by, _utc(requested_at), "queued")
        return run_id

    def get(self, run_id: int) -> AuditRunRecord | None:
        return self._v.state().audit_runs.get(run_id)

    def runs(self, scopes: Sequence[str], limit: int) -> list[AuditRunRecord]:
        found = [r for _, r in sorted(self._v.state().audit_runs.items(), reverse=True) if r.scope in scopes]
        return found[:limit]

    def queued(self) -> list[AuditRunRecord]:
        return [r for _, r in sorted(self._v.state().audit_runs.items()) if r.status == "queued"]

    def claim(self, run_id: int, now: datetime) -> bool:
        self._v.writing()
        found = self._v.state().audit_runs.get(run_id)
        if found is None or found.status != "queued":
            return False
        self._v.table("audit_runs")[run_id] = replace(found, status="running", started_at=_utc(now))
        return True

    def finish(self, run_id: int, now: datetime, *, ok: bool | None, result: dict[str, Any] | None,
               error: str | None) -> None:
        self._v.writing()
        found = self._v.state().audit_runs.get(run_id)
        if found is None or found.status != "running":
            return
        # as stored in SQL: the result through JSON (tuples become lists), the error at most 400 characters
        self._v.table("audit_runs")[run_id] = replace(
            found, status="failed" if error is not None else "done", finished_at=_utc(now), ok=ok,
            result=None if result is None else json.loads(json.dumps(result, ensure_ascii=False)),
            error=None if error is None else error[:400])

    def interrupt(self, started_before: datetime, now: datetime, error: str) -> int:
        self._v.writing()
        stale = [r for r in self._v.state().audit_runs.values()
                 if r.status == "running" and r.started_at is not None and r.started_at < started_before]
        for r in stale:
            self._v.table("audit_runs")[r.id] = replace(r, status="failed", finished_at=_utc(now), error=error[:400])
        return len(stale)


class MemoryChannels(_Store):
    """The robot channels (the ``ChannelStore`` port)."""

    def add(self, channel: ChannelRecord) -> int:
        self._v.writing()
        s = self._v.state()
        _require(channel.jurisdiction_id in s.jurisdictions, f"jurisdiction {channel.jurisdiction_id!r}")
        if channel.unit_id is not None:
            _require(channel.unit_id in s.units, f"unit {channel.unit_id}", unit_id=channel.unit_id)
        channel_id = self._v.next_id("channels")
        self._v.table("channels")[channel_id] = replace(channel, id=channel_id, created_at=_utc(channel.created_at))
        return channel_id

    def get(self, channel_id: int) -> ChannelRecord | None:
        return self._v.state().channels.get(channel_id)

    def channels(self, within_path: str | None = None) -> list[ChannelRecord]:
        s = self._v.state()
        return [c for _, c in sorted(s.channels.items())
                if _under(s.jurisdictions[c.jurisdiction_id].path, within_path)]

    def disable(self, channel_id: int, now: datetime) -> bool:
        self._v.writing()
        found = self._v.state().channels.get(channel_id)
        if found is None or found.disabled_at is not None:
            return False
        self._v.table("channels")[channel_id] = replace(found, disabled_at=_utc(now))
        return True


class MemoryOperatorLog(_Store):
    """The operator audit log (the ``OperatorLog`` port)."""

    def append(self, stream: str, type_: str, actor: str, now: datetime, payload: dict[str, Any]) -> OperatorEvent:
        self._v.writing()
        if stream not in OPERATOR_STREAMS:
            raise ValueError(f"unknown operator stream {stream!r}")
        events = self._v.state().operator_events.get(stream, ())
        last = events[-1] if events else None
        event = new_operator_event(stream, 1 if last is None else last.seq + 1, type_, actor, now, payload,
                                   GENESIS_HASH if last is None else last.hash)
        stored = replace(event, position=self._v.next_id("operator_events"))
        self._v.table("operator_events")[stream] = events + (stored,)
        return stored

    def events(self, stream: str | None = None) -> list[OperatorEvent]:
        s = self._v.state()
        return [e for name, events in sorted(s.operator_events.items()) if stream in (None, name) for e in events]

class MemoryRounds(_Store):
    """Rounds (the ``RoundStore`` port)."""

    def round(self, round_id: str) -> RoundRecord | None:
        s = self._v.state()
        record = s.rounds.get(round_id)
        return None if record is None else _round_out(s, record)

    def rounds(self) -> list[RoundRecord]:
        """Every round, by province and year."""
        s = self._v.state()
        return [_round_out(s, r) for r in sorted(s.rounds.values(), key=lambda r: (r.province_id, r.year))]

    def lock(self, round_id: str) -> bool:
        """The round exists (a unit of work holds the store's write lock already)."""
        return round_id in self._v.state().rounds

    def add(self, record: RoundRecord) -> None:
        """Open a round (AlreadyExists for its id, or its province's year, taken; NotFound for an
        unknown province)."""
        self._v.writing()
        s = self._v.state()
        if record.id in s.rounds or any(r.province_id == record.province_id and r.year == record.year
                                        for r in s.rounds.values()):
            raise AlreadyExists(f"round {record.id} is already open", f"轮次 {record.id} 已开启", round_id=record.id)
        _require(record.province_id in s.jurisdictions, f"jurisdiction {record.province_id!r}",
                 jurisdiction_id=record.province_id)
        self._v.table("rounds")[record.id] = RoundRecord(
            record.id, record.province_id, record.year, record.rubric_id, record.calendar_id,
            _dec_required(record.target_share), _dec_required(record.pass_mark), _dec_required(record.max_total),
            _json(record.policy), _json(record.rubric_data), list(_json(record.documents) or []),
            list(_json(record.targets) or []), _utc(record.opened_at), record.opened_by)

    def units_done_by(self, province_id: str, year: int) -> set[int]:
        """Units certified or filed in a round of the province before ``year``, or recorded as
        certified before the system by ``year`` (in any province, as the SQL store answers)."""
        s = self._v.state()
        earlier = {r.id for r in s.rounds.values() if r.province_id == province_id and r.year < year}
        done = {c.unit_id for c in s.cases.values() if c.round_id in earlier and c.state in CERTIFIED_STATES}
        return done | {u.id for u in s.units.values() if u.certified_year is not None and u.certified_year <= year}

    def not_certified_in(self, round_id: str) -> dict[int, int]:
        """unit id → case id of the round's cases that ended not certified."""
        s = self._v.state()
        return {c.unit_id: c.id for _, c in sorted(s.cases.items())
                if c.round_id == round_id and c.state == "not_certified"}


_SETTLED = frozenset(f.name for f in fields(OutboxRecord)) - {"id", "dedupe_key"}
_OUTBOX_TIMES = frozenset({"next_attempt_at", "claimed_until", "created_at", "sent_at"})


class MemoryOutbox(_Store):
    """The outbox and the sweep's marks (the ``OutboxStore`` port)."""

    # -- the sweep's marks
    def marked(self, round_id: str, milestone: str, stage: str) -> bool:
        return (round_id, milestone, stage) in self._v.state().marks

    def mark(self, round_id: str, milestone: str, stage: str, now: datetime) -> None:
        """Mark a stage done (a mark made before stays as it was)."""
        self._v.writing()
        s = self._v.state()
        _require(round_id in s.rounds, f"round {round_id!r}", round_id=round_id)
        at = _utc(now)
        if (round_id, milestone, stage) not in s.marks:
            self._v.table("marks")[(round_id, milestone, stage)] = at

    # -- writing
    def _write(self, *, dedupe_key: str, kind: str, round_id: str, case_id: int | None, coordinator_id: int | None,
               milestone: str, tier: int | None, due_on: date, context: str | None, now: datetime,
               channel_id: int | None = None) -> int:
        """Insert a pending row unless its dedupe key was written before: how many were written."""
        self._v.writing()
        s = self._v.state()
        _require(round_id in s.rounds, f"round {round_id!r}", round_id=round_id)
        if case_id is not None:
            _require(case_id in s.cases, f"case {case_id}", case_id=case_id)
        if coordinator_id is not None:
            _require(coordinator_id in s.coordinators, f"coordinator {coordinator_id}", coordinator_id=coordinator_id)
        if channel_id is not None:
            _require(channel_id in s.channels, f"channel {channel_id}")
        at = _utc(now)
        if dedupe_key in s.dedupe:
            return 0
        row_id = self._v.next_id("outbox")
        self._v.table("outbox")[row_id] = OutboxRecord(
            row_id, dedupe_key, kind, round_id, case_id, coordinator_id, milestone, tier, due_on, context, "pending",
            0, at, None, None, None, None, at, None, channel_id)
        self._v.table("dedupe")[dedupe_key] = row_id
        return 1

    def remind_owing(self, round_id: str, milestone: str, tier: int, due: date, owing: Owing, now: datetime) -> int:
        """A reminder to every case of the round that owes the milestone (``Owing.holds``), in case
        id order; a key written before is skipped: how many were written."""
        self._v.writing()
        s = self._v.state()
        owing_ids = [c.id for _, c in sorted(s.cases.items())
                     if c.round_id == round_id and owing.holds(c.state, c.contact_form)]
        return sum(self._write(dedupe_key=f"reminder:{case_id}:{milestone}:{tier}", kind="reminder",
                               round_id=round_id, case_id=case_id, coordinator_id=None, milestone=milestone, tier=tier,
                               due_on=due, context=None, now=now) for case_id in owing_ids)

    def add(self, entries: list[OutboxEntry], now: datetime) -> int:
        """Write the entries not written before (by dedupe key): how many were written."""
        self._v.writing()
        return sum(self._write(dedupe_key=e.dedupe_key, kind=e.kind, round_id=e.round_id, case_id=e.case_id,
                               coordinator_id=e.coordinator_id, milestone=e.milestone, tier=e.tier, due_on=e.due_on,
                               context=None if e.context is None else json.dumps(e.context, ensure_ascii=False),
                               now=now, channel_id=e.channel_id) for e in entries)

    # -- delivering
    def claim(self, now: datetime, lease_until: datetime, batch: int) -> list[OutboxRecord]:
        """Rows due now (pending and due, or sending with a lapsed lease), at most ``batch`` in id
        order, marked sending and held until ``lease_until``. Writers go one at a time, so two
        claims never take the same row."""
        self._v.writing()
        at, until = _utc(now), _utc(lease_until)
        s = self._v.state()
        due = [row for _, row in sorted(s.outbox.items())
               if (row.status == "pending" and row.next_attempt_at <= at)
               or (row.status == "sending" and row.claimed_until is not None and row.claimed_until < at)]
        chosen = due[:max(batch, 0)]
        if not chosen:
            return []
        table = self._v.table("outbox")
        for row in chosen:
            table[row.id] = replace(row, status="sending", claimed_until=until)
        return [self._v.state().outbox[row.id] for row in chosen]

    def settle(self, row_id: int, claimed_until: datetime | None, values: Mapping[str, Any]) -> bool:
        """Write an outcome (column → value) only while the row is sending and held with this lease."""
        self._v.writing()
        unknown = sorted(set(values) - _SETTLED)
        if unknown:
            raise ValueError(f"settle writes an outcome; the outbox has no column it may set named {unknown}")
        changes: dict[str, Any] = {k: _utc_or_none(v) if k in _OUTBOX_TIMES else v for k, v in values.items()}
        lease = _utc_or_none(claimed_until)
        row = self._v.state().outbox.get(row_id)
        if row is None or row.status != "sending" or row.claimed_until != lease:
            return False
        self._v.table("outbox")[row_id] = replace(row, **changes)
        return True

    def release_claims(self) -> int:
        """Hand every claimed (sending) row back as pending, without a lease: how many."""
        self._v.writing()
        sending = [row for _, row in sorted(self._v.state().outbox.items()) if row.status == "sending"]
        if sending:
            table = self._v.table("outbox")
            for row in sending:
                table[row.id] = replace(row, status="pending", claimed_until=None)
        return len(sending)

    # -- reading
    def rows(self, *, status: str | None = None, case_id: int | None = None, limit: int = 200) -> list[OutboxRecord]:
        """The newest rows first (of this status, of this case), at most ``limit``."""
        found = [row for _, row in sorted(self._v.state().outbox.items(), reverse=True)
                 if (not status or row.status == status) and (case_id is None or row.case_id == case_id)]
        return found[:max(limit, 0)]

    def count_by_status(self, mail_only: bool = False) -> dict[str, int]:
        return dict(Counter(row.status for row in self._v.state().outbox.values()
                            if not mail_only or row.channel_id is None))


class MemoryOversight(_Store):
    """Spot checks and filing batches (the ``OversightStore`` port)."""

    def cases_in(self, round_id: str, path: str, states: tuple[str, ...]) -> list[int]:
        """The round's cases in these states of units in the subtree at ``path``, in id order."""
        s = self._v.state()
        return [c.id for _, c in sorted(s.cases.items())
                if c.round_id == round_id and c.state in states
                and _under(s.jurisdictions[s.units[c.unit_id].jurisdiction_id].path, path)]

    def unit_names(self, case_ids: list[int]) -> dict[int, str]:
        s = self._v.state()
        return {i: s.units[s.cases[i].unit_id].name for i in case_ids if i in s.cases}

    def count_spot_checks(self, round_id: str) -> int:
        return sum(1 for r in self._v.state().spot_checks.values() if r.round_id == round_id)

    def add_spot_check(self, record: SpotCheckRecord) -> None:
        """Store a draw (AlreadyExists for its id taken)."""
        self._v.writing()
        s = self._v.state()
        if record.id in s.spot_checks:
            raise AlreadyExists(f"spot check {record.id!r} already exists", f"抽查 {record.id!r} 已存在")
        _require(record.round_id in s.rounds, f"round {record.round_id!r}", round_id=record.round_id)
        _require(record.jurisdiction_id in s.jurisdictions, f"jurisdiction {record.jurisdiction_id!r}",
                 jurisdiction_id=record.jurisdiction_id)
        self._v.table("spot_checks")[record.id] = SpotCheckRecord(
            record.id, record.round_id, record.jurisdiction_id, record.seed, _dec_required(record.share),
            list(_json(record.population)), list(_json(record.drawn)), _utc(record.drawn_at), record.drawn_by)

    def spot_checks(self, round_id: str, within_path: str | None = None) -> list[SpotCheckRecord]:
        """The round's draws in the subtree, by time drawn and id."""
        s = self._v.state()
        return [_spot_check_out(s, r) for r in sorted(s.spot_checks.values(), key=lambda r: (r.drawn_at, r.id))
                if r.round_id == round_id and _under(s.jurisdictions[r.jurisdiction_id].path, within_path)]

    def count_filings(self, round_id: str) -> int:
        return sum(1 for r in self._v.state().filings.values() if r.round_id == round_id)

    def add_filing(self, record: FilingRecord) -> None:
        """Store a filing batch (AlreadyExists for its id taken)."""
        self._v.writing()
        s = self._v.state()
        if record.id in s.filings:
            raise AlreadyExists(f"filing batch {record.id!r} already exists", f"备案批次 {record.id!r} 已存在")
        _require(record.round_id in s.rounds, f"round {record.round_id!r}", round_id=record.round_id)
        _require(record.jurisdiction_id in s.jurisdictions, f"jurisdiction {record.jurisdiction_id!r}",
                 jurisdiction_id=record.jurisdiction_id)
        self._v.table("filings")[record.id] = FilingRecord(
            record.id, record.round_id, record.jurisdiction_id, list(_json(record.cases)), dict(_json(record.totals)),
            _utc(record.filed_at), record.filed_by)

    def filing(self, batch_id: str) -> FilingRecord | None:
        s = self._v.state()
        record = s.filings.get(batch_id)
        return None if record is None else _filing_out(s, record)

    def filings(self, round_id: str, within_path: str | None = None) -> list[FilingRecord]:
        """The round's batches in the subtree, by time filed and id."""
        s = self._v.state()
        return [_filing_out(s, r) for r in sorted(s.filings.values(), key=lambda r: (r.filed_at, r.id))
                if r.round_id == round_id and _under(s.jurisdictions[r.jurisdiction_id].path, within_path)]

    def add_outcome(self, record: OutcomeRecord) -> None:
        """Store a case's outcome of a check (AlreadyExists when the case has one for it)."""
        self._v.writing()
        s = self._v.state()
        key = (record.check_id, record.case_id)
        if key in s.outcomes:
            raise AlreadyExists(f"case {record.case_id} already has an outcome of {record.check_id}",
                                f"案件 {record.case_id} 在 {record.check_id} 中已有结果")
        _require(record.case_id in s.cases, f"case {record.case_id}", case_id=record.case_id)
        self._v.table("outcomes")[key] = replace(record, recorded_at=_utc(record.recorded_at))

    def outcomes(self, round_id: str, check_id: str | None = None) -> list[OutcomeRecord]:
        s = self._v.state()
        return [r for _, r in sorted(s.outcomes.items())
                if r.round_id == round_id and check_id in (None, r.check_id)]


class MemoryDuties(_Store):
    """The jurisdictions' duty streams: the projection and its hash-chained events, written
    together, guarded by the stream's version (the ``DutyStore`` port)."""

    def stream(self, round_id: str, jurisdiction_id: str) -> DutyStream:
        """The stream (an empty one at version 0 when nothing is recorded)."""
        stream = self._v.state().streams.get((round_id, jurisdiction_id))
        return DutyStream(round_id, jurisdiction_id) if stream is None else _stream_out(stream)

    def streams(self, round_id: str) -> dict[str, DutyStream]:
        """jurisdiction id → its stream, for the streams of the round that have events."""
        return {j: _stream_out(st) for (r, j), st in sorted(self._v.state().streams.items()) if r == round_id}

    def append(self, before: DutyStream, event: DutyEvent, after: DutyStream, now: datetime) -> None:
        """Store the event and the new projection if the stream is still at ``before.version``
        (ConflictError otherwise, and when the event's number is taken)."""
        self._v.writing()
        s = self._v.state()
        for round_id, jurisdiction_id in ((after.round_id, after.jurisdiction_id),
                                          (event.round_id, event.jurisdiction_id)):
            _require(round_id in s.rounds, f"round {round_id!r}", round_id=round_id)
            _require(jurisdiction_id in s.jurisdictions, f"jurisdiction {jurisdiction_id!r}",
                     jurisdiction_id=jurisdiction_id)
        conflict = ConflictError(f"the duties of {before.jurisdiction_id} in round {before.round_id} changed since "
                                 "they were read; reload and retry",
                                 f"{before.jurisdiction_id} 在轮次 {before.round_id} 的工作事项在读取后已被他人修改，"
                                 "请刷新后重试")
        if before.version == 0:
            key = (after.round_id, after.jurisdiction_id)
            if key in s.streams:
                raise conflict
        else:
            key = (before.round_id, before.jurisdiction_id)
            current = s.streams.get(key)
            if current is None or current.version != before.version:
                raise conflict
        event_key = (event.round_id, event.jurisdiction_id)
        if any(e.seq == event.seq for e in s.duty_events.get(event_key, ())):
            raise conflict
        row = _stream_row(key[0], key[1], after, now)
        stored = _stored_duty_event(event, self._v.next_id("duty_event_positions"))
        self._v.table("streams")[key] = row
        table = self._v.table("duty_events")
        table[event_key] = tuple(sorted((*table.get(event_key, ()), stored), key=lambda e: e.seq))

    def events(self, round_id: str, jurisdiction_id: str) -> list[DutyEvent]:
        """The stream's events, in order."""
        return [_duty_event_out(e) for e in self._v.state().duty_events.get((round_id, jurisdiction_id), ())]


class MemorySimulations(_Store):
    """How far a simulation run has got, and the refusals it met (the ``SimulationStore`` port)."""

    def progress(self, digest: str) -> tuple[bool, date | None]:
        """(whether a run of this scenario was started here, the last day it finished)."""
        run = self._v.state().simulations.get(digest)
        return (False, None) if run is None else (True, run.day_done)

    def start(self, digest: str, scenario: str) -> None:
        """Record a run started (AlreadyExists for a run of this scenario started before)."""
        self._v.writing()
        if digest in self._v.state().simulations:
            raise AlreadyExists(f"a simulation of {digest} is already started here", f"{digest} 的模拟运行已在此开始")
        self._v.table("simulations")[digest] = _Simulation(scenario[-500:], None)

    def finish_day(self, digest: str, day: date) -> None:
        """Record the last day finished (a run not started: nothing happens)."""
        self._v.writing()
        run = self._v.state().simulations.get(digest)
        if run is not None:
            self._v.table("simulations")[digest] = replace(run, day_done=day)

    def refusal(self, key: str) -> str | None:
        found = self._v.state().keys.get(f"{key}:refused")
        return None if found is None else str(found.ref)

    def remember_refusal(self, key: str, why: str, now: datetime) -> None:
        """Remember why a step was refused (cut to the 100 characters the SQL column holds),
        among the idempotency keys (ConflictError for a refusal remembered before)."""
        self._v.writing()
        _utc(now)
        shown = why if len(why) <= 100 else why[:99] + "…"
        stored = f"{key}:refused"
        if stored in self._v.state().keys:
            raise ConflictError(f"the refusal of {key!r} is remembered already", f"{key!r} 的拒绝已有记录", key=key)
        self._v.table("keys")[stored] = Remembered("refused", None, None, shown, "")



# A name searched for: A-Z as a-z, nothing else folded (as SQLite's lower() and PostgreSQL's in
# the C collation).
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# A case list's sort key → the value it orders by (None: a total not given, last either way).
_CASE_SORT_KEYS: dict[str, Callable[[CaseRow], Any]] = {
    "id": lambda r: r.id,
    "unit": lambda r: r.unit_name,  # by code point, as SQLite's BINARY and PostgreSQL's "C"
    "self_total": lambda r: r.self_total,
    "verified_total": lambda r: r.verified_total,
    "updated": lambda r: r.updated_at,
    "state": lambda r: STATES.index(r.state) if r.state in STATES else len(STATES),
}


class MemoryReadModels(_Store):
    """The read side: lists, scopes, reports' counts, what a notification refers to (the
    ``ReadModels`` port)."""

    def _path_of(self, s: _State, case: CaseState) -> str:
        return s.jurisdictions[s.units[case.unit_id].jurisdiction_id].path

    def _owing(self, s: _State, case: CaseState) -> OwingCase:
        unit = s.units[case.unit_id]
        return OwingCase(case.id, case.unit_id, unit.name, unit.jurisdiction_id, case.state, case.rectification_due)

    def case_rows(self, query: CaseFilter) -> list[CaseRow]:
        """The cases the filter keeps (a filter of None or "" keeps every value) in ``query.sort``
        order (ties by id; totals not given last either way): after ``after_id`` (with
        ``sort="id"`` only), ``offset`` skipped, at most ``limit``."""
        if query.sort not in CASE_SORTS:
            raise ValueError(f"unknown sort {query.sort!r}; sorts: {', '.join(CASE_SORTS)}")
        if query.sort != "id" and query.after_id:
            raise ValueError(f"after_id pages the id order only; sort={query.sort} pages with offset")
        s = self._v.state()
        found = [CaseRow(c.id, c.round_id, c.unit_id, unit.name, unit.jurisdiction_id, unit.category, c.state,
                         c.version, c.self_total, c.verified_total, c.recheck_total, c.rectification_due,
                         cast(datetime, c.updated_at))
                 for c, unit in self._kept(s, query) if c.id > query.after_id]
        key, descending = query.sort.removeprefix("-"), query.sort.startswith("-")
        if key != "id" or descending:
            value = _CASE_SORT_KEYS[key]
            given = [r for r in found if value(r) is not None]  # in id order: a stable sort keeps ties so
            given.sort(key=value, reverse=descending)
            found = given + [r for r in found if value(r) is None]
        return found[query.offset:][:max(query.limit, 0)]

    def case_count(self, query: CaseFilter) -> int:
        """How many cases the filter keeps (``after_id``, ``offset``, ``limit`` and ``sort`` aside)."""
        return sum(1 for _ in self._kept(self._v.state(), query))

    def _kept(self, s: _State, query: CaseFilter) -> Iterator[tuple[CaseState, UnitRecord]]:
        """The cases the filter keeps, with their units, in id order."""
        name = None if not query.name else query.name.translate(_ASCII_LOWER)
        for _, c in sorted(s.cases.items()):
            unit = s.units[c.unit_id]
            path = s.jurisdictions[unit.jurisdiction_id].path
            if not _under(path, query.within_path) or not _under(path, query.filter_path):
                continue
            wanted = ((c.round_id, query.round_id), (c.state, query.state), (c.unit_id, query.unit_id),
                      (unit.category, query.category), (unit.level, query.level))
            if any(value is not None and value != "" and have != value for have, value in wanted):
                continue
            if query.overdue is not None and c.overdue != query.overdue:
                continue
            if name is not None and name not in unit.name.translate(_ASCII_LOWER):
                continue
            if query.missed and not any(m == query.missed for m, _ in c.missed):
                continue
            if query.owing is not None and query.round_id and not query.owing.holds(c.state, c.contact_form):
                continue
            yield c, unit

    def case_scope(self, case_id: int) -> CaseScope | None:
        s = self._v.state()
        c = s.cases.get(case_id)
        if c is None:
            return None
        return CaseScope(c.id, c.unit_id, c.round_id, s.units[c.unit_id].name, self._path_of(s, c))

    def unit_case_ids(self, unit_id: int) -> list[int]:
        return [i for i, c in sorted(self._v.state().cases.items()) if c.unit_id == unit_id]

    def has_case_in(self, round_id: str, unit_id: int) -> bool:
        return any(c.round_id == round_id and c.unit_id == unit_id for c in self._v.state().cases.values())

    def case_groups(self, round_id: str, root_path: str) -> list[CaseGroup]:
        """The round's cases in the subtree, counted by jurisdiction, state, overdue flag and
        misses (as recorded: a miss owed in other states is another group)."""
        s = self._v.state()
        counted: Counter[tuple[str, str, bool, tuple[tuple[str, tuple[str, ...]], ...]]] = Counter()
        for c in s.cases.values():
            if c.round_id == round_id and _under(self._path_of(s, c), root_path):
                counted[(s.units[c.unit_id].jurisdiction_id, c.state, c.overdue, c.missed)] += 1
        return [CaseGroup(j, state, overdue, tuple(m for m, _ in missed), n)
                for (j, state, overdue, missed), n in sorted(counted.items())]

    def agency_groups(self, year: int, root_path: str) -> list[AgencyGroup]:
        """The units of the subtree by jurisdiction and level, and how many are certified by the
        end of ``year`` (in a round of the province to that year, or before the system)."""
        s = self._v.state()
        rounds = {r.id for r in s.rounds.values() if r.year <= year}  # a unit's rounds are its province's
        done = {c.unit_id for c in s.cases.values() if c.round_id in rounds and c.state in CERTIFIED_STATES}
        counts: dict[tuple[str, str], list[int]] = {}
        for unit_id, u in sorted(s.units.items()):
            if not _under(s.jurisdictions[u.jurisdiction_id].path, root_path):
                continue
            tally = counts.setdefault((u.jurisdiction_id, u.level), [0, 0])
            tally[0] += 1
            tally[1] += unit_id in done or (u.certified_year is not None and u.certified_year <= year)
        return [AgencyGroup(j, level, n, certified) for (j, level), (n, certified) in sorted(counts.items())]

    def owing_cases(self, round_id: str, owing: Owing, within_path: str | None = None,
                    limit: int | None = None) -> list[OwingCase]:
        """The round's cases (in the subtree) that owe by ``owing`` (``Owing.holds``), in id order."""
        s = self._v.state()
        found = [self._owing(s, c) for _, c in sorted(s.cases.items())
                 if c.round_id == round_id and owing.holds(c.state, c.contact_form)
                 and _under(self._path_of(s, c), within_path)]
        return found if limit is None else found[:limit]

    def owing_count(self, round_id: str, owings: Sequence[Owing], within_path: str | None = None) -> int:
        s = self._v.state()
        return sum(1 for c in s.cases.values()
                   if c.round_id == round_id and any(o.holds(c.state, c.contact_form) for o in owings)
                   and _under(self._path_of(s, c), within_path))

    def overdue_cases(self, round_id: str, milestone: str) -> list[OwingCase]:
        """The round's cases still overdue with a recorded miss of ``milestone``, in id order."""
        s = self._v.state()
        return [self._owing(s, c) for _, c in sorted(s.cases.items())
                if c.round_id == round_id and c.overdue and any(m == milestone for m, _ in c.missed)]

    def rectifications(self, round_id: str) -> list[OwingCase]:
        """The round's cases in rectification, with their due dates, in id order."""
        s = self._v.state()
        return [self._owing(s, c) for _, c in sorted(s.cases.items())
                if c.round_id == round_id and c.state == "rectification"]

    def case_states(self, case_ids: list[int]) -> dict[int, CaseReferent]:
        s = self._v.state()
        out = {}
        for case_id in case_ids:
            c = s.cases.get(case_id)
            if c is not None:
                unit = s.units[c.unit_id]
                out[case_id] = CaseReferent(c.id, c.state, c.rectification_due, c.verified_total, c.contact_form,
                                            c.overdue, unit.name, copy.deepcopy(unit.contacts), c.held_title)
        return out

    def cases_by_id(self, case_ids: list[int]) -> list[OwingCase]:
        """These cases (those that exist), in id order."""
        s = self._v.state()
        return [self._owing(s, s.cases[i]) for i in sorted(set(case_ids)) if i in s.cases]

    def jurisdictions_with_cases(self, round_id: str) -> list[str]:
        s = self._v.state()
        return sorted({s.units[c.unit_id].jurisdiction_id for c in s.cases.values() if c.round_id == round_id})

    def timeline(self, round_ids: list[str]) -> list[TimelineRow]:
        """Every event of the rounds' cases and duty streams, and every mail sent, in time order
        (at one time: cases' events, then duties', then mails)."""
        s = self._v.state()
        names = {i: s.units[c.unit_id].name for i, c in s.cases.items() if c.round_id in round_ids}
        rows: list[TimelineRow] = []
        events = sorted((e for i in names for e in s.events.get(i, ())),
                        key=lambda e: (e.occurred_at, e.position or 0))
        for e in events:
            payload = e.payload
            detail = e.type + (f" ({payload['milestone']})" if e.type == "DeadlineMissed"
                               else f" ({payload['total']})" if "total" in payload else "")
            rows.append(TimelineRow(e.occurred_at, f"#{e.case_id} {names[e.case_id]}", detail, ""))
        duty_events = sorted((d for (r, _), stream in s.duty_events.items() if r in round_ids for d in stream),
                             key=lambda d: (d.occurred_at, d.position or 0))
        for d in duty_events:
            payload = d.payload
            waiting = f", {len(payload['cases'])} cases waiting" if payload.get("cases") else ""
            place = s.jurisdictions.get(d.jurisdiction_id)
            rows.append(TimelineRow(d.occurred_at, place.name if place is not None else d.jurisdiction_id,
                                    f"{d.type} ({payload['duty']}{waiting})", ""))
        mails = sorted((m for m in s.outbox.values() if m.status == "sent" and m.round_id in round_ids),
                       key=lambda m: (m.sent_at is None, m.sent_at or datetime.min.replace(tzinfo=UTC), m.id))
        for m in mails:
            who = ", ".join(json.loads(m.recipients)) if m.recipients else ""
            case = f"#{m.case_id} {names.get(m.case_id, '')}" if m.case_id else "coordinator"
            rows.append(TimelineRow(cast(datetime, m.sent_at), case, "", f"{m.kind} {m.milestone} → {who}"))
        return sorted(rows, key=lambda r: r.at)


# ---------------------------------------------------------------- the unit of work (the case store)

class MemoryCaseStore:
    """One unit of work: the case store of its transaction, and the other stores bound to it
    (``core=True``, as the SQL unit of work; a reader has them all and writes nothing)."""

    def __init__(self, db: MemoryDatabase, work: _Work, core: bool) -> None:
        self._db = db
        self._v = work
        self._core = core

    def _bound(self) -> _Work:
        if not self._core:
            raise RuntimeError("this unit of work was opened without core=True: open it with "
                               "unit_of_work(core=True) to use the other stores in its transaction")
        return self._v

    # -- the other stores, bound to this unit of work
    @property
    def directory(self) -> MemoryDirectory:
        return MemoryDirectory(self._bound())

    @property
    def tokens(self) -> MemoryTokens:
        return MemoryTokens(self._bound())

    @property
    def accounts(self) -> MemoryAccounts:
        return MemoryAccounts(self._bound())

    @property
    def sign_ins(self) -> MemorySignIns:
        return MemorySignIns(self._bound())

    @property
    def audit_runs(self) -> MemoryAuditRuns:
        return MemoryAuditRuns(self._bound())

    @property
    def channels(self) -> MemoryChannels:
        return MemoryChannels(self._bound())

    @property
    def operator(self) -> MemoryOperatorLog:
        return MemoryOperatorLog(self._bound())

    @property
    def rounds(self) -> MemoryRounds:
        return MemoryRounds(self._bound())

    @property
    def outbox(self) -> MemoryOutbox:
        return MemoryOutbox(self._bound())

    @property
    def oversight(self) -> MemoryOversight:
        return MemoryOversight(self._bound())

    @property
    def duties(self) -> MemoryDuties:
        return MemoryDuties(self._bound())

    @property
    def simulations(self) -> MemorySimulations:
        return MemorySimulations(self._bound())

    @property
    def read(self) -> MemoryReadModels:
        return MemoryReadModels(self._bound())

    # -- reads
    def round_context(self, round_id: str) -> RoundContext:
        """The round's rules as its row holds them (NotFound for an unknown round)."""
        record = self._v.state().rounds.get(round_id)
        if record is None:
            raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)
        return self._db._context(record)

    def get(self, case_id: int) -> CaseState:
        """The case as stored (NotFound for an unknown case)."""
        case = self._v.state().cases.get(case_id)
        if case is None:
            raise NotFound(f"case {case_id} does not exist", f"案件 {case_id} 不存在", case_id=case_id)
        return _case_out(case)

    def find(self, round_id: str, unit_id: int) -> CaseState | None:
        return next((_case_out(c) for _, c in sorted(self._v.state().cases.items())
                     if c.round_id == round_id and c.unit_id == unit_id), None)

    def open_case_ids(self, unit_id: int) -> list[int]:
        """The unit's cases not in a final state, in id order."""
        return [i for i, c in sorted(self._v.state().cases.items())
                if c.unit_id == unit_id and c.state not in TERMINAL_STATES]

    def events(self, case_id: int) -> list[Event]:
        """The case's events, in order (none for an unknown case)."""
        return [_event_out(e) for e in self._v.state().events.get(case_id, ())]

    # -- writes
    def create(self, round_id: str, unit_id: int, actor: str, now: datetime, carried_over_from: int | None = None
               ) -> tuple[CaseState, Event]:
        """Register a new case with its first event (AlreadyExists, NotFound)."""
        self._v.writing()
        self.round_context(round_id)
        s = self._v.state()
        _require(unit_id in s.units, f"unit {unit_id}", unit_id=unit_id)
        if self.find(round_id, unit_id) is not None:
            raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                f"单位 {unit_id} 在轮次 {round_id} 中已有案件", round_id=round_id, unit_id=unit_id)
        if carried_over_from is not None:
            _require(carried_over_from in s.cases, f"case {carried_over_from}", case_id=carried_over_from)
        at = _utc(now)
        case_id = self._v.next_id("cases")
        event = registration_event(case_id, round_id, unit_id, actor, now, carried_over_from)
        after = apply(None, event)
        before = CaseState(case_id, round_id, unit_id, "registered", 0, GENESIS_HASH, carried_over_from,
                           registered_at=at, updated_at=at)
        self._v.table("cases")[case_id] = before
        self.append(before, event, after)
        return after, event

    def append(self, before: CaseState, event: Event, after: CaseState) -> None:
        """Store ``event`` and the new projection if the case is still at ``before.version``
        (ConflictError otherwise, and when the event's number is taken)."""
        self._v.writing()
        s = self._v.state()
        current = s.cases.get(before.id)
        if current is None or current.version != before.version:
            raise ConflictError(
                f"case {before.id} changed since it was read (expected version {before.version}); reload and retry",
                f"案件 {before.id} 在读取后已被他人修改（读取时为第 {before.version} 版），请刷新后重试",
                case_id=before.id, expected_version=before.version)
        _require(event.case_id in s.cases, f"case {event.case_id}", case_id=event.case_id)
        if any(e.seq == event.seq for e in s.events.get(event.case_id, ())):
            raise ConflictError(f"case {before.id}: event #{event.seq} already exists",
                                f"案件 {before.id}：第 {event.seq} 号事件已存在，请刷新后重试", case_id=before.id)
        row = _case_row(after, current, event)
        stored = _stored_event(event, self._v.next_id("event_positions"))
        self._v.table("cases")[before.id] = row
        table = self._v.table("events")
        table[event.case_id] = tuple(sorted((*table.get(event.case_id, ()), stored), key=lambda e: e.seq))

    def notify(self, case: CaseState, notice: Notice, now: datetime) -> None:
        """Write a notice the event implies to the outbox, in this unit of work, once per key."""
        self._v.writing()
        MemoryOutbox(self._v)._write(dedupe_key=notice.dedupe_key, kind=notice.kind, round_id=case.round_id,
                                     case_id=case.id, coordinator_id=None, milestone=notice.milestone, tier=None,
                                     due_on=notice.due_on, context=None, now=now)

    # -- many at once (a round opened, the sweep's misses): the one-at-a-time methods, for each
    def get_many(self, case_ids: Sequence[int]) -> dict[int, CaseState]:
        """The cases of ``case_ids`` that exist, as stored, by id."""
        cases = self._v.state().cases
        return {case_id: _case_out(cases[case_id]) for case_id in sorted(set(case_ids)) if case_id in cases}

    def create_many(self, round_id: str, units: Sequence[tuple[int, int | None]], actor: str, now: datetime
                    ) -> list[int]:
        """``create`` for each (unit, carried over from), in order; every refusal is found before
        anything is written. The new cases' ids, in the order given."""
        self._v.writing()
        self.round_context(round_id)
        s = self._v.state()
        taken = {c.unit_id for c in s.cases.values() if c.round_id == round_id}
        for unit_id, carried_over_from in units:
            _require(unit_id in s.units, f"unit {unit_id}", unit_id=unit_id)
            if unit_id in taken:
                raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                    f"单位 {unit_id} 在轮次 {round_id} 中已有案件", round_id=round_id, unit_id=unit_id)
            if carried_over_from is not None:
                _require(carried_over_from in s.cases, f"case {carried_over_from}", case_id=carried_over_from)
            taken.add(unit_id)
        at = _utc(now)
        created = []
        for unit_id, carried_over_from in units:
            case_id = self._v.next_id("cases")
            event = registration_event(case_id, round_id, unit_id, actor, now, carried_over_from)
            before = CaseState(case_id, round_id, unit_id, "registered", 0, GENESIS_HASH, carried_over_from,
                               registered_at=at, updated_at=at)
            self._v.table("cases")[case_id] = before
            self.append(before, event, apply(None, event))
            created.append(case_id)
        return created

    def append_many(self, changes: Sequence[tuple[CaseState, Event, CaseState]]) -> None:
        """``append`` for each (before, event, after), in order (ConflictError as ``append``)."""
        for before, event, after in changes:
            self.append(before, event, after)

    def notify_many(self, notices: Sequence[tuple[CaseState, Notice]], now: datetime) -> int:
        """``notify`` for each (case, notice), in order: how many were written."""
        self._v.writing()
        outbox = MemoryOutbox(self._v)
        return sum(outbox._write(dedupe_key=notice.dedupe_key, kind=notice.kind, round_id=case.round_id,
                                 case_id=case.id, coordinator_id=None, milestone=notice.milestone, tier=None,
                                 due_on=notice.due_on, context=None, now=now) for case, notice in notices)

    def recall(self, key: str) -> Remembered | None:
        """What the request with this idempotency key did, if it was carried out (or is, in this
        unit of work)."""
        return self._v.state().keys.get(key)

    def remember(self, key: str, what: str, now: datetime, *, fingerprint: str, case_id: int | None = None,
                 seq: int | None = None, ref: str | None = None) -> None:
        """Record the request's result in this unit of work (ConflictError for a key remembered
        before)."""
        self._v.writing()
        _utc(now)
        if key in self._v.state().keys:
            raise ConflictError(f"idempotency key {key!r} is being used by a concurrent request",
                                f"幂等键 {key!r} 正被另一个同时进行的请求使用", key=key)
        self._v.table("keys")[key] = Remembered(what, case_id, seq, ref, fingerprint)

    def commit(self) -> None:
        """Make everything written in this unit of work the committed data, at once (once it is
        committed or rolled back there is nothing more to commit: nothing happens)."""
        if self._v.finished:
            return
        if self._v.writable:
            self._db._state = self._v.state()
        self._v.restart(self._db._state, "committed")

    def rollback(self) -> None:
        """Throw away what this unit of work wrote (after a commit: nothing happens)."""
        if not self._v.finished:
            self._v.restart(self._db._state, "rolled back")


class _MemoryUnitOfWork:
    """``with db.unit_of_work() as uow``: a writer holds the store's write lock until the block
    ends, and rolls back what it did not commit."""

    def __init__(self, db: MemoryDatabase, core: bool, read_only: bool = False) -> None:
        self._db = db
        self._core = core or read_only
        self._read_only = read_only
        self._store: MemoryCaseStore | None = None

    def __enter__(self) -> MemoryCaseStore:
        if not self._read_only:
            self._db._acquire()
        self._store = MemoryCaseStore(self._db, _Work(self._db, self._db._state, writable=not self._read_only),
                                      self._core)
        return self._store

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._store is not None:
                self._store.rollback()
        finally:
            if not self._read_only:
                self._db._release()


class _Within:
    """The ``EventSource`` of one jurisdiction subtree (None: everything)."""

    def __init__(self, db: MemoryDatabase, path: str | None) -> None:
        self._db = db
        self._path = path

    def _units(self, s: _State) -> set[int]:
        return {i for i, u in s.units.items() if _under(s.jurisdictions[u.jurisdiction_id].path, self._path)}

    def all_cases(self) -> Iterator[CaseState]:
        """Every case (of the units in the subtree), in id order."""
        s = self._db._state
        units = self._units(s)
        return iter([_case_out(c) for _, c in sorted(s.cases.items()) if c.unit_id in units])

    def all_events(self) -> Iterator[Event]:
        """Every event (of those cases), in case and sequence order."""
        s = self._db._state
        units = self._units(s)
        return iter([_event_out(e) for i, c in sorted(s.cases.items()) if c.unit_id in units
                     for e in s.events.get(i, ())])

    def rubric_of(self, round_id: str) -> Rubric:
        """The round's rubric as it opened (NotFound for an unknown round)."""
        with self._db.reader() as uow:
            return uow.round_context(round_id).rubric

    def _jurisdictions(self, s: _State) -> set[str]:
        return {j.id for j in s.jurisdictions.values() if _under(j.path, self._path)}

    def all_duty_streams(self) -> Iterator[DutyStream]:
        """Every duty stream (of the subtree's jurisdictions), in (round, jurisdiction) order."""
        s = self._db._state
        places = self._jurisdictions(s)
        return iter([_stream_out(st) for (_, j), st in sorted(s.streams.items()) if j in places])

    def all_duty_events(self) -> Iterator[DutyEvent]:
        """Every duty event (of those jurisdictions), in (round, jurisdiction, seq) order."""
        s = self._db._state
        places = self._jurisdictions(s)
        return iter([_duty_event_out(e) for (_, j), stream in sorted(s.duty_events.items()) if j in places
                     for e in stream])

    def chain_heads(self) -> Iterator[ChainHead]:
        """The last stored event of every case (of the subtree's units), by id; then of every duty
        stream (of its jurisdictions), by round and jurisdiction."""
        s = self._db._state
        units, places = self._units(s), self._jurisdictions(s)
        cases = [ChainHead("case", str(i), events[-1].seq, events[-1].hash) for i, events in sorted(s.events.items())
                 if events and i in s.cases and s.cases[i].unit_id in units]
        streams = [ChainHead("duties", stream_key(r, j), events[-1].seq, events[-1].hash)
                   for (r, j), events in sorted(s.duty_events.items()) if events and j in places]
        operator = [] if self._path is not None else [
            ChainHead("operator", operator_key(name), events[-1].seq, events[-1].hash)
            for name, events in sorted(s.operator_events.items()) if events]
        return iter(cases + streams + operator)

    def all_operator_events(self) -> Iterator[OperatorEvent]:
        """Every operator event, by stream then seq (none for a subtree)."""
        if self._path is not None:
            return iter(())
        s = self._db._state
        return iter([e for _, events in sorted(s.operator_events.items()) for e in events])

    def all_filings(self) -> Iterator[FilingRecord]:
        """Every filing batch of a jurisdiction in the subtree or above it, in id order."""
        s = self._db._state
        found = []
        for _, record in sorted(s.filings.items()):
            path = s.jurisdictions[record.jurisdiction_id].path
            if self._path is None or path.startswith(self._path) or self._path.startswith(path):
                found.append(_filing_out(s, record))
        return iter(found)

    def count_differences(self) -> list[str]:
        return []  # the in-memory read models count on demand: nothing kept to differ


class MemoryDatabase:
    """The in-memory ``Storage``: units of work to write, stores to read (each call reads the
    data committed at the time), and the event source the audit reads. Starts empty."""

    def __init__(self) -> None:
        self._state = _State()
        self._write_lock = threading.Lock()
        self._writer: int | None = None  # the thread whose unit of work holds the write lock
        self._ids_lock = threading.Lock()
        self._sequences: dict[str, Iterator[int]] = {}
        self._contexts: dict[str, tuple[RoundRecord, RoundContext]] = {}

    # -- the machinery
    def _acquire(self) -> None:
        if self._writer == threading.get_ident():
            raise RuntimeError("this thread has a unit of work open already: the in-memory store, like SQLite, "
                               "has one writer at a time (finish the first, or read with db.reader())")
        if not self._write_lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            raise TimeoutError(f"another unit of work held the in-memory store for {LOCK_TIMEOUT_SECONDS:.0f} s")
        self._writer = threading.get_ident()

    def _release(self) -> None:
        self._writer = None
        self._write_lock.release()

    def _next_id(self, sequence: str) -> int:
        """The next id of a sequence (ids are never given twice, even when a unit of work rolls back)."""
        with self._ids_lock:
            counter = self._sequences.setdefault(sequence, itertools.count(1))
            return next(counter)

    def _context(self, record: RoundRecord) -> RoundContext:
        """The round's context, built once per stored round row."""
        cached = self._contexts.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        ctx = _round_context(record)
        self._contexts[record.id] = (record, ctx)
        return ctx

    # -- the stores, each call reading the committed data
    @property
    def directory(self) -> MemoryDirectory:
        return MemoryDirectory(_Committed(self))

    @property
    def tokens(self) -> MemoryTokens:
        return MemoryTokens(_Committed(self))

    @property
    def accounts(self) -> MemoryAccounts:
        return MemoryAccounts(_Committed(self))

    @property
    def sign_ins(self) -> MemorySignIns:
        return MemorySignIns(_Committed(self))

    @property
    def audit_runs(self) -> MemoryAuditRuns:
        return MemoryAuditRuns(_Committed(self))

    @property
    def channels(self) -> MemoryChannels:
        return MemoryChannels(_Committed(self))

    @property
    def operator(self) -> MemoryOperatorLog:
        return MemoryOperatorLog(_Committed(self))

    @property
    def rounds(self) -> MemoryRounds:
        return MemoryRounds(_Committed(self))

    @property
    def outbox(self) -> MemoryOutbox:
        return MemoryOutbox(_Committed(self))

    @property
    def oversight(self) -> MemoryOversight:
        return MemoryOversight(_Committed(self))

    @property
    def duties(self) -> MemoryDuties:
        return MemoryDuties(_Committed(self))

    @property
    def simulations(self) -> MemorySimulations:
        return MemorySimulations(_Committed(self))

    @property
    def read(self) -> MemoryReadModels:
        return MemoryReadModels(_Committed(self))

    # -- units of work
    def unit_of_work(self, core: bool = False) -> _MemoryUnitOfWork:
        """A unit of work that writes (the other stores with ``core=True``); one at a time."""
        return _MemoryUnitOfWork(self, core)

    def reader(self) -> _MemoryUnitOfWork:
        """A unit of work that only reads the data committed when it starts (it takes no write lock)."""
        return _MemoryUnitOfWork(self, core=True, read_only=True)

    def prepare(self) -> None:
        """Nothing to create: the store starts empty."""

    def describe(self) -> str:
        return "memory"

    # -- the event source
    def within(self, path: str | None) -> _Within:
        """The cases, events and duty streams of one jurisdiction subtree (None: everything)."""
        return _Within(self, path)

    def all_cases(self) -> Iterator[CaseState]:
        return self.within(None).all_cases()

    def all_events(self) -> Iterator[Event]:
        return self.within(None).all_events()

    def rubric_of(self, round_id: str) -> Rubric:
        return self.within(None).rubric_of(round_id)

    def all_duty_streams(self) -> Iterator[DutyStream]:
        return self.within(None).all_duty_streams()

    def all_duty_events(self) -> Iterator[DutyEvent]:
        return self.within(None).all_duty_events()

    def chain_heads(self) -> Iterator[ChainHead]:
        return self.within(None).chain_heads()

    def all_operator_events(self) -> Iterator[OperatorEvent]:
        return self.within(None).all_operator_events()

    def all_filings(self) -> Iterator[FilingRecord]:
        return self.within(None).all_filings()

    def count_differences(self) -> list[str]:
        return []  # the in-memory read models count on demand: nothing kept to differ
