"""The actions as a table: for each, who may take it and which fields it reads (its
``ActionSpec`` in ``lifecycle``), what it checks against the case before a transition is
chosen, the payload of the event it records, and what that event changes on the case.

``decide`` and ``apply`` (``case``) read this table; there is no per-action branch anywhere
else. An action missing a hook has none: no check, an empty payload (besides the note,
reason or batch it was given), no change besides the state.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from .dates import business_date, date_zh
from .errors import Incomplete, InvalidInput, Problem
from .events import Event
from .guards import must_pass_failed, refuse, sheet_passes, submission_problems
from .lifecycle import ACTIONS, ActionSpec, action_zh
from .rubric import Rubric, SheetScore, entries_as_points
from .state import SHEET_PAYLOAD_VERSION, CaseState, RoundContext

Input = Mapping[str, Any]
Check = Callable[[CaseState, Input, RoundContext, datetime], None]
Payload = Callable[[CaseState, Input, RoundContext, datetime], dict[str, Any]]
Project = Callable[[CaseState, Mapping[str, Any], Event, "Rubric | None"], dict[str, Any]]


class CorruptHistory(Exception):
    """The event log does not describe a possible history."""


@dataclass(frozen=True, slots=True)
class ActionRule:
    """One action, whole: its spec (who, fields, event) and its hooks."""

    spec: ActionSpec
    check: Check | None = None  # the input against the case, before the transition is chosen
    payload: Payload | None = None  # the event's payload (after the transition is chosen; may refuse)
    project: Project | None = None  # what the event changes on the case, besides its state


# ---------------------------------------------------------------- checks

def _check_submit(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> None:
    missing = submission_problems(case, ctx)
    if missing:
        raise Incomplete(f"case {case.id} cannot be submitted: {len(missing)} thing(s) missing "
                         "(documents, entries or evidence)", missing,
                         f"案件 {case.id} 尚不能报送：缺少{len(missing)}项（材料、自评分或佐证材料）", case_id=case.id)


def _evidence(action: str) -> Check:
    return lambda case, inp, ctx, now: _check_evidence(action, case, inp, ctx)


def _check_evidence(action: str, case: CaseState, inp: Input, ctx: RoundContext) -> None:
    code, sha = inp["criterion"], inp["sha256"]
    problems = []
    if code not in {c.code for c in ctx.rubric.criteria()}:
        problems.append(Problem("criterion", f"rubric {ctx.rubric.id} has no criterion {code!r}",
                                f"评价标准 {ctx.rubric.id} 中没有编号为 {code!r} 的评分项"))
    attached = any(c == code and h == sha for c, h, _ in case.evidence)
    if action == "attach_evidence" and attached:
        problems.append(Problem("sha256", f"this file is already attached to {code} of case {case.id}",
                                f"该文件已作为案件 {case.id} 评分项 {code} 的佐证材料上传"))
    if action == "remove_evidence" and not attached:
        problems.append(Problem("sha256", f"no such file on {code} of case {case.id}",
                                f"案件 {case.id} 的评分项 {code} 下没有这个文件"))
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, _input_zh(action, problems),
                           action=action)


def _document(action: str) -> Check:
    return lambda case, inp, ctx, now: _check_document(action, case, inp, ctx)


def _check_document(action: str, case: CaseState, inp: Input, ctx: RoundContext) -> None:
    document, sha = inp["document"], inp["sha256"]
    problems = []
    if document not in {d.id for d in ctx.documents}:
        names = ", ".join(f"{d.id} ({d.name})" for d in ctx.documents) or "none"
        names_zh = "、".join(f"{d.name}（{d.id}）" for d in ctx.documents) or "无"
        problems.append(Problem("document", f"round {ctx.round_id} asks for no document {document!r} "
                                            f"(it asks for: {names})",
                                f"轮次 {ctx.round_id} 不要求材料 {document!r}（要求的材料：{names_zh}）"))
    attached = any(d == document and h == sha for d, h, _ in case.documents)
    if action == "attach_document" and attached:
        problems.append(Problem("sha256", f"this file is already attached as {document} of case {case.id}",
                                f"该文件已作为案件 {case.id} 的材料 {document} 上传"))
    if action == "remove_document" and not attached:
        problems.append(Problem("sha256", f"no such file as {document} of case {case.id}",
                                f"案件 {case.id} 的材料 {document} 中没有这个文件"))
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems, _input_zh(action, problems),
                           action=action)


def _input_zh(action: str, problems: list[Problem]) -> str:
    """An action's bad input in Chinese: which action, and each problem."""
    listed = "；".join(f"{p.where}：{p.zh or p.what}" for p in problems)
    return f"“{action_zh(action)}”（{action}）的输入有误：{listed}"


def _check_contact_form(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> None:
    if inp["how"] == "confirmed" and case.contact_form:
        raise refuse(case, ctx, "give_contact_form", now, "the contact form of this round is already on file",
                     "本轮联络员信息表已经报送")


# ---------------------------------------------------------------- payloads

def _fields(*keys: str) -> Payload:
    def payload(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
        return {k: inp[k] for k in keys}

    return payload


def _self_sheet(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    sheet: SheetScore = inp["sheet"]
    return {"v": SHEET_PAYLOAD_VERSION, "entries": inp["entries"], "total": sheet.total, "complete": sheet.complete}


def _verification_sheet(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    sheet: SheetScore = inp["sheet"]
    return {"v": SHEET_PAYLOAD_VERSION, "entries": inp["entries"], "total": sheet.total, "pass_mark": ctx.pass_mark,
            "passed": sheet_passes(sheet, ctx), "must_pass_failed": must_pass_failed(sheet, ctx)}


def _missed(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    if any(m == inp["milestone"] for m, _ in case.missed):
        raise refuse(case, ctx, "record_missed_deadline", now, f"the miss of {inp['milestone']} is already recorded",
                     f"{inp['milestone']} 的逾期已经记录")
    return {k: inp[k] for k in ("milestone", "due_on", "noticed_on", "owed_in")}


def _rectification(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    days = ctx.policy.rectification_days or 0
    return {"days": days, "due_on": business_date(now) + timedelta(days=days)}


def _extension(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    assert case.rectification_due is not None
    new_due = case.rectification_due + timedelta(days=inp["days"]) if "days" in inp else inp["until"]
    if new_due <= case.rectification_due:
        problems = [Problem("until", f"must be after the current due date {case.rectification_due}, got {new_due}",
                            f"须晚于当前整改期限{date_zh(case.rectification_due)}，填写的是{date_zh(new_due)}")]
        raise InvalidInput("invalid input for action extend_rectification", problems,
                           _input_zh("extend_rectification", problems), action="extend_rectification")
    if new_due < business_date(now):
        today = business_date(now)
        problems = [Problem("days" if "days" in inp else "until",
                            f"the new due date {new_due} is already past (today is {today})",
                            f"新的整改期限{date_zh(new_due)}已经过去（今天是{date_zh(today)}）")]
        raise InvalidInput("invalid input for action extend_rectification", problems,
                           _input_zh("extend_rectification", problems), action="extend_rectification")
    return {"reason": inp["reason"], "previous_due_on": case.rectification_due, "due_on": new_due}


def _expiry(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    return {"due_on": case.rectification_due}


def _failure(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    return {"verified_total": case.verified_total, "carry_over": ctx.policy.carry_over}


def _withdrawal(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    return {"reason": inp["reason"], "previous_state": case.state}


REVOKERS = {"province": "省级机关事务管理局（回头看、抽查）", "national": "国管局（抽查评价结果）"}


def _revocation(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    # decided_by is checked by its parser (domain/inputs.py): province when not given
    out = {"reason": inp["reason"], "decided_by": str(inp.get("decided_by") or "province"),
           "previous_state": case.state}
    for key in ("evidence", "note", "draw"):
        if inp.get(key):
            out[key] = str(inp[key])
    return out


def _spot_passed(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    out = {"draw": str(inp["draw"]), "decided_by": str(inp.get("decided_by") or "province")}
    for key in ("findings", "evidence", "note"):
        if inp.get(key):
            out[key] = str(inp[key])
    return out


def _spot_rectification(case: CaseState, inp: Input, ctx: RoundContext, now: datetime) -> dict[str, Any]:
    spot = ctx.policy.spot_check
    days = spot.rectification_days if spot is not None and spot.rectification_days else 0
    out = {"draw": str(inp["draw"]), "findings": str(inp["findings"]), "previous_state": case.state,
           "days": days, "due_on": business_date(now) + timedelta(days=days)}
    for key in ("evidence", "note"):
        if inp.get(key):
            out[key] = str(inp[key])
    return out


# ---------------------------------------------------------------- projections

def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def _self_entries(case: CaseState, event: Event, rubric: Rubric | None) -> dict[str, str]:
    entries = event.payload["entries"]
    if event.payload.get("v", 1) >= SHEET_PAYLOAD_VERSION:
        return dict(entries)
    if rubric is None:
        raise CorruptHistory(f"case {case.id} event #{event.seq}: a version-1 sheet (counts for per-occurrence "
                             "criteria) is read with the round's rubric; none was given")
    return {code: format(points, "f") for code, points in entries_as_points(event.payload, rubric).items()}


def _project_self(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None) -> dict[str, Any]:
    return {"self_total": _dec(p["total"]), "self_entries": _self_entries(case, event, rubric)}


def _project_verified(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None) -> dict[str, Any]:
    return {"verified_total": _dec(p["total"]), "passed": bool(p["passed"])}


def _project_rechecked(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                       ) -> dict[str, Any]:
    return {"recheck_total": _dec(p["total"]), "passed": bool(p["passed"])}


def _project_evidence_in(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                         ) -> dict[str, Any]:
    return {"evidence": (*case.evidence, (p["criterion"], p["sha256"], p["filename"]))}


def _project_evidence_out(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                          ) -> dict[str, Any]:
    return {"evidence": tuple(e for e in case.evidence if (e[0], e[1]) != (p["criterion"], p["sha256"]))}


def _project_document_in(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                         ) -> dict[str, Any]:
    return {"documents": (*case.documents, (p["document"], p["sha256"], p["filename"]))}


def _project_document_out(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                          ) -> dict[str, Any]:
    return {"documents": tuple(d for d in case.documents if (d[0], d[1]) != (p["document"], p["sha256"]))}


def _project_contact_form(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None
                          ) -> dict[str, Any]:
    return {"contact_form": True}


def _project_missed(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None) -> dict[str, Any]:
    return {"missed": (*case.missed, (p["milestone"], tuple(p["owed_in"])))}


def _project_due(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None) -> dict[str, Any]:
    return {"rectification_due": date.fromisoformat(p["due_on"])}


def _project_held(case: CaseState, p: Mapping[str, Any], event: Event, rubric: Rubric | None) -> dict[str, Any]:
    return {"rectification_due": date.fromisoformat(p["due_on"]), "held_title": p["previous_state"]}


# ---------------------------------------------------------------- the table

def _rules() -> dict[str, ActionRule]:
    hooks: dict[str, tuple[Check | None, Payload | None, Project | None]] = {
        "self_assess": (None, _self_sheet, _project_self),
        "attach_evidence": (_evidence("attach_evidence"), _fields("criterion", "sha256", "filename", "size", "type"),
                            _project_evidence_in),
        "remove_evidence": (_evidence("remove_evidence"), _fields("criterion", "sha256"), _project_evidence_out),
        "attach_document": (_document("attach_document"), _fields("document", "sha256", "filename", "size", "type"),
                            _project_document_in),
        "remove_document": (_document("remove_document"), _fields("document", "sha256"), _project_document_out),
        "give_contact_form": (_check_contact_form, _fields("how", "contacts"), _project_contact_form),
        "submit": (_check_submit, None, None),
        "verify": (None, _verification_sheet, _project_verified),
        "recheck": (None, _verification_sheet, _project_rechecked),
        "order_rectification": (None, _rectification, _project_due),
        "extend_rectification": (None, _extension, _project_due),
        "expire_rectification": (None, _expiry, None),
        "record_missed_deadline": (None, _missed, _project_missed),
        "record_notification_failure": (None, _fields("notification", "kind", "error"), None),
        "fail": (None, _failure, None),
        "withdraw": (None, _withdrawal, None),
        "revoke": (None, _revocation, None),
        "record_spot_check": (None, _fields("draw", "seed", "share"), None),
        "pass_spot_check": (None, _spot_passed, None),
        "order_spot_rectification": (None, _spot_rectification, _project_held),
    }
    unknown = sorted(set(hooks) - set(ACTIONS))
    if unknown:
        raise ValueError(f"hooks for actions the lifecycle does not have: {', '.join(unknown)}")
    return {name: ActionRule(spec, *hooks.get(name, (None, None, None))) for name, spec in ACTIONS.items()}


RULES: dict[str, ActionRule] = _rules()
PROJECTIONS: dict[str, Project | None] = {rule.spec.event: rule.project for rule in RULES.values()}
