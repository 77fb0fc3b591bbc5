"""What a case is, who acts on it, and what a round's rules say: the types every part of
the domain shares."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from .calendar import RequiredDocument
from .errors import InvalidInput
from .lifecycle import ACTIONS, SYSTEM, Lifecycle, Owing, lifecycle_for
from .policy import Policy
from .rubric import Rubric

# The version of the sheet payloads (SelfAssessmentRecorded, CaseVerified, CaseRechecked)
# written now: 2 = entries are points. Version 1 (no "v") held occurrence counts for
# per-occurrence criteria; ``entries_as_points`` reads both.
SHEET_PAYLOAD_VERSION = 2

ACTOR_KINDS = ("unit", "coordinator", "auditor", "admin", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``kind:id``, e.g. ``coordinator:wang.li`` or ``system:sweep``."""

    kind: str
    id: str

    @classmethod
    def parse(cls, text: str) -> Actor:
        kind, sep, ident = (text or "").partition(":")
        if not sep or kind not in ACTOR_KINDS or not ident.strip():
            raise InvalidInput(
                f"actor {text!r} must look like KIND:ID with KIND one of {', '.join(ACTOR_KINDS)}",
                [],
            )
        return cls(kind, ident.strip())

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"

    def may(self, action: str) -> bool:
        by = ACTIONS[action].by
        return self.kind in by or (self.kind == "admin" and by != {SYSTEM})


@dataclass(frozen=True, slots=True)
class RoundContext:
    """What a round's rules say, as far as the lifecycle needs them."""

    round_id: str
    policy: Policy
    pass_mark: Decimal
    max_total: Decimal
    rubric: Rubric
    # The documents a submission needs (besides evidence per criterion), as the round opened.
    documents: tuple[RequiredDocument, ...] = ()
    lifecycle: Lifecycle = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lifecycle", lifecycle_for(self.policy))


@dataclass(frozen=True, slots=True)
class CaseState:
    """The projection of a case's events; also the case row."""

    id: int
    round_id: str
    unit_id: int
    state: str
    version: int
    last_hash: str
    carried_over_from: int | None = None
    self_total: Decimal | None = None
    verified_total: Decimal | None = None
    recheck_total: Decimal | None = None
    passed: bool | None = None
    rectification_due: date | None = None
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    # The unit's current self-assessment sheet (criterion code → entry as exact text).
    self_entries: dict[str, str] | None = None
    # Evidence on the case: (criterion code, sha256, file name), in attachment order.
    evidence: tuple[tuple[str, str, str], ...] = ()
    # Deadlines missed: (milestone, what owes it: states, or CONTACT_FORM); overdue while still owed.
    missed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    overdue: bool = False
    # The round's required documents on the case: (document id, sha256, file name).
    documents: tuple[tuple[str, str, str], ...] = ()
    # The contact-person form (附件2) was given or confirmed for this round.
    contact_form: bool = False


def still_owed(owed_in: tuple[str, ...] | list[str], state: str, contact_form: bool) -> bool:
    """Whether a recorded miss is still owed (the lifecycle's one rule, ``Owing``)."""
    return Owing.of_recorded(owed_in).holds(state, contact_form)
