"""Round calendars: the province and year a calendar serves, its policy, and its milestones.

Calendars are data files (``calendars/*.yaml``), validated on load. A milestone is due at
the end of its day in Asia/Shanghai. Reminder tiers count days before the due date; a
reminder that would fall on a non-working day moves to the previous working day (the
published due date never moves).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Callable, Mapping

from .errors import InvalidInput, ProblemList
from .lifecycle import STATES
from .policy import Policy, policy_from_dict

_KNOWN = {"id", "title", "province", "source", "year", "recurring", "policy", "milestones", "rectification",
          "extra_holidays", "extra_workdays", "contact"}
_MILESTONE_KNOWN = {"id", "name", "due", "next_year", "owes", "remind", "escalate", "tiers", "what_to_do"}
_RECT_KNOWN = {"name", "remind", "escalate", "tiers", "what_to_do"}
RECIPIENTS = ("unit", "coordinators")
IsWorkday = Callable[[date], bool]


@dataclass(frozen=True, slots=True)
class Milestone:
    """A dated obligation of the round. ``owes_states`` — cases in these states still owe it;
    ``owes_contacts`` — units without a contact person owe it (the 附件2 form); neither —
    informational (shown on the timeline, nobody reminded)."""

    id: str
    name: str
    month: int
    day: int
    next_year: bool
    owes_states: frozenset[str]
    owes_contacts: bool
    remind: tuple[str, ...]
    escalate: tuple[str, ...]
    tiers: tuple[int, ...]  # days before the due date, largest first
    what_to_do: str

    def due_on(self, round_year: int) -> date:
        return date(round_year + (1 if self.next_year else 0), self.month, self.day)

    @property
    def informational(self) -> bool:
        return not self.owes_states and not self.owes_contacts


@dataclass(frozen=True, slots=True)
class RectificationRule:
    """Reminders and escalation of the per-case rectification deadline (ordered + N days)."""

    name: str
    remind: tuple[str, ...]
    escalate: tuple[str, ...]
    tiers: tuple[int, ...]
    what_to_do: str


@dataclass(frozen=True, slots=True)
class Calendar:
    id: str
    title: str
    province: str
    year: int | None  # the one round year it serves, or None when recurring
    recurring: bool
    policy: Policy
    source: str | None = None
    milestones: tuple[Milestone, ...] = ()
    rectification: RectificationRule | None = None
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    contact: str = ""  # the bureau's contact line printed in mails

    def serves(self, year: int) -> bool:
        return self.recurring or self.year == year

    def milestone(self, milestone_id: str) -> Milestone:
        for m in self.milestones:
            if m.id == milestone_id:
                return m
        raise KeyError(f"calendar {self.id} has no milestone {milestone_id!r}")


# ---------------------------------------------------------------- deadline arithmetic

def reminder_date(due: date, days_before: int, is_workday: IsWorkday) -> date:
    """The day a reminder ``days_before`` the due date goes out: moved back to a working day."""
    day = due - timedelta(days=days_before)
    for _ in range(60):
        if is_workday(day):
            return day
        day -= timedelta(days=1)
    raise ValueError(f"no working day in the 60 days before {due - timedelta(days=days_before)}")


def tier_due(due: date, tiers: tuple[int, ...], today: date, is_workday: IsWorkday) -> int | None:
    """The reminder tier to send on ``today``: the latest tier whose day has come, while the
    deadline has not passed. After downtime only this one is sent, never the ones missed."""
    if today > due:
        return None
    come = [t for t in tiers if reminder_date(due, t, is_workday) <= today]
    return min(come) if come else None


# ---------------------------------------------------------------- loading

def _strings(value: Any, where: str, allowed: tuple[str, ...], problems: ProblemList) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or any(v not in allowed for v in value):
        problems.add(where, f"must be a list of {', '.join(allowed)}; got {value!r}")
        return ()
    return tuple(value)


def _tiers(value: Any, where: str, problems: ProblemList) -> tuple[int, ...]:
    if value is None:
        return ()
    if (not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 90
                                           for v in value) or len(set(value)) != len(value)):
        problems.add(where, f"must be a list of distinct whole days from 0 to 90; got {value!r}")
        return ()
    return tuple(sorted(value, reverse=True))


def _dates(value: Any, where: str, problems: ProblemList) -> frozenset[date]:
    if value is None:
        return frozenset()
    out = set()
    for i, v in enumerate(value if isinstance(value, list) else [value]):
        try:
            out.add(v if isinstance(v, date) else date.fromisoformat(str(v)))
        except ValueError:
            problems.add(f"{where}[{i}]", f"not a date YYYY-MM-DD: {v!r}")
    return frozenset(out)


def _milestone(data: Any, where: str, problems: ProblemList) -> Milestone | None:
    before = len(problems.problems)
    if not isinstance(data, Mapping):
        problems.add(where, "must be a mapping")
        return None
    for key in sorted(set(data) - _MILESTONE_KNOWN):
        problems.add(f"{where}.{key}", f"unknown field (known: {', '.join(sorted(_MILESTONE_KNOWN))})")
    mid, name = data.get("id"), data.get("name")
    if not isinstance(mid, str) or not mid.replace("_", "").isalnum():
        problems.add(f"{where}.id", f"must be a short id like self_assessment; got {mid!r}")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{where}.name", "required text")
    month = day = 0
    due = str(data.get("due", ""))
    try:
        month, day = (int(p) for p in due.split("-"))
        date(2024, month, day)  # a leap year: 02-29 is allowed to be named
    except ValueError:
        problems.add(f"{where}.due", f"must be MM-DD (the day in the round's year); got {data.get('due')!r}")
    owes = data.get("owes")
    states: frozenset[str] = frozenset()
    contacts = False
    if owes is not None:
        if not isinstance(owes, Mapping) or set(owes) - {"states", "contacts_missing"}:
            problems.add(f"{where}.owes", "must be {states: [...]} or {contacts_missing: true}")
        else:
            raw = owes.get("states", [])
            listed = isinstance(raw, list)
            if not listed:
                problems.add(f"{where}.owes.states", f"must be a list of states; got {raw!r}")
                raw = []
            bad = [s for s in raw if s not in STATES]
            if bad:
                problems.add(f"{where}.owes.states", f"unknown states {bad}; states: {', '.join(STATES)}")
            states = frozenset(s for s in raw if s in STATES)
            flag = owes.get("contacts_missing", False)
            if not isinstance(flag, bool):
                problems.add(f"{where}.owes.contacts_missing", f"must be true or false; got {flag!r}")
            contacts = flag is True
            if listed and not raw and not contacts:
                problems.add(f"{where}.owes", "names nobody: give states, or contacts_missing: true "
                                              "(leave owes out for an informational milestone)")
    remind = _strings(data.get("remind"), f"{where}.remind", RECIPIENTS, problems)
    escalate = _strings(data.get("escalate"), f"{where}.escalate", RECIPIENTS, problems)
    tiers = _tiers(data.get("tiers"), f"{where}.tiers", problems)
    if owes is None and (remind or escalate or tiers):
        problems.add(where, "an informational milestone (no owes) has no reminders or escalation")
    if owes is not None and tiers and not remind:
        problems.add(f"{where}.remind", "tiers are given but nobody is reminded")
    if len(problems.problems) > before:
        return None
    return Milestone(mid, name.strip(), month, day, data.get("next_year") is True, states, contacts, remind,
                     escalate, tiers, str(data.get("what_to_do") or "").strip())


def calendar_from_dict(data: Any, source: str) -> Calendar:
    problems = ProblemList()
    if not isinstance(data, Mapping):
        raise InvalidInput(f"invalid calendar {source}: a mapping is needed", [])
    for key in sorted(set(data) - _KNOWN):
        problems.add(f"{source}: {key}", f"unknown field (known: {', '.join(sorted(_KNOWN))})")
    for key in ("id", "title", "province"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            problems.add(f"{source}: {key}", "required text")
    year, recurring = data.get("year"), data.get("recurring")
    if recurring not in (None, "yearly"):
        problems.add(f"{source}: recurring", f"must be 'yearly' when given, got {recurring!r}")
    if (year is None) == (recurring is None):
        problems.add(f"{source}: year", "give exactly one of year (one round year) or recurring: yearly")
    elif year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 2000 <= year <= 2100):
        problems.add(f"{source}: year", f"must be a year from 2000 to 2100, got {year!r}")
    policy = None
    try:
        policy = policy_from_dict(data.get("policy"), f"{source}: policy")
    except InvalidInput as exc:
        problems.problems.extend(exc.problems)
    milestones = []
    seen: set[str] = set()
    raw_milestones = data.get("milestones") or []
    if not isinstance(raw_milestones, list):
        problems.add(f"{source}: milestones", f"must be a list of milestones; got {raw_milestones!r}")
        raw_milestones = []
    for i, m in enumerate(raw_milestones):
        milestone = _milestone(m, f"{source}: milestones[{i}]", problems)
        if milestone is None:
            continue
        if milestone.id in seen:
            problems.add(f"{source}: milestones[{i}].id", f"{milestone.id!r} is used twice")
        seen.add(milestone.id)
        milestones.append(milestone)
    rect = None
    raw_rect = data.get("rectification")
    if raw_rect is not None:
        where = f"{source}: rectification"
        if not isinstance(raw_rect, Mapping) or set(raw_rect) - _RECT_KNOWN:
            problems.add(where, f"must be a mapping with {', '.join(sorted(_RECT_KNOWN))}")
        else:
            rect = RectificationRule(str(raw_rect.get("name") or "整改"),
                                     _strings(raw_rect.get("remind"), f"{where}.remind", RECIPIENTS, problems),
                                     _strings(raw_rect.get("escalate"), f"{where}.escalate", RECIPIENTS, problems),
                                     _tiers(raw_rect.get("tiers"), f"{where}.tiers", problems),
                                     str(raw_rect.get("what_to_do") or "").strip())
            if policy is not None and not policy.has_rectification:
                problems.add(where, "the policy has no rectification (on_fail is not 'rectification')")
    holidays = _dates(data.get("extra_holidays"), f"{source}: extra_holidays", problems)
    workdays = _dates(data.get("extra_workdays"), f"{source}: extra_workdays", problems)
    problems.raise_if_any(f"invalid calendar {source}")
    assert policy is not None
    return Calendar(id=data["id"], title=data["title"], province=data["province"], year=year,
                    recurring=recurring is not None, policy=policy, source=data.get("source"),
                    milestones=tuple(milestones), rectification=rect, extra_holidays=holidays,
                    extra_workdays=workdays, contact=str(data.get("contact") or "").strip())
