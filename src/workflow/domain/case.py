"""The case aggregate: decide what an action means, and apply events to state.

``decide`` turns (state, action, input, actor, now) into one new event or raises a
domain error; ``apply`` folds an event into the state. Both read the actions' table
(``actions.RULES``): who may act, the input's fields, the checks, the payload, the
projection. The case row in the database is exactly ``replay(events)``, which
``audit verify`` checks.

The parts: ``state`` (the case, the actor, the round's rules), ``inputs`` (reading an
action's fields), ``guards`` (the transitions' conditions, the actions allowed now),
``actions`` (the table).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from .actions import PROJECTIONS, RULES, CorruptHistory
from .dates import business_date
from .errors import ActionRefused, InvalidInput
from .events import GENESIS_HASH, Event, new_event
from .guards import GUARD_REASONS, GUARD_REASONS_ZH, GUARDS, allowed_actions, owns, refuse, submission_problems
from .inputs import PARSERS, parse_input, problems_zh, read_input
from .lifecycle import ACTIONS, ACTOR_NAMES, REPLAYED_GUARDS, TRANSITIONS, Edge, action_zh, state_zh
from .rubric import Rubric, SheetScore, score_sheet
from .state import SHEET_PAYLOAD_VERSION, Actor, CaseState, RoundContext, still_owed

__all__ = [
    "PARSERS", "SHEET_PAYLOAD_VERSION", "Actor", "CaseState", "CorruptHistory", "Notice", "RoundContext",
    "allowed_actions", "apply", "decide", "notices_for", "parse_input", "registration_event", "replay",
    "submission_problems",
]

SHEETS = ("self_assess", "verify", "recheck")


# ---------------------------------------------------------------- decide

def decide(case: CaseState, action: str, data: Mapping[str, Any] | None, actor: Actor,
           now: datetime, ctx: RoundContext) -> Event:
    """The event an action makes of this case now, or a domain error saying why not."""
    edges = _possible(case, action, actor, now, ctx)
    inp = _input(case, action, data, ctx)
    rule = RULES[action]
    if rule.check is not None:
        rule.check(case, inp, ctx, now)
    _chosen(case, action, edges, inp, ctx, now)
    payload = rule.payload(case, inp, ctx, now) if rule.payload is not None else {}
    for key in ("reason", "note", "batch"):
        if key in inp and key not in payload:
            payload[key] = inp[key]
    if action in SHEETS and inp["sheet"].counts:
        # what was given as a number of occurrences, beside the points it made
        payload["counts"] = dict(inp["sheet"].counts)
    return new_event(case.id, case.version + 1, rule.spec.event, str(actor), now, payload, case.last_hash)


def _possible(case: CaseState, action: str, actor: Actor, now: datetime, ctx: RoundContext) -> tuple[Edge, ...]:
    """The transitions the action could take from the case's state, for this actor under this
    round's policy (refused otherwise)."""
    lc = ctx.lifecycle
    if action not in ACTIONS:
        known_zh = "、".join(f"{a}（{action_zh(a)}）" for a in lc.actions())
        raise ActionRefused(
            f"unknown action {action!r} for case {case.id}; known actions: {', '.join(lc.actions())}",
            f"案件 {case.id} 没有 {action!r} 这一操作；已有的操作：{known_zh}",
            case_id=case.id, state=case.state, action=action, allowed=allowed_actions(case, ctx, now),
        )
    if action not in lc.action_set:
        raise refuse(case, ctx, action, now, f"the policy of round {ctx.round_id} has no {action}",
                     f"轮次 {ctx.round_id} 的政策没有“{action_zh(action)}”这一步骤")
    if not actor.may(action):
        raise refuse(case, ctx, action, now, f"a {actor.kind} may not {action}",
                     f"{ACTOR_NAMES.get(actor.kind, actor.kind)}无权办理“{action_zh(action)}”")
    if not owns(actor, case):
        raise refuse(case, ctx, action, now, f"{actor} may act only on its own unit's cases; "
                                              f"case {case.id} is unit {case.unit_id}'s",
                     f"{actor} 只能办理本单位的案件；案件 {case.id} 属于单位 {case.unit_id}")
    edges = lc.edges(action, case.state)
    if not edges:
        raise refuse(case, ctx, action, now, f"not possible from {case.state}",
                     f"“{state_zh(case.state)}”状态下不能办理此操作")
    return edges


def _input(case: CaseState, action: str, data: Mapping[str, Any] | None, ctx: RoundContext) -> dict[str, Any]:
    """The action's input, read and (a sheet) scored: every problem at once, or InvalidInput."""
    inp, problems = read_input(action, data)
    if action in SHEETS and "entries" in inp:
        # Score the well-formed entries even when other fields are wrong: every problem at once.
        bad = inp.pop("bad_entries")
        try:
            inp["sheet"], inp["entries"] = _score(case, action, inp["entries"], ctx, check_missing=not bad)
        except InvalidInput as exc:
            kept = [p for p in exc.problems if p.where not in bad]
            problems.extend(kept, exc.problem_count - (len(exc.problems) - len(kept)))
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems.problems, problems_zh(problems),
                           problem_count=problems.count, action=action)
    return inp


def _chosen(case: CaseState, action: str, edges: tuple[Edge, ...], inp: Mapping[str, Any], ctx: RoundContext,
            now: datetime) -> Edge:
    """The first transition whose conditions hold (refused, naming the first that does not)."""
    failed = None
    for edge in edges:
        bad = [c for c in edge.conditions if not GUARDS[c](case, ctx, now, inp)]
        if not bad:
            return edge
        failed = failed or bad[0]
    raise refuse(case, ctx, action, now, GUARD_REASONS.get(failed or "", f"guard {failed} does not hold"),
                 GUARD_REASONS_ZH.get(failed or "", f"条件 {failed} 不满足"))


def _score(case: CaseState, action: str, entries: dict[str, Any], ctx: RoundContext,
           check_missing: bool = True) -> tuple[SheetScore, dict[str, str]]:
    """Score a sheet against the round's rubric; the entries as points, in rubric order. A
    self-assessment adds to the unit's current sheet; verification and recheck sheets must
    answer every criterion."""
    if action == "self_assess":
        merged: dict[str, Any] = {code: Decimal(v) for code, v in (case.self_entries or {}).items()}
        merged.update(entries)
        sheet = score_sheet(ctx.rubric, merged, complete=False)
    else:
        sheet = score_sheet(ctx.rubric, entries, complete=check_missing)
    return sheet, {code: format(points, "f") for code, points in sheet.entered().items()}


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
    if event.type in ("RectificationOrdered", "RectificationExtended", "SpotRectificationOrdered"):
        due = date.fromisoformat(event.payload["due_on"])
        return [Notice("rectification_notice", f"rectification_notice:{event.case_id}:{due.isoformat()}",
                       "rectification", due)]
    if event.type == "TitleRevoked":  # the unit is told at once (the dispatcher reads the reason from the event)
        return [Notice("revocation_notice", f"revocation_notice:{event.case_id}", "revocation",
                       business_date(event.occurred_at))]
    return []


# ---------------------------------------------------------------- register / apply / replay

REGISTERED = "CaseRegistered"


def registration_event(case_id: int, round_id: str, unit_id: int, actor: Actor | str, now: datetime,
                       carried_over_from: int | None = None) -> Event:
    payload = {"round_id": round_id, "unit_id": unit_id, "carried_over_from": carried_over_from}
    return new_event(case_id, 1, REGISTERED, str(actor), now, payload, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class _Leads:
    """Where an event leads from some states, when the guards a replay can check hold."""

    sources: frozenset[str]
    passed: bool | None  # the outcome (``passed`` in the payload) it needs, if any
    held: tuple[str, ...]  # the replayed guards (lifecycle.REPLAYED_GUARDS) it needs
    dest: str


def _destinations() -> dict[str, list[_Leads]]:
    """Event type → where it leads, read from the transition table (the one source of truth),
    in the table's order. An action with several destinations chooses by outcome (``passed``
    in the payload) and by the guards that read only the case (a held title)."""
    out: dict[str, list[_Leads]] = {}
    for t in TRANSITIONS:
        conditions = t.get("conditions", ())
        outcome = [c for c in conditions if c.startswith("outcome_")]
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        leads = _Leads(frozenset(sources), None if not outcome else outcome[0] == "outcome_passed",
                       tuple(c for c in conditions if c in REPLAYED_GUARDS), t["dest"])
        known = out.setdefault(ACTIONS[t["trigger"]].event, [])
        for other in known:
            if (other.sources & leads.sources and (other.passed, other.held) == (leads.passed, leads.held)
                    and other.dest != leads.dest):
                raise ValueError(f"{t['trigger']} leads to both {other.dest} and {leads.dest}")
        known.append(leads)
    return out


_DEST = _destinations()
_EVENT_TO_ACTION = {spec.event: name for name, spec in ACTIONS.items()}
# Every state an event may follow, over every policy (the log is read without the policy files).
_SOURCES: dict[str, frozenset[str]] = {event: frozenset().union(*(lead.sources for lead in leads))
                                       for event, leads in _DEST.items()}


def _sources(event_type: str) -> frozenset[str]:
    return _SOURCES[event_type]


def _dest(case: CaseState, event: Event) -> str:
    for lead in _DEST[event.type]:
        if case.state not in lead.sources:
            continue
        if lead.passed is not None and bool(event.payload["passed"]) != lead.passed:
            continue
        if all(GUARDS[g](case, _NO_ROUND, event.occurred_at, {}) for g in lead.held):
            return case.state if lead.dest == "=" else lead.dest
    raise CorruptHistory(f"case {case.id} event #{event.seq}: {event.type} leads nowhere from {case.state}")


# The replayed guards read only the case; they are called without a round.
_NO_ROUND: Any = None


def apply(case: CaseState | None, event: Event, rubric: Rubric | None = None) -> CaseState:
    """Fold one event into the case (None before the first event). ``rubric`` (the round's)
    is needed only to read a version-1 self-assessment, whose per-occurrence entries were
    counts: replaying a history written before sheets were points."""
    if case is None:
        return _registered(event)
    if event.type not in _DEST:
        raise CorruptHistory(f"case {case.id} event #{event.seq}: unknown event type {event.type!r}")
    if event.seq != case.version + 1:
        raise CorruptHistory(f"case {case.id}: event #{event.seq} follows #{case.version}")
    if case.state not in _sources(event.type):
        raise CorruptHistory(f"case {case.id} event #{event.seq}: {event.type} cannot follow state {case.state}")
    p = event.payload
    dest = _dest(case, event)
    project = PROJECTIONS[event.type]
    changes: dict[str, Any] = project(case, p, event, rubric) if project is not None else {}
    changes.update(version=event.seq, last_hash=event.hash, updated_at=event.occurred_at, state=dest)
    if dest not in ("rectification", "recheck"):
        changes["held_title"] = None  # a spot check's rectification is over (or was never)
    missed = changes.get("missed", case.missed)
    contact_form = changes.get("contact_form", case.contact_form)
    changes["overdue"] = any(still_owed(owed, changes["state"], contact_form) for _, owed in missed)
    return replace(case, **changes)


def _registered(event: Event) -> CaseState:
    if event.type != REGISTERED or event.seq != 1:
        raise CorruptHistory(f"case {event.case_id}: first event must be {REGISTERED} #1, "
                             f"got {event.type} #{event.seq}")
    p = event.payload
    return CaseState(id=event.case_id, round_id=p["round_id"], unit_id=int(p["unit_id"]), state="registered",
                     version=1, last_hash=event.hash, carried_over_from=p.get("carried_over_from"),
                     registered_at=event.occurred_at, updated_at=event.occurred_at)


def replay(events: Iterable[Event], rubric: Rubric | None = None) -> CaseState | None:
    case = None
    for event in events:
        case = apply(case, event, rubric)
    return case
