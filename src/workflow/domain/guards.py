"""The conditions of the transitions (``lifecycle.TRANSITIONS`` names them), and what they
allow: the actions open to a case now, and the refusal that lists them."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from .dates import end_of_business_day
from .errors import ActionRefused, Problem
from .lifecycle import ACTIONS, ACTOR_NAMES, SYSTEM, Edge, action_zh, state_zh
from .rubric import SheetScore
from .state import Actor, CaseState, RoundContext

Guard = Callable[[CaseState, RoundContext, datetime, Mapping[str, Any]], bool]


def _passed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is True


def _failed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is False


def _rectification_open(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now <= end_of_business_day(case.rectification_due)


def _rectification_expired(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now > end_of_business_day(case.rectification_due)


def _held_title(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.held_title is not None


def _no_held_title(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.held_title is None


def _held(state: str) -> Guard:
    return lambda case, ctx, now, inp: case.held_title == state


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


GUARDS: dict[str, Guard] = {
    "passed": _passed,
    "failed": _failed,
    "rectification_open": _rectification_open,
    "rectification_expired": _rectification_expired,
    "outcome_passed": _outcome_passed,
    "outcome_failed": _outcome_failed,
    "sheet_ready": _sheet_ready,
    "held_title": _held_title,
    "no_held_title": _no_held_title,
    "held_certified": _held("certified"),
    "held_filed": _held("filed"),
}
GUARD_REASONS = {
    "passed": "the verified score is below the pass mark",
    "failed": "the verified score passes",
    "rectification_open": "the rectification deadline has passed",
    "rectification_expired": "the rectification deadline has not passed yet",
    "sheet_ready": "the self-assessment is incomplete or lacks evidence or documents",
    "held_title": "the case is not a spot check's rectification (no title is held)",
}
GUARD_REASONS_ZH = {
    "passed": "核查得分低于合格分",
    "failed": "核查得分已合格",
    "rectification_open": "整改期限已过",
    "rectification_expired": "整改期限尚未届满",
    "sheet_ready": "自评尚未完成，或缺少佐证材料、报送材料",
    "held_title": "该案件不是抽查后的整改（没有暂停的称号）",
}
_GUARD_WHY = {why: guard for guard, why in GUARD_REASONS.items()}


def _case_guards_hold(edge: Edge, case: CaseState, ctx: RoundContext, now: datetime) -> bool:
    return all(GUARDS[c](case, ctx, now, {}) for c in edge.conditions if not c.startswith("outcome_"))


def allowed_actions(case: CaseState, ctx: RoundContext, now: datetime, actor: Actor | None = None) -> list[str]:
    """What may happen next to this case (for this actor, if given)."""
    lc = ctx.lifecycle
    if actor is not None and not owns(actor, case):
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


def owns(actor: Actor, case: CaseState) -> bool:
    """A unit acts on its own cases only; other kinds are scoped elsewhere (jurisdictions)."""
    return actor.kind != "unit" or actor.id == str(case.unit_id)


def why_zh(case: CaseState, ctx: RoundContext, action: str, why: str) -> str:
    """The Chinese of a refusal's reason written only in English (the reasons ``case.decide``
    gives), as specifically; a reason not known here is shown as it is."""
    if why in _GUARD_WHY:
        return GUARD_REASONS_ZH[_GUARD_WHY[why]]
    if why == f"the policy of round {ctx.round_id} has no {action}":
        return f"轮次 {ctx.round_id} 的政策没有“{action_zh(action)}”这一步骤"
    if why == f"not possible from {case.state}":
        return f"“{state_zh(case.state)}”状态下不能办理此操作"
    if m := re.fullmatch(r"a (\w+) may not (\w+)", why):
        return f"{ACTOR_NAMES.get(m[1], m[1])}无权办理“{action_zh(m[2])}”"
    if m := re.fullmatch(r"(.+) may act only on its own unit's cases; case (\d+) is unit (\d+)'s", why):
        return f"{m[1]} 只能办理本单位的案件；案件 {m[2]} 属于单位 {m[3]}"
    if m := re.fullmatch(r"guard (\w+) does not hold", why):
        return f"条件 {m[1]} 不满足"
    return why


def refuse(case: CaseState, ctx: RoundContext, action: str, now: datetime, why: str,
           why_zh_text: str | None = None) -> ActionRefused:
    """The refusal of ``action`` on the case, ``why`` (``why_zh_text``: the same in Chinese;
    without it the reasons ``case.decide`` gives are put in Chinese by :func:`why_zh`)."""
    allowed = allowed_actions(case, ctx, now)
    state = state_zh(case.state)
    allowed_zh = "、".join(action_zh(a) for a in allowed) or "无（已是最终状态）"
    return ActionRefused(
        f"case {case.id} is {case.state}: {action} refused ({why}); "
        f"allowed from {case.state}: {', '.join(allowed) or 'nothing (final state)'}",
        f"案件 {case.id} 当前为“{state}”状态，不能办理“{action_zh(action)}”"
        f"（{why_zh_text or why_zh(case, ctx, action, why)}）；“{state}”状态下可办理：{allowed_zh}",
        case_id=case.id, state=case.state, action=action, allowed=allowed,
    )

