"""An in-memory case store for fast unit tests of the services.

It keeps the same promises as the SQL store (one transaction per unit of work,
optimistic concurrency, duplicate and unknown checks) and passes the same contract
tests in ``tests/contract``.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..domain.case import CaseState, RoundContext, apply, registration_event
from ..domain.errors import AlreadyExists, ConflictError, NotFound
from ..domain.events import Event


@dataclass
class MemoryDatabase:
    rounds: dict[str, RoundContext] = field(default_factory=dict)
    units: set[int] = field(default_factory=set)
    cases: dict[int, CaseState] = field(default_factory=dict)
    events: dict[int, list[Event]] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)  # idempotency keys → what they did
    outbox: dict[str, Any] = field(default_factory=dict)  # dedupe key → (case id, notice)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _positions: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def add_round(self, ctx: RoundContext) -> None:
        self.rounds[ctx.round_id] = ctx

    def add_unit(self, unit_id: int) -> None:
        self.units.add(unit_id)

    def unit_of_work(self) -> _MemoryUnitOfWork:
        return _MemoryUnitOfWork(self)

    def all_cases(self) -> Iterator[CaseState]:
        with self.lock:
            items = sorted(self.cases.items())
        for _, case in items:
            yield case

    def all_events(self) -> Iterator[Event]:
        with self.lock:
            items = sorted(self.events.items())
        for _, events in items:
            yield from events

    def rubric_of(self, round_id: str) -> Any:
        return self.rounds[round_id].rubric

    def all_duty_streams(self) -> Iterator[Any]:
        return iter(())  # the jurisdictions' duties are kept by the SQL stores only

    def all_duty_events(self) -> Iterator[Any]:
        return iter(())


class MemoryCaseStore:
    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._staged: list[tuple[CaseState, Event, CaseState]] = []
        self._staged_keys: list[tuple[str, Any]] = []
        self._staged_notices: list[tuple[int, Any]] = []
        self._done = False

    def _visible(self, case_id: int) -> CaseState | None:
        for _before, _event, after in reversed(self._staged):
            if after.id == case_id:
                return after
        return self._db.cases.get(case_id)

    def round_context(self, round_id: str) -> RoundContext:
        try:
            return self._db.rounds[round_id]
        except KeyError:
            raise NotFound(f"round {round_id!r} does not exist", round_id=round_id) from None

    def get(self, case_id: int) -> CaseState:
        case = self._visible(case_id)
        if case is None:
            raise NotFound(f"case {case_id} does not exist", case_id=case_id)
        return case

    def find(self, round_id: str, unit_id: int) -> CaseState | None:
        ids = {c.id for c in self._db.cases.values()} | {a.id for _, _, a in self._staged}
        for case_id in sorted(ids):
            case = self._visible(case_id)
            if case is not None and case.round_id == round_id and case.unit_id == unit_id:
                return case
        return None

    def events(self, case_id: int) -> list[Event]:
        stored = list(self._db.events.get(case_id, []))
        return stored + [e for _, e, _ in self._staged if e.case_id == case_id]

    def create(self, round_id: str, unit_id: int, actor: str, now: datetime,
               carried_over_from: int | None = None) -> tuple[CaseState, Event]:
        self.round_context(round_id)
        if unit_id not in self._db.units:
            raise NotFound(f"unit {unit_id} does not exist", unit_id=unit_id)
        if self.find(round_id, unit_id) is not None:
            raise AlreadyExists(f"unit {unit_id} already has a case in round {round_id}",
                                round_id=round_id, unit_id=unit_id)
        with self._db.lock:
            case_id = next(self._db._ids)
        event = registration_event(case_id, round_id, unit_id, actor, now, carried_over_from)
        after = apply(None, event)
        before = CaseState(case_id, round_id, unit_id, "registered", 0, event.prev_hash, carried_over_from)
        self._staged.append((before, event, after))
        return after, event

    def notify(self, case: CaseState, notice: Any, now: datetime) -> None:
        self._staged_notices.append((case.id, notice))

    def recall(self, key: str) -> Any:
        return self._db.keys.get(key) or next((r for k, r in self._staged_keys if k == key), None)

    def remember(self, key: str, what: str, now: datetime, *, fingerprint: str, case_id: int | None = None,
                 seq: int | None = None, ref: str | None = None) -> None:
        from .db.store import Remembered

        self._staged_keys.append((key, Remembered(what, case_id, seq, ref, fingerprint)))

    def append(self, before: CaseState, event: Event, after: CaseState) -> None:
        current = self._visible(before.id)
        if current is not None and current.version != before.version:
            raise ConflictError(
                f"case {before.id} changed since it was read (expected version {before.version}); reload and retry",
                case_id=before.id, expected_version=before.version)
        self._staged.append((before, event, after))

    def commit(self) -> None:
        with self._db.lock:
            # Check every staged change against what is committed now, then apply all.
            seen: dict[int, int] = {}
            for before, _event, after in self._staged:
                committed = self._db.cases.get(before.id)
                expected = seen.get(before.id, committed.version if committed else 0)
                if before.version != expected:
                    raise ConflictError(
                        f"case {before.id} changed since it was read (expected version {before.version})",
                        case_id=before.id, expected_version=before.version)
                if before.version == 0 and any(
                    c.round_id == after.round_id and c.unit_id == after.unit_id for c in self._db.cases.values()
                ):
                    raise AlreadyExists(f"unit {after.unit_id} already has a case in round {after.round_id}")
                seen[before.id] = after.version
            for key, _ in self._staged_keys:
                if key in self._db.keys:
                    raise ConflictError(f"idempotency key {key!r} is being used by a concurrent request", key=key)
            self._db.keys.update(self._staged_keys)
            for case_id, notice in self._staged_notices:
                self._db.outbox.setdefault(notice.dedupe_key, (case_id, notice))
            for _before, event, after in self._staged:
                stored = replace(event, position=next(self._db._positions))
                self._db.events.setdefault(after.id, []).append(stored)
                self._db.cases[after.id] = after
        self._staged.clear()
        self._staged_keys.clear()
        self._staged_notices.clear()
        self._done = True

    def rollback(self) -> None:
        self._staged.clear()
        self._staged_keys.clear()
        self._staged_notices.clear()
        self._done = True


class _MemoryUnitOfWork:
    def __init__(self, db: MemoryDatabase) -> None:
        self._store = MemoryCaseStore(db)

    def __enter__(self) -> MemoryCaseStore:
        return self._store

    def __exit__(self, *exc: Any) -> None:
        self._store.rollback()
