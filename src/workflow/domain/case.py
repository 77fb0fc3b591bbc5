"""The case aggregate: decide what an action means, and apply events to state.

``decide`` turns (state, action, input, actor, now) into one new event or raises a
domain error; ``apply`` folds an event into the state. The case row in the database
is exactly ``replay(events)``, which ``audit verify`` checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping

from ..clock import business_date, end_of_business_day
from .errors import ActionRefused, InvalidInput, ProblemList
from .events import GENESIS_HASH, Event, new_event
from .errors import Problem
from .lifecycle import ACTIONS, SYSTEM, TRANSITIONS, Edge, Lifecycle, lifecycle_for
from .policy import Policy

ACTOR_KINDS = ("unit", "coordinator", "auditor", "admin", "system")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: ``kind:id``, e.g. ``coordinator:wang.li`` or ``system:sweep``."""

    kind: str
    id: str

    @classmethod
    def parse(cls, text: str) -> "Actor":
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


PARSERS: dict[str, Callable[[Any], Any]] = {
    "reason": _reason,
    "note": _note,
    "total": _decimal,
    "days": _days,
    "until": _date,
    "batch": _note,
}


def parse_input(action: str, data: Mapping[str, Any] | None, max_total: Decimal | None = None) -> dict[str, Any]:
    """Check an action's input: every problem (unknown, missing, malformed, out of range) at once."""
    spec = ACTIONS[action]
    if not data and not spec.required:
        return {}
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
        try:
            out[key] = PARSERS[key](data[key])
        except ValueError as exc:
            problems.add(key, str(exc))
    if "total" in out and max_total is not None and not Decimal(0) <= out["total"] <= max_total:
        problems.add("total", f"must be from 0 to {max_total}, got {out['total']}")
    if action == "extend_rectification" and (data.get("days") is None) == (data.get("until") is None):
        problems.add("days/until", "give exactly one of days (to add) or until (a new due date)")
    problems.raise_if_any(f"invalid input for action {action}", action=action)
    return out


# ---------------------------------------------------------------- guards

def _passed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is True


def _failed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.passed is False


def _rectification_open(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now <= end_of_business_day(case.rectification_due)


def _rectification_expired(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return case.rectification_due is not None and now > end_of_business_day(case.rectification_due)


def _outcome_passed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return "total" in inp and inp["total"] >= ctx.pass_mark


def _outcome_failed(case: CaseState, ctx: RoundContext, now: datetime, inp: Mapping[str, Any]) -> bool:
    return "total" in inp and inp["total"] < ctx.pass_mark


Guard = Callable[[CaseState, RoundContext, datetime, Mapping[str, Any]], bool]
GUARDS: dict[str, Guard] = {
    "passed": _passed,
    "failed": _failed,
    "rectification_open": _rectification_open,
    "rectification_expired": _rectification_expired,
    "outcome_passed": _outcome_passed,
    "outcome_failed": _outcome_failed,
}
GUARD_REASONS = {
    "passed": "the verified score is below the pass mark",
    "failed": "the verified score passes",
    "rectification_open": "the rectification deadline has passed",
    "rectification_expired": "the rectification deadline has not passed yet",
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
    inp = parse_input(action, data, ctx.max_total)
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
        payload = {"total": inp["total"], "pass_mark": ctx.pass_mark, "passed": inp["total"] >= ctx.pass_mark}
    elif action == "self_assess":
        if "total" in inp:
            payload["total"] = inp["total"]
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
    for key in ("reason", "note", "batch"):
        if key in inp and key not in payload:
            payload[key] = inp[key]
    return new_event(case.id, case.version + 1, spec.event, str(actor), now, payload, case.last_hash)


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


def apply(case: CaseState | None, event: Event) -> CaseState:
    """Fold one event into the case (None before the first event)."""
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
    if event.type == "SelfAssessmentRecorded" and "total" in p:
        changes["self_total"] = _dec(p["total"])
    elif event.type == "CaseVerified":
        changes.update(verified_total=_dec(p["total"]), passed=bool(p["passed"]))
    elif event.type == "CaseRechecked":
        changes.update(recheck_total=_dec(p["total"]), passed=bool(p["passed"]))
    elif event.type in ("RectificationOrdered", "RectificationExtended"):
        changes["rectification_due"] = date.fromisoformat(p["due_on"])
    changes["state"] = dest
    return replace(case, **changes)


def replay(events: Iterable[Event]) -> CaseState | None:
    case = None
    for event in events:
        case = apply(case, event)
    return case
