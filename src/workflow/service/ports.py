"""What the services need from storage. The SQL store and the in-memory fake both
implement it and pass the same contract tests (``tests/contract``)."""
from __future__ import annotations

from typing import Iterator, Protocol

from datetime import datetime

from ..domain.case import CaseState, Notice, RoundContext
from ..domain.duties import DutyEvent, DutyStream
from ..domain.rubric import Rubric
from ..domain.events import Event


class CaseStore(Protocol):
    """One unit of work: everything written through it commits together or not at all."""

    def round_context(self, round_id: str) -> RoundContext: ...

    def get(self, case_id: int) -> CaseState:
        """The case as stored (raises NotFound)."""
        ...

    def find(self, round_id: str, unit_id: int) -> CaseState | None: ...

    def create(self, round_id: str, unit_id: int, actor: str, now, carried_over_from: int | None = None
               ) -> tuple[CaseState, Event]:
        """Register a new case with its first event (raises AlreadyExists, NotFound)."""
        ...

    def append(self, before: CaseState, event: Event, after: CaseState) -> None:
        """Store ``event`` and the new projection, if the case is still at ``before.version``
        (raises ConflictError otherwise)."""
        ...

    def events(self, case_id: int) -> list[Event]: ...

    def notify(self, case: CaseState, notice: Notice, now: datetime) -> None:
        """Write a notice the event implies to the outbox, in this transaction, once per key."""
        ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class CaseStoreFactory(Protocol):
    def unit_of_work(self) -> "UnitOfWorkContext": ...


class UnitOfWorkContext(Protocol):
    def __enter__(self) -> CaseStore: ...

    def __exit__(self, *exc: object) -> None: ...


class EventSource(Protocol):
    def all_cases(self) -> Iterator[CaseState]: ...

    def all_events(self) -> Iterator[Event]: ...

    def rubric_of(self, round_id: str) -> Rubric:
        """The round's rubric as it opened (to read version-1 sheets of its cases)."""
        ...

    def all_duty_streams(self) -> Iterator[DutyStream]: ...

    def all_duty_events(self) -> Iterator[DutyEvent]: ...
