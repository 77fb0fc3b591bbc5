"""What the services need from the outside world, and nothing else.

The services (this package) are written against these protocols only; ``adapters`` implement
them (SQL on SQLite and PostgreSQL, and an in-memory fake for fast tests), and ``bootstrap``
wires one in. Both implementations pass the same contract tests (``tests/contract``).

The rule of the house: a ``Storage`` (``db``) reads; a unit of work (``with db.unit_of_work()
as uow``) writes, and everything written through it commits together or not at all. A unit of
work is the case store (the aggregate: ``get``, ``append``, ``events``, ...) and holds the other
stores bound to its transaction (``uow.outbox``, ``uow.directory``, ``uow.rounds``,
``uow.oversight``, ``uow.duties``, ``uow.tokens``, ``uow.simulations``).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from ..domain.calendar import Calendar
from ..domain.case import CaseState, Notice, RoundContext
from ..domain.duties import DutyEvent, DutyStream
from ..domain.events import Event
from ..domain.lifecycle import Owing
from ..domain.operator import OperatorEvent
from ..domain.rubric import Rubric

# ---------------------------------------------------------------- records (what the stores hold)

@dataclass(frozen=True, slots=True)
class JurisdictionRecord:
    id: str
    name: str
    level: str
    parent_id: str | None
    path: str  # "/shanxi/shanxi-taiyuan/": a subtree is one prefix


@dataclass(frozen=True, slots=True)
class UnitRecord:
    id: int
    jurisdiction_id: str
    name: str
    level: str
    category: str
    contacts: list[dict[str, Any]]
    certified_year: int | None
    certified_note: str | None
    created_at: datetime
    updated_at: datetime
    path: str = ""  # its jurisdiction's path


@dataclass(frozen=True, slots=True)
class NewUnit:
    jurisdiction_id: str
    name: str
    level: str
    category: str
    contacts: list[dict[str, Any]]
    certified_year: int | None
    certified_note: str | None


@dataclass(frozen=True, slots=True)
class CoordinatorRecord:
    id: int
    jurisdiction_id: str
    name: str
    email: str
    active: bool
    jurisdiction_name: str = ""


@dataclass(frozen=True, slots=True)
class RoundRecord:
    id: str
    province_id: str
    year: int
    rubric_id: str
    calendar_id: str
    target_share: Decimal
    pass_mark: Decimal
    max_total: Decimal
    policy: dict[str, Any]
    rubric_data: dict[str, Any]
    documents: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    opened_at: datetime
    opened_by: str
    province_path: str = ""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: int
    name: str
    role: str
    unit_id: int | None
    jurisdiction_id: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    path: str | None = None  # the jurisdiction's path (a coordinator's or an auditor's scope)
    unit_path: str | None = None  # a unit token's: the path of the unit's jurisdiction
    revoked_by: str | None = None  # the actor who revoked it
    account_id: int | None = None  # the account it belongs to (None: made before accounts)
    account_login: str | None = None  # joined from the account
    account_name: str | None = None
    account_disabled: bool = False


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A person who signs in: their role and scope (a unit, or a jurisdiction subtree), how to
    reach them, and how they sign in (an argon2id hash of their password, for the console)."""

    id: int
    login: str  # unique in the system: what they sign in with and what ``--actor`` names
    name: str  # display name, unique within the account's jurisdiction
    role: str
    unit_id: int | None
    jurisdiction_id: str | None
    email: str | None
    phone: str | None
    password_hash: str | None
    created_at: datetime
    created_by: str
    home: str  # the jurisdiction the name is unique within ("" for an admin)
    disabled_at: datetime | None = None
    disabled_by: str | None = None
    path: str | None = None  # joined: the scope's path (a unit account: its unit's jurisdiction's)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser of the console (the cookie's secret is never stored, only its hash)."""

    id: int
    account_id: int
    csrf: str  # the token every form of this session carries
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuditRunRecord:
    """A check of the hash chains of one scope (``scope``: a jurisdiction path; "": every one)."""

    id: int
    scope: str
    requested_by: str
    requested_at: datetime
    status: str  # queued | running | done | failed
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ok: bool | None = None
    result: dict[str, Any] | None = None  # counts, findings, the checkpoint compared (service.audit_runs)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A one-time link to set a password: ``invitation`` (first sign-in) or ``reset``."""

    id: int
    account_id: int
    purpose: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A notification to deliver, once per ``dedupe_key``."""

    dedupe_key: str
    kind: str
    round_id: str
    milestone: str
    due_on: date
    case_id: int | None = None
    coordinator_id: int | None = None
    tier: int | None = None
    context: dict[str, Any] | None = None
    channel_id: int | None = None  # a robot channel's delivery of the notification; None: the mail


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: int
    dedupe_key: str
    kind: str
    round_id: str
    case_id: int | None
    coordinator_id: int | None
    milestone: str
    tier: int | None
    due_on: date
    context: str | None
    status: str
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    last_error: str | None
    message_id: str | None
    recipients: str | None
    created_at: datetime
    sent_at: datetime | None
    channel_id: int | None = None  # a robot channel's delivery; None: the mail


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    """A group robot (WeCom, DingTalk) or a bureau's webhook that notifications also go to:
    a jurisdiction's group for its units (``units``: reaches a unit with no email) or for its
    coordinators (``coordinators``: their digests), or one unit's own (``unit``)."""

    id: int
    jurisdiction_id: str
    unit_id: int | None
    audience: str  # units | coordinators | unit
    kind: str  # wecom | dingtalk | webhook
    url: str  # a secret: it carries the robot's key or token
    secret: str | None
    name: str
    created_at: datetime
    created_by: str
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SpotCheckRecord:
    id: str
    round_id: str
    jurisdiction_id: str
    seed: int
    share: Decimal
    population: list[int]
    drawn: list[int]
    drawn_at: datetime
    drawn_by: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What a spot check (``check_id``: the draw) or the national bureau's results for a filing
    batch (``check_id``: the batch) found for one case, and what it led to (``consequence``:
    ``none`` for a pass, ``rectification`` with ``due_on``, or ``revoked``)."""

    check_id: str
    case_id: int
    round_id: str
    outcome: str  # passed | problems
    consequence: str  # none | rectification | revoked
    decided_by: str  # province | national
    findings: str | None
    evidence: str | None
    due_on: date | None
    recorded_at: datetime
    recorded_by: str


@dataclass(frozen=True, slots=True)
class FilingRecord:
    id: str
    round_id: str
    jurisdiction_id: str
    cases: list[dict[str, Any]]
    totals: dict[str, Any]
    filed_at: datetime
    filed_by: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class Remembered:
    """What a request with an idempotency key did."""

    what: str
    case_id: int | None
    seq: int | None
    ref: str | None
    fingerprint: str


# ---------------------------------------------------------------- read-side rows

@dataclass(frozen=True, slots=True)
class CaseFilter:
    round_id: str | None = None
    state: str | None = None
    within_path: str | None = None  # the caller's scope (a jurisdiction subtree)
    filter_path: str | None = None  # the jurisdiction asked for (already checked against the scope)
    unit_id: int | None = None
    overdue: bool | None = None
    category: str | None = None
    level: str | None = None
    after_id: int = 0  # the cursor of ``sort="id"`` (with any other sort: 0)
    limit: int = 100
    name: str | None = None  # a part of the unit's name, matched literally (A-Z as a-z)
    missed: str | None = None  # a milestone: only the cases with a recorded miss of it
    sort: str = "id"  # one of CASE_SORTS (the id breaks ties, ascending; no total comes last)
    offset: int = 0  # rows skipped before the page (the paging of a sort other than id)
    owing: Owing | None = None  # only the cases that owe a milestone now, by its rule (with round_id)


# How a case list may be ordered: a key ascending, or descending with "-" before it. The
# totals' NULLs (none given yet) come last either way; ``state`` is the lifecycle's order
# (``domain.lifecycle.STATES``), ``unit`` the unit's name by code point.
CASE_SORTS: tuple[str, ...] = ("id", "-id", "unit", "-unit", "self_total", "-self_total", "verified_total",
                               "-verified_total", "updated", "-updated", "state", "-state")


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: int
    round_id: str
    unit_id: int
    unit_name: str
    jurisdiction_id: str
    category: str
    state: str
    version: int
    self_total: Decimal | None
    verified_total: Decimal | None
    recheck_total: Decimal | None
    rectification_due: date | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CaseScope:
    """Who a case belongs to: enough to say whether a caller sees it."""

    id: int
    unit_id: int
    round_id: str
    unit_name: str
    path: str


@dataclass(frozen=True, slots=True)
class OwingCase:
    case_id: int
    unit_id: int
    unit_name: str
    jurisdiction_id: str
    state: str
    rectification_due: date | None = None


@dataclass(frozen=True, slots=True)
class CaseGroup:
    """The round's cases of one jurisdiction, state, overdue flag and misses, counted."""

    jurisdiction_id: str
    state: str
    overdue: bool
    missed: tuple[str, ...]
    count: int


@dataclass(frozen=True, slots=True)
class AgencyGroup:
    """The agencies of one jurisdiction and level, and how many of them are certified to date."""

    jurisdiction_id: str
    level: str
    count: int
    certified: int


@dataclass(frozen=True, slots=True)
class CaseReferent:
    """What a case's notification needs at sending time."""

    id: int
    state: str
    rectification_due: date | None
    verified_total: Decimal | None
    contact_form: bool
    overdue: bool
    unit_name: str
    contacts: list[dict[str, Any]]
    held_title: str | None = None  # a spot check's rectification (the title held)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last stored event of one hash chain: a case's events, or a duty stream's."""

    kind: str  # "case", "duties" or "operator"
    key: str  # the case id as text, the duty stream's key (round/jurisdiction), or the operator stream
    seq: int  # the last event's sequence number (= how many events the chain has, when intact)
    hash: str  # the last event's stored hash


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: datetime
    who: str
    event: str
    mail: str


# ---------------------------------------------------------------- the stores

class DirectoryStore(Protocol):
    """Jurisdictions, units, coordinators."""

    def jurisdictions(self, within_path: str | None = None) -> list[JurisdictionRecord]: ...

    def jurisdiction(self, jurisdiction_id: str) -> JurisdictionRecord | None: ...

    def units(self, within_path: str | None = None, *, after_id: int = 0, limit: int | None = None
              ) -> list[UnitRecord]:
        """The units of the subtree in id order, those after ``after_id``, at most ``limit``."""
        ...

    def unit(self, unit_id: int) -> UnitRecord | None: ...

    def unit_named(self, jurisdiction_id: str, name: str) -> UnitRecord | None: ...

    def coordinators(self, active_only: bool = False) -> list[CoordinatorRecord]: ...

    # writes (through a unit of work; a unique key taken meanwhile raises AlreadyExists)
    def add_jurisdiction(self, record: JurisdictionRecord) -> None: ...

    def rename_jurisdiction(self, jurisdiction_id: str, name: str) -> None: ...

    def add_unit(self, unit: NewUnit, now: datetime) -> UnitRecord: ...

    def save_unit(self, unit: UnitRecord) -> UnitRecord: ...

    def add_coordinator(self, jurisdiction_id: str, name: str, email: str) -> CoordinatorRecord: ...

    # many at once (a roster imported)
    def unit_keys(self) -> dict[tuple[str, str], int]:
        """(jurisdiction, name) → id of every unit (what a roster's rows are known by), without
        reading the units themselves."""
        ...

    def unit_ids(self, within_path: str | None = None) -> list[int]:
        """The ids of the units of the subtree, in id order (``units`` without the records)."""
        ...

    def units_of(self, unit_ids: Sequence[int]) -> list[UnitRecord]:
        """The units of these ids that exist, in id order."""
        ...

    def add_units(self, units: Sequence[NewUnit], now: datetime) -> int:
        """``add_unit`` for each, in order (the same ids, refusals and counts), written together
        and not read back: how many were added."""
        ...


class TokenStore(Protocol):
    def by_hash(self, token_hash: str) -> TokenRecord | None: ...

    def all(self) -> list[TokenRecord]: ...

    def add(self, *, name: str, role: str, unit_id: int | None, jurisdiction_id: str | None, token_hash: str,
            created_at: datetime, created_by: str, expires_at: datetime | None,
            account_id: int | None = None) -> int: ...

    def revoke(self, token_id: int, now: datetime, by: str) -> bool: ...


class SignInStore(Protocol):
    """The console's sessions, failed sign-ins by login, and one-time password links."""

    def add_session(self, *, account_id: int, secret_hash: str, csrf: str, created_at: datetime,
                    expires_at: datetime, address: str | None) -> int: ...

    def session(self, secret_hash: str) -> SessionRecord | None: ...

    def end_session(self, session_id: int, now: datetime) -> bool:
        """End a session not ended yet (False: unknown or ended already)."""
        ...

    def end_sessions_of(self, account_id: int, now: datetime) -> int:
        """End every open session of an account (a new password, a disabled account)."""
        ...

    def failures(self, login: str) -> tuple[int, datetime | None, datetime | None]:
        """(failures counted, the first one's time, locked until) for a login; (0, None, None)."""
        ...

    def set_failures(self, login: str, failures: int, first_at: datetime, locked_until: datetime | None) -> None: ...

    def clear_failures(self, login: str) -> None: ...

    def add_link(self, *, account_id: int, purpose: str, secret_hash: str, created_at: datetime, created_by: str,
                 expires_at: datetime) -> int: ...

    def link(self, secret_hash: str) -> LinkRecord | None: ...

    def use_link(self, link_id: int, now: datetime) -> bool:
        """Mark a link used, if it was not (False: used already: a link works once)."""
        ...


class AuditRunStore(Protocol):
    """The chain checks asked for and their results (the ``AuditRunStore`` port)."""

    def add(self, *, scope: str, requested_by: str, requested_at: datetime) -> int:
        """A queued run; its id."""
        ...

    def get(self, run_id: int) -> AuditRunRecord | None: ...

    def runs(self, scopes: Sequence[str], limit: int) -> list[AuditRunRecord]:
        """The latest runs of these scopes, newest (highest id) first."""
        ...

    def queued(self) -> list[AuditRunRecord]:
        """The runs waiting, oldest first."""
        ...

    def claim(self, run_id: int, now: datetime) -> bool:
        """Start a queued run (False: it is not queued any more: another process took it)."""
        ...

    def finish(self, run_id: int, now: datetime, *, ok: bool | None, result: dict[str, Any] | None,
               error: str | None) -> None:
        """A running run done (``error`` None) or failed."""
        ...

    def interrupt(self, started_before: datetime, now: datetime, error: str) -> int:
        """Fail the runs still running that started before ``started_before`` (their process
        stopped); how many."""
        ...


class ChannelStore(Protocol):
    """The robot channels notifications also go to (the ``ChannelStore`` port)."""

    def add(self, channel: ChannelRecord) -> int: ...

    def get(self, channel_id: int) -> ChannelRecord | None: ...

    def channels(self, within_path: str | None = None) -> list[ChannelRecord]:
        """Every channel (enabled or not) of the jurisdictions in the subtree, by id."""
        ...

    def disable(self, channel_id: int, now: datetime) -> bool:
        """Stop sending to a channel (False: unknown or disabled already)."""
        ...


class AccountStore(Protocol):
    """People's accounts (the ``AccountStore`` port)."""

    def get(self, account_id: int) -> AccountRecord | None: ...

    def by_login(self, login: str) -> AccountRecord | None: ...

    def by_name(self, home: str, name: str) -> AccountRecord | None: ...

    def all(self, within_path: str | None = None) -> list[AccountRecord]: ...

    def add(self, account: AccountRecord) -> int:
        """Store a new account (its ``id`` ignored); its id (AlreadyExists for a login or a name taken)."""
        ...

    def save(self, account: AccountRecord) -> None:
        """Store an account's changed fields."""
        ...


class OperatorLog(Protocol):
    """The operator audit log: one hash-chained stream per kind of thing changed."""

    def append(self, stream: str, type_: str, actor: str, now: datetime, payload: dict[str, Any]) -> OperatorEvent:
        """Chain an event to the stream's head, in this transaction."""
        ...

    def events(self, stream: str | None = None) -> list[OperatorEvent]:
        """The stream's events (every stream's: by stream, then seq)."""
        ...


class RoundStore(Protocol):
    def round(self, round_id: str) -> RoundRecord | None: ...

    def rounds(self) -> list[RoundRecord]: ...

    def lock(self, round_id: str) -> bool:
        """The round exists; its row is locked for this transaction (PostgreSQL), so that two
        numbered acts on one round (draws, batches) number themselves one after the other."""
        ...

    def add(self, record: RoundRecord) -> None: ...

    def units_done_by(self, province_id: str, year: int) -> set[int]:
        """Units certified or filed in a round of the province before ``year``, or recorded as
        certified before the system by ``year``: they are not registered again."""
        ...

    def not_certified_in(self, round_id: str) -> dict[int, int]:
        """unit id → case id of the round's cases that ended not certified."""
        ...


class OutboxStore(Protocol):
    def marked(self, round_id: str, milestone: str, stage: str) -> bool: ...

    def mark(self, round_id: str, milestone: str, stage: str, now: datetime) -> None: ...

    def remind_owing(self, round_id: str, milestone: str, tier: int, due: date, owing: Owing, now: datetime) -> int:
        """A reminder to every case of the round that owes the milestone (one set-based write;
        a key written before is skipped): how many were written."""
        ...

    def add(self, entries: list[OutboxEntry], now: datetime) -> int:
        """Write the entries not written before (by dedupe key): how many were written."""
        ...

    def claim(self, now: datetime, lease_until: datetime, batch: int) -> list[OutboxRecord]:
        """Rows due now (pending, or sending with a lapsed lease), taken with a lease; two
        dispatchers never take the same row."""
        ...

    def settle(self, row_id: int, claimed_until: datetime | None, values: Mapping[str, Any]) -> bool:
        """Write an outcome only while the row is still held with this lease."""
        ...

    def release_claims(self) -> int:
        """Hand every claimed row back (a simulation resumed after a crash)."""
        ...

    def rows(self, *, status: str | None = None, case_id: int | None = None, limit: int = 200) -> list[OutboxRecord]:
        ...

    def count_by_status(self, mail_only: bool = False) -> dict[str, int]:
        """Rows by status (``mail_only``: the mails, not their channels' deliveries)."""
        ...


class OversightStore(Protocol):
    def cases_in(self, round_id: str, path: str, states: tuple[str, ...]) -> list[int]: ...

    def unit_names(self, case_ids: list[int]) -> dict[int, str]: ...

    def count_spot_checks(self, round_id: str) -> int: ...

    def add_spot_check(self, record: SpotCheckRecord) -> None: ...

    def spot_checks(self, round_id: str, within_path: str | None = None) -> list[SpotCheckRecord]: ...

    def count_filings(self, round_id: str) -> int: ...

    def add_filing(self, record: FilingRecord) -> None: ...

    def filing(self, batch_id: str) -> FilingRecord | None: ...

    def filings(self, round_id: str, within_path: str | None = None) -> list[FilingRecord]: ...

    def add_outcome(self, record: OutcomeRecord) -> None:
        """Store a case's outcome of a check (AlreadyExists when the case has one for it)."""
        ...

    def outcomes(self, round_id: str, check_id: str | None = None) -> list[OutcomeRecord]:
        """The round's outcomes (of one check), by check and case."""
        ...


class DutyStore(Protocol):
    def stream(self, round_id: str, jurisdiction_id: str) -> DutyStream: ...

    def streams(self, round_id: str) -> dict[str, DutyStream]: ...

    def append(self, before: DutyStream, event: DutyEvent, after: DutyStream, now: datetime) -> None:
        """Store the event and the new projection if the stream is still at ``before.version``."""
        ...

    def events(self, round_id: str, jurisdiction_id: str) -> list[DutyEvent]: ...


class SimulationStore(Protocol):
    """How far a ``workflow simulate`` run has got, and the refusals it met (for a resume)."""

    def progress(self, digest: str) -> tuple[bool, date | None]:
        """(whether a run of this scenario was started here, the last day it finished)."""
        ...

    def start(self, digest: str, scenario: str) -> None: ...

    def finish_day(self, digest: str, day: date) -> None: ...

    def refusal(self, key: str) -> str | None: ...

    def remember_refusal(self, key: str, why: str, now: datetime) -> None: ...


class ReadModels(Protocol):
    """The read side: lists, scopes, reports' counts, what a notification refers to."""

    def case_rows(self, query: CaseFilter) -> list[CaseRow]:
        """The cases the filter keeps (a filter of None or "" keeps every value) in ``query.sort``
        order: after ``after_id`` (only with ``sort="id"``), ``offset`` skipped, at most ``limit``
        (ValueError for a sort not in CASE_SORTS, or an ``after_id`` with another sort)."""
        ...

    def case_count(self, query: CaseFilter) -> int:
        """How many cases the filter keeps (``after_id``, ``offset``, ``limit`` and ``sort`` aside)."""
        ...

    def case_scope(self, case_id: int) -> CaseScope | None: ...

    def unit_case_ids(self, unit_id: int) -> list[int]: ...

    def has_case_in(self, round_id: str, unit_id: int) -> bool: ...

    def case_groups(self, round_id: str, root_path: str) -> list[CaseGroup]: ...

    def agency_groups(self, year: int, root_path: str) -> list[AgencyGroup]:
        """The units of the subtree by jurisdiction and level, and how many count as certified by
        the end of ``year``: certified or filed in a round of that year or earlier and not
        withdrawn since, or certified before the system (a unit's rounds are its province's)."""
        ...

    def owing_cases(self, round_id: str, owing: Owing, within_path: str | None = None,
                    limit: int | None = None) -> list[OwingCase]:
        """The round's cases (in the subtree) that owe by ``owing``, in id order; the first
        ``limit`` of them when given."""
        ...

    def owing_count(self, round_id: str, owings: Sequence[Owing], within_path: str | None = None) -> int:
        """How many of the round's cases (in the subtree) owe by any of ``owings`` (each counted once)."""
        ...

    def overdue_cases(self, round_id: str, milestone: str) -> list[OwingCase]:
        """The round's cases still overdue with a recorded miss of ``milestone``."""
        ...

    def rectifications(self, round_id: str) -> list[OwingCase]:
        """The round's cases in rectification, with their due dates."""
        ...

    def case_states(self, case_ids: list[int]) -> dict[int, CaseReferent]: ...

    def cases_by_id(self, case_ids: list[int]) -> list[OwingCase]:
        """These cases (those that exist), in id order."""
        ...

    def jurisdictions_with_cases(self, round_id: str) -> list[str]: ...

    def timeline(self, round_ids: list[str]) -> list[TimelineRow]: ...


class Stores(Protocol):
    """Every store besides the cases: read from a ``Storage``, written through a unit of work."""

    @property
    def directory(self) -> DirectoryStore: ...

    @property
    def tokens(self) -> TokenStore: ...

    @property
    def accounts(self) -> AccountStore: ...

    @property
    def sign_ins(self) -> SignInStore: ...

    @property
    def audit_runs(self) -> AuditRunStore: ...

    @property
    def channels(self) -> ChannelStore: ...

    @property
    def operator(self) -> OperatorLog: ...

    @property
    def rounds(self) -> RoundStore: ...

    @property
    def outbox(self) -> OutboxStore: ...

    @property
    def oversight(self) -> OversightStore: ...

    @property
    def duties(self) -> DutyStore: ...

    @property
    def simulations(self) -> SimulationStore: ...

    @property
    def read(self) -> ReadModels: ...


class CaseStore(Stores, Protocol):
    """One unit of work: the case store of its transaction, and the other stores bound to it."""

    def round_context(self, round_id: str) -> RoundContext: ...

    def get(self, case_id: int) -> CaseState:
        """The case as stored (raises NotFound)."""
        ...

    def find(self, round_id: str, unit_id: int) -> CaseState | None: ...

    def open_case_ids(self, unit_id: int) -> list[int]:
        """The unit's cases not in a final state, in id order."""
        ...

    def create(self, round_id: str, unit_id: int, actor: str, now: datetime, carried_over_from: int | None = None
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

    # many at once (a round opened, the sweep's misses): what the one-at-a-time methods above do
    # for each, with a statement per batch instead of one per case
    def get_many(self, case_ids: Sequence[int]) -> dict[int, CaseState]:
        """The cases of ``case_ids`` that exist, as stored, by id."""
        ...

    def create_many(self, round_id: str, units: Sequence[tuple[int, int | None]], actor: str, now: datetime
                    ) -> list[int]:
        """``create`` for each (unit, case carried over from), in order, with the same refusals
        (AlreadyExists, NotFound): the new cases' ids, in the order given."""
        ...

    def append_many(self, changes: Sequence[tuple[CaseState, Event, CaseState]]) -> None:
        """``append`` for each (before, event, after): ConflictError if any case is no longer at
        its ``before.version`` (then roll the unit of work back: part of the batch may be written)."""
        ...

    def notify_many(self, notices: Sequence[tuple[CaseState, Notice]], now: datetime) -> int:
        """``notify`` for each (case, notice), in order: how many were written (a key written
        before is skipped)."""
        ...

    def recall(self, key: str) -> Remembered | None: ...

    def remember(self, key: str, what: str, now: datetime, *, fingerprint: str, case_id: int | None = None,
                 seq: int | None = None, ref: str | None = None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...


class UnitOfWorkContext(Protocol):
    def __enter__(self) -> CaseStore: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class CaseStoreFactory(Protocol):
    def unit_of_work(self, core: bool = False) -> UnitOfWorkContext: ...


class EventSource(Protocol):
    def all_cases(self) -> Iterator[CaseState]: ...

    def all_events(self) -> Iterator[Event]: ...

    def rubric_of(self, round_id: str) -> Rubric:
        """The round's rubric as it opened (to read version-1 sheets of its cases)."""
        ...

    def all_duty_streams(self) -> Iterator[DutyStream]: ...

    def all_duty_events(self) -> Iterator[DutyEvent]: ...

    def chain_heads(self) -> Iterator[ChainHead]:
        """The last stored event of every chain (read from the events, never from the case or
        stream rows): cases in id order, then duty streams in (round, jurisdiction) order, then
        the operator streams by name (only for the whole database, not a subtree)."""
        ...

    def all_operator_events(self) -> Iterator[OperatorEvent]:
        """Every operator event, by stream then seq (none for a subtree: the streams are the
        system's)."""
        ...

    def all_filings(self) -> Iterator[FilingRecord]:
        """Every filing batch that may list a case of this source (its jurisdiction in the
        subtree, or above it), in id order."""
        ...

    def count_differences(self) -> list[str]:
        """Where the counts kept for the reports differ from a recount of the rows, one line
        each (a store that counts on demand keeps nothing to differ)."""
        ...


class Storage(Stores, CaseStoreFactory, EventSource, Protocol):
    """A database as the services see it: units of work to write, stores to read."""

    def reader(self) -> UnitOfWorkContext:
        """A unit of work that only reads (it takes no write lock)."""
        ...

    def prepare(self) -> None:
        """Create or migrate the schema (an empty database for a simulation)."""
        ...

    def describe(self) -> str:
        """Where the data is, for people (a URL without its password)."""
        ...

    def within(self, path: str | None) -> EventSource:
        """The cases, events and duty streams of one jurisdiction subtree (an auditor's scope)."""
        ...


# ---------------------------------------------------------------- the rest of the outside world

class Catalog(Protocol):
    def get(self, ident: str) -> Any: ...


class Workdays(Protocol):
    def __call__(self, day: date) -> bool: ...

    def warnings(self, years: Any) -> list[str]: ...


class Calendars(Protocol):
    def get(self, ident: str) -> Calendar: ...

    def for_year(self, province: str, year: int) -> Calendar: ...

    def workdays(self, calendar: Calendar) -> Workdays:
        """Which days are working days under this calendar (official holidays and its extras)."""
        ...


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One file of a ZIP: its name in the archive and the stored blob."""

    path_in_zip: str  # e.g. "2.2.1.1 管理制度/01 实施方案.pdf"
    sha256: str
    modified: datetime | None = None  # the file's date in the ZIP: when it was attached (None: 1980-01-01)


class EvidenceBlobs(Protocol):
    """Evidence bytes, stored by content (a folder, an object store)."""

    def check(self, data: bytes, filename: str) -> tuple[str, str]:
        """(sha256, type) of acceptable bytes, or InvalidInput saying why not."""
        ...

    def put(self, data: bytes, filename: str) -> Any: ...

    def open(self, sha256: str) -> bytes: ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """The blob's size in bytes (NotFound if there is none)."""
        ...

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The blob's bytes a piece at a time, never whole in memory; CorruptBlob instead of
        the last piece when they do not hash to the name."""
        ...

    def archive(self, entries: list[ArchiveEntry], out: Path | BinaryIO) -> None:
        """Write the entries' blobs as one ZIP (checked before anything is written)."""
        ...

    def archive_chunks(self, entries: list[ArchiveEntry]) -> Iterator[bytes]:
        """The same ZIP as it is written, piece by piece; the entries and the blobs' presence
        are checked before this returns (those errors come before the first byte)."""
        ...


class CheckpointSigner(Protocol):
    """Signs checkpoints with a private key kept outside the database."""

    def key_id(self) -> str:
        """The SHA-256 (hex) of the raw public key: which key signed a checkpoint."""
        ...

    def sign(self, message: bytes) -> bytes: ...


class CheckpointVerifier(Protocol):
    """Checks checkpoint signatures with the public key alone."""

    def key_id(self) -> str: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...


class CheckpointStore(Protocol):
    """Signed checkpoints, kept outside the database (a directory), numbered from 1."""

    def sequences(self) -> list[int]:
        """The sequence numbers of the checkpoints kept, in order."""
        ...

    def read(self, sequence: int) -> bytes: ...

    def add(self, sequence: int, data: bytes) -> str:
        """Keep a new checkpoint (never replacing one: AlreadyExists when the number is taken);
        its name, for people (a file name, never a server path)."""
        ...

    def name(self, sequence: int) -> str: ...
