"""What the API answers, as pydantic models: every route declares one, so the OpenAPI document
describes every field (a renamed field fails the schema checks) and ``/docs`` shows them.

Points are strings as printed on the form ("76.5"), dates and times ISO 8601 strings (times
in UTC with their offset), as the history export writes them.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

Points = str  # a Decimal written as on the form: "70", "76.5"


def num(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class Out(BaseModel):
    """An answer: built from the service's records field by field (a missing field is an error
    here, not a silent gap in the answer)."""


# ---------------------------------------------------------------- errors

class ErrorMessage(Out):
    zh: str
    en: str


class ErrorDetail(Out):
    code: str = Field(description="not_found, forbidden, conflict, invalid_input, ...")
    message: ErrorMessage
    details: dict[str, Any] = Field(description="for invalid_input: problems, a list of {where, what, zh}")


class ErrorBody(Out):
    """Every error answer has this shape."""

    error: ErrorDetail


# ---------------------------------------------------------------- events

class EventOut(Out):
    """One event of a case's hash chain."""

    position: int | None
    case_id: int
    seq: int
    type: str
    actor: str
    occurred_at: str
    payload: dict[str, Any] = Field(description="what the event records; its fields depend on the type")
    prev_hash: str
    hash: str


class DutyEventOut(Out):
    """One event of a jurisdiction's duty stream in a round."""

    position: int | None
    round_id: str
    jurisdiction_id: str
    seq: int
    type: str
    actor: str
    occurred_at: str
    payload: dict[str, Any] = Field(description="the duty, and what it records (attachments, batches, cases)")
    prev_hash: str
    hash: str


# ---------------------------------------------------------------- cases

class UnitRef(Out):
    id: int
    name: str


class CaseItem(Out):
    id: int
    round_id: str
    unit: UnitRef
    jurisdiction: str
    category: str
    state: str
    version: int
    self_total: Points | None
    verified_total: Points | None
    recheck_total: Points | None
    rectification_due: str | None


class CasePage(Out):
    items: list[CaseItem]
    next: int | None = Field(description="the cursor (``after``) of the next page; null on the last")


class WaitingOn(Out):
    party: str
    duty: str
    name: str
    due_on: str
    days_overdue: int


class RequiredDocument(Out):
    id: str
    name: str
    attached: bool


class CaseOut(Out):
    id: int
    round_id: str
    unit: UnitRef
    state: str
    version: int
    overdue: bool
    missed: list[str]
    waiting_on: list[WaitingOn]
    contact_form: bool
    documents: list[RequiredDocument]
    self_total: Points | None
    verified_total: Points | None
    recheck_total: Points | None
    passed: bool | None
    rectification_due: str | None
    held_title: str | None = Field(description="a spot check's rectification: the state its title was in "
                                               "(certified or filed), held until the recheck")
    carried_over_from: int | None
    evidence_count: int
    allowed_actions: list[str]


class ActionOut(Out):
    id: int
    state: str
    version: int
    allowed_actions: list[str]
    event: EventOut


class SheetOut(Out):
    total: Points
    complete: bool
    criteria: dict[str, Points]
    missing: list[str]


class SheetsOut(Out):
    rubric: str
    unit: str
    self: SheetOut | None
    verified: SheetOut | None
    recheck: SheetOut | None


class StoredFile(Out):
    """A file as stored: by content (its sha256), with the name it was given and its type by content."""

    sha256: str
    filename: str
    size: int
    type: str


class DocumentFile(StoredFile):
    attached_by: str
    attached_at: str


class EvidenceOut(DocumentFile):
    criterion: str
    item: str


class EvidenceAttached(StoredFile):
    case_id: int
    version: int
    criterion: str
    files: list[StoredFile] = Field(default_factory=list, description="every file this upload attached, in order")


class DocumentOut(Out):
    id: str
    name: str
    note: str
    files: list[DocumentFile]


class DocumentAttached(StoredFile):
    case_id: int
    version: int
    document: str
    files: list[StoredFile] = Field(default_factory=list, description="every file this upload attached, in order")


class NotificationOut(Out):
    id: int
    kind: str
    milestone: str
    tier: int | None
    due_on: str
    status: str
    attempts: int
    created_at: str
    sent_at: str | None
    last_error: str | None
    recipients: list[str] | None


# ---------------------------------------------------------------- directory

class JurisdictionOut(Out):
    id: str
    name: str
    level: str
    parent: str | None
    path: str


class ContactOut(Out):
    name: str
    position: str = ""
    phone: str = ""
    email: str = ""


class UnitOut(Out):
    id: int
    name: str
    jurisdiction: str
    level: str
    category: str
    contacts: list[ContactOut]
    certified_year: int | None
    certified_note: str | None
    updated_at: str


class UnitPage(Out):
    items: list[UnitOut]
    next: int | None


class ContactFormOut(UnitOut):
    recorded_on_cases: list[int] = Field(description="the open cases that recorded this round's contact form")


class ImportOut(Out):
    created: int
    updated: int
    unchanged: int


# ---------------------------------------------------------------- rounds

class DocumentSpec(Out):
    id: str
    name: str
    note: str = ""


class TargetOut(Out):
    year: int
    share: Points
    level: str | None
    jurisdiction: str | None


class RoundOut(Out):
    id: str
    province: str
    year: int
    rubric: str
    calendar: str
    target_share: Points
    targets: list[TargetOut]
    documents: list[DocumentSpec]
    pass_mark: Points
    max_total: Points
    policy: dict[str, Any] = Field(description="the province's rules for the round (on_fail, carry_over, ...)")
    opened_at: str
    opened_by: str


class OpenedOut(Out):
    round: RoundOut
    registered: int
    carried_over: int
    already_certified: int
    warnings: list[str]


class LevelProgress(Out):
    agencies: int
    certified_to_date: int
    share: Points | None
    target: Points | None
    target_met: bool | None


class JurisdictionProgress(Out):
    id: str
    name: str
    level: str
    depth: int
    agencies: int
    certified_to_date: int
    certified_share: Points | None
    target: Points | None
    target_met: bool | None
    by_level: dict[str, LevelProgress]
    cases: int
    by_state: dict[str, int]
    certified: int
    round_pass_rate: Points | None
    overdue: int
    missed: dict[str, int]


class Bilingual(Out):
    en: str
    zh: str


class ProgressOut(Out):
    round_id: str
    year: int
    target_share: Points
    rule: Bilingual = Field(description="how the share of all agencies certified to date is counted")
    round_pass_rate_rule: Bilingual
    jurisdictions: list[JurisdictionProgress]


class AtRiskItem(Out):
    milestone: str
    name: str
    due_on: str
    days_left: int
    case_id: int
    unit: UnitRef
    jurisdiction: str
    state: str


class AtRiskOut(Out):
    today: str
    within_days: int
    items: list[AtRiskItem]


class JurisdictionRef(Out):
    id: str
    name: str


class DutyOut(Out):
    jurisdiction: JurisdictionRef
    duty: str
    name: str
    owed_by: str
    needs: str
    due_on: str
    status: str = Field(description="done, done_late, owed, overdue, or clear (a bureau's duty nothing waits for)")
    done_at: str | None
    done_by: str | None
    missed_on: str | None
    waiting: int


class DutiesOut(Out):
    today: str
    items: list[DutyOut]


class SpotCheckOut(Out):
    id: str
    round_id: str
    jurisdiction: str
    seed: int
    share: Points
    population: int
    drawn: list[int]
    drawn_at: str
    drawn_by: str


class OutcomeOut(Out):
    check: str = Field(description="the spot check's id, or the filing batch's for the national bureau's results")
    case_id: int
    round_id: str
    outcome: str = Field(description="passed | problems")
    outcome_zh: str
    consequence: str = Field(description="none | rectification (the title held until the recheck) | revoked")
    consequence_zh: str
    decided_by: str = Field(description="province | national")
    findings: str | None
    evidence: str | None
    due_on: str | None = Field(description="the rectification's last day (Beijing date)")
    recorded_at: str
    recorded_by: str


class FiledCase(Out):
    case_id: int
    unit_id: int
    unit_name: str
    score: Points | None = Field(description="the recheck's total if rechecked, else the verification's")
    rechecked: bool


class FilingTotals(Out):
    cases: int
    after_recheck: int
    filed_on: str


class FilingOut(Out):
    id: str
    round_id: str
    jurisdiction: str
    cases: list[FiledCase]
    totals: FilingTotals
    filed_at: str
    filed_by: str


# ---------------------------------------------------------------- audit and operations

class Finding(Out):
    case_id: int | str | None
    stream: int | str | None
    seq: int | None
    what: str


class AuditOut(Out):
    ok: bool
    scope: str
    cases: int
    events: int
    duty_streams: int
    duty_events: int
    operator_streams: int = Field(0, description="the operator audit log's streams (whole-system scope only)")
    operator_events: int = 0
    findings: list[Finding]
    checkpoint: CheckpointCheckOut | None = Field(
        default=None, description="the latest signed checkpoint checked against the chains (null: none kept)")


class Health(Out):
    status: str


class Ready(Out):
    database: str
    scheduler: str | None = Field(description="the process that holds the scheduler's lock, if any")


# ---------------------------------------------------------------- checkpoints of the audit chain

class CheckpointCheckOut(Out):
    sequence: int | None = Field(description="the latest checkpoint whose signature holds")
    created_at: datetime | None
    merkle_root: str | None
    ok: bool
    findings: list[Finding] = Field(description="a bad signature, a checkpoint missing from the sequence, a chain "
                                                "truncated or rewritten since the checkpoint saw it")


class ChainHeadOut(Out):
    kind: str = Field(description="case or duties")
    key: str = Field(description="the case id, or the duty stream's round/jurisdiction")
    seq: int = Field(description="the last event's sequence number the checkpoint saw")
    hash: str


class CheckpointOut(Out):
    sequence: int
    created_at: datetime
    previous: str | None = Field(description="the previous checkpoint's digest (null for the first)")
    digest: str = Field(description="SHA-256 of this checkpoint's signed bytes")
    key_id: str = Field(description="SHA-256 of the Ed25519 public key that signed it")
    merkle_root: str
    counts: dict[str, int]
    file: str = Field(description="the checkpoint's file name in the checkpoint directory")
    signature_ok: bool | None = Field(description="null: the server has no key to check it with")
    scope: str
    chains: list[ChainHeadOut] = Field(description="the heads it saw of the chains in the caller's scope")


AuditOut.model_rebuild()


class MissingOut(Out):
    where: str
    what: str
    zh: str | None = None


class ReminderOut(Out):
    on: str = Field(description="the working day the reminder goes out (Beijing date)")
    days_before: int
    to: list[str] = Field(description="who receives it: unit (its contacts), coordinators")


class OwedOut(Out):
    id: str = Field(description="the milestone (or rectification)")
    name: str
    due_on: str
    days_left: int = Field(description="negative: overdue by that many days")
    what_to_do: str
    reminders: list[ReminderOut] = Field(description="the reminders still to come, earliest first")
    escalate: list[str] = Field(description="who is told when it is missed")


class DueOut(Out):
    """What a case still owes and by when, what stands between it and submission, and what it
    waits for from its bureau."""

    case_id: int
    state: str
    today: str
    owed: list[OwedOut]
    missing: list[MissingOut] = Field(description="before submission: criteria without a score or evidence, "
                                                  "documents")
    waiting_on: list[WaitingOn]
    unit_emails: int = Field(description="how many of the unit's contacts a mail reaches (0: reminders fail)")


class RegisteredOut(Out):
    """A case registered in a round already open."""

    case_id: int
    round_id: str
    unit_id: int
    state: str
    version: int
    carried_over_from: int | None


class RubricOut(Out):
    """The round's rubric as it was when the round opened (items, criteria, points, caps)."""

    round_id: str
    rubric: str
    data: dict[str, Any] = Field(description="the rubric snapshot: items, criteria, points allowed, caps, pass mark")


class DatedOut(Out):
    id: str
    name: str
    due_on: str
    owed_by: str = Field(description="unit, bureau, each jurisdiction, or informational")
    owes: list[str] = Field(description="the case states that owe it; contact_form: owed until the form is given")
    what_to_do: str
    reminders: list[ReminderOut]
    escalate: list[str]


class TimelineOut(Out):
    """The round's calendar dated for its year."""

    round_id: str
    calendar: str
    title: str
    milestones: list[DatedOut]
    rectification_days: int | None = Field(description="days a rectification is given (the province's policy)")


class UpcomingOut(Out):
    on: str = Field(description="the working day the reminder goes out")
    milestone: str
    name: str
    due_on: str
    days_before: int
    to: list[str]
    case_ids: list[int] = Field(description="the subtree's cases it concerns (those owing it now)")


class UpcomingPage(Out):
    today: str
    within_days: int
    items: list[UpcomingOut]
