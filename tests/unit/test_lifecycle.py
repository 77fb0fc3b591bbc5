"""The case lifecycle: which action is possible from which state, for whom, with what input.

The expected graph is written out here by hand (``EXPECTED``), independently of
``lifecycle.TRANSITIONS``, so a wrong edge in the declaration makes these tests fail.
Cases are always built the real way: a registration event, then ``decide``/``apply``.
Scores come from sheets scored against the round's rubric (``sheet_for`` makes a complete
sheet of a given total); a case is submitted only once its sheet is complete and every
criterion scored above zero has evidence, so the paths below attach evidence first.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow.domain import lifecycle
from workflow.domain.calendar import RequiredDocument
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
    submission_problems,
)
from workflow.domain.errors import ActionRefused, DomainError, Incomplete, InvalidInput
from workflow.domain.events import GENESIS_HASH, Event, canonical_json, new_event
from workflow.domain.policy import Policy, SpotCheckPolicy
from workflow.domain.rubric import Rubric

from ..support import RUBRICS, fake_sha, sheet_for

# ---------------------------------------------------------------- helpers

SH = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    """A moment written as Asia/Shanghai wall-clock time."""
    return datetime(*args, tzinfo=SH)


NOW = sh(2021, 11, 10, 10, 0)        # the day the tests verify/fail cases
DUE = date(2021, 11, 30)             # NOW's business date + 20 (Shanxi)
AFTER_DUE = sh(2021, 12, 1, 0, 0)

# Shanxi: a spot check's problems are rectified within 20 days (the title held); Hunan: revoked.
SHANXI = Policy("rectification", 20, False, SpotCheckPolicy("rectification", 20))
HUNAN = Policy("not_certified", None, True, SpotCheckPolicy("revoke", None))
POLICIES = {"shanxi": SHANXI, "hunan": HUNAN}

UNIT_ID = 1                          # every test case belongs to unit 1 ...
UNIT = Actor("unit", str(UNIT_ID))   # ... for which UNIT acts
COORDINATOR = Actor("coordinator", "w")
SYSTEM = Actor("system", "sweep")
ADMIN = Actor("admin", "a")
AUDITOR = Actor("auditor", "x")
ALL_ACTORS = (UNIT, COORDINATOR, SYSTEM, ADMIN, AUDITOR)

PASSING, FAILING = "85", "79.5"     # verified totals
SELF_TOTAL = "90"                    # the self-assessment of the paths below
REASON = "data entry mistake"

SX = RUBRICS.get("shanxi-2020")
HN = RUBRICS.get("hunan-2020")
RUBRIC_OF: dict[Policy, Rubric] = {SHANXI: SX, HUNAN: HN}

KEPT = "1.1.1"                       # evidence for this criterion is attached first on every path
DOC = "self_report"                  # the round asks for this document; attached first on every path
DOCUMENTS = (RequiredDocument(DOC, "自评报告"),)


@cache
def ctx_for(policy: Policy) -> RoundContext:
    rubric = RUBRIC_OF[policy]
    return RoundContext("r", policy, rubric.pass_mark, rubric.total, rubric, DOCUMENTS)


_SHEETS: dict[tuple[str, str], dict[str, str]] = {}


def plain(value: str) -> str:
    """``"9.0"`` → ``"9"``, ``"1.50"`` → ``"1.5"``: the text a person would type."""
    d = Decimal(value)
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def sheet(rubric: Rubric, total: str) -> dict[str, str]:
    """A complete sheet of ``rubric`` scoring exactly ``total`` (``sheet_for``, values written
    plainly; a fresh copy each time)."""
    key = (rubric.id, total)
    if key not in _SHEETS:
        _SHEETS[key] = {code: plain(value) for code, value in sheet_for(rubric, total).items()}
    return dict(_SHEETS[key])


def document(tag: str = "") -> dict[str, Any]:
    """attach_document input for one file of the round's document (``tag`` makes another file)."""
    return {"document": DOC, "sha256": fake_sha(DOC + tag), "filename": f"自评报告{tag}.pdf", "size": 1000,
            "type": "pdf"}


def evidence(code: str, tag: str = "") -> dict[str, Any]:
    """attach_evidence input for one file on ``code`` (``tag`` makes another file)."""
    return {"criterion": code, "sha256": fake_sha(code + tag), "filename": f"{code}{tag}.pdf", "size": 1000,
            "type": "pdf"}


def ready_steps(rubric: Rubric, total: str, have: frozenset[str] = frozenset()) -> list[tuple[str, dict[str, Any]]]:
    """Self-assess a complete sheet of ``total``, then attach the round's document and evidence to
    every criterion it scores above zero (but those in ``have``, which are there already): ready
    to submit."""
    entries = sheet(rubric, total)
    return [("self_assess", {"entries": entries})] + ([] if DOC in have else [("attach_document", document())]) + [
        ("attach_evidence", evidence(code)) for code, value in entries.items()
        if Decimal(value) > 0 and code not in have
    ]


# Who normally takes each action, and a valid input for it (written here, not read from ACTIONS).
ACTOR_OF: dict[str, Actor] = {
    "self_assess": UNIT,
    "attach_evidence": UNIT,
    "remove_evidence": UNIT,
    "attach_document": UNIT,
    "remove_document": UNIT,
    "give_contact_form": UNIT,
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
    "record_missed_deadline": SYSTEM,
    "record_notification_failure": SYSTEM,
    "close": COORDINATOR,
    "withdraw": COORDINATOR,
    "revoke": COORDINATOR,
    "file": COORDINATOR,
    "record_spot_check": COORDINATOR,
    "pass_spot_check": COORDINATOR,
    "order_spot_rectification": COORDINATOR,
}
DRAW = "shanxi-2021-spot-1"
FINDINGS = "能耗统计台账缺2021年7月至9月"


def valid_data(action: str, rubric: Rubric) -> dict[str, Any]:
    """A valid input for ``action`` on a case built by ``case_in`` (which has evidence for KEPT)."""
    data: dict[str, dict[str, Any]] = {
        "self_assess": {"entries": sheet(rubric, SELF_TOTAL)},
        "attach_evidence": evidence(KEPT, "-another"),
        "remove_evidence": {"criterion": KEPT, "sha256": fake_sha(KEPT)},
        "attach_document": document("-another"),
        "remove_document": {"document": DOC, "sha256": fake_sha(DOC)},
        "give_contact_form": {"how": "form", "contacts": 1},
        "return": {"reason": REASON},
        "verify": {"entries": sheet(rubric, PASSING)},
        "extend_rectification": {"reason": REASON, "days": 5},
        "recheck": {"entries": sheet(rubric, PASSING)},
        "close": {"reason": REASON},
        "withdraw": {"reason": REASON},
        "revoke": {"reason": "抽查发现能耗数据不实", "decided_by": "province", "evidence": "晋直管函〔2022〕5号"},
        "file": {"batch": "2021-1"},
        "record_spot_check": {"draw": DRAW, "seed": 42, "share": "0.1"},
        "pass_spot_check": {"draw": DRAW},
        "order_spot_rectification": {"draw": DRAW, "findings": FINDINGS, "evidence": "晋直管函〔2021〕60号"},
        "record_missed_deadline": {"milestone": "self_assessment", "due_on": "2021-10-20",
                                   "noticed_on": "2021-10-21", "owed_in": ["registered", "self_assessed"]},
        "record_notification_failure": {"notification": "reminder:1:self_assessment:7", "kind": "reminder",
                                        "error": "550 no such user"},
    }
    return data.get(action, {})


EVENT_OF: dict[str, str] = {
    "self_assess": "SelfAssessmentRecorded",
    "attach_evidence": "EvidenceAttached",
    "remove_evidence": "EvidenceRemoved",
    "attach_document": "DocumentAttached",
    "remove_document": "DocumentRemoved",
    "give_contact_form": "ContactFormGiven",
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
    "record_missed_deadline": "DeadlineMissed",
    "record_notification_failure": "NotificationFailed",
    "close": "CaseClosed",
    "withdraw": "CaseWithdrawn",
    "revoke": "TitleRevoked",
    "file": "CaseFiled",
    "record_spot_check": "SpotCheckDrawn",
    "pass_spot_check": "SpotCheckPassed",
    "order_spot_rectification": "SpotRectificationOrdered",
}
ALL_ACTIONS = tuple(EVENT_OF)
BOOKKEEPING = {"record_missed_deadline", "record_notification_failure", "record_spot_check", "give_contact_form",
               "file", "pass_spot_check", "order_spot_rectification"}
# a spot check is drawn by a coordinator, its outcomes recorded by one, a case filed inside a filing
# batch; the contact form is given by the unit (through its form)
SYSTEM_BOOKKEEPING = BOOKKEEPING - {"record_spot_check", "give_contact_form", "file", "pass_spot_check",
                                    "order_spot_rectification"}


def path_to(state: str, score: str, rubric: Rubric) -> list[tuple[str, dict[str, Any]]]:
    """The shortest legal path from registration to ``state`` (``score`` = the verified total).
    ``rectification@certified`` and the like: a spot check's rectification (or recheck) of a
    certified (or filed) case, its title held.

    Evidence for KEPT is attached right after registration, so every case but the closed and
    withdrawn ones has a file to remove; a self-assessed case is ready to submit."""
    registered = [("attach_evidence", evidence(KEPT)), ("attach_document", document())]
    self_assessed = [*registered, *ready_steps(rubric, SELF_TOTAL, have=frozenset({KEPT, DOC}))]
    submitted = [*self_assessed, ("submit", {})]
    verified = [*submitted, ("verify", {"entries": sheet(rubric, score)})]
    paths = {
        "registered": registered,
        "self_assessed": self_assessed,
        "submitted": submitted,
        "verified": verified,
        "certified": [*verified, ("certify", {})],
        "filed": [*verified, ("certify", {}), ("file", {})],
        "revoked": [*verified, ("certify", {}), ("revoke", {"reason": REASON})],
        "rectification": [*verified, ("order_rectification", {})],
        "recheck": [*verified, ("order_rectification", {}), ("request_recheck", {})],
        "not_certified": [("close", {"reason": REASON})],
        "withdrawn": [("withdraw", {"reason": REASON})],
    }
    spot = ("order_spot_rectification", {"draw": DRAW, "findings": FINDINGS})
    for held in ("certified", "filed"):
        paths[f"rectification@{held}"] = [*paths[held], spot]
        paths[f"recheck@{held}"] = [*paths[held], spot, ("request_recheck", {})]
    return paths[state]


def state_of(key: str) -> str:
    """The state of a ``path_to`` key (``rectification@filed`` → ``rectification``)."""
    return key.partition("@")[0]


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

    def valid(self, action: str) -> dict[str, Any]:
        return valid_data(action, self.ctx.rubric)


def registered(policy: Policy, at: datetime = NOW) -> Built:
    event = registration_event(1, "r", UNIT_ID, ADMIN, at)
    return Built(apply(None, event), ctx_for(policy), [event])


@cache
def _built(state: str, policy: Policy, score: str, at: datetime) -> tuple[CaseState, tuple[Event, ...]]:
    built = registered(policy, at)
    for action, data in path_to(state, score, built.ctx.rubric):
        built.act(action, data, now=at)
    assert built.case.state == state_of(state)
    return built.case, tuple(built.events)


def case_in(state: str, policy: Policy, score: str | None = None, at: datetime = NOW) -> Built:
    """A case of ``policy`` in ``state``, reached through real events at time ``at``.

    The verified score is chosen to reach the state: failing for rectification and
    recheck, passing otherwise (unless ``score`` is given). (Built once per arguments:
    states and events are immutable, the returned ``Built`` is a fresh one.)"""
    if score is None:
        score = FAILING if state in ("rectification", "recheck") else PASSING
    case, events = _built(state, policy, score, at)
    return Built(case, ctx_for(policy), list(events))


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
    "revoked": ("revoked", None, NOW),
    # a spot check found problems: the title held while the unit rectifies (Shanxi's policy)
    "spot_rectification_certified": ("rectification@certified", None, NOW),
    "spot_rectification_filed": ("rectification@filed", None, NOW),
    "spot_rectification_overdue": ("rectification@certified", None, AFTER_DUE),
    "spot_recheck_certified": ("recheck@certified", None, NOW),
    "spot_recheck_filed": ("recheck@filed", None, NOW),
}

# scenario → {action that succeeds: destination}; anything else is refused.
# Evidence is attached and removed without a change of state (reflexive edges). The
# self-assessed scenario is ready to submit (complete sheet, evidence on every scored line).
_COMMON: dict[str, dict[str, str]] = {
    "registered": {"self_assess": "self_assessed", "attach_evidence": "registered",
                   "remove_evidence": "registered", "attach_document": "registered", "remove_document": "registered",
                   "close": NC, "withdraw": WD, "give_contact_form": "registered",
                   "record_missed_deadline": "registered", "record_notification_failure": "registered"},
    "self_assessed": {"self_assess": "self_assessed", "attach_evidence": "self_assessed",
                      "remove_evidence": "self_assessed", "attach_document": "self_assessed",
                      "remove_document": "self_assessed", "submit": "submitted", "close": NC, "withdraw": WD,
                      "give_contact_form": "self_assessed",
                      "record_missed_deadline": "self_assessed", "record_notification_failure": "self_assessed"},
    "submitted": {"return": "self_assessed", "verify": "verified", "close": NC, "withdraw": WD,
                  "give_contact_form": "submitted",
                  "record_missed_deadline": "submitted", "record_notification_failure": "submitted"},
    "verified_passing": {"certify": "certified", "close": NC, "withdraw": WD, "give_contact_form": "verified",
                         "record_missed_deadline": "verified", "record_notification_failure": "verified"},
    "certified": {"file": "filed", "withdraw": WD, "revoke": "revoked", "record_missed_deadline": "certified",
                  "give_contact_form": "certified",
                  "record_notification_failure": "certified", "record_spot_check": "certified",
                  "pass_spot_check": "certified"},
    "not_certified": {},
    "withdrawn": {},
    "filed": {"record_spot_check": "filed", "revoke": "revoked", "pass_spot_check": "filed"},
    "revoked": {},  # terminal: the unit takes part again in a later round
}
EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "shanxi": {
        **_COMMON,
        "verified_failing": {"order_rectification": "rectification", "close": NC, "withdraw": WD,
                             "give_contact_form": "verified",
                             "record_missed_deadline": "verified", "record_notification_failure": "verified"},
        "rectification_open": {"extend_rectification": "rectification", "request_recheck": "recheck",
                               "attach_evidence": "rectification", "remove_evidence": "rectification",
                               "attach_document": "rectification", "remove_document": "rectification",
                               "give_contact_form": "rectification",
                               "withdraw": WD, "record_missed_deadline": "rectification", "record_notification_failure": "rectification"},
        # evidence may still be attached or removed after the deadline (no guard on those edges)
        "rectification_overdue": {"extend_rectification": "rectification", "expire_rectification": NC,
                                  "attach_evidence": "rectification", "remove_evidence": "rectification",
                                  "attach_document": "rectification", "remove_document": "rectification",
                                  "give_contact_form": "rectification",
                                  "withdraw": WD, "record_missed_deadline": "rectification", "record_notification_failure": "rectification"},
        "recheck": {"recheck": "certified", "withdraw": WD,  # with a passing recheck score
                    "give_contact_form": "recheck",
                    "record_missed_deadline": "recheck", "record_notification_failure": "recheck"},
        # a spot check's problems: rectification with the title held (Shanxi's spot_check policy)
        "certified": {**_COMMON["certified"], "order_spot_rectification": "rectification"},
        "filed": {**_COMMON["filed"], "order_spot_rectification": "rectification"},
        **{f"spot_rectification_{held}": {
            "extend_rectification": "rectification", "request_recheck": "recheck", "revoke": "revoked",
            "attach_evidence": "rectification", "remove_evidence": "rectification",
            "attach_document": "rectification", "remove_document": "rectification",
            "give_contact_form": "rectification", "withdraw": WD, "record_missed_deadline": "rectification",
            "record_notification_failure": "rectification"} for held in ("certified", "filed")},
        # late: the title is revoked (not "not certified": it had been granted)
        "spot_rectification_overdue": {
            "extend_rectification": "rectification", "expire_rectification": "revoked", "revoke": "revoked",
            "attach_evidence": "rectification", "remove_evidence": "rectification",
            "attach_document": "rectification", "remove_document": "rectification",
            "give_contact_form": "rectification", "withdraw": WD, "record_missed_deadline": "rectification",
            "record_notification_failure": "rectification"},
        # a passing recheck gives the title back as it was: certified, or filed
        **{f"spot_recheck_{held}": {
            "recheck": held, "revoke": "revoked", "withdraw": WD, "give_contact_form": "recheck",
            "record_missed_deadline": "recheck", "record_notification_failure": "recheck"}
           for held in ("certified", "filed")},
    },
    "hunan": {
        **_COMMON,
        "verified_failing": {"fail": NC, "close": NC, "withdraw": WD, "give_contact_form": "verified",
                             "record_missed_deadline": "verified", "record_notification_failure": "verified"},
        # rectification and recheck cannot be reached under Hunan's policy
    },
}
HUNAN_UNREACHABLE = ("rectification", "recheck")  # neither after verification nor after a spot check

# The states an action may lead to from a state (recheck decides by its score).
DESTINATIONS: dict[str, dict[tuple[str, str], set[str]]] = {}
for _name, _table in EXPECTED.items():
    _dests: dict[tuple[str, str], set[str]] = {}
    for _scenario, _moves in _table.items():
        for _action, _dest in _moves.items():
            _dests.setdefault((state_of(SCENARIOS[_scenario][0]), _action), set()).add(_dest)
    if ("recheck", "recheck") in _dests:
        _dests[("recheck", "recheck")].update({NC, "revoked"})  # a failing recheck (a held title's is revoked)
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
    assert {state_of(SCENARIOS[s][0]) for s in EXPECTED["shanxi"]} == set(lifecycle.STATES)
    assert {state_of(SCENARIOS[s][0]) for s in EXPECTED["hunan"]} == set(lifecycle.STATES) - set(HUNAN_UNREACHABLE)


# ---------------------------------------------------------------- 1. the whole table


@pytest.mark.parametrize("policy_name, scenario, action", TABLE_CASES)
def test_every_state_and_action(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    case = built.case
    expected_dest = EXPECTED[policy_name][scenario].get(action)
    data = built.valid(action)
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
    # bookkeeping actions are listed to the system only
    assert set(allowed) == set(EXPECTED[policy_name][scenario]) - BOOKKEEPING
    assert set(allowed_actions(built.case, built.ctx, when, actor=SYSTEM)) & BOOKKEEPING == \
        set(EXPECTED[policy_name][scenario]) & SYSTEM_BOOKKEEPING


@pytest.mark.parametrize("state", HUNAN_UNREACHABLE)
def test_hunan_cannot_reach_rectification_states(state: str) -> None:
    with pytest.raises(ActionRefused) as err:
        case_in(state, HUNAN)
    assert err.value.details["action"] == "order_rectification"


def _explore(policy: Policy) -> set[str]:
    """Every state reachable with valid inputs (passing and failing scores, before and after the due
    day). A try is a list of steps taken together; one of them makes the case ready to submit
    (self-assess, then evidence for every scored line). A state is told apart by whether it passed
    and whether it is ready to submit."""
    ctx = ctx_for(policy)
    rubric = ctx.rubric
    tries = [[(a, valid_data(a, rubric))] for a in ALL_ACTIONS] + [
        [("verify", {"entries": sheet(rubric, FAILING)})], [("recheck", {"entries": sheet(rubric, FAILING)})],
        ready_steps(rubric, SELF_TOTAL),
    ]

    def key(case: CaseState) -> tuple[str, bool | None, bool]:
        return case.state, case.passed, not submission_problems(case, ctx)

    start = registered(policy).case
    seen, frontier = {key(start)}, [start]
    while frontier:
        case = frontier.pop()
        for when in (NOW, AFTER_DUE):
            for steps in tries:
                nxt = case
                try:
                    for action, data in steps:
                        nxt = apply(nxt, decide(nxt, action, data, ACTOR_OF[action], when, ctx))
                except DomainError:
                    continue
                if key(nxt) not in seen:
                    seen.add(key(nxt))
                    frontier.append(nxt)
    return {state for state, _, _ in seen}


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
    (datetime(2021, 11, 30, 15, 59, tzinfo=UTC), True),    # 23:59 in Shanghai
    (sh(2021, 12, 1, 0, 0), False),
    (datetime(2021, 11, 30, 16, 0, tzinfo=UTC), False),    # 00:00 on 12-01 in Shanghai
    (datetime(2021, 11, 30, 20, 0, tzinfo=UTC), False),    # still 11-30 in UTC
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
    event = built.act("recheck", {"entries": sheet(SX, total)})
    assert Decimal(event.payload["total"]) == Decimal(total)
    assert event.payload["passed"] is passed
    assert built.case.state == dest
    assert built.case.recheck_total == Decimal(total)
    assert built.case.passed is passed
    assert built.case.verified_total == Decimal(FAILING)


# ---------------------------------------------------------------- 3. due dates


@pytest.mark.parametrize("failed_at", [
    sh(2021, 11, 10, 0, 0),
    sh(2021, 11, 10, 0, 30),
    datetime(2021, 11, 9, 16, 30, tzinfo=UTC),   # = 11-10 00:30 in Shanghai
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
    assert set(allowed_actions(built.case, built.ctx, later)) == {"extend_rectification", "request_recheck",
                                                                  "attach_evidence", "remove_evidence",
                                                                  "attach_document", "remove_document", "withdraw"}


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
    ("submitted", "verify", {"entries": sheet(SX, PASSING), "colour": "red"}, {"colour"}),
    ("submitted", "verify", {"entries": sheet(SX, PASSING), "total": "85"}, {"total"}),  # total is gone
    ("registered", "self_assess", {"entries": {"1.1.1": "9"}, "total": "9"}, {"total"}),
    ("rectification", "expire_rectification", {"colour": "red"}, {"colour"}),
    ("verified", "certify", {"total": "85", "note": "ok"}, {"total"}),   # total is not an input of certify
    ("verified", "certify", {"entries": {"1.1.1": "9"}}, {"entries"}),
    ("registered", "attach_evidence", {**evidence(KEPT), "note": "x"}, {"note"}),
    ("registered", "remove_evidence", {"criterion": KEPT, "sha256": fake_sha(KEPT), "filename": "1.1.1.pdf"},
     {"filename"}),
    ("registered", "withdraw", {"reason": REASON, "days": 3, "until": "2022-01-01"}, {"days", "until"}),
])
def test_unknown_fields_are_named(state: str, action: str, data: dict[str, Any], unknown: set[str]) -> None:
    at = AFTER_DUE if action == "expire_rectification" else NOW
    found = problems(case_in(state, SHANXI), action, data, now=at)
    assert set(found) == unknown
    assert all(f"unknown field for {action}" in found[k] for k in unknown)


@pytest.mark.parametrize("action, state", [("verify", "submitted"), ("recheck", "recheck"),
                                           ("self_assess", "registered")])
@pytest.mark.parametrize("entries", [None, {}, "1.1.1=9", [("1.1.1", "9")], 85])
def test_entries_must_be_a_non_empty_mapping(action: str, state: str, entries: Any) -> None:
    found = problems(case_in(state, SHANXI), action, {"entries": entries})
    assert list(found) == ["entries"]
    if entries is None:
        assert f"required for {action}" in found["entries"]


# A bad value for criterion 1.1.1 (9 points, steps of 0.5): refused when the input is read
# (where = "entries", the criterion named in the message) or when the sheet is scored
# (where = the criterion code).
BAD_ENTRIES = [
    (9.0, "entries"), (8.5, "entries"), ("nine", "entries"), ("", "entries"), ("NaN", "entries"),
    ("Infinity", "entries"), ("-Infinity", "entries"), (True, "entries"), (None, "entries"), ([9], "entries"),
    ("9 points", "entries"), (Decimal("8.0000001"), "entries"), ("8.125", "entries"),
    ("9.5", "1.1.1"), ("10", "1.1.1"), ("100", "1.1.1"), ("-0.5", "1.1.1"), ("-1", "1.1.1"),
    ("0.3", "1.1.1"), ("8.25", "1.1.1"),
]


@pytest.mark.parametrize("value, where", BAD_ENTRIES)
@pytest.mark.parametrize("action", ["verify", "recheck", "self_assess"])
def test_bad_entries_are_refused(value: Any, where: str, action: str) -> None:
    state = {"verify": "submitted", "recheck": "recheck", "self_assess": "registered"}[action]
    built = case_in(state, SHANXI)
    entries: dict[str, Any] = sheet(SX, PASSING) if action != "self_assess" else {}
    entries["1.1.1"] = value
    found = problems(built, action, {"entries": entries})
    assert list(found) == [where]
    assert "1.1.1" in where or found[where].startswith("1.1.1: ")


@pytest.mark.parametrize("value, stored", [("0", "0"), ("9", "9"), (9, "9"), ("9.0", "9.0"), ("8.50", "8.50"),
                                           (Decimal("8.5"), "8.5"), (" 8 ", "8"), ("0.9e1", "9"), (0, "0")])
def test_good_entries_are_accepted_as_decimals_and_kept_as_exact_text(value: Any, stored: str) -> None:
    built = case_in("submitted", SHANXI)
    entries: dict[str, Any] = sheet(SX, PASSING)
    assert entries["1.1.1"] == "9"
    entries["1.1.1"] = value
    event = built.act("verify", {"entries": entries})
    assert event.payload["entries"]["1.1.1"] == stored
    assert Decimal(event.payload["total"]) == Decimal(PASSING) - 9 + Decimal(stored)
    assert built.case.verified_total == Decimal(PASSING) - 9 + Decimal(stored)


def test_several_problems_are_all_listed() -> None:
    found = problems(case_in("submitted", SHANXI), "verify",
                     {"entries": {"1.1.1": "abc"}, "note": 5, "colour": "red", "size": 1})
    assert set(found) == {"entries", "note", "colour", "size"}
    found = problems(case_in("registered", SHANXI), "withdraw", {"note": "x"})
    assert set(found) == {"reason", "note"}
    found = problems(case_in("registered", SHANXI), "attach_evidence",
                     {"criterion": "", "sha256": "ABC", "filename": "a/b.pdf", "size": 0, "type": ""})
    assert set(found) == {"criterion", "sha256", "filename", "size", "type"}


@pytest.mark.parametrize("state, action, data, expected", [
    pytest.param("submitted", "verify", {"entries": {**sheet(SX, PASSING), "1.1.1": "150"}, "colour": "red"},
                 {"1.1.1", "colour"}, id="entry-above-cap-and-unknown-field"),
    pytest.param("registered", "self_assess", {"entries": {"1.1.1": 9.0, "2.1.1": "5"}},
                 {"entries", "2.1.1"}, id="float-entry-and-entry-above-cap"),
    pytest.param("submitted", "verify", {"entries": {"1.1.1": "150", "9.9": "1"}},
                 {"1.1.1", "9.9"} | {c.code for c in SX.criteria()[1:]}, id="cap-unknown-and-missing"),
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
    ("registered", "attach_evidence", COORDINATOR),
    ("self_assessed", "remove_evidence", COORDINATOR),
    ("rectification_open", "attach_evidence", SYSTEM),
])
def test_actor_may_not(scenario: str, action: str, actor: Actor) -> None:
    built, when = built_scenario("shanxi", scenario)
    assert action in allowed_actions(built.case, built.ctx, when)   # possible, just not for this actor
    err = refused(built, action, built.valid(action), actor, when)
    assert actor.kind in str(err)
    assert err.details["allowed"] == allowed_actions(built.case, built.ctx, when)
    assert action not in allowed_actions(built.case, built.ctx, when, actor=actor)


POSSIBLE = [(p, s, a) for p in EXPECTED for s in EXPECTED[p] for a in EXPECTED[p][s]]


@pytest.mark.parametrize("policy_name, scenario, action", POSSIBLE)
def test_auditor_may_do_nothing(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    refused(built, action, built.valid(action), AUDITOR, when)
    assert allowed_actions(built.case, built.ctx, when, actor=AUDITOR) == []


@pytest.mark.parametrize("policy_name, scenario, action",
                         [p for p in POSSIBLE if ACTOR_OF[p[2]] is not SYSTEM])
def test_admin_may_do_every_non_system_action(policy_name: str, scenario: str, action: str) -> None:
    built, when = built_scenario(policy_name, scenario)
    event = built.act(action, built.valid(action), ADMIN, now=when)
    assert event.actor == "admin:a"
    assert built.case.state == EXPECTED[policy_name][scenario][action]


def test_admin_can_submit_and_verify() -> None:
    built = case_in("self_assessed", SHANXI)
    assert built.act("submit", actor=ADMIN).actor == "admin:a"
    assert built.act("verify", {"entries": sheet(SX, "90")}, actor=ADMIN).actor == "admin:a"
    assert built.case.state == "verified"


def test_system_may_close() -> None:
    built = case_in("submitted", SHANXI)
    assert built.act("close", {"reason": "round ended"}, actor=SYSTEM).actor == "system:sweep"
    assert built.case.state == "not_certified"


@pytest.mark.parametrize("scenario, actor, expected", [
    ("registered", UNIT, {"self_assess", "attach_evidence", "remove_evidence", "attach_document", "remove_document"}),
    ("self_assessed", UNIT, {"self_assess", "attach_evidence", "remove_evidence", "attach_document",
                             "remove_document", "submit"}),
    ("self_assessed", COORDINATOR, {"close", "withdraw"}),
    ("self_assessed", SYSTEM, {"close", "record_missed_deadline", "record_notification_failure"}),
    ("self_assessed", AUDITOR, set()),
    ("self_assessed", ADMIN, {"self_assess", "attach_evidence", "remove_evidence", "attach_document",
                              "remove_document", "submit", "close", "withdraw"}),
    ("submitted", UNIT, set()),
    ("verified_failing", COORDINATOR, {"order_rectification", "close", "withdraw"}),
    ("rectification_open", UNIT, {"request_recheck", "attach_evidence", "remove_evidence", "attach_document",
                                  "remove_document"}),
    ("rectification_open", COORDINATOR, {"extend_rectification", "withdraw"}),
    ("rectification_overdue", SYSTEM, {"expire_rectification", "record_missed_deadline",
                                       "record_notification_failure"}),
    ("rectification_overdue", ADMIN, {"extend_rectification", "attach_evidence", "remove_evidence",
                                      "attach_document", "remove_document", "withdraw"}),
    ("rectification_overdue", UNIT, {"attach_evidence", "remove_evidence", "attach_document", "remove_document"}),
    ("certified", COORDINATOR, {"withdraw", "revoke"}),  # filed only inside a filing batch
])
def test_allowed_actions_filters_by_actor(scenario: str, actor: Actor, expected: set[str]) -> None:
    built, when = built_scenario("shanxi", scenario)
    assert set(allowed_actions(built.case, built.ctx, when, actor=actor)) == expected


@pytest.mark.parametrize("scenario, action", [("registered", "self_assess"), ("self_assessed", "submit"),
                                              ("rectification_open", "request_recheck"),
                                              ("registered", "attach_evidence"),
                                              ("rectification_open", "remove_evidence")])
def test_a_unit_acts_only_on_its_own_cases(scenario: str, action: str) -> None:
    built, when = built_scenario("shanxi", scenario)
    other = Actor("unit", "2")
    err = refused(built, action, built.valid(action), other, when)
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
    err = refused(built, action, built.valid(action), ACTOR_OF[action], AFTER_DUE)
    assert set(err.details["allowed"]) == {"fail", "close", "withdraw"}


# ---------------------------------------------------------------- 7. events


DRAFT = evidence(KEPT, "-draft")           # a second file on 1.1.1, removed before resubmitting
RECTIFIED = evidence("4.1.1", "-rectified")  # a file added during rectification


def shanxi_long_steps() -> list[tuple[str, dict[str, Any]]]:
    return [
        *ready_steps(SX, "82"),                                  # 1.1.1 is at 9 in this sheet
        ("attach_evidence", DRAFT),
        ("submit", {}),
        ("return", {"reason": REASON}),
        ("self_assess", {"entries": {"1.1.1": "8"}}),            # one line corrected: 82 → 81
        ("remove_evidence", {"criterion": KEPT, "sha256": DRAFT["sha256"]}),
        ("submit", {"note": "fixed"}),
        ("verify", {"entries": sheet(SX, FAILING)}),
        ("order_rectification", {}),
        ("attach_evidence", RECTIFIED),
        ("extend_rectification", {"reason": REASON, "until": "2021-12-20"}),
        ("request_recheck", {}),
        ("recheck", {"entries": sheet(SX, "88.5")}),
        ("file", {"batch": "2021-1"}),
    ]


def shanxi_long_path() -> tuple[Built, list[CaseState]]:
    """registered → … → rectification → extended → recheck → certified → filed, with the state after each
    event; evidence is attached on the way (and a file removed)."""
    built = registered(SHANXI)
    states = [built.case]
    when = NOW
    for action, data in shanxi_long_steps():
        when += timedelta(hours=1)
        built.act(action, data, now=when)
        states.append(built.case)
    return built, states


def test_the_long_shanxi_path_ends_filed() -> None:
    built, states = shanxi_long_path()
    first = ready_steps(SX, "82")
    attached = [data for action, data in first if action == "attach_evidence"]
    assert len(attached) == sum(1 for v in sheet(SX, "82").values() if v != "0")
    assert [s.state for s in states] == [
        "registered", "self_assessed", "self_assessed", *["self_assessed"] * len(attached),
        "self_assessed", "submitted", "self_assessed", "self_assessed", "self_assessed", "submitted", "verified",
        "rectification", "rectification", "rectification", "recheck", "certified", "filed"]
    final = built.case
    assert (final.self_total, final.verified_total, final.recheck_total) == (Decimal("81"), Decimal(FAILING),
                                                                              Decimal("88.5"))
    assert final.self_entries == {**sheet(SX, "82"), "1.1.1": "8"}
    assert list(final.self_entries) == [c.code for c in SX.criteria()]
    assert final.evidence == (*((e["criterion"], e["sha256"], e["filename"]) for e in attached),
                              ("4.1.1", RECTIFIED["sha256"], "4.1.1-rectified.pdf"))
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

SCORES = ["85", "79.5", "80", "0", "100"]
ENDINGS = {"close", "withdraw"}
EVIDENCE_ACTIONS = {"attach_evidence", "remove_evidence"}


@cache
def data_pool(rubric: Rubric) -> tuple[dict[str, Any], ...]:
    """Inputs, good and bad, for any action."""
    return (
        {}, {"entries": sheet(rubric, PASSING)}, {"entries": sheet(rubric, FAILING)}, {"entries": sheet(rubric, "80")},
        {"entries": {"1.1.1": "9"}}, {"entries": {"1.1.1": 8.5}}, {"entries": {"1.1.1": "150"}},
        {"entries": {"9.9": "1"}}, {"entries": {}}, {"total": PASSING},
        {"reason": REASON}, {"reason": ""}, {"reason": REASON, "days": 3}, {"reason": REASON, "until": "2022-01-15"},
        {"reason": REASON, "until": "2021-11-01"}, {"note": "n"}, {"colour": 1}, {"batch": "b"},
        evidence(KEPT), evidence("2.1.1"), {**evidence(KEPT), "sha256": "ABC"}, evidence("9.9"),
        {"criterion": KEPT, "sha256": fake_sha(KEPT)}, {"criterion": "2.1.1", "sha256": fake_sha("nothing")},
    )


def needing_evidence(case: CaseState) -> list[str]:
    """Criteria scored above zero on the unit's sheet that have no evidence yet."""
    with_evidence = {code for code, _, _ in case.evidence}
    return [code for code, value in (case.self_entries or {}).items()
            if Decimal(value) > 0 and code not in with_evidence]


Step = tuple[str, Actor, dict[str, Any]]


def draw_step(data: st.DataObject, case: CaseState, ctx: RoundContext, now: datetime) -> tuple[int, list[Step]]:
    """Hours to move the clock on, or steps (action, actor, input) to take one after the other: often a
    possible action with a good input (so scripts get deep into the graph), sometimes anything at all.
    A guided attach_evidence attaches a file to every scored criterion without one (a burst of steps),
    so that a case can become ready to submit within a script."""
    mode = data.draw(st.sampled_from(["guided", "guided", "guided", "random", "tick"]))
    possible = allowed_actions(case, ctx, now)
    if mode == "tick" or (mode == "guided" and not possible):
        return data.draw(st.integers(1, 30 * 24)), []   # hours
    rubric = ctx.rubric
    if mode == "guided":
        lasting = [a for a in possible if a not in ENDINGS]
        moving = [a for a in lasting if a not in EVIDENCE_ACTIONS]   # the evidence actions are self-loops
        if "attach_evidence" in possible and needing_evidence(case) and data.draw(st.integers(0, 3)):
            action = "attach_evidence"
        elif moving and data.draw(st.integers(0, 3)):
            action = data.draw(st.sampled_from(moving))
        else:
            action = data.draw(st.sampled_from(lasting if lasting and data.draw(st.integers(0, 3)) else possible))
        actor = ACTOR_OF[action]
        tag = f"-v{case.version}"
        if action in ("self_assess", "verify", "recheck"):
            entries = sheet(rubric, data.draw(st.sampled_from(SCORES)))
            if action == "self_assess" and data.draw(st.booleans()):   # a partial sheet: one line
                code = data.draw(st.sampled_from(sorted(entries)))
                entries = {code: entries[code]}
            return 0, [(action, actor, {"entries": entries})]
        if action == "attach_evidence":
            missing = needing_evidence(case)
            if missing and data.draw(st.integers(0, 3)):
                return 0, [(action, actor, evidence(code, tag)) for code in missing]
            code = data.draw(st.sampled_from([c.code for c in rubric.criteria()]))
            return 0, [(action, actor, evidence(code, tag))]
        if action == "remove_evidence":
            if not case.evidence:
                return 0, [(action, actor, {"criterion": KEPT, "sha256": fake_sha("none")})]   # refused: no file
            code, sha, _ = data.draw(st.sampled_from(case.evidence))
            return 0, [(action, actor, {"criterion": code, "sha256": sha})]
        return 0, [(action, actor, valid_data(action, rubric))]
    action = data.draw(st.sampled_from([*ALL_ACTIONS, "approve"]))
    actor = data.draw(st.sampled_from(ALL_ACTORS))
    return 0, [(action, actor, data.draw(st.sampled_from(data_pool(rubric))))]


def check_step(built: Built, action: str, actor: Actor, inp: dict[str, Any], now: datetime,
               destinations: dict[tuple[str, str], set[str]]) -> None:
    ctx = built.ctx
    before = built.case
    allowed_all = allowed_actions(before, ctx, now)
    allowed_for_actor = allowed_actions(before, ctx, now, actor=actor)
    assert set(allowed_for_actor) - BOOKKEEPING <= set(allowed_all)
    ready = not submission_problems(before, ctx)
    assert ("submit" in allowed_all) is (before.state == "self_assessed" and ready)
    try:
        event = decide(before, action, inp, actor, now, ctx)
    except ActionRefused as err:
        assert built.case == before
        assert action not in allowed_for_actor
        assert err.details["allowed"] == allowed_all
    except Incomplete as err:
        assert built.case == before
        assert action == "submit" and not ready and action not in allowed_all
        assert err.problems == submission_problems(before, ctx)
    except InvalidInput:
        assert built.case == before
    else:  # a bookkeeping action (filing) is taken through its resource, not offered by name
        assert action in allowed_for_actor or (action in BOOKKEEPING and actor.kind != "system")
        assert event.type == EVENT_OF[action]
        built.case = apply(before, event)
        built.events.append(event)
        assert built.case.state in destinations[(before.state, action)]
        assert built.case.state in {e.dest for e in ctx.lifecycle.edges(action, before.state)}
        if action == "submit":
            assert ready
        if action == "attach_evidence":
            assert built.case.evidence == (*before.evidence, (inp["criterion"], inp["sha256"], inp["filename"]))
        if action == "remove_evidence":
            assert len(built.case.evidence) == len(before.evidence) - 1
            assert (inp["criterion"], inp["sha256"]) not in {(c, h) for c, h, _ in built.case.evidence}
        if action not in ("self_assess", "attach_evidence", "remove_evidence"):
            assert (built.case.self_entries, built.case.evidence) == (before.self_entries, before.evidence)
    assert built.case.version == len(built.events)
    if built.case.state in ("not_certified", "withdrawn", "filed"):
        for who in (None, *ALL_ACTORS):
            assert allowed_actions(built.case, ctx, now, actor=who) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_name=st.sampled_from(sorted(POLICIES)), n_steps=st.integers(0, 40), data=st.data())
def test_random_scripts_follow_the_graph(policy_name: str, n_steps: int, data: st.DataObject) -> None:
    built = registered(POLICIES[policy_name])
    now = NOW
    destinations = DESTINATIONS[policy_name]
    for _ in range(n_steps):
        hours, steps = draw_step(data, built.case, built.ctx, now)
        now += timedelta(hours=hours)
        for action, actor, inp in steps:
            check_step(built, action, actor, inp, now, destinations)
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


@pytest.mark.parametrize("code, value", [("1.1.1", "8.999"), ("1.1.1", "0E-100000"), ("1.1.1", "8.125"),
                                         ("2.2.2", "1234567"), ("2.2.2", "4.001")])
def test_entries_have_at_most_two_decimal_places_and_six_digits(code: str, value: str) -> None:
    entries = {**sheet(SX, PASSING), code: value}
    found = problems(case_in("submitted", SHANXI), "verify", {"entries": entries})
    assert list(found) == ["entries"]
    assert found["entries"].startswith(f"{code}: ") and "at most 2 decimal places and 6 digits" in found["entries"]


# ---------------------------------------------------------------- spot checks' outcomes (回头看)

@pytest.mark.parametrize("held", ["certified", "filed"])
def test_a_spot_checks_rectification_holds_the_title_and_a_failing_recheck_revokes_it(held: str) -> None:
    built = case_in(f"recheck@{held}", SHANXI)
    assert built.case.held_title == held
    assert built.case.rectification_due == DUE
    event = built.act("recheck", {"entries": sheet(SX, FAILING)})
    assert (event.type, event.payload["passed"]) == ("CaseRechecked", False)
    assert built.case.state == "revoked" and built.case.held_title is None
    assert replay(built.events) == built.case


@pytest.mark.parametrize("held", ["certified", "filed"])
def test_a_passing_recheck_gives_the_title_back_as_it_was(held: str) -> None:
    built = case_in(f"recheck@{held}", SHANXI)
    built.act("recheck", {"entries": sheet(SX, PASSING)})
    assert (built.case.state, built.case.held_title) == (held, None)
    assert replay(built.events) == built.case


def test_the_spot_rectification_event_records_the_findings_the_days_and_the_held_state() -> None:
    built = case_in("filed", SHANXI)
    event = built.act("order_spot_rectification", {"draw": DRAW, "findings": FINDINGS, "evidence": "晋直管函〔2021〕60号"})
    assert event.payload == {"draw": DRAW, "findings": FINDINGS, "previous_state": "filed", "days": 20,
                             "due_on": DUE.isoformat(), "evidence": "晋直管函〔2021〕60号"}
    assert (built.case.state, built.case.held_title, built.case.rectification_due) == ("rectification", "filed", DUE)


def test_an_expired_spot_rectification_revokes_the_title() -> None:
    built = case_in("rectification@filed", SHANXI)
    event = built.act("expire_rectification", now=AFTER_DUE)
    assert event.type == "RectificationExpired"
    assert (built.case.state, built.case.held_title) == ("revoked", None)
    assert replay(built.events) == built.case


def test_a_plain_rectification_cannot_be_revoked_and_fails_to_not_certified() -> None:
    built = case_in("rectification", SHANXI)
    err = refused(built, "revoke", {"reason": REASON})
    assert "no title is held" in str(err)
    built.act("expire_rectification", now=AFTER_DUE)
    assert built.case.state == NC


def test_findings_are_required_for_a_spot_rectification() -> None:
    built = case_in("certified", SHANXI)
    assert set(problems(built, "order_spot_rectification", {"draw": DRAW, "findings": "  "})) == {"findings"}


def test_a_round_whose_policy_says_nothing_of_spot_checks_has_no_spot_rectification() -> None:
    silent = Policy("rectification", 20, False)
    rubric = SX
    RUBRIC_OF[silent] = rubric
    built = case_in("certified", silent)
    err = refused(built, "order_spot_rectification", {"draw": DRAW, "findings": FINDINGS})
    assert "has no order_spot_rectification" in str(err)
    built.act("pass_spot_check", {"draw": DRAW})  # a pass needs no policy
    assert built.case.state == "certified"
