"""The case aggregate: decide what an action means, and apply events to state.

``decide`` turns (state, action, input, actor, now) into one new event or raises a
domain error; ``apply`` folds an event into the state. The case row in the database
is exactly ``replay(events)``, which ``audit verify`` checks.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .dates import business_date, end_of_business_day
from .calendar import RequiredDocument
from .errors import ActionRefused, Incomplete, InvalidInput, Problem, ProblemList
from .events import GENESIS_HASH, Event, new_event
from .lifecycle import ACTIONS, CONTACT_FORM, SYSTEM, TRANSITIONS, Edge, Lifecycle, Owing, lifecycle_for
from .policy import Policy
from .rubric import Count, Rubric, SheetScore, entries_as_points, score_sheet

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


# ---------------------------------------------------------------- input parsing

def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty text")
    if len(value) > 2000:
        raise ValueError(f"must be at most 2000 characters, got {len(value)}")
    return value.strip()


def _note(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a text")
    if len(value) > 2000:
        raise ValueError(f"must be at most 2000 characters, got {len(value)}")
    return value.strip()


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("must be a decimal number written as text or an integer (no floating point)")
    try:
        d = Decimal(str(value).strip()) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise ValueError(f"must be a decimal number, got {value!r}")
    if d.as_tuple().exponent < -2 or d.adjusted() > 5:  # type: ignore[operator]
        raise ValueError(f"must have at most 2 decimal places and 6 digits before the point, got {value!r}")
    return d


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be a whole number of days, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"must be a whole number of days, got {value!r}") from None
    if not 1 <= n <= 366:
        raise ValueError(f"must be from 1 to 366 days, got {n}")
    return n


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}") from None


MAX_COUNT = 1000


def _entry(raw: Any) -> Decimal | Count:
    """Points (text or integer), or ``{"count": N}``: a number of occurrences."""
    if isinstance(raw, Mapping):
        if set(raw) != {"count"}:
            raise ValueError('must be points, or {"count": N} for a number of occurrences; got ' + repr(dict(raw)))
        n = raw["count"]
        if isinstance(n, str) and n.strip().isdigit():
            n = int(n.strip())
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_COUNT:
            raise ValueError(f"count must be a whole number of occurrences from 0 to {MAX_COUNT}, got {n!r}")
        return Count(n)
    return _decimal(raw)


def _entries(value: Any, problems: ProblemList) -> tuple[dict[str, Decimal | Count] | None, set[str]]:
    """The well-formed entries, and the codes of the malformed ones (named in ``problems``)."""
    if not isinstance(value, Mapping) or not value:
        problems.add("entries", "must be a non-empty mapping of criterion code to points "
                                '(or {"count": N} for a number of occurrences)',
                     "评分须为“评分项编号: 分数”的列表（按次计分的可写 {\"count\": 次数}）")
        return None, set()
    out: dict[str, Decimal | Count] = {}
    bad: set[str] = set()
    messages = []
    for code, raw in value.items():
        try:
            out[str(code)] = _entry(raw)
        except ValueError as exc:
            bad.add(str(code))
            messages.append(f"{code}: {exc}")
    if messages:
        problems.add("entries", "; ".join(messages), "；".join(f"{m.split(':', 1)[0]}：分数格式有误（须为整数或"
                                                              "最多两位小数的数字，不可用浮点数）" for m in messages))
    return out, bad


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise ValueError(f"must be 64 lowercase hex digits, got {value!r}")
    return value


def _filename(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255 or any(c in value for c in "/\\\0"):
        raise ValueError(f"must be a file name (1-255 characters, no path), got {value!r}")
    return value.strip()


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a positive whole number of bytes, got {value!r}")
    return value


def _code(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 32:
        raise ValueError(f"must be a criterion code such as 2.2.1.1, got {value!r}")
    return value.strip()


def _milestone(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "").isalnum() or len(value) > 64:
        raise ValueError(f"must be a milestone id such as self_assessment, got {value!r}")
    return value


def _states(value: Any) -> list[str]:
    from .lifecycle import STATES

    if not isinstance(value, (list, tuple)) or not value or any(v not in (*STATES, CONTACT_FORM) for v in value):
        raise ValueError(f"must be a non-empty list of states (or {CONTACT_FORM}), got {value!r}")
    return sorted(set(value))


def _document(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "").isalnum() or len(value) > 64:
        raise ValueError(f"must be a document id such as self_report, got {value!r}")
    return value


def _how(value: Any) -> str:
    if value not in ("form", "confirmed"):
        raise ValueError(f"must be form (filled in) or confirmed (the contact on file), got {value!r}")
    return str(value)


def _contacts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 50:
        raise ValueError(f"must be the number of contact persons, got {value!r}")
    return value


def _type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 32:
        raise ValueError(f"must be a short content type name such as pdf, got {value!r}")
    return value.strip()


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"must be a whole number from 0 to 2^63-1, got {value!r}")
    return value


def _share(value: Any) -> Decimal:
    share = _decimal(value)
    if not Decimal(0) < share <= Decimal(1):
        raise ValueError(f"must be a share in (0, 1], e.g. 0.1; got {value!r}")
    return share


PARSERS: dict[str, Callable[[Any], Any]] = {
    "reason": _reason,
    "note": _note,
    "days": _days,
    "until": _date,
    "batch": _note,
    "criterion": _code,
    "milestone": _milestone,
    "due_on": _date,
    "noticed_on": _date,
    "owed_in": _states,
    "notification": _note,
    "kind": _note,
    "error": _note,
    "sha256": _sha256,
    "filename": _filename,
    "size": _size,
    "type": _type,
    "draw": _note,
    "seed": _seed,
    "share": _share,
    "document": _document,
    "how": _how,
    "contacts": _contacts,
}


def problems_zh(problems: list[Problem]) -> str:
    """The gist in Chinese: how many problems, and the first ones as the domain wrote them."""
    shown = "；".join(f"{p.where}：{p.zh or p.what}" for p in problems[:3])
    return f"输入有误，共{len(problems)}处：{shown}" + ("等" if len(problems) > 3 else "")


def parse_input(action: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check an action's input: every problem (unknown, missing, malformed field) at once."""
    out, problems = _read_input(action, data)
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, action=action)
    return out


def _read_input(action: str, data: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[Problem]]:
    """The input's good fields and the problems of the others. Sheet entries are read one
    by one: the good ones are kept (and scored later), the bad ones named under ``entries``."""
    spec = ACTIONS[action]
    if not data and not spec.required:
        return {}, []
    data = dict(data or {})
    problems = ProblemList()
    allowed = set(spec.required) | set(spec.optional)
    for key in sorted(set(data) - allowed):
        problems.add(key, f"unknown field for {action} (allowed: {', '.join(sorted(allowed)) or 'none'})")
    out: dict[str, Any] = {}
    for key in spec.required:
        if data.get(key) is None:
            problems.add(key, f"required for {action}")
    for key in (*spec.required, *spec.optional):
        if data.get(key) is None:
            continue
        if key == "entries":
            entries, bad = _entries(data[key], problems)
            if entries is not None:
                out["entries"], out["bad_entries"] = entries, bad
            continue
        try:
            out[key] = PARSERS[key](data[key])
        except ValueError as exc:
            problems.add(key, str(exc))
    if action == "extend_rectification" and (data.get("days") is None) == (data.get("until") is None):
        problems.add("days/until", "give exactly one of days (to add) or until (a new due date)")
    return out, problems.problems


# ---------------------------------------------------------------- guards

def _passed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is True


def _failed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is False


def _rectification_open(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now <= end_of_business_day(case.rectification_due)


def _rectification_expired(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now > end_of_business_day(case.rectification_due)


def sheet_passes(sheet: SheetScore, ctx: RoundContext) -> bool:
    """80 or more (the round's pass mark) and no must-pass criterion at zero."""
    return sheet.total >= ctx.pass_mark and not must_pass_failed(sheet, ctx)


def must_pass_failed(sheet: SheetScore, ctx: RoundContext) -> list[str]:
    return [c.code for c in ctx.rubric.criteria() if c.must_pass and sheet.criteria[c.code] <= 0]


def _outcome_passed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return "sheet" in inp and sheet_passes(inp["sheet"], ctx)


def _outcome_failed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return "sheet" in inp and not sheet_passes(inp["sheet"], ctx)


def _sheet_ready(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return not submission_problems(case, ctx)


def submission_problems(case: CaseState, ctx: RoundContext) -> list[Problem]:
    """What stands between this case and submission: the round's required documents
    (自评报告, 自评打分表 ...), every criterion answered (zero allowed) and evidence for every
    criterion scored above zero, in rubric order."""
    entries = case.self_entries or {}
    with_evidence = {criterion for criterion, _sha, _name in case.evidence}
    attached = {document for document, _sha, _name in case.documents}
    problems = [Problem(f"documents.{d.id}", f"{d.name} not attached", f"未上传{d.name}")
                for d in ctx.documents if d.id not in attached]
    for criterion in ctx.rubric.criteria():
        value = entries.get(criterion.code)
        if value is None:
            problems.append(Problem(criterion.code, "no self-assessment entry (zero is allowed)",
                                    "未自评打分（可填0）"))
        elif Decimal(value) > 0 and criterion.code not in with_evidence:
            problems.append(Problem(criterion.code, f"scored {value}: evidence (佐证材料) needed",
                                    f"自评{value}分，需上传佐证材料"))
    return problems


Guard = Callable[[CaseState, RoundContext, datetime, Mapping[str, Any]], bool]
GUARDS: dict[str, Guard] = {
    "passed": _passed,
    "failed": _failed,
    "rectification_open": _rectification_open,
    "rectification_expired": _rectification_expired,
    "outcome_passed": _outcome_passed,
    "outcome_failed": _outcome_failed,
    "sheet_ready": _sheet_ready,
}
GUARD_REASONS = {
    "passed": "the verified score is below the pass mark",
    "failed": "the verified score passes",
    "rectification_open": "the rectification deadline has passed",
    "rectification_expired": "the rectification deadline has not passed yet",
    "sheet_ready": "the self-assessment is incomplete or lacks evidence or documents",
}


def _case_guards_hold(edge: Edge, case: CaseState, ctx: RoundContext, now: datetime) -> bool:
    return all(GUARDS[c](case, ctx, now, {}) for c in edge.conditions if not c.startswith("outcome_"))


def allowed_actions(case: CaseState, ctx: RoundContext, now: datetime, actor: Actor | None = None) -> list[str]:
    """What may happen next to this case (for this actor, if given)."""
    lc = ctx.lifecycle
    if actor is not None and not _owns(actor, case):
        return []
    out = []
    for trigger in lc.triggers(case.state):
        if actor is not None and not actor.may(trigger):
            continue
        if ACTIONS[trigger].bookkeeping and (actor is None or actor.kind != SYSTEM):
            continue
        if any(_case_guards_hold(e, case, ctx, now) for e in lc.edges(trigger, case.state)):
            out.append(trigger)
    return out


def _owns(actor: Actor, case: CaseState) -> bool:
    """A unit acts on its own cases only; other kinds are scoped elsewhere (jurisdictions)."""
    return actor.kind != "unit" or actor.id == str(case.unit_id)


def _refuse(case: CaseState, ctx: RoundContext, action: str, now: datetime, why: str) -> ActionRefused:
    allowed = allowed_actions(case, ctx, now)
    return ActionRefused(
        f"case {case.id} is {case.state}: {action} refused ({why}); "
        f"allowed from {case.state}: {', '.join(allowed) or 'nothing (final state)'}",
        case_id=case.id, state=case.state, action=action, allowed=allowed,
    )


# ---------------------------------------------------------------- decide

def decide(case: CaseState, action: str, data: Mapping[str, Any] | None, actor: Actor,
           now: datetime, ctx: RoundContext) -> Event:
    """The event an action makes of this case now, or a domain error saying why not."""
    lc = ctx.lifecycle
    if action not in ACTIONS:
        raise ActionRefused(
            f"unknown action {action!r} for case {case.id}; known actions: {', '.join(lc.actions())}",
            case_id=case.id, state=case.state, action=action, allowed=allowed_actions(case, ctx, now),
        )
    if action not in lc.action_set:
        raise _refuse(case, ctx, action, now, f"the policy of round {ctx.round_id} has no {action}")
    if not actor.may(action):
        raise _refuse(case, ctx, action, now, f"a {actor.kind} may not {action}")
    if not _owns(actor, case):
        raise _refuse(case, ctx, action, now, f"{actor} may act only on its own unit's cases; "
                                               f"case {case.id} is unit {case.unit_id}'s")
    edges = lc.edges(action, case.state)
    if not edges:
        raise _refuse(case, ctx, action, now, f"not possible from {case.state}")
    inp, problems = _read_input(action, data)
    if action in ("self_assess", "verify", "recheck") and "entries" in inp:
        # Score the well-formed entries even when other fields are wrong: every problem at once.
        bad = inp.pop("bad_entries")
        try:
            inp["sheet"], inp["entries"] = _score(case, action, inp["entries"], ctx, check_missing=not bad)
        except InvalidInput as exc:
            problems.extend(p for p in exc.problems if p.where not in bad)
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, problems_zh(problems), action=action)
    if action == "submit":
        missing = submission_problems(case, ctx)
        if missing:
            raise Incomplete(f"case {case.id} cannot be submitted: {len(missing)} thing(s) missing "
                             "(documents, entries or evidence)", missing,
                             f"尚不能报送：缺少{len(missing)}项（材料、自评分或佐证材料）", case_id=case.id)
    elif action in ("attach_evidence", "remove_evidence"):
        _check_evidence(case, action, inp, ctx)
    elif action in ("attach_document", "remove_document"):
        _check_document(case, action, inp, ctx)
    elif action == "give_contact_form" and inp["how"] == "confirmed" and case.contact_form:
        raise _refuse(case, ctx, action, now, "the contact form of this round is already on file")
    chosen = None
    failed_guard = None
    for edge in edges:
        bad = [c for c in edge.conditions if not GUARDS[c](case, ctx, now, inp)]
        if not bad:
            chosen = edge
            break
        failed_guard = failed_guard or bad[0]
    if chosen is None:
        raise _refuse(case, ctx, action, now, GUARD_REASONS.get(failed_guard or "", f"guard {failed_guard} does not hold"))

    spec = ACTIONS[action]
    payload: dict[str, Any] = {}
    if action in ("verify", "recheck"):
        sheet: SheetScore = inp["sheet"]
        payload = {"v": SHEET_PAYLOAD_VERSION, "entries": inp["entries"], "total": sheet.total,
                   "pass_mark": ctx.pass_mark, "passed": sheet_passes(sheet, ctx),
                   "must_pass_failed": must_pass_failed(sheet, ctx)}
    elif action == "self_assess":
        payload = {"v": SHEET_PAYLOAD_VERSION, "entries": inp["entries"], "total": inp["sheet"].total,
                   "complete": inp["sheet"].complete}
    elif action == "attach_evidence":
        payload = {k: inp[k] for k in ("criterion", "sha256", "filename", "size", "type")}
    elif action == "remove_evidence":
        payload = {"criterion": inp["criterion"], "sha256": inp["sha256"]}
    elif action == "attach_document":
        payload = {k: inp[k] for k in ("document", "sha256", "filename", "size", "type")}
    elif action == "remove_document":
        payload = {"document": inp["document"], "sha256": inp["sha256"]}
    elif action == "give_contact_form":
        payload = {"how": inp["how"], "contacts": inp["contacts"]}
    elif action == "record_notification_failure":
        payload = {k: inp[k] for k in ("notification", "kind", "error")}
    elif action == "record_missed_deadline":
        if any(m == inp["milestone"] for m, _ in case.missed):
            raise _refuse(case, ctx, action, now, f"the miss of {inp['milestone']} is already recorded")
        payload = {k: inp[k] for k in ("milestone", "due_on", "noticed_on", "owed_in")}
    elif action == "order_rectification":
        days = ctx.policy.rectification_days or 0
        payload = {"days": days, "due_on": business_date(now) + timedelta(days=days)}
    elif action == "extend_rectification":
        assert case.rectification_due is not None
        new_due = case.rectification_due + timedelta(days=inp["days"]) if "days" in inp else inp["until"]
        if new_due <= case.rectification_due:
            raise InvalidInput("invalid input for action extend_rectification",
                               [Problem("until", f"must be after the current due date {case.rectification_due}, "
                                                 f"got {new_due}")],
                               action=action)
        if new_due < business_date(now):
            raise InvalidInput("invalid input for action extend_rectification",
                               [Problem("days" if "days" in inp else "until",
                                        f"the new due date {new_due} is already past (today is {business_date(now)})")],
                               action=action)
        payload = {"reason": inp["reason"], "previous_due_on": case.rectification_due, "due_on": new_due}
    elif action == "expire_rectification":
        payload = {"due_on": case.rectification_due}
    elif action == "fail":
        payload = {"verified_total": case.verified_total, "carry_over": ctx.policy.carry_over}
    elif action == "withdraw":
        payload = {"reason": inp["reason"], "previous_state": case.state}
    elif action == "record_spot_check":
        payload = {k: inp[k] for k in ("draw", "seed", "share")}
    for key in ("reason", "note", "batch"):
        if key in inp and key not in payload:
            payload[key] = inp[key]
    if action in ("self_assess", "verify", "recheck") and inp["sheet"].counts:
        # what was given as a number of occurrences, beside the points it made
        payload["counts"] = dict(inp["sheet"].counts)
    return new_event(case.id, case.version + 1, spec.event, str(actor), now, payload, case.last_hash)


def _score(case: CaseState, action: str, entries: dict[str, Decimal | Count], ctx: RoundContext,
           check_missing: bool = True) -> tuple[SheetScore, dict[str, str]]:
    """Score a sheet against the round's rubric; the entries as points, in rubric order. A
    self-assessment adds to the unit's current sheet; verification and recheck sheets must
    answer every criterion."""
    if action == "self_assess":
        merged: dict[str, Decimal | Count] = {code: Decimal(v) for code, v in (case.self_entries or {}).items()}
        merged.update(entries)
        sheet = score_sheet(ctx.rubric, merged, complete=False)
    else:
        sheet = score_sheet(ctx.rubric, entries, complete=check_missing)
    return sheet, {code: format(points, "f") for code, points in sheet.entered().items()}


def _check_document(case: CaseState, action: str, inp: Mapping[str, Any], ctx: RoundContext) -> None:
    document, sha = inp["document"], inp["sha256"]
    problems = []
    known = {d.id: d for d in ctx.documents}
    if document not in known:
        names = ", ".join(f"{d.id} ({d.name})" for d in ctx.documents) or "none"
        problems.append(Problem("document", f"round {ctx.round_id} asks for no document {document!r} "
                                            f"(it asks for: {names})", f"本轮不要求材料 {document}"))
    attached = any(d == document and h == sha for d, h, _ in case.documents)
    if action == "attach_document" and attached:
        problems.append(Problem("sha256", f"this file is already attached as {document} of case {case.id}",
                                "该文件已上传"))
    if action == "remove_document" and not attached:
        problems.append(Problem("sha256", f"no such file as {document} of case {case.id}", "没有这个文件"))
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, action=action)


def _check_evidence(case: CaseState, action: str, inp: Mapping[str, Any], ctx: RoundContext) -> None:
    code, sha = inp["criterion"], inp["sha256"]
    problems = []
    if code not in {c.code for c in ctx.rubric.criteria()}:
        problems.append(Problem("criterion", f"rubric {ctx.rubric.id} has no criterion {code!r}"))
    attached = any(c == code and h == sha for c, h, _ in case.evidence)
    if action == "attach_evidence" and attached:
        problems.append(Problem("sha256", f"this file is already attached to {code} of case {case.id}"))
    if action == "remove_evidence" and not attached:
        problems.append(Problem("sha256", f"no such file on {code} of case {case.id}"))
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, action=action)


# ---------------------------------------------------------------- notices an event implies

@dataclass(frozen=True, slots=True)
class Notice:
    """A notification an event implies, written to the outbox in the event's transaction."""

    kind: str
    dedupe_key: str
    milestone: str
    due_on: date


def notices_for(event: Event) -> list[Notice]:
    """Ordering (or extending) rectification sends the unit its 整改通知 at once: the score, the
    pass mark, the last day, what to do and how to ask for the recheck (the reminders before
    the last day come from the sweep)."""
    if event.type in ("RectificationOrdered", "RectificationExtended"):
        due = date.fromisoformat(event.payload["due_on"])
        return [Notice("rectification_notice", f"rectification_notice:{event.case_id}:{due.isoformat()}",
                       "rectification", due)]
    return []


# ---------------------------------------------------------------- register / apply / replay

REGISTERED = "CaseRegistered"


def registration_event(case_id: int, round_id: str, unit_id: int, actor: Actor | str, now: datetime,
                       carried_over_from: int | None = None) -> Event:
    payload = {"round_id": round_id, "unit_id": unit_id, "carried_over_from": carried_over_from}
    return new_event(case_id, 1, REGISTERED, str(actor), now, payload, GENESIS_HASH)


def _destinations() -> dict[str, dict[bool | None, str]]:
    """Event type → where it leads, read from the transition table (the one source of truth).
    An action with several destinations chooses by outcome (``passed`` in the payload)."""
    out: dict[str, dict[bool | None, str]] = {}
    for t in TRANSITIONS:
        dests = out.setdefault(ACTIONS[t["trigger"]].event, {})
        outcome = [c for c in t.get("conditions", ()) if c.startswith("outcome_")]
        key = None if not outcome else outcome[0] == "outcome_passed"
        if dests.get(key, t["dest"]) != t["dest"]:
            raise ValueError(f"{t['trigger']} leads to both {dests[key]} and {t['dest']}")
        dests[key] = t["dest"]
    return out


_DEST = _destinations()
_EVENT_TO_ACTION = {spec.event: name for name, spec in ACTIONS.items()}
# Every state an event may follow, over every policy (the log is read without the policy files).
_SOURCES: dict[str, frozenset[str]] = {}


def _sources(event_type: str) -> frozenset[str]:
    if event_type not in _SOURCES:
        action = _EVENT_TO_ACTION[event_type]
        states: set[str] = set()
        for on_fail in ("rectification", "not_certified"):
            lc = lifecycle_for(Policy(on_fail, 1 if on_fail == "rectification" else None, False))
            states.update(lc.sources(action))
        _SOURCES[event_type] = frozenset(states)
    return _SOURCES[event_type]


class CorruptHistory(Exception):
    """The event log does not describe a possible history."""


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def apply(case: CaseState | None, event: Event, rubric: Rubric | None = None) -> CaseState:
    """Fold one event into the case (None before the first event). ``rubric`` (the round's)
    is needed only to read a version-1 self-assessment, whose per-occurrence entries were
    counts: replaying a history written before sheets were points."""
    if case is None:
        if event.type != REGISTERED or event.seq != 1:
            raise CorruptHistory(f"case {event.case_id}: first event must be {REGISTERED} #1, got {event.type} #{event.seq}")
        p = event.payload
        return CaseState(
            id=event.case_id, round_id=p["round_id"], unit_id=int(p["unit_id"]), state="registered", version=1,
            last_hash=event.hash, carried_over_from=p.get("carried_over_from"),
            registered_at=event.occurred_at, updated_at=event.occurred_at,
        )
    if event.type not in _DEST:
        raise CorruptHistory(f"case {case.id} event #{event.seq}: unknown event type {event.type!r}")
    if event.seq != case.version + 1:
        raise CorruptHistory(f"case {case.id}: event #{event.seq} follows #{case.version}")
    if case.state not in _sources(event.type):
        raise CorruptHistory(f"case {case.id} event #{event.seq}: {event.type} cannot follow state {case.state}")
    p = event.payload
    changes: dict[str, Any] = {"version": event.seq, "last_hash": event.hash, "updated_at": event.occurred_at}
    dests = _DEST[event.type]
    dest = dests[None] if None in dests else dests[bool(p["passed"])]
    if dest == "=":
        dest = case.state
    if event.type == "SelfAssessmentRecorded":
        changes.update(self_total=_dec(p["total"]), self_entries=_self_entries(case, event, rubric))
    elif event.type == "EvidenceAttached":
        changes["evidence"] = case.evidence + ((p["criterion"], p["sha256"], p["filename"]),)
    elif event.type == "DeadlineMissed":
        changes["missed"] = case.missed + ((p["milestone"], tuple(p["owed_in"])),)
    elif event.type == "EvidenceRemoved":
        changes["evidence"] = tuple(e for e in case.evidence if (e[0], e[1]) != (p["criterion"], p["sha256"]))
    elif event.type == "DocumentAttached":
        changes["documents"] = case.documents + ((p["document"], p["sha256"], p["filename"]),)
    elif event.type == "DocumentRemoved":
        changes["documents"] = tuple(d for d in case.documents if (d[0], d[1]) != (p["document"], p["sha256"]))
    elif event.type == "ContactFormGiven":
        changes["contact_form"] = True
    elif event.type == "CaseVerified":
        changes.update(verified_total=_dec(p["total"]), passed=bool(p["passed"]))
    elif event.type == "CaseRechecked":
        changes.update(recheck_total=_dec(p["total"]), passed=bool(p["passed"]))
    elif event.type in ("RectificationOrdered", "RectificationExtended"):
        changes["rectification_due"] = date.fromisoformat(p["due_on"])
    changes["state"] = dest
    missed = changes.get("missed", case.missed)
    contact_form = changes.get("contact_form", case.contact_form)
    changes["overdue"] = any(still_owed(owed, dest, contact_form) for _, owed in missed)
    return replace(case, **changes)


def _self_entries(case: CaseState, event: Event, rubric: Rubric | None) -> dict[str, str]:
    entries = event.payload["entries"]
    if event.payload.get("v", 1) >= SHEET_PAYLOAD_VERSION:
        return dict(entries)
    if rubric is None:
        raise CorruptHistory(f"case {case.id} event #{event.seq}: a version-1 sheet (counts for per-occurrence "
                             "criteria) is read with the round's rubric; none was given")
    return {code: format(points, "f") for code, points in entries_as_points(event.payload, rubric).items()}


def replay(events: Iterable[Event], rubric: Rubric | None = None) -> CaseState | None:
    case = None
    for event in events:
        case = apply(case, event, rubric)
    return case
