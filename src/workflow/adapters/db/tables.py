"""Database tables (SQLModel). ``table=True`` models are storage only: inputs are
validated by the domain and the schemas before they get here."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel

from .types import DecimalText, UTCDateTime


class Jurisdiction(SQLModel, table=True):
    __tablename__ = "jurisdictions"

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    level: str = Field(sa_column=Column(String(16), nullable=False))  # province / city / county
    parent_id: str | None = Field(default=None, sa_column=Column(String(64), ForeignKey("jurisdictions.id"),
                                                                 nullable=True))
    # Materialised path "/shanxi/taiyuan/": a subtree is one prefix match.
    path: str = Field(sa_column=Column(String(700), nullable=False, index=True, unique=True))


class Unit(SQLModel, table=True):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("jurisdiction_id", "name", name="uq_unit_jurisdiction_name"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False,
                                                  index=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    level: str = Field(sa_column=Column(String(16), nullable=False))  # provincial / city / county
    category: str = Field(sa_column=Column(String(32), nullable=False))
    contacts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Certified (建成节约型机关) before this system kept the province's rounds: the year, and
    # where it is written (e.g. the list that named it). Counts towards progress from that year.
    certified_year: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    certified_note: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    # The first year the unit counts as certified (a round's certification or certified_year);
    # 0: never. Kept with ``agency_counts`` (adapters/db/counts.py).
    certified_since: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default=text("0")))


class CaseCount(SQLModel, table=True):
    """A round's cases of one jurisdiction, unit level, state, overdue flag and misses, counted
    in the transaction of every transition (the progress report reads these, not the cases)."""

    __tablename__ = "case_counts"
    # On SQLite the rows live in their key's B-tree (no rowid table beside the key's index):
    # a transition's upsert writes one page, not two.
    __table_args__ = {"sqlite_with_rowid": False}

    round_id: str = Field(sa_column=Column(String(64), primary_key=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), primary_key=True))
    level: str = Field(sa_column=Column(String(16), primary_key=True))
    state: str = Field(sa_column=Column(String(32), primary_key=True))
    overdue: bool = Field(sa_column=Column(Boolean, primary_key=True))
    missed: str = Field(sa_column=Column(String(400), primary_key=True))  # milestone ids, comma-joined
    n: int = Field(sa_column=Column(Integer, nullable=False))


class AgencyCount(SQLModel, table=True):
    """Every unit of one jurisdiction and level by the year it counts as certified from (0: never)."""

    __tablename__ = "agency_counts"
    __table_args__ = {"sqlite_with_rowid": False}

    jurisdiction_id: str = Field(sa_column=Column(String(64), primary_key=True))
    level: str = Field(sa_column=Column(String(16), primary_key=True))
    certified_since: int = Field(sa_column=Column(Integer, primary_key=True))
    n: int = Field(sa_column=Column(Integer, nullable=False))


class Round(SQLModel, table=True):
    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("province_id", "year", name="uq_round_province_year"),)

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    province_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False))
    year: int = Field(sa_column=Column(Integer, nullable=False))
    rubric_id: str = Field(sa_column=Column(String(64), nullable=False))
    calendar_id: str = Field(sa_column=Column(String(64), nullable=False))
    target_share: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    # Copied from the rubric and calendar when the round opens: a round's rules do not
    # change under it when a data file is edited later.
    pass_mark: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    max_total: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    policy: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The whole rubric as it was when the round opened (domain.rubric.rubric_to_data).
    rubric_data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    # The documents a submission needs and the year's targets, from the calendar as the round opened.
    documents: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    targets: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    opened_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    opened_by: str = Field(sa_column=Column(String(200), nullable=False))


class Case(SQLModel, table=True):
    """The projection of a case's events (see ``domain.case.CaseState``)."""

    __tablename__ = "cases"
    __table_args__ = (
        # Partial: only cases in rectification are in it, so other transitions never write it.
        Index("ix_cases_in_rectification", "rectification_due", sqlite_where=text("state = 'rectification'"),
              postgresql_where=text("state = 'rectification'")),
        # No index on state: every transition changes it, and an index would be one more
        # B-tree page written per durable commit; filters by state scan one round's rows.
        UniqueConstraint("round_id", "unit_id", name="uq_case_round_unit"),
        # A round's cases in id order: a page of the case list is a range scan that stops
        # after LIMIT rows (without it SQLite sorts the whole round). round_id never changes,
        # so no transition writes this index.
        Index("ix_cases_round_id", "round_id"),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False))
    unit_id: int = Field(sa_column=Column(Integer, ForeignKey("units.id"), nullable=False, index=True))
    state: str = Field(sa_column=Column(String(32), nullable=False))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    last_hash: str = Field(sa_column=Column(String(64), nullable=False))
    carried_over_from: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("cases.id"),
                                                                         nullable=True))
    self_total: Decimal | None = Field(default=None, sa_column=Column(DecimalText, nullable=True))
    verified_total: Decimal | None = Field(default=None, sa_column=Column(DecimalText, nullable=True))
    recheck_total: Decimal | None = Field(default=None, sa_column=Column(DecimalText, nullable=True))
    passed: bool | None = Field(default=None, nullable=True)
    rectification_due: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    registered_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    self_entries: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # canonical JSON
    evidence: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # canonical JSON list
    # Deadlines missed, as JSON [[milestone, [states that owe it]], ...]; overdue = still owing one.
    missed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    overdue: bool = Field(default=False, nullable=False)
    # The round's required documents on the case, JSON [[document, sha256, file name], ...].
    documents: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The contact-person form (附件2) given or confirmed for this round.
    contact_form: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    # While a spot check's rectification runs: the state its title was in (certified or filed).
    held_title: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))


class Event(SQLModel, table=True):
    """The append-only log. Database triggers refuse UPDATE and DELETE."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("case_id", "seq", name="uq_event_case_seq"),)

    position: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    case_id: int = Field(sa_column=Column(Integer, ForeignKey("cases.id"), nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    actor: str = Field(sa_column=Column(String(200), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON, as hashed
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class DutyStream(SQLModel, table=True):
    """A jurisdiction's duties in a round (its report, its filing, the evaluation of its own
    units): the projection of its own hash-chained event stream (``duty_events``)."""

    __tablename__ = "duty_streams"

    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), primary_key=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), primary_key=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    last_hash: str = Field(sa_column=Column(String(64), nullable=False))
    duties: str = Field(sa_column=Column(Text, nullable=False))  # canonical JSON: duty id → its status
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class DutyEvent(SQLModel, table=True):
    """The append-only log of the jurisdictions' duties, hash-chained per (round, jurisdiction).
    Database triggers refuse UPDATE and DELETE."""

    __tablename__ = "duty_events"
    __table_args__ = (UniqueConstraint("round_id", "jurisdiction_id", "seq", name="uq_duty_event_seq"),)

    position: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    actor: str = Field(sa_column=Column(String(200), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class Coordinator(SQLModel, table=True):
    """A bureau staff member who runs a jurisdiction: receives digests and reminders."""

    __tablename__ = "coordinators"
    __table_args__ = (UniqueConstraint("jurisdiction_id", "email", name="uq_coordinator_jurisdiction_email"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False,
                                                  index=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    email: str = Field(sa_column=Column(String(254), nullable=False))
    active: bool = Field(default=True, nullable=False)


class Outbox(SQLModel, table=True):
    """Notifications to deliver, one row per reason (``dedupe_key``), written in the same
    transaction as what caused them; the dispatcher delivers and records the outcome."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    dedupe_key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False))
    case_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("cases.id"), nullable=True,
                                                                  index=True))
    coordinator_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("coordinators.id"),
                                                                         nullable=True))
    milestone: str = Field(sa_column=Column(String(64), nullable=False))
    tier: int | None = Field(default=None, nullable=True)
    due_on: date = Field(sa_column=Column(Date, nullable=False))
    context: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON, for digests
    status: str = Field(sa_column=Column(String(16), nullable=False))  # pending/sending/sent/failed/cancelled
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    message_id: str | None = Field(default=None, sa_column=Column(String(250), nullable=True))
    recipients: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON, as sent
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    channel_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("channels.id"), nullable=True))


class Channel(SQLModel, table=True):
    """A group robot or a bureau's webhook that notifications also go to (``ChannelRecord``)."""

    __tablename__ = "channels"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False,
                                                  index=True))
    unit_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("units.id"), nullable=True,
                                                                  index=True))
    audience: str = Field(sa_column=Column(String(16), nullable=False))  # units | coordinators | unit
    kind: str = Field(sa_column=Column(String(16), nullable=False))  # wecom | dingtalk | webhook
    url: str = Field(sa_column=Column(String(1000), nullable=False))
    secret: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_column=Column(String(400), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class SweepMark(SQLModel, table=True):
    """A sweep stage finished for a round's milestone (so a sweep with nothing due reads
    no cases): ``stage`` is ``tier:N`` or ``missed``."""

    __tablename__ = "sweep_marks"

    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), primary_key=True))
    milestone: str = Field(sa_column=Column(String(64), primary_key=True))
    stage: str = Field(sa_column=Column(String(32), primary_key=True))
    done_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token: shown once, stored as its SHA-256, revocable, optionally expiring.
    ``unit_id`` scopes a unit's token; ``jurisdiction_id`` a coordinator's or auditor's."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    unit_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("units.id"), nullable=True))
    jurisdiction_id: str | None = Field(default=None, sa_column=Column(String(64), ForeignKey("jurisdictions.id"),
                                                                          nullable=True))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_column=Column(String(200), nullable=False))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_by: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    account_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=True,
                                                                     index=True))


class Account(SQLModel, table=True):
    """A person who signs in: role and scope, contact, argon2id password hash (console)."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("home", "name", name="uq_account_home_name"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    login: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    name: str = Field(sa_column=Column(String(100), nullable=False))
    role: str = Field(sa_column=Column(String(16), nullable=False))
    unit_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("units.id"), nullable=True))
    jurisdiction_id: str | None = Field(default=None, sa_column=Column(String(64), ForeignKey("jurisdictions.id"),
                                                                          nullable=True))
    home: str = Field(sa_column=Column(String(64), nullable=False))  # where the name is unique ("" admin)
    email: str | None = Field(default=None, sa_column=Column(String(254), nullable=True))
    phone: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    password_hash: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_column=Column(String(400), nullable=False))
    disabled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    disabled_by: str | None = Field(default=None, sa_column=Column(String(400), nullable=True))


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser: the cookie's secret stored as its SHA-256, its CSRF token, when it
    ends (``expires_at``; ``ended_at`` on sign-out, a password change or a disabled account)."""

    __tablename__ = "console_sessions"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False, index=True))
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    csrf: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    address: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))


class SignInFailure(SQLModel, table=True):
    """Failed sign-ins by login (known or not, so the answer never tells which), for the lockout."""

    __tablename__ = "sign_in_failures"

    login: str = Field(sa_column=Column(String(64), primary_key=True))
    failures: int = Field(sa_column=Column(Integer, nullable=False))
    first_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    locked_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class AccountLink(SQLModel, table=True):
    """A one-time link to set a password: an invitation (first sign-in) or a reset. Mailed to
    the person; stored as the SHA-256 of its secret; used once, before it expires."""

    __tablename__ = "account_links"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    account_id: int = Field(sa_column=Column(Integer, ForeignKey("accounts.id"), nullable=False, index=True))
    purpose: str = Field(sa_column=Column(String(16), nullable=False))  # invitation | reset
    secret_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_column=Column(String(400), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class AuditRun(SQLModel, table=True):
    """A check of the hash chains (and of the latest signed checkpoint) of one scope, asked for
    on the console or by the nightly job, run in the background: its state and, when done, its
    counts and findings (JSON; at most ``service.audit_runs.FINDINGS_KEPT`` findings kept)."""

    __tablename__ = "audit_runs"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    scope: str = Field(sa_column=Column(String(400), nullable=False))  # a jurisdiction path; "": every one
    requested_by: str = Field(sa_column=Column(String(400), nullable=False))
    requested_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # queued | running | done | failed
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    ok: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))
    result: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(String(400), nullable=True))


class OperatorStream(SQLModel, table=True):
    """The head of an operator stream (the version guards concurrent appends)."""

    __tablename__ = "operator_streams"

    stream: str = Field(sa_column=Column(String(32), primary_key=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))
    last_hash: str = Field(sa_column=Column(String(64), nullable=False))


class OperatorEvent(SQLModel, table=True):
    """The operator audit log, hash-chained per stream. Database triggers refuse UPDATE and DELETE."""

    __tablename__ = "operator_events"
    __table_args__ = (UniqueConstraint("stream", "seq", name="uq_operator_event_seq"),)

    position: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    stream: str = Field(sa_column=Column(String(32), nullable=False))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    actor: str = Field(sa_column=Column(String(400), nullable=False))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False))


class SpotCheck(SQLModel, table=True):
    """A spot check (抽查) drawn by a coordinator: reproducible from its seed, share and
    population; each drawn case also carries a SpotCheckDrawn event."""

    __tablename__ = "spot_checks"

    id: str = Field(sa_column=Column(String(100), primary_key=True))
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False, index=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False))
    seed: int = Field(sa_column=Column(BigInteger, nullable=False))
    share: Decimal = Field(sa_column=Column(DecimalText, nullable=False))
    population: list[int] = Field(sa_column=Column(JSON, nullable=False))  # certified case ids, in id order
    drawn: list[int] = Field(sa_column=Column(JSON, nullable=False))
    drawn_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    drawn_by: str = Field(sa_column=Column(String(200), nullable=False))


class FilingBatch(SQLModel, table=True):
    """A batch of certified cases filed (备案) with the national bureau; each case carries
    a CaseFiled event naming the batch."""

    __tablename__ = "filing_batches"

    id: str = Field(sa_column=Column(String(100), primary_key=True))
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False, index=True))
    jurisdiction_id: str = Field(sa_column=Column(String(64), ForeignKey("jurisdictions.id"), nullable=False))
    cases: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))  # id, unit, name, score
    totals: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    filed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    filed_by: str = Field(sa_column=Column(String(200), nullable=False))


class SpotCheckOutcome(SQLModel, table=True):
    """The outcome for one case of a spot check (``check_id``: the draw's id) or of the national
    bureau's results for a filing batch (``check_id``: the batch's id): one per case and check.
    The case carries the event it led to (SpotCheckPassed, SpotRectificationOrdered or
    TitleRevoked), written in the same transaction."""

    __tablename__ = "spot_check_outcomes"

    check_id: str = Field(sa_column=Column(String(100), primary_key=True))
    case_id: int = Field(sa_column=Column(Integer, ForeignKey("cases.id"), primary_key=True))
    round_id: str = Field(sa_column=Column(String(64), ForeignKey("rounds.id"), nullable=False, index=True))
    outcome: str = Field(sa_column=Column(String(16), nullable=False))  # passed | problems
    consequence: str = Field(sa_column=Column(String(32), nullable=False))  # none | rectification | revoked
    decided_by: str = Field(sa_column=Column(String(16), nullable=False))  # province | national
    findings: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    evidence: str | None = Field(default=None, sa_column=Column(String(2000), nullable=True))
    due_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    recorded_by: str = Field(sa_column=Column(String(400), nullable=False))


class IdempotencyKey(SQLModel, table=True):
    """A request that was carried out, by the key its client gave: written in the same
    transaction as its result, so a retried request (a client that timed out, a simulation
    restarted after a crash) is answered with the recorded result instead of acting twice."""

    __tablename__ = "idempotency_keys"

    key: str = Field(sa_column=Column(String(200), primary_key=True))
    what: str = Field(sa_column=Column(String(64), nullable=False))  # the action, or spot_check / filing
    case_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    seq: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    ref: str | None = Field(default=None, sa_column=Column(String(100), nullable=True))
    # sha256 of the request (action, case, input, version): the same key with another request is refused
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class SimulationProgress(SQLModel, table=True):
    """How far a `workflow simulate` run has got (so a killed run resumes where it stopped)."""

    __tablename__ = "simulation_progress"

    digest: str = Field(sa_column=Column(String(64), primary_key=True))  # of the scenario file
    scenario: str = Field(sa_column=Column(String(500), nullable=False))
    day_done: date | None = Field(default=None, sa_column=Column(Date, nullable=True))


metadata = SQLModel.metadata


# ---------------------------------------------------------------- the tables as SQLAlchemy Core sees them
# The stores build their statements on these (``cases.c.state``): typed columns, where the
# model classes' attributes are typed as the Python values they hold.

def _core(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table models; undeclared
    assert isinstance(table, Table)
    return table


jurisdictions = _core(Jurisdiction)
units = _core(Unit)
rounds = _core(Round)
cases = _core(Case)
events = _core(Event)
duty_streams = _core(DutyStream)
duty_events = _core(DutyEvent)
coordinators = _core(Coordinator)
outbox = _core(Outbox)
sweep_marks = _core(SweepMark)
api_tokens = _core(ApiToken)
accounts = _core(Account)
console_sessions = _core(ConsoleSession)
sign_in_failures = _core(SignInFailure)
account_links = _core(AccountLink)
audit_runs = _core(AuditRun)
channels = _core(Channel)
operator_streams = _core(OperatorStream)
operator_events = _core(OperatorEvent)
spot_checks = _core(SpotCheck)
filing_batches = _core(FilingBatch)
spot_check_outcomes = _core(SpotCheckOutcome)
idempotency_keys = _core(IdempotencyKey)
simulation_progress = _core(SimulationProgress)
case_counts = _core(CaseCount)
agency_counts = _core(AgencyCount)
