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
# How a person reached the system (recorded in every event they cause).
CHANNELS = ("api", "cli", "console", "scheduler", "simulation")
# What a display name may not hold: the separators of the actor text, and control characters.
NAME_FORBIDDEN = frozenset(";=\n\r\t\x00")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``kind:id`` (e.g. ``coordinator:wang.li``, ``unit:12``, ``system:sweep``) and,
    for a person, the account that acted, its display name at that moment and the channel
    (``api``, ``cli``, ``console``, ``scheduler``). As text (what events store and hash):
    ``coordinator:wang.li;account=7;name=王科长;via=api`` — the first part alone for events
    written before accounts existed and for the system's own jobs (``system:sweep;via=scheduler``)."""

    kind: str
    id: str
    account: int | None = None
    name: str | None = None
    channel: str | None = None

    @classmethod
    def parse(cls, text: str) -> Actor:
        """An actor from its text (an event's ``actor``); InvalidInput for text that is not one."""
        head, *parts = (text or "").split(";")
        kind, sep, ident = head.partition(":")
        if not sep or kind not in ACTOR_KINDS or not ident.strip():
            raise InvalidInput(
                f"actor {text!r} must look like KIND:ID with KIND one of {', '.join(ACTOR_KINDS)}",
                [], f"操作人 {text!r} 应写作 类别:标识，类别为 {', '.join(ACTOR_KINDS)} 之一",
            )
        fields: dict[str, str] = {}
        for part in parts:
            key, eq, value = part.partition("=")
            if not eq or key not in ("account", "name", "via") or key in fields:
                raise InvalidInput(f"actor {text!r}: {part!r} is not account=N, name=… or via=CHANNEL", [],
                                   f"操作人 {text!r}：{part!r} 不是 account=编号、name=姓名 或 via=渠道")
            fields[key] = value
        account = fields.get("account")
        if account is not None and not account.isdigit():
            raise InvalidInput(f"actor {text!r}: account must be a number", [], f"操作人 {text!r}：account 须为数字")
        return cls(kind, ident.strip(), None if account is None else int(account), fields.get("name"),
                   fields.get("via"))

    def __str__(self) -> str:
        text = f"{self.kind}:{self.id}"
        if self.account is not None:
            text += f";account={self.account}"
        if self.name is not None:
            text += f";name={self.name}"
        if self.channel is not None:
            text += f";via={self.channel}"
        return text

    def via(self, channel: str) -> Actor:
        """The same actor, acting through ``channel``."""
        return Actor(self.kind, self.id, self.account, self.name, channel)

    @property
    def label(self) -> str:
        """What a person reads: the display name (with the account) or the kind:id."""
        who = self.name if self.name else f"{self.kind}:{self.id}"
        return who if self.account is None else f"{who}（账号 {self.account}）"

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
    # While a spot check's rectification runs: the state the title was in (certified or filed),
    # to which a passed recheck returns it. None otherwise.
    held_title: str | None = None


def still_owed(owed_in: tuple[str, ...] | list[str], state: str, contact_form: bool) -> bool:
    """Whether a recorded miss is still owed (the lifecycle's one rule, ``Owing``)."""
    return Owing.of_recorded(owed_in).holds(state, contact_form)
