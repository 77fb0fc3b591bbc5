"""The case lifecycle: which action is possible from which state, for whom, with what input.

The expected graph is written out here by hand (``EXPECTED``), independently of
``lifecycle.TRANSITIONS``, so a wrong edge in the declaration makes these tests fail.
Cases are always built the real way: a registration event, then ``decide``/``apply``.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.domain import lifecycle
from workflow.domain.case import (
    Actor,
    CaseState,
    CorruptHistory,
    RoundContext,
    allowed_actions,
    apply,
    decide,
    registration_event,
    replay,
)
from workflow.domain.errors import ActionRefused, DomainError, InvalidInput
from workflow.domain.events import GENESIS_HASH, Event, canonical_json, new_event
from workflow.domain.policy import Policy

# ---------------------------------------------------------------- helpers

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    """A moment written as Asia/Shanghai wall-clock time."""
    return datetime(*args, tzinfo=SH)


NOW = sh(2021, 11, 10, 10, 0)        # the day the tests verify/fail cases
DUE = date(2021, 11, 30)             # NOW's business date + 20 (Shanxi)
AFTER_DUE = sh(2021, 12, 1, 0, 0)

SHANXI = Policy("rectification", 20, False)
HUNAN = Policy("not_certified", None, True)
POLICIES = {"shanxi": SHANXI, "hunan": HUNAN}

UNIT_ID = 1                          # every test case belongs to unit 1 ...
UNIT = Actor("unit", str(UNIT_ID))   # ... for which UNIT acts
COORDINATOR = Actor("coordinator", "w")
SYSTEM = Actor("system", "sweep")
ADMIN = Actor("admin", "a")
AUDITOR = Actor("auditor", "x")
ALL_ACTORS = (UNIT, COORDINATOR, SYSTEM, ADMIN, AUDITOR)

PASSING, FAILING = "85", "79.5"
REASON = "data entry mistake"


def ctx_for(policy: Policy) -> RoundContext:
    return RoundContext("r", policy, Decimal("80"), Decimal("100"))


# Who normally takes each action, and a valid input for it (written here, not read from ACTIONS).
ACTOR_OF: dict[str, Actor] = {
    "self_assess": UNIT,
    "submit": UNIT,
    "return": COORDINATOR,
    "verify": COORDINATOR,
    "certify": COORDINATOR,
    "order_rectification": COORDINATOR,
    "fail": COORDINATOR,
    "extend_rectification": COORDINATOR,
    "request_recheck": UNIT,
    "recheck": COORDINATOR,
    "expire_rectification": SYSTEM,
    "close": COORDINATOR,
    "withdraw": COORDINATOR,
    "file": COORDINATOR,
}
VALID_DATA: dict[str, dict[str, Any]] = {
    "self_assess": {"total": "90"},
    "return": {"reason": REASON},
    "verify": {"total": PASSING},
    "extend_rectification": {"reason": REASON, "days": 5},
    "recheck": {"total": PASSING},
    "close": {"reason": REASON},
    "withdraw": {"reason": REASON},
    "file": {"batch": "2021-1"},
}
EVENT_OF: dict[str, str] = {
    "self_assess": "SelfAssessmentRecorded",
    "submit": "SelfAssessmentSubmitted",
    "return": "CaseReturned",
    "verify": "CaseVerified",
    "certify": "CaseCertified",
    "order_rectification": "RectificationOrdered",
    "fail": "CaseFailed",
    "extend_rectification": "RectificationExtended",
    "request_recheck": "RecheckRequested",
    "recheck": "CaseRechecked",
    "expire_rectification": "RectificationExpired",
    "close": "CaseClosed",
    "withdraw": "CaseWithdrawn",
    "file": "CaseFiled",
}
ALL_ACTIONS = tuple(EVENT_OF)


def path_to(state: str, score: str) -> list[tuple[str, dict[str, Any]]]:
    """The shortest legal path from registration to ``state`` (``score`` = the verified total)."""
    submitted = [("self_assess", {}), ("submit", {})]
    verified = [*submitted, ("verify", {"total": score})]
    paths = {
        "registered": [],
        "self_assessed": submitted[:1],
        "submitted": submitted,
        "verified": verified,
        "certified": [*verified, ("certify", {})],
        "filed": [*verified, ("certify", {}), ("file", {})],
        "rectification": [*verified, ("order_rectification", {})],
        "recheck": [*verified, ("order_rectification", {}), ("request_recheck", {})],
        "not_certified": [("close", {"reason": REASON})],
        "withdrawn": [("withdraw", {"reason": REASON})],
    }
    return paths[state]


@dataclasses.dataclass
class Built:
    """A case together with its round and the events that made it."""

    case: CaseState
    ctx: RoundContext
    events: list[Event]

    def act(self, action: str, data: Mapping[str, Any] | None = None, actor: Actor | None = None,
            now: datetime = NOW) -> Event:
        """decide + apply, keeping the event; returns the event."""
        event = decide(self.case, action, data, actor or ACTOR_OF[action], now, self.ctx)
        self.case = apply(self.case, event)
        self.events.append(event)
        return event


def registered(policy: Policy, at: datetime = NOW) -> Built:
    event = registration_event(1, "r", UNIT_ID, ADMIN, at)
    return Built(apply(None, event), ctx_for(policy), [event])


def case_in(state: str, policy: Policy, score: str | None = None, at: datetime = NOW) -> Built:
    """A case of ``policy`` in ``state``, reached through real events at time ``at``.

    The verified score is chosen to reach the state: failing for rectification and
    recheck, passing otherwise (unless ``score`` is given)."""
    if score is None:
        score = FAILING if state in ("rectification", "recheck") else PASSING
    built = registered(policy, at)
    for action, data in path_to(state, score):
        built.act(action, data, now=at)
    assert built.case.state == state
    return built


def refused(built: Built, action: str, data: Mapping[str, Any] | None = None,
            actor: Actor | None = None, now: datetime = NOW) -> ActionRefused:
    before = built.case
    with pytest.raises(ActionRefused) as err:
        decide(built.case, action, data, actor or ACTOR_OF.get(action, COORDINATOR), now, built.ctx)
    assert built.case == before
    return err.value


def problems(built: Built, action: str, data: Mapping[str, Any] | None, actor: Actor | None = None,
             now: datetime = NOW) -> dict[str, str]:
    """The problems (where → what) of an InvalidInput raised by the action."""
    with pytest.raises(InvalidInput) as err:
        decide(built.case, action, data, actor or ACTOR_OF[action], now, built.ctx)
    found = {p.where: p.what for p in err.value.problems}
    assert len(found) == len(err.value.problems), "a field is named twice"
    return found


# ---------------------------------------------------------------- the expected graph

NC, WD = "not_certified", "withdrawn"

# scenario → (state, verified score, time the action is attempted)
SCENARIOS: dict[str, tuple[str, str | None, datetime]] = {
    "registered": ("registered", None, NOW),
    "self_assessed": ("self_assessed", None, NOW),
    "submitted": ("submitted", None, NOW),
    "verified_passing": ("verified", PASSING, NOW),
    "verified_failing": ("verified", FAILING, NOW),
    "rectification_open": ("rectification", None, NOW),
    "rectification_overdue": ("rectification", None, AFTER_DUE),
    "recheck": ("recheck", None, NOW),
    "certified": ("certified", None, NOW),
    "not_certified": ("not_certified", None, NOW),
    "withdrawn": ("withdrawn", None, NOW),
    "filed": ("filed", None, NOW),
}

# scenario → {action that succeeds: destination}; anything else is refused.
_COMMON: dict[str, dict[str, str]] = {
    "registered": {"self_assess": "self_assessed", "close": NC, "withdraw": WD},
    "self_assessed": {"self_assess": "self_assessed", "submit": "submitted", "close": NC, "withdraw": WD},
    "submitted": {"return": "self_assessed", "verify": "verified", "close": NC, "withdraw": WD},
    "verified_passing": {"certify": "certified", "close": NC, "withdraw": WD},
    "certified": {"file": "filed", "withdraw": WD},
    "not_certified": {},
    "withdrawn": {},
    "filed": {},
}
EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "shanxi": {
        **_COMMON,
        "verified_failing": {"order_rectification": "rectification", "close": NC, "withdraw": WD},
        "rectification_open": {"extend_rectification": "rectification", "request_recheck": "recheck",
                               "withdraw": WD},
        "rectification_overdue": {"extend_rectification": "rectification", "expire_rectification": NC,
                                  "withdraw": WD},
        "recheck": {"recheck": "certified", "withdraw": WD},  # with a passing recheck score
    },
    "hunan": {
        **_COMMON,
        "verified_failing": {"fail": NC, "close": NC, "withdraw": WD},
        # rectification and recheck cannot be reached under Hunan's policy
    },
}
HUNAN_UNREACHABLE = ("rectification", "recheck")

# The states an action may lead to from a state (recheck decides by its score).
DESTINATIONS: dict[str, dict[tuple[str, str], set[str]]] = {}
for _name, _table in EXPECTED.items():
    _dests: dict[tuple[str, str], set[str]] = {}
    for _scenario, _moves in _table.items():
        for _action, _dest in _moves.items():
            _dests.setdefault((SCENARIOS[_scenario][0], _action), set()).add(_dest)
    if ("recheck", "recheck") in _dests:
        _dests[("recheck", "recheck")].add(NC)
    DESTINATIONS[_name] = _dests


def built_scenario(policy_name: str, scenario: str) -> tuple[Built, datetime]:
    state, score, when = SCENARIOS[scenario]
    return case_in(state, POLICIES[policy_name], score=score), when


TABLE_CASES = [
    pytest.param(p, s, a, id=f"{p}-{s}-{a}")
    for p in EXPECTED for s in EXPECTED[p] for a in ALL_ACTIONS
]


def test_the_expected_table_covers_every_state_and_action() -> None:
    assert set(ALL_ACTIONS) == set(lifecycle.ACTIONS)
    assert {SCENARIOS[s][0] for s in EXPECTED["shanxi"]} == set(lifecycle.STATES)
    assert {SCENARIOS[s][0] for s in EXPECTED["hunan"]} == set(lifecycle.STATES) - set(HUNAN_UNREACHABLE)


# ---------------------------------------------------------------- 1. the whole table


@pytest.mark.parametrize("policy_name, scenario, action", TABLE_CASES)
def test_every_state_and_action(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    case = built.case
    expected_dest = EXPECTED[policy_name][scenario].get(action)
    data = VALID_DATA.get(action, {})
    if expected_dest is not None:
        event = decide(case, action, data, ACTOR_OF[action], when, built.ctx)
        assert event.type == EVENT_OF[action]
        assert (event.case_id, event.seq, event.prev_hash) == (case.id, case.version + 1, case.last_hash)
        after = apply(case, event)
        assert after.state == expected_dest
        assert after.version == case.version + 1
        # apply() takes the destination from its own table; the declared graph must agree with it
        assert expected_dest in {e.dest for e in built.ctx.lifecycle.edges(action, case.state)}
    else:
        err = refused(built, action, data, ACTOR_OF[action], when)
        allowed = allowed_actions(case, built.ctx, when)
        assert err.details["case_id"] == case.id
        assert err.details["state"] == case.state
        assert err.details["action"] == action
        assert err.details["allowed"] == allowed
        message = str(err)
        assert f"case {case.id}" in message and case.state in message and action in message
        assert all(a in message for a in allowed)


@pytest.mark.parametrize("policy_name, scenario",
                         [(p, s) for p in EXPECTED for s in EXPECTED[p]])
def test_allowed_actions_match_the_table(policy_name: str, scenario: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    allowed = allowed_actions(built.case, built.ctx, when)
    assert len(allowed) == len(set(allowed))
    assert set(allowed) == set(EXPECTED[policy_name][scenario])


@pytest.mark.parametrize("state", HUNAN_UNREACHABLE)
def test_hunan_cannot_reach_rectification_states(state: str) -> None:
    with pytest.raises(ActionRefused) as err:
        case_in(state, HUNAN)
    assert err.value.details["action"] == "order_rectification"


def _explore(policy: Policy) -> set[str]:
    """Every state reachable with valid inputs (passing and failing scores, before and after the due day)."""
    tries = [(a, d) for a, d in VALID_DATA.items()] + [
        (a, {}) for a in ALL_ACTIONS if a not in VALID_DATA
    ] + [("verify", {"total": FAILING}), ("recheck", {"total": FAILING})]
    start = registered(policy).case
    ctx = ctx_for(policy)
    seen, frontier = {(start.state, start.passed)}, [start]
    while frontier:
        case = frontier.pop()
        for when in (NOW, AFTER_DUE):
            for action, data in tries:
                try:
                    nxt = apply(case, decide(case, action, data, ACTOR_OF[action], when, ctx))
                except DomainError:
                    continue
                if (nxt.state, nxt.passed) not in seen:
                    seen.add((nxt.state, nxt.passed))
                    frontier.append(nxt)
    return {state for state, _ in seen}


@pytest.mark.parametrize("policy_name, unreachable", [("shanxi", set()), ("hunan", set(HUNAN_UNREACHABLE))])
def test_reachable_states(policy_name: str, unreachable: set[str]) -> None:
    assert _explore(POLICIES[policy_name]) == set(lifecycle.STATES) - unreachable


# ---------------------------------------------------------------- 2. guards


@pytest.mark.parametrize("policy", POLICIES.values(), ids=POLICIES.keys())
def test_certify_needs_a_passing_score_and_80_passes(policy: Policy) -> None:
    failing = case_in("verified", policy, score="79.5")
    assert failing.case.passed is False
    err = refused(failing, "certify")
    assert "certify" not in err.details["allowed"]

    at_mark = case_in("verified", policy, score="80")
    assert at_mark.case.passed is True
    at_mark.act("certify")
    assert at_mark.case.state == "certified"


def test_order_rectification_refused_on_a_passing_score() -> None:
    built = case_in("verified", SHANXI, score="80")
    err = refused(built, "order_rectification")
    assert set(err.details["allowed"]) == {"certify", "close", "withdraw"}


def test_fail_refused_on_a_passing_score_and_allowed_on_a_failing_one() -> None:
    refused(case_in("verified", HUNAN, score="80"), "fail")
    built = case_in("verified", HUNAN, score="79.5")
    event = built.act("fail")
    assert built.case.state == "not_certified"
    assert event.payload["verified_total"] == "79.5"
    assert event.payload["carry_over"] is True


@pytest.mark.parametrize("when, is_open", [
    (sh(2021, 11, 30, 23, 59), True),
    (sh(2021, 11, 30, 23, 59, 59, 999999), True),
    (datetime(2021, 11, 30, 15, 59, tzinfo=timezone.utc), True),    # 23:59 in Shanghai
    (sh(2021, 12, 1, 0, 0), False),
    (datetime(2021, 11, 30, 16, 0, tzinfo=timezone.utc), False),    # 00:00 on 12-01 in Shanghai
    (datetime(2021, 11, 30, 20, 0, tzinfo=timezone.utc), False),    # still 11-30 in UTC
])
def test_rectification_deadline_is_the_end_of_the_due_day_in_shanghai(when: datetime, is_open: bool) -> None:
    built = case_in("rectification", SHANXI)
    assert built.case.rectification_due == DUE
    allowed = allowed_actions(built.case, built.ctx, when)
    assert ("request_recheck" in allowed) is is_open
    assert ("expire_rectification" in allowed) is not is_open
    if is_open:
        refused(built, "expire_rectification", now=when)
        built.act("request_recheck", now=when)
        assert built.case.state == "recheck"
    else:
        refused(built, "request_recheck", now=when)
        built.act("expire_rectification", now=when)
        assert built.case.state == "not_certified"


@pytest.mark.parametrize("total, dest, passed", [("80", "certified", True), ("79.5", "not_certified", False),
                                                  ("100", "certified", True), ("0", "not_certified", False)])
def test_recheck_score_decides(total: str, dest: str, passed: bool) -> None:
    built = case_in("recheck", SHANXI)
    event = built.act("recheck", {"total": total})
    assert event.payload["passed"] is passed
    assert built.case.state == dest
    assert built.case.recheck_total == Decimal(total)
    assert built.case.passed is passed
    assert built.case.verified_total == Decimal(FAILING)


# ---------------------------------------------------------------- 3. due dates


@pytest.mark.parametrize("failed_at", [
    sh(2021, 11, 10, 0, 0),
    sh(2021, 11, 10, 0, 30),
    datetime(2021, 11, 9, 16, 30, tzinfo=timezone.utc),   # = 11-10 00:30 in Shanghai
    sh(2021, 11, 10, 12, 0),
    sh(2021, 11, 10, 23, 59, 59),
])
def test_rectification_due_is_business_date_plus_20(failed_at: datetime) -> None:
    built = case_in("verified", SHANXI, score=FAILING, at=failed_at)
    event = built.act("order_rectification", now=failed_at)
    assert event.payload == {"days": 20, "due_on": "2021-11-30"}
    assert built.case.rectification_due == date(2021, 11, 30)


def test_rectification_ordered_the_evening_before_is_due_a_day_earlier() -> None:
    at = sh(2021, 11, 9, 23, 59)
    built = case_in("verified", SHANXI, score=FAILING, at=at)
    built.act("order_rectification", now=at)
    assert built.case.rectification_due == date(2021, 11, 29)


@pytest.mark.parametrize("data, new_due", [
    ({"days": 5}, date(2021, 12, 5)),
    ({"days": "1"}, date(2021, 12, 1)),
    ({"until": "2021-12-15"}, date(2021, 12, 15)),
    ({"until": date(2021, 12, 1)}, date(2021, 12, 1)),
])
def test_extension(data: dict[str, Any], new_due: date) -> None:
    built = case_in("rectification", SHANXI)
    event = built.act("extend_rectification", {"reason": REASON, **data})
    assert event.payload == {"reason": REASON, "previous_due_on": "2021-11-30", "due_on": new_due.isoformat()}
    assert built.case.rectification_due == new_due
    assert built.case.state == "rectification"
    # the old deadline no longer applies
    later = sh(2021, 12, 1, 8, 0)
    assert set(allowed_actions(built.case, built.ctx, later)) == {"extend_rectification", "request_recheck", "withdraw"}


def test_extensions_add_up() -> None:
    built = case_in("rectification", SHANXI)
    built.act("extend_rectification", {"reason": REASON, "days": 5})
    built.act("extend_rectification", {"reason": REASON, "days": 5})
    assert built.case.rectification_due == date(2021, 12, 10)


@pytest.mark.parametrize("until", ["2021-11-30", "2021-11-29", date(2021, 11, 1)])
def test_extension_until_must_be_after_the_current_due(until: Any) -> None:
    found = problems(case_in("rectification", SHANXI), "extend_rectification", {"reason": REASON, "until": until})
    assert list(found) == ["until"]
    assert "2021-11-30" in found["until"]


@pytest.mark.parametrize("data", [{}, {"days": 5, "until": "2021-12-15"}])
def test_extension_needs_exactly_one_of_days_and_until(data: dict[str, Any]) -> None:
    found = problems(case_in("rectification", SHANXI), "extend_rectification", {"reason": REASON, **data})
    assert list(found) == ["days/until"]


@pytest.mark.parametrize("data, where", [
    ({"days": 0}, "days"), ({"days": 367}, "days"), ({"days": -3}, "days"), ({"days": 2.0}, "days"),
    ({"days": "five"}, "days"), ({"days": True}, "days"), ({"until": "30/12/2021"}, "until"),
    ({"until": "2021-13-01"}, "until"),
])
def test_extension_input_is_checked(data: dict[str, Any], where: str) -> None:
    found = problems(case_in("rectification", SHANXI), "extend_rectification", {"reason": REASON, **data})
    assert list(found) == [where]


# ---------------------------------------------------------------- 4. inputs


@pytest.mark.parametrize("state, action", [
    ("submitted", "return"), ("registered", "withdraw"), ("registered", "close"),
    ("rectification", "extend_rectification"),
])
@pytest.mark.parametrize("reason", [None, "", "   ", 42])
def test_reason_is_required(state: str, action: str, reason: Any) -> None:
    data: dict[str, Any] = {} if reason is None else {"reason": reason}
    if action == "extend_rectification":
        data["days"] = 3
    found = problems(case_in(state, SHANXI), action, data)
    assert list(found) == ["reason"]


@pytest.mark.parametrize("state, action, data, unknown", [
    ("self_assessed", "submit", {"colour": "red"}, {"colour"}),
    ("submitted", "verify", {"total": "85", "colour": "red"}, {"colour"}),
    ("rectification", "expire_rectification", {"colour": "red"}, {"colour"}),
    ("verified", "certify", {"total": "85", "note": "ok"}, {"total"}),   # total is not an input of certify
    ("registered", "withdraw", {"reason": REASON, "days": 3, "until": "2022-01-01"}, {"days", "until"}),
])
def test_unknown_fields_are_named(state: str, action: str, data: dict[str, Any], unknown: set[str]) -> None:
    at = AFTER_DUE if action == "expire_rectification" else NOW
    found = problems(case_in(state, SHANXI), action, data, now=at)
    assert set(found) == unknown
    assert all(f"unknown field for {action}" in found[k] for k in unknown)


@pytest.mark.parametrize("total", [
    85.0, 80.5, "eighty", "", "NaN", "Infinity", "-Infinity", True, None, [85], "85 points",
    "100.01", "101", "-0.5", "-1", Decimal("100.0000001"),
])
@pytest.mark.parametrize("action", ["verify", "recheck", "self_assess"])
def test_bad_totals_are_refused(total: Any, action: str) -> None:
    state = {"verify": "submitted", "recheck": "recheck", "self_assess": "registered"}[action]
    built = case_in(state, SHANXI)
    if total is None and action == "self_assess":   # optional: None means "not given"
        assert decide(built.case, action, {"total": total}, UNIT, NOW, built.ctx).payload == {}
        return
    found = problems(built, action, {"total": total})
    assert list(found) == ["total"]


@pytest.mark.parametrize("total, stored", [("0", "0"), ("100", "100"), (100, "100"), ("80.0", "80.0"),
                                           (Decimal("99.5"), "99.5"), (" 85 ", "85"), ("1e2", "100")])
def test_good_totals_are_accepted_as_decimals(total: Any, stored: str) -> None:
    built = case_in("submitted", SHANXI)
    event = built.act("verify", {"total": total})
    assert event.payload["total"] == stored
    assert built.case.verified_total == Decimal(stored)


def test_several_problems_are_all_listed() -> None:
    found = problems(case_in("submitted", SHANXI), "verify", {"total": "abc", "note": 5, "colour": "red", "size": 1})
    assert set(found) == {"total", "note", "colour", "size"}
    found = problems(case_in("registered", SHANXI), "withdraw", {"note": "x"})
    assert set(found) == {"reason", "note"}


@pytest.mark.parametrize("state, action, data, expected", [
    ("submitted", "verify", {"total": "150", "colour": "red"}, {"total", "colour"}),
    ("rectification", "extend_rectification", {}, {"reason", "days/until"}),
])
def test_several_problems_including_range_and_days_until_are_all_listed(
        state: str, action: str, data: dict[str, Any], expected: set[str]) -> None:
    assert set(problems(case_in(state, SHANXI), action, data)) == expected


# ---------------------------------------------------------------- 5. actors


@pytest.mark.parametrize("scenario, action, actor", [
    ("submitted", "verify", UNIT),
    ("verified_passing", "certify", UNIT),
    ("submitted", "return", UNIT),
    ("registered", "withdraw", UNIT),
    ("registered", "close", UNIT),
    ("self_assessed", "submit", COORDINATOR),
    ("registered", "self_assess", COORDINATOR),
    ("rectification_open", "request_recheck", COORDINATOR),
    ("rectification_overdue", "expire_rectification", UNIT),
    ("rectification_overdue", "expire_rectification", COORDINATOR),
    ("rectification_overdue", "expire_rectification", ADMIN),
    ("rectification_overdue", "expire_rectification", AUDITOR),
    ("submitted", "verify", SYSTEM),
])
def test_actor_may_not(scenario: str, action: str, actor: Actor) -> None:
    built, when = built_scenario("shanxi", scenario)
    assert action in allowed_actions(built.case, built.ctx, when)   # possible, just not for this actor
    err = refused(built, action, VALID_DATA.get(action, {}), actor, when)
    assert actor.kind in str(err)
    assert err.details["allowed"] == allowed_actions(built.case, built.ctx, when)
    assert action not in allowed_actions(built.case, built.ctx, when, actor=actor)


POSSIBLE = [(p, s, a) for p in EXPECTED for s in EXPECTED[p] for a in EXPECTED[p][s]]


@pytest.mark.parametrize("policy_name, scenario, action", POSSIBLE)
def test_auditor_may_do_nothing(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    refused(built, action, VALID_DATA.get(action, {}), AUDITOR, when)
    assert allowed_actions(built.case, built.ctx, when, actor=AUDITOR) == []


@pytest.mark.parametrize("policy_name, scenario, action",
                         [p for p in POSSIBLE if ACTOR_OF[p[2]] is not SYSTEM])
def test_admin_may_do_every_non_system_action(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    event = built.act(action, VALID_DATA.get(action, {}), ADMIN, now=when)
    assert event.actor == "admin:a"
    assert built.case.state == EXPECTED[policy_name][scenario][action]


def test_admin_can_submit_and_verify() -> None:
    built = case_in("self_assessed", SHANXI)
    assert built.act("submit", actor=ADMIN).actor == "admin:a"
    assert built.act("verify", {"total": "90"}, actor=ADMIN).actor == "admin:a"
    assert built.case.state == "verified"


def test_system_may_close() -> None:
    built = case_in("submitted", SHANXI)
    assert built.act("close", {"reason": "round ended"}, actor=SYSTEM).actor == "system:sweep"
    assert built.case.state == "not_certified"


@pytest.mark.parametrize("scenario, actor, expected", [
    ("self_assessed", UNIT, {"self_assess", "submit"}),
    ("self_assessed", COORDINATOR, {"close", "withdraw"}),
    ("self_assessed", SYSTEM, {"close"}),
    ("self_assessed", AUDITOR, set()),
    ("self_assessed", ADMIN, {"self_assess", "submit", "close", "withdraw"}),
    ("submitted", UNIT, set()),
    ("verified_failing", COORDINATOR, {"order_rectification", "close", "withdraw"}),
    ("rectification_open", UNIT, {"request_recheck"}),
    ("rectification_open", COORDINATOR, {"extend_rectification", "withdraw"}),
    ("rectification_overdue", SYSTEM, {"expire_rectification"}),
    ("rectification_overdue", ADMIN, {"extend_rectification", "withdraw"}),
    ("rectification_overdue", UNIT, set()),
    ("certified", COORDINATOR, {"file", "withdraw"}),
])
def test_allowed_actions_filters_by_actor(scenario: str, actor: Actor, expected: set[str]) -> None:
    built, when = built_scenario("shanxi", scenario)
    assert set(allowed_actions(built.case, built.ctx, when, actor=actor)) == expected


@pytest.mark.parametrize("scenario, action", [("registered", "self_assess"), ("self_assessed", "submit"),
                                              ("rectification_open", "request_recheck")])
def test_a_unit_acts_only_on_its_own_cases(scenario: str, action: str) -> None:
    built, when = built_scenario("shanxi", scenario)
    other = Actor("unit", "2")
    err = refused(built, action, VALID_DATA.get(action, {}), other, when)
    assert err.details["allowed"] == allowed_actions(built.case, built.ctx, when)
    assert allowed_actions(built.case, built.ctx, when, actor=other) == []
    assert action in allowed_actions(built.case, built.ctx, when, actor=UNIT)


# ---------------------------------------------------------------- 6. unknown actions


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("action", ["approve", "", "Certify", "certify "])
def test_unknown_action_lists_the_known_ones(policy_name: str, action: str) -> None:
    built = case_in("verified", POLICIES[policy_name])
    err = refused(built, action, {}, COORDINATOR)
    known = {a for s in EXPECTED[policy_name].values() for a in s}
    listed = str(err).split("known actions: ", 1)[1]
    assert set(listed.split(", ")) == known
    assert err.details["action"] == action and err.details["state"] == "verified"


@pytest.mark.parametrize("action", ["order_rectification", "extend_rectification", "request_recheck",
                                    "recheck", "expire_rectification"])
def test_hunan_has_no_rectification_actions(action: str) -> None:
    built = case_in("verified", HUNAN, score=FAILING)
    err = refused(built, action, VALID_DATA.get(action, {}), ACTOR_OF[action], AFTER_DUE)
    assert set(err.details["allowed"]) == {"fail", "close", "withdraw"}


# ---------------------------------------------------------------- 7. events


def shanxi_long_path() -> tuple[Built, list[CaseState]]:
    """registered → … → rectification → extended → recheck → certified → filed, with the state after each event."""
    built = registered(SHANXI)
    states = [built.case]
    steps = [("self_assess", {"total": "82"}), ("submit", {}), ("return", {"reason": REASON}),
             ("self_assess", {"total": "81"}), ("submit", {"note": "fixed"}), ("verify", {"total": FAILING}),
             ("order_rectification", {}), ("extend_rectification", {"reason": REASON, "until": "2021-12-20"}),
             ("request_recheck", {}), ("recheck", {"total": "88.5"}), ("file", {"batch": "2021-1"})]
    when = NOW
    for action, data in steps:
        when += timedelta(hours=5)
        built.act(action, data, now=when)
        states.append(built.case)
    return built, states


def test_the_long_shanxi_path_ends_filed() -> None:
    built, states = shanxi_long_path()
    assert [s.state for s in states] == [
        "registered", "self_assessed", "submitted", "self_assessed", "self_assessed", "submitted", "verified",
        "rectification", "rectification", "recheck", "certified", "filed"]
    final = built.case
    assert (final.self_total, final.verified_total, final.recheck_total) == (Decimal("81"), Decimal(FAILING),
                                                                              Decimal("88.5"))
    assert final.passed is True and final.rectification_due == date(2021, 12, 20)
    assert final.registered_at == NOW and final.updated_at == built.events[-1].occurred_at


def test_events_are_hash_chained() -> None:
    built, _ = shanxi_long_path()
    events = built.events
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    for prev, ev in zip(events, events[1:]):
        assert ev.prev_hash == prev.hash
    for ev in events:
        assert ev.expected_hash() == ev.hash
        assert len(ev.hash) == 64
    assert len({e.hash for e in events}) == len(events)
    assert built.case.last_hash == events[-1].hash
    assert built.case.version == len(events)


def with_payload(event: Event, payload: dict[str, Any]) -> Event:
    """The event with another payload, as it would be read back from a tampered store."""
    change: dict[str, Any] = {"payload": payload}
    if "payload_text" in {f.name for f in dataclasses.fields(Event)}:
        change["payload_text"] = canonical_json(payload)
    return dataclasses.replace(event, **change)


def test_payload_json_is_the_payload() -> None:
    built, _ = shanxi_long_path()
    for ev in built.events:
        assert json.loads(ev.payload_json) == dict(ev.payload)


@pytest.mark.parametrize("change", [
    {"actor": "coordinator:someone"}, {"seq": 99}, {"case_id": 2},
    {"prev_hash": GENESIS_HASH}, {"occurred_at": NOW + timedelta(seconds=1)}, {"type": "CaseCertified"},
])
def test_changing_an_event_breaks_its_hash(change: dict[str, Any]) -> None:
    built, _ = shanxi_long_path()
    event = next(e for e in built.events if e.type == "CaseVerified")
    assert dataclasses.replace(event, **change).expected_hash() != event.hash


@pytest.mark.parametrize("payload", [
    {"total": "99", "pass_mark": "80", "passed": True}, {"total": "79.50", "pass_mark": "80", "passed": False}, {},
])
def test_changing_a_payload_breaks_its_hash(payload: dict[str, Any]) -> None:
    built, _ = shanxi_long_path()
    event = next(e for e in built.events if e.type == "CaseVerified")
    assert with_payload(event, dict(event.payload)).expected_hash() == event.hash
    assert with_payload(event, payload).expected_hash() != event.hash


@pytest.mark.parametrize("payload", [{"total": 85.0}, {"x": [1, 2.5]}, {"x": {"y": 0.1}}])
def test_floats_in_payloads_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        new_event(1, 2, "CaseVerified", "coordinator:w", NOW, payload, GENESIS_HASH)


def test_decimals_and_dates_are_stored_as_text() -> None:
    ev = new_event(1, 2, "X", "a:b", NOW, {"t": Decimal("85.50"), "d": date(2021, 1, 2)}, GENESIS_HASH)
    assert ev.payload == {"t": "85.50", "d": "2021-01-02"}
    assert ev.expected_hash() == ev.hash


def test_apply_refuses_a_gap_in_sequence() -> None:
    built = case_in("self_assessed", SHANXI)
    good = decide(built.case, "submit", {}, UNIT, NOW, built.ctx)
    for seq in (good.seq + 1, good.seq - 1, good.seq + 5):
        bad = new_event(good.case_id, seq, good.type, good.actor, good.occurred_at, good.payload, good.prev_hash)
        with pytest.raises(CorruptHistory):
            apply(built.case, bad)
    assert apply(built.case, good).state == "submitted"


@pytest.mark.parametrize("state, event_type", [
    ("registered", "CaseCertified"), ("registered", "SelfAssessmentSubmitted"),
    ("submitted", "CaseFiled"), ("verified", "RecheckRequested"), ("certified", "CaseApproved"),
    ("filed", "CaseWithdrawn"), ("withdrawn", "SelfAssessmentRecorded"), ("not_certified", "CaseClosed"),
    ("self_assessed", "CaseRegistered"),
])
def test_apply_refuses_an_event_impossible_from_the_state(state: str, event_type: str) -> None:
    built = case_in(state, SHANXI)
    case = built.case
    event = new_event(case.id, case.version + 1, event_type, "coordinator:w", NOW, {}, case.last_hash)
    with pytest.raises(CorruptHistory):
        apply(case, event)


@pytest.mark.parametrize("event_type, seq", [("SelfAssessmentRecorded", 1), ("CaseRegistered", 2)])
def test_the_first_event_must_be_registration_number_one(event_type: str, seq: int) -> None:
    payload = {"round_id": "r", "unit_id": 7, "carried_over_from": None}
    with pytest.raises(CorruptHistory):
        apply(None, new_event(1, seq, event_type, "admin:a", NOW, payload, GENESIS_HASH))


def test_replay_equals_the_step_by_step_state() -> None:
    built, states = shanxi_long_path()
    for n in range(1, len(built.events) + 1):
        assert replay(built.events[:n]) == states[n - 1]
    assert replay(built.events) == built.case
    assert replay([]) is None


# ---------------------------------------------------------------- 8. properties

DATA_POOL: list[dict[str, Any]] = [
    {}, {"total": PASSING}, {"total": FAILING}, {"total": "80"}, {"total": 85.0}, {"total": "150"},
    {"reason": REASON}, {"reason": ""}, {"reason": REASON, "days": 3}, {"reason": REASON, "until": "2022-01-15"},
    {"reason": REASON, "until": "2021-11-01"}, {"note": "n"}, {"colour": 1}, {"batch": "b"},
]
SCORES = ["85", "79.5", "80", "0", "100"]
ENDINGS = {"close", "withdraw"}


def draw_step(data: st.DataObject, case: CaseState, ctx: RoundContext, now: datetime) -> tuple[Any, ...]:
    """A tick of the clock, or (action, actor, input): often a possible action with a good input
    (so scripts get deep into the graph), sometimes anything at all."""
    mode = data.draw(st.sampled_from(["guided", "guided", "guided", "random", "tick"]))
    possible = allowed_actions(case, ctx, now)
    if mode == "tick" or (mode == "guided" and not possible):
        return ("tick", data.draw(st.integers(1, 30 * 24)))   # hours
    if mode == "guided":
        lasting = [a for a in possible if a not in ENDINGS]
        action = data.draw(st.sampled_from(lasting if lasting and data.draw(st.integers(0, 3)) else possible))
        actor = ACTOR_OF[action]
        inp = dict(VALID_DATA.get(action, {}))
        if "total" in inp:
            inp["total"] = data.draw(st.sampled_from(SCORES))
        return ("act", action, actor, inp)
    action = data.draw(st.sampled_from([*ALL_ACTIONS, "approve"]))
    actor = data.draw(st.sampled_from(ALL_ACTORS))
    return ("act", action, actor, data.draw(st.sampled_from(DATA_POOL)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_name=st.sampled_from(sorted(POLICIES)), n_steps=st.integers(0, 40), data=st.data())
def test_random_scripts_follow_the_graph(policy_name: str, n_steps: int, data: st.DataObject) -> None:
    built = registered(POLICIES[policy_name])
    ctx, now = built.ctx, NOW
    destinations = DESTINATIONS[policy_name]
    for _ in range(n_steps):
        step = draw_step(data, built.case, ctx, now)
        if step[0] == "tick":
            now += timedelta(hours=step[1])
            continue
        _, action, actor, inp = step
        before = built.case
        allowed_all = allowed_actions(before, ctx, now)
        allowed_for_actor = allowed_actions(before, ctx, now, actor=actor)
        assert set(allowed_for_actor) <= set(allowed_all)
        try:
            event = decide(before, action, inp, actor, now, ctx)
        except ActionRefused as err:
            assert built.case == before
            assert action not in allowed_for_actor
            assert err.details["allowed"] == allowed_all
        except InvalidInput:
            assert built.case == before
        else:
            assert action in allowed_for_actor
            assert event.type == EVENT_OF[action]
            built.case = apply(before, event)
            built.events.append(event)
            assert built.case.state in destinations[(before.state, action)]
            assert built.case.state in {e.dest for e in ctx.lifecycle.edges(action, before.state)}
        assert built.case.version == len(built.events)
        if built.case.state in ("not_certified", "withdrawn", "filed"):
            for who in (None, *ALL_ACTORS):
                assert allowed_actions(built.case, ctx, now, actor=who) == []
    assert replay(built.events) == built.case


# ---------------------------------------------------------------- found in review

def test_a_late_extension_must_still_end_in_the_future() -> None:
    built = case_in("rectification", SHANXI)  # due 2021-11-30
    late = sh(2021, 12, 20, 10, 0)
    with pytest.raises(InvalidInput) as err:
        decide(built.case, "extend_rectification", {"reason": REASON, "days": 5}, COORDINATOR, late, built.ctx)
    assert [p.where for p in err.value.problems] == ["days"]
    assert "2021-12-05 is already past" in str(err.value)
    event = decide(built.case, "extend_rectification", {"reason": REASON, "until": "2021-12-20"}, COORDINATOR,
                   late, built.ctx)
    assert event.payload["due_on"] == "2021-12-20"


@pytest.mark.parametrize("total", ["79.999", "0E-100000", "1234567", "85.125"])
def test_totals_have_at_most_two_decimal_places_and_six_digits(total: str) -> None:
    assert list(problems(case_in("submitted", SHANXI), "verify", {"total": total})) == ["total"]
