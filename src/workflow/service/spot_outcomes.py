"""What a spot check found, case by case, and what it leads to (回头看).

A province's spot check (a draw, ``oversight.spot_check``) records for each drawn case that it
passed, or that problems were found (the findings, and the evidence: a document's number or
a file's reference). Problems lead where the round's policy says (``policy.spot_check``):
rectification by a due date with the title held (Shanxi), or revocation at once (Hunan). The
national bureau's results for a filing batch (国管局 抽查评价) are recorded the same way;
its problems revoke the title (the province has no say in the bureau's result).

All of one request is one transaction: every outcome, the event each leads to on its case,
and the outcome rows, or nothing (every problem of the input said at once).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.case import Actor, RoundContext
from ..domain.dates import require_aware
from ..domain.errors import ActionRefused, NotFound, ProblemList
from ..domain.lifecycle import CERTIFIED_STATES, state_zh
from .cases import fingerprint, recall, take
from .oversight import _require_round, get_filing
from .ports import CaseStore, OutcomeRecord, Storage

OUTCOMES = {"passed": "通过", "problems": "发现问题"}
CONSEQUENCES = {"none": "称号保留", "rectification": "限期整改（称号暂停）", "revoked": "撤销称号"}
DECIDERS = {"province": "省级机关事务管理局", "national": "国管局"}
MAX_OUTCOMES = 2000  # one request: more than any province's draw or batch
MAX_FINDINGS = 2000
MAX_EVIDENCE = 200
_FIELDS = ("case_id", "outcome", "findings", "evidence")


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    case_id: int
    outcome: str
    findings: str | None
    evidence: str | None


def _text(entry: Mapping[str, Any], key: str, limit: int, where: str, problems: ProblemList) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.add(f"{where}.{key}", f"must be a text, got {type(value).__name__}", "须为文字")
        return None
    if len(value) > limit:
        problems.add(f"{where}.{key}", f"must be at most {limit} characters, got {len(value)}",
                     f"最多{limit}个字符，填写了{len(value)}个")
        return None
    return value.strip() or None


def _entry(entry: Any, where: str, problems: ProblemList) -> OutcomeInput | None:
    if not isinstance(entry, Mapping):
        problems.add(where, "must be a mapping with case_id, outcome (passed or problems), findings, evidence",
                     "须为含 case_id、outcome（passed 或 problems）、findings、evidence 的映射")
        return None
    before = problems.count
    for key in sorted(set(entry) - set(_FIELDS), key=str):
        problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(_FIELDS)})",
                     f"未知字段（可用字段：{'、'.join(_FIELDS)}）")
    case_id = entry.get("case_id")
    if isinstance(case_id, bool) or not isinstance(case_id, int) or case_id < 1:
        problems.add(f"{where}.case_id", f"must be a case number, got {case_id!r}",
                     f"须为案件编号，填写的是 {case_id!r}")
    outcome = entry.get("outcome")
    if outcome not in OUTCOMES:
        problems.add(f"{where}.outcome", f"must be 'passed' or 'problems', got {outcome!r}",
                     f"须为 'passed'（通过）或 'problems'（发现问题），填写的是 {outcome!r}")
    findings = _text(entry, "findings", MAX_FINDINGS, where, problems)
    evidence = _text(entry, "evidence", MAX_EVIDENCE, where, problems)
    if outcome == "problems" and findings is None and f"{where}.findings" not in _wheres(problems):
        problems.add(f"{where}.findings", "problems found need the findings (what was found wrong)",
                     "发现问题时须填写问题情况（发现了什么问题）")
    if problems.count > before:
        return None
    return OutcomeInput(int(str(case_id)), str(outcome), findings, evidence)


def _wheres(problems: ProblemList) -> set[str]:
    return {p.where for p in problems.problems}


def parse_outcomes(raw: Any, where: str = "outcomes") -> list[OutcomeInput]:
    """The outcomes of a request, each checked; every problem at once (InvalidInput)."""
    problems = ProblemList()
    if not isinstance(raw, list) or not raw:
        problems.add(where, "must be a non-empty list of outcomes", "须为非空的结果列表")
        problems.raise_if_any("invalid outcomes", "抽查结果有误")
    if len(raw) > MAX_OUTCOMES:
        problems.add(where, f"at most {MAX_OUTCOMES} outcomes in one request, got {len(raw)}",
                     f"一次最多{MAX_OUTCOMES}条结果，提交了{len(raw)}条")
        problems.raise_if_any("invalid outcomes", "抽查结果有误")
    parsed: list[OutcomeInput] = []
    seen: dict[int, int] = {}
    for i, entry in enumerate(raw):
        found = _entry(entry, f"{where}[{i}]", problems)
        case_id = entry.get("case_id") if isinstance(entry, Mapping) else None
        if isinstance(case_id, int) and not isinstance(case_id, bool):
            if case_id in seen:
                problems.add(f"{where}[{i}].case_id", f"case {case_id} is already given at {where}[{seen[case_id]}]",
                             f"案件 {case_id} 已在第{seen[case_id] + 1}条中填写")
                continue
            seen[case_id] = i
        if found is not None:
            parsed.append(found)
    problems.raise_if_any(f"invalid outcomes: {problems.count} problem(s)", f"抽查结果有误，共{problems.count}处")
    return parsed


def _check_cases(uow: CaseStore, round_id: str, check_id: str, entries: list[OutcomeInput], allowed: set[int],
                 what: str, what_zh: str, where: str) -> None:
    """Every case is one the check covers, holds its title now, and has no outcome of it yet."""
    problems = ProblemList()
    recorded = {r.case_id for r in uow.oversight.outcomes(round_id, check_id)}
    for i, e in enumerate(entries):
        at = f"{where}[{i}].case_id"
        if e.case_id not in allowed:
            problems.add(at, f"case {e.case_id} is not {what} {check_id}",
                         f"案件 {e.case_id} 不在{what_zh} {check_id} 中")
        elif e.case_id in recorded:
            problems.add(at, f"case {e.case_id} already has an outcome of {check_id}",
                         f"案件 {e.case_id} 在 {check_id} 中已有结果")
        else:
            state = uow.get(e.case_id).state
            if state not in CERTIFIED_STATES:
                problems.add(at, f"case {e.case_id} is {state}: only a certified or filed case has a title to check",
                             f"案件 {e.case_id} 当前为“{state_zh(state)}”：只有已认定或已备案的案件才有称号可供抽查")
    problems.raise_if_any(f"cannot record the outcomes of {check_id}: {problems.count} problem(s)",
                          f"无法记录 {check_id} 的结果，共{problems.count}处问题")


def _consequence(ctx: RoundContext, e: OutcomeInput, decided_by: str, check_id: str) -> tuple[str, str,
                                                                                              dict[str, Any]]:
    """(consequence, action, its input) of one outcome."""
    extra = {k: v for k, v in (("findings", e.findings), ("evidence", e.evidence)) if v}
    if e.outcome == "passed":
        return "none", "pass_spot_check", {"draw": check_id, "decided_by": decided_by, **extra}
    spot = ctx.policy.spot_check
    if decided_by == "province" and spot is None:
        raise ActionRefused(
            f"round {ctx.round_id}'s policy does not say what a spot check's problems lead to "
            "(the calendar's policy.spot_check: on_problems rectification or revoke)",
            f"轮次 {ctx.round_id} 的政策未规定抽查发现问题后的处理（日历文件 policy.spot_check："
            "on_problems 为 rectification 限期整改或 revoke 撤销称号）", round_id=ctx.round_id)
    if decided_by == "national" or (spot is not None and spot.on_problems == "revoke"):
        data = {"reason": e.findings, "decided_by": decided_by, "draw": check_id}
        return "revoked", "revoke", {**data, **({"evidence": e.evidence} if e.evidence else {})}
    return "rectification", "order_spot_rectification", {"draw": check_id, **extra}


def _record(uow: CaseStore, round_id: str, check_id: str, entries: list[OutcomeInput], decided_by: str,
            actor: Actor, now: datetime) -> list[OutcomeRecord]:
    ctx = uow.round_context(round_id)
    records = []
    for e in entries:
        consequence, action, data = _consequence(ctx, e, decided_by, check_id)
        after, _ = take(uow, uow.get(e.case_id), action, data, actor, now, ctx)
        record = OutcomeRecord(check_id, e.case_id, round_id, e.outcome, consequence, decided_by, e.findings,
                               e.evidence, after.rectification_due if consequence == "rectification" else None,
                               now, str(actor))
        uow.oversight.add_outcome(record)
        records.append(record)
    return records


def _as_request(entries: list[OutcomeInput]) -> list[tuple[Any, ...]]:
    return [(e.case_id, e.outcome, e.findings, e.evidence) for e in entries]


def record_spot_check_outcomes(db: Storage, round_id: str, check_id: str, raw: Any, *, actor: Actor, now: datetime,
                               idempotency_key: str | None = None) -> list[OutcomeRecord]:
    """Record what a province's spot check found for some of its drawn cases (the rest may
    follow in later requests); each leads to its event. Returns the outcomes recorded."""
    require_aware(now, "now")
    entries = parse_outcomes(raw)
    with db.unit_of_work(core=True) as uow:
        request = fingerprint("spot_check_outcomes", round_id, check_id, _as_request(entries))
        if recall(uow, idempotency_key, "spot_check_outcomes", request) is not None:
            return _recorded(uow, round_id, check_id, entries)
        _require_round(uow, round_id)
        check = next((s for s in uow.oversight.spot_checks(round_id) if s.id == check_id), None)
        if check is None:
            raise NotFound(f"round {round_id} has no spot check {check_id!r}",
                           f"轮次 {round_id} 没有抽查 {check_id!r}", round_id=round_id, check_id=check_id)
        _check_cases(uow, round_id, check_id, entries, set(check.drawn), "drawn in", "抽查", "outcomes")
        records = _record(uow, round_id, check_id, entries, "province", actor, now)
        if idempotency_key:
            uow.remember(idempotency_key, "spot_check_outcomes", now, fingerprint=request, ref=check_id)
        uow.commit()
    return records


def record_national_results(db: Storage, batch_id: str, raw: Any, *, document: Any, actor: Actor, now: datetime,
                            idempotency_key: str | None = None) -> list[OutcomeRecord]:
    """Record the national bureau's results (国管局 抽查评价) for cases of a filing batch:
    passed, or problems (the title revoked, decided_by national). ``document``: the bureau's
    notice of its results (its number), the evidence of each outcome that names none."""
    require_aware(now, "now")
    problems = ProblemList()
    if not isinstance(document, str) or not document.strip() or len(document) > MAX_EVIDENCE:
        problems.add("document", f"the national bureau's document (its number) is needed, at most {MAX_EVIDENCE} "
                                 "characters", f"须填写国管局公布结果的文件（文号），最多{MAX_EVIDENCE}个字符")
        problems.raise_if_any("invalid national results", "国管局抽查评价结果有误")
    entries = [e if e.evidence else OutcomeInput(e.case_id, e.outcome, e.findings, document.strip())
               for e in parse_outcomes(raw, "results")]
    batch = get_filing(db, batch_id)
    with db.unit_of_work(core=True) as uow:
        request = fingerprint("national_results", batch_id, document, _as_request(entries))
        if recall(uow, idempotency_key, "national_results", request) is not None:
            return _recorded(uow, batch.round_id, batch_id, entries)
        _require_round(uow, batch.round_id)
        _check_cases(uow, batch.round_id, batch_id, entries, {int(c["case_id"]) for c in batch.cases},
                     "filed in batch", "备案批次", "results")
        records = _record(uow, batch.round_id, batch_id, entries, "national", actor, now)
        if idempotency_key:
            uow.remember(idempotency_key, "national_results", now, fingerprint=request, ref=batch_id)
        uow.commit()
    return records


def _recorded(uow: CaseStore, round_id: str, check_id: str, entries: list[OutcomeInput]) -> list[OutcomeRecord]:
    wanted = {e.case_id for e in entries}
    return [r for r in uow.oversight.outcomes(round_id, check_id) if r.case_id in wanted]


def list_outcomes(db: Storage, round_id: str, check_id: str | None = None) -> list[OutcomeRecord]:
    return db.oversight.outcomes(round_id, check_id)

