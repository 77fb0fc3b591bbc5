"""The case lifecycle, declared as data and held by a ``transitions`` machine.

One machine is built per policy (the graph differs by province policy, never by
code) and cached. The machine is used as the graph: "which transitions leave this
state on this trigger" (``get_transitions``) and "what may happen next"
(``get_triggers``). Guards are named in the table and evaluated by the domain, so
a refused action becomes a clear :class:`ActionRefused` instead of a silent False,
and no model has to be added to (and removed from) a long-lived machine per call.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from transitions import Machine

from .policy import Policy

STATES: tuple[str, ...] = (
    "registered",
    "self_assessed",
    "submitted",
    "verified",
    "rectification",
    "recheck",
    "certified",
    "not_certified",
    "withdrawn",
    "filed",
    "revoked",
)
# What a bureau calls each state (shown in reports, mails and exports beside the code).
STATE_NAMES = {"registered": "已登记", "self_assessed": "已自评", "submitted": "已报送", "verified": "已评价验收",
               "rectification": "整改中", "recheck": "待复核验收", "certified": "已认定", "not_certified": "未通过",
               "withdrawn": "已撤回", "filed": "已备案", "revoked": "已撤销称号"}
# What a bureau calls each event (exports show it beside the code).
EVENT_NAMES = {
    "CaseRegistered": "登记", "SelfAssessmentRecorded": "填写自评", "EvidenceAttached": "上传佐证材料",
    "EvidenceRemoved": "删除佐证材料", "DocumentAttached": "上传报送材料", "DocumentRemoved": "删除报送材料",
    "ContactFormGiven": "报送联络员信息", "SelfAssessmentSubmitted": "报送自评材料", "CaseReturned": "退回修改",
    "CaseVerified": "评价验收", "CaseCertified": "认定为节约型机关", "RectificationOrdered": "通知整改",
    "CaseFailed": "评价未通过", "RectificationExtended": "延长整改期限", "RecheckRequested": "申请复核验收",
    "CaseRechecked": "复核验收", "RectificationExpired": "整改逾期", "DeadlineMissed": "逾期未报",
    "NotificationFailed": "通知发送失败", "CaseClosed": "本轮结束未认定", "CaseWithdrawn": "撤回",
    "CaseFiled": "报国管局备案", "SpotCheckDrawn": "抽查抽中", "TitleRevoked": "撤销节约型机关称号",
    "SpotCheckPassed": "抽查通过", "SpotRectificationOrdered": "抽查发现问题，限期整改",
}
# What a bureau calls each kind of actor (the API's ``ROLE_ZH`` says the same of the roles).
ACTOR_NAMES = {"unit": "创建单位", "coordinator": "协调人员", "auditor": "审计人员", "admin": "管理员",
               "system": "系统"}


def state_zh(state: str) -> str:
    """A state's Chinese name (its code when it has none)."""
    return STATE_NAMES.get(state, state)


def action_zh(action: str) -> str:
    """An action's Chinese name: the name of the event it records (its code when it has none)."""
    spec = ACTIONS.get(action)
    return EVENT_NAMES.get(spec.event, action) if spec is not None else action


TERMINAL_STATES = frozenset({"not_certified", "withdrawn", "filed", "revoked"})
CERTIFIED_STATES = ("certified", "filed")
# A miss "owed in" this is owed until the round's contact form is given (not by a state).
CONTACT_FORM = "contact_form"
OPEN_STATES = tuple(s for s in STATES if s not in TERMINAL_STATES)

@dataclass(frozen=True, slots=True)
class Owing:
    """Which cases still owe a milestone — the one rule, as data: a case in one of ``states``
    that (when ``contact_form_missing``) has not given this round's contact form. The sweep's
    query, the dispatcher's last check before sending and a recorded miss's ``overdue`` are all
    built from it."""

    states: tuple[str, ...]
    contact_form_missing: bool = False

    def holds(self, state: str, contact_form: bool) -> bool:
        return state in self.states and not (self.contact_form_missing and contact_form)

    def recorded(self) -> list[str]:
        """How a miss records what owes it (``owed_in`` of DeadlineMissed)."""
        return [CONTACT_FORM] if self.contact_form_missing else sorted(self.states)

    @classmethod
    def of_recorded(cls, owed_in: tuple[str, ...] | list[str]) -> Owing:
        if CONTACT_FORM in owed_in:
            return cls(OPEN_STATES, True)
        return cls(tuple(sorted(owed_in)))


# Who may ask for an action. ``admin`` may do anything but ``system`` actions.
UNIT, COORDINATOR, SYSTEM = "unit", "coordinator", "system"


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action (trigger): who may take it, what it needs, which event records it."""

    name: str
    event: str
    by: frozenset[str]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    description: str = ""
    # Bookkeeping: recorded by the system, or through its own resource (a filing batch, a spot
    # check, the contact form), never taken by name (the action endpoint and `cases act`
    # refuse it); not listed as a next action except to the system itself.
    bookkeeping: bool = False
    through: str = ""  # the resource that records it, for the refusal's message
    through_zh: str = ""  # the same in Chinese


_OUTCOMES = ("a spot check's outcomes (POST /api/v1/rounds/{id}/spot-checks/{check}/outcomes, workflow spot-checks "
             "outcome) or the national bureau's results for a filing batch")
_OUTCOMES_ZH = ("抽查结果（POST /api/v1/rounds/{id}/spot-checks/{check}/outcomes，workflow spot-checks outcome）"
                "或国管局对备案批次的抽查评价结果")

ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec("self_assess", "SelfAssessmentRecorded", frozenset({UNIT}), required=("entries",),
                   optional=("note",),
                   description="record (or add to) the unit's self-assessment sheet: criterion code → points, "
                               "or the number of occurrences for a per-occurrence criterion"),
        ActionSpec("attach_evidence", "EvidenceAttached", frozenset({UNIT}),
                   required=("criterion", "sha256", "filename", "size", "type"),
                   description="attach a stored evidence file (佐证材料) to a criterion"),
        ActionSpec("remove_evidence", "EvidenceRemoved", frozenset({UNIT}), required=("criterion", "sha256"),
                   description="take an evidence file off a criterion"),
        ActionSpec("attach_document", "DocumentAttached", frozenset({UNIT}),
                   required=("document", "sha256", "filename", "size", "type"),
                   description="attach a stored file as one of the documents the submission needs "
                               "(自评报告, 自评打分表, 创建工作方案: the round's calendar names them)"),
        ActionSpec("remove_document", "DocumentRemoved", frozenset({UNIT}), required=("document", "sha256"),
                   description="take a file off a required document"),
        ActionSpec("give_contact_form", "ContactFormGiven", frozenset({UNIT, COORDINATOR}),
                   required=("how", "contacts"), bookkeeping=True,
                   through="the unit's contact form (PUT /api/v1/units/{id}/contacts, workflow units contact-form)",
                   through_zh="本单位的联络员信息表（PUT /api/v1/units/{id}/contacts，workflow units contact-form）",
                   description="the contact-person form (附件2) for this round: filled in, or the contact on "
                               "file confirmed (only through the unit's contact form)"),
        ActionSpec("submit", "SelfAssessmentSubmitted", frozenset({UNIT}), optional=("note",),
                   description="submit the self-assessment report, score sheet and evidence"),
        ActionSpec("return", "CaseReturned", frozenset({COORDINATOR}), required=("reason",),
                   description="return a submitted case to the unit for correction"),
        ActionSpec("verify", "CaseVerified", frozenset({COORDINATOR}), required=("entries",), optional=("note",),
                   description="record the evaluation team's verification sheet (核查得分); it decides pass or fail"),
        ActionSpec("certify", "CaseCertified", frozenset({COORDINATOR}), optional=("note",),
                   description="certify a case whose verified score passes"),
        ActionSpec("order_rectification", "RectificationOrdered", frozenset({COORDINATOR}), optional=("note",),
                   description="order rectification of a case whose verified score fails"),
        ActionSpec("fail", "CaseFailed", frozenset({COORDINATOR}), optional=("note",),
                   description="close a failed case; the unit is re-evaluated next round"),
        ActionSpec("extend_rectification", "RectificationExtended", frozenset({COORDINATOR}),
                   required=("reason",), optional=("days", "until"),
                   description="move the rectification deadline (by days, or to a date)"),
        ActionSpec("request_recheck", "RecheckRequested", frozenset({UNIT}), optional=("note",),
                   description="report rectification done and ask for the recheck"),
        ActionSpec("recheck", "CaseRechecked", frozenset({COORDINATOR}), required=("entries",), optional=("note",),
                   description="record the recheck sheet (复核); it certifies or not"),
        ActionSpec("expire_rectification", "RectificationExpired", frozenset({SYSTEM}),
                   description="the rectification deadline passed without a recheck request"),
        ActionSpec("record_missed_deadline", "DeadlineMissed", frozenset({SYSTEM}),
                   required=("milestone", "due_on", "noticed_on", "owed_in"), bookkeeping=True,
                   description="a deadline passed while the case still owed the milestone"),
        ActionSpec("record_notification_failure", "NotificationFailed", frozenset({SYSTEM}),
                   required=("notification", "kind", "error"), bookkeeping=True,
                   description="a mail about this case could not be delivered"),
        ActionSpec("close", "CaseClosed", frozenset({COORDINATOR, SYSTEM}), required=("reason",),
                   description="the round ended without certification"),
        ActionSpec("withdraw", "CaseWithdrawn", frozenset({COORDINATOR}), required=("reason",),
                   description="withdraw the case from the round"),
        ActionSpec("file", "CaseFiled", frozenset({COORDINATOR}), optional=("batch", "note"),
                   bookkeeping=True,
                   through="a filing batch (POST /api/v1/rounds/{id}/filings, workflow filings create)",
                   through_zh="备案批次（POST /api/v1/rounds/{id}/filings，workflow filings create）",
                   description="file the certified case with the national bureau (only inside a filing batch)"),
        ActionSpec("revoke", "TitleRevoked", frozenset({COORDINATOR}), required=("reason",),
                   optional=("decided_by", "evidence", "note", "draw"),
                   description="take back a certified or filed unit's title (回头看): a failed spot check of the "
                               "province (decided_by province) or the national bureau's result (national); with "
                               "the reason and the evidence (a document's number); the unit may take part again "
                               "in a later round"),
        ActionSpec("record_spot_check", "SpotCheckDrawn", frozenset({COORDINATOR}),
                   required=("draw", "seed", "share"), bookkeeping=True,
                   through="a spot check (POST /api/v1/rounds/{id}/spot-checks, workflow spot-checks draw)",
                   through_zh="抽查（POST /api/v1/rounds/{id}/spot-checks，workflow spot-checks draw）",
                   description="the case was drawn in a spot check (抽查) of certified cases"),
        ActionSpec("pass_spot_check", "SpotCheckPassed", frozenset({COORDINATOR}), required=("draw",),
                   optional=("decided_by", "findings", "evidence", "note"), bookkeeping=True,
                   through=_OUTCOMES, through_zh=_OUTCOMES_ZH,
                   description="a spot check (the province's, or the national bureau's result) found the "
                               "certified or filed unit as it should be: the title stands"),
        ActionSpec("order_spot_rectification", "SpotRectificationOrdered", frozenset({COORDINATOR}),
                   required=("draw", "findings"), optional=("evidence", "note"), bookkeeping=True,
                   through=_OUTCOMES, through_zh=_OUTCOMES_ZH,
                   description="a spot check found problems and the province's policy is rectification: the "
                               "title is held while the unit rectifies by the due date and is rechecked"),
    )
}

_WITHDRAWABLE = ["registered", "self_assessed", "submitted", "verified", "rectification", "recheck", "certified"]

# The graph. ``policy`` limits a transition to rounds whose policy.on_fail matches.
# Guards named in ``conditions`` are evaluated by ``case.GUARDS``; a guard whose name
# starts with ``outcome_`` depends on the action's input (e.g. the recheck score)
# and chooses between destinations rather than allowing or refusing the action.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "self_assess", "source": ["registered", "self_assessed"], "dest": "self_assessed"},
    {"trigger": "attach_evidence", "source": ["registered", "self_assessed", "rectification"], "dest": "="},
    {"trigger": "remove_evidence", "source": ["registered", "self_assessed", "rectification"], "dest": "="},
    {"trigger": "attach_document", "source": ["registered", "self_assessed", "rectification"], "dest": "="},
    {"trigger": "remove_document", "source": ["registered", "self_assessed", "rectification"], "dest": "="},
    {"trigger": "give_contact_form", "source": _WITHDRAWABLE, "dest": "="},
    {"trigger": "submit", "source": "self_assessed", "dest": "submitted", "conditions": ["sheet_ready"]},
    {"trigger": "return", "source": "submitted", "dest": "self_assessed"},
    {"trigger": "verify", "source": "submitted", "dest": "verified"},
    {"trigger": "certify", "source": "verified", "dest": "certified", "conditions": ["passed"]},
    {"trigger": "order_rectification", "source": "verified", "dest": "rectification",
     "conditions": ["failed"], "policy": "rectification"},
    {"trigger": "fail", "source": "verified", "dest": "not_certified",
     "conditions": ["failed"], "policy": "not_certified"},
    # A rectification is the policy's after a failed verification, or its spot check's (the
    # title held meanwhile, ``held_title``): both are extended, rechecked and expire alike.
    *[edge for key in ("policy", "spot") for edge in (
        {"trigger": "extend_rectification", "source": "rectification", "dest": "=", key: "rectification"},
        {"trigger": "request_recheck", "source": "rectification", "dest": "recheck",
         "conditions": ["rectification_open"], key: "rectification"})],
    # After a spot check: passed, the title stands as it was (certified, or filed); failed or
    # late, it is revoked.
    {"trigger": "recheck", "source": "recheck", "dest": "filed", "conditions": ["held_filed", "outcome_passed"],
     "spot": "rectification"},
    {"trigger": "recheck", "source": "recheck", "dest": "certified",
     "conditions": ["held_certified", "outcome_passed"], "spot": "rectification"},
    {"trigger": "recheck", "source": "recheck", "dest": "revoked", "conditions": ["held_title", "outcome_failed"],
     "spot": "rectification"},
    {"trigger": "expire_rectification", "source": "rectification", "dest": "revoked",
     "conditions": ["held_title", "rectification_expired"], "spot": "rectification"},
    {"trigger": "recheck", "source": "recheck", "dest": "certified", "conditions": ["no_held_title", "outcome_passed"],
     "policy": "rectification"},
    {"trigger": "recheck", "source": "recheck", "dest": "not_certified",
     "conditions": ["no_held_title", "outcome_failed"], "policy": "rectification"},
    {"trigger": "expire_rectification", "source": "rectification", "dest": "not_certified",
     "conditions": ["no_held_title", "rectification_expired"], "policy": "rectification"},
    {"trigger": "record_missed_deadline", "source": _WITHDRAWABLE, "dest": "="},
    {"trigger": "record_notification_failure", "source": _WITHDRAWABLE, "dest": "="},
    {"trigger": "close", "source": ["registered", "self_assessed", "submitted", "verified"], "dest": "not_certified"},
    {"trigger": "withdraw", "source": _WITHDRAWABLE, "dest": "withdrawn"},
    {"trigger": "file", "source": "certified", "dest": "filed"},
    {"trigger": "record_spot_check", "source": ["certified", "filed"], "dest": "="},
    {"trigger": "pass_spot_check", "source": ["certified", "filed"], "dest": "="},
    {"trigger": "order_spot_rectification", "source": ["certified", "filed"], "dest": "rectification",
     "spot": "rectification"},
    {"trigger": "revoke", "source": ["certified", "filed"], "dest": "revoked"},
    # a held title may be revoked before its recheck (the unit gave up, or worse was found)
    {"trigger": "revoke", "source": ["rectification", "recheck"], "dest": "revoked", "conditions": ["held_title"],
     "spot": "rectification"},
]
# The guards a replay evaluates to know where an event led (they read only the case; the
# others were checked when the event was decided, and ``outcome_`` ones read its ``passed``).
REPLAYED_GUARDS = ("held_title", "no_held_title", "held_certified", "held_filed")


@dataclass(frozen=True, slots=True)
class Edge:
    trigger: str
    source: str
    dest: str
    conditions: tuple[str, ...]


class Lifecycle:
    """The machine of one policy, with (trigger, source) look-ups precomputed."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        spot = policy.spot_check.on_problems if policy.spot_check is not None else None
        selected: list[dict[str, Any]] = []
        for t in TRANSITIONS:
            if t.get("policy") not in (None, policy.on_fail) or t.get("spot") not in (None, spot):
                continue
            edge = {k: v for k, v in t.items() if k not in ("policy", "spot")}
            if edge not in selected:  # the same rectification edge of both the policy and the spot check
                selected.append(edge)
        # The machine validates the declaration (unknown states raise) and is the graph.
        self.machine = Machine(model=None, states=list(STATES), transitions=selected, initial=None,
                               auto_transitions=False, send_event=True)
        self._edges: dict[tuple[str, str], tuple[Edge, ...]] = {}
        self._triggers: dict[str, tuple[str, ...]] = {}
        for state in STATES:
            triggers = tuple(self.machine.get_triggers(state))
            self._triggers[state] = triggers
            for trigger in triggers:
                self._edges[(trigger, state)] = tuple(
                    Edge(trigger, state, str(tr.dest), tuple(str(c.func) for c in tr.conditions))
                    for tr in self.machine.get_transitions(trigger=trigger, source=state)
                )
        self._actions = tuple(dict.fromkeys(t for s in STATES for t in self._triggers[s]))
        self.action_set = frozenset(self._actions)

    def edges(self, trigger: str, source: str) -> tuple[Edge, ...]:
        return self._edges.get((trigger, source), ())

    def triggers(self, state: str) -> tuple[str, ...]:
        return self._triggers.get(state, ())

    def actions(self) -> tuple[str, ...]:
        """Every action this policy knows."""
        return self._actions

    def sources(self, trigger: str) -> tuple[str, ...]:
        return tuple(s for s in STATES if (trigger, s) in self._edges)


@cache
def lifecycle_for(policy: Policy) -> Lifecycle:
    return Lifecycle(policy)
