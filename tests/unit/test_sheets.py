"""Score sheets and evidence in the case lifecycle.

Self-assessments may be partial and merge onto the unit's sheet; verification and recheck
sheets answer every criterion; every bad entry is named by its criterion code; pass/fail
follows the rubric's pass mark (inclusive) and its must-pass criteria; a case is submitted
only with a complete sheet and evidence (佐证材料) on every criterion scored above zero.
Cases are built the real way: a registration event, then ``decide``/``apply``.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from workflow.domain.calendar import RequiredDocument
from workflow.domain.case import (
    Actor,
    CaseState,
    RoundContext,
    allowed_actions,
    apply,
    decide,
    registration_event,
    replay,
    submission_problems,
)
from workflow.domain.errors import ActionRefused, Incomplete, InvalidInput
from workflow.domain.events import Event
from workflow.domain.policy import Policy
from workflow.domain.rubric import Rubric, rubric_from_dict

from ..support import RUBRICS, fake_sha, sheet_for, sheet_with

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2021, 11, 10, 10, 0, tzinfo=SH)

SHANXI = Policy("rectification", 20, False)
HUNAN = Policy("not_certified", None, True)
SX = RUBRICS.get("shanxi-2020")
HN = RUBRICS.get("hunan-2020")

UNIT = Actor("unit", "1")
COORDINATOR = Actor("coordinator", "w")
ADMIN = Actor("admin", "a")
REASON = "data entry mistake"


# ---------------------------------------------------------------- helpers
def ctx_of(policy: Policy, rubric: Rubric) -> RoundContext:
    return RoundContext("r", policy, rubric.pass_mark, rubric.total, rubric)


def plain(value: str) -> str:
    """``"9.0"`` → ``"9"``: the text a person would type."""
    d = Decimal(value)
    return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")


def sheet(rubric: Rubric, total: str) -> dict[str, str]:
    """A complete sheet scoring exactly ``total`` (``sheet_for``, values written plainly)."""
    return {code: plain(value) for code, value in sheet_for(rubric, total).items()}


def scored(entries: Mapping[str, str]) -> list[str]:
    return [code for code, value in entries.items() if Decimal(value) > 0]


def evidence(code: str, tag: str = "") -> dict[str, Any]:
    return {"criterion": code, "sha256": fake_sha(code + tag), "filename": f"{code}{tag}.pdf", "size": 2048,
            "type": "pdf"}


def problems_of(err: InvalidInput) -> dict[str, str]:
    found = {p.where: p.what for p in err.problems}
    assert len(found) == len(err.problems), "a place is named twice"
    return found


ACTOR_OF = {"self_assess": UNIT, "attach_evidence": UNIT, "remove_evidence": UNIT, "submit": UNIT,
            "request_recheck": UNIT, "attach_document": UNIT, "remove_document": UNIT}


@dataclasses.dataclass
class Built:
    case: CaseState
    ctx: RoundContext
    events: list[Event]
    states: list[CaseState]

    def act(self, action: str, data: Mapping[str, Any] | None = None, actor: Actor | None = None) -> Event:
        event = decide(self.case, action, data, actor or ACTOR_OF.get(action, COORDINATOR), NOW, self.ctx)
        self.case = apply(self.case, event)
        self.events.append(event)
        self.states.append(self.case)
        return event

    def invalid(self, action: str, data: Mapping[str, Any] | None, actor: Actor | None = None) -> InvalidInput:
        """The InvalidInput the action raises; the case is left as it was."""
        before = self.case
        with pytest.raises(InvalidInput) as err:
            decide(self.case, action, data, actor or ACTOR_OF.get(action, COORDINATOR), NOW, self.ctx)
        assert self.case == before
        return err.value

    def refused(self, action: str, data: Mapping[str, Any] | None = None, actor: Actor | None = None
                ) -> ActionRefused:
        with pytest.raises(ActionRefused) as err:
            decide(self.case, action, data, actor or ACTOR_OF.get(action, COORDINATOR), NOW, self.ctx)
        return err.value

    def allowed(self, actor: Actor | None = None) -> list[str]:
        return allowed_actions(self.case, self.ctx, NOW, actor=actor)

    def attach_for(self, entries: Mapping[str, str], tag: str = "") -> None:
        for code in scored(entries):
            self.act("attach_evidence", evidence(code, tag))


def registered(ctx: RoundContext) -> Built:
    event = registration_event(1, ctx.round_id, 1, ADMIN, NOW)
    case = apply(None, event)
    return Built(case, ctx, [event], [case])


def submitted(ctx: RoundContext, self_total: str = "90") -> Built:
    built = registered(ctx)
    entries = sheet(ctx.rubric, self_total)
    built.act("self_assess", {"entries": entries})
    built.attach_for(entries)
    built.act("submit")
    assert built.case.state == "submitted"
    return built


def verified(ctx: RoundContext, entries: Mapping[str, Any]) -> tuple[Built, Event]:
    built = submitted(ctx)
    event = built.act("verify", {"entries": entries})
    assert built.case.state == "verified"
    return built, event


# ---------------------------------------------------------------- self-assessment sheets
def test_partial_self_assessments_merge_and_rescore() -> None:
    built = registered(ctx_of(SHANXI, SX))
    first = built.act("self_assess", {"entries": {"1.1.1": "9"}})
    assert first.type == "SelfAssessmentRecorded"
    assert first.payload == {"v": 2, "entries": {"1.1.1": "9"}, "total": "9", "complete": False}
    assert (built.case.state, built.case.self_total, built.case.self_entries) == ("self_assessed", Decimal(9),
                                                                                  {"1.1.1": "9"})

    # a second partial sheet adds a line and corrects one; the event holds the whole current sheet
    second = built.act("self_assess", {"entries": {"2.2.2": 5, "1.1.1": "8.5"}})
    assert second.payload["entries"] == {"1.1.1": "8.5", "2.2.2": "5"}
    assert Decimal(second.payload["total"]) == Decimal("13.5")   # 8.5 + 5
    assert second.payload["complete"] is False
    assert built.case.self_total == Decimal("13.5")

    # the rest answered with zeros: complete, same total
    rest = {code: "0" for code in sheet_with(SX, {}) if code not in ("1.1.1", "2.2.2")}
    third = built.act("self_assess", {"entries": rest})
    assert third.payload["complete"] is True
    assert Decimal(third.payload["total"]) == Decimal("13.5")
    assert list(built.case.self_entries or {}) == [c.code for c in SX.criteria()]
    assert built.case.self_entries == sheet_with(SX, {"1.1.1": "8.5", "2.2.2": "5"})

    # a correction later re-scores the whole sheet and it stays complete
    fourth = built.act("self_assess", {"entries": {"1.1.1": "0"}})
    assert (fourth.payload["total"], fourth.payload["complete"]) == ("5", True)
    assert built.case.self_total == Decimal(5)
    assert built.case.state == "self_assessed"


def test_a_bad_self_assessment_leaves_the_sheet_as_it_was() -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("self_assess", {"entries": {"1.1.1": "9", "2.1.1": "1"}})
    err = built.invalid("self_assess", {"entries": {"2.1.1": "0", "2.1.2": "3"}})   # 2.1.2 is out of 2
    assert set(problems_of(err)) == {"2.1.2"}
    assert built.case.self_entries == {"1.1.1": "9", "2.1.1": "1"}
    assert built.case.self_total == Decimal(10)


def test_a_self_assessment_does_not_decide_pass_or_fail() -> None:
    built = registered(ctx_of(SHANXI, SX))
    event = built.act("self_assess", {"entries": sheet(SX, "50")})
    assert set(event.payload) == {"v", "entries", "total", "complete"}
    assert built.case.passed is None


# ---------------------------------------------------------------- verification and recheck sheets
@pytest.mark.parametrize("left_out", [["3.2.1"], ["1.1.1", "5.2.2"]])
def test_verify_needs_an_entry_for_every_criterion(left_out: list[str]) -> None:
    built = submitted(ctx_of(SHANXI, SX))
    entries = {code: value for code, value in sheet(SX, "85").items() if code not in left_out}
    found = problems_of(built.invalid("verify", {"entries": entries}))
    assert list(found) == left_out
    assert all("missing" in what for what in found.values())
    # the unit's own (complete) sheet does not fill the gaps of the verification sheet
    assert set(built.case.self_entries or {}) == {c.code for c in SX.criteria()}


def test_recheck_needs_an_entry_for_every_criterion() -> None:
    built, _ = verified(ctx_of(SHANXI, SX), sheet(SX, "79.5"))
    built.act("order_rectification")
    built.act("request_recheck")
    entries = sheet(SX, "90")
    del entries["4.3.4"]
    found = problems_of(built.invalid("recheck", {"entries": entries}))
    assert list(found) == ["4.3.4"] and "missing" in found["4.3.4"]


BAD = {
    "9.9": ("1", "unknown criterion"),
    "1.1.1": ("-1", "-1 分 is not possible"),
    "2.1.1": ("2", "up to 1 in steps of 0.5 (0, 0.5, 1)"),
    "2.1.2": ("0.3", "0.3 分 is not possible"),
    "2.2.2": ("2.5", "1 分 per rule, up to 5 (0, 1, 2, 3, 4, 5)"),
}


@pytest.mark.parametrize("action, state", [("self_assess", "registered"), ("verify", "submitted")])
def test_bad_entries_are_listed_together_by_code(action: str, state: str) -> None:
    built = registered(ctx_of(SHANXI, SX)) if state == "registered" else submitted(ctx_of(SHANXI, SX))
    entries = sheet(SX, "85") if action == "verify" else {"3.1.1": "2"}
    entries.update({code: value for code, (value, _) in BAD.items()})
    err = built.invalid(action, {"entries": entries})
    assert type(err) is InvalidInput and err.code == "invalid_input"
    found = problems_of(err)
    assert set(found) == set(BAD)
    for code, (_, words) in BAD.items():
        assert words in found[code], (code, found[code])
    assert all(code in str(err) for code in BAD)


@pytest.mark.parametrize("entries", [{"1.1.1": 8.5}, {"1.1.1": 9.0, "2.1.1": 1.0}])
def test_float_entries_are_refused(entries: dict[str, Any]) -> None:
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("self_assess", {"entries": entries}))
    assert list(found) == ["entries"]
    for code in entries:
        assert f"{code}: " in found["entries"] and "floating point" in found["entries"]


# ---------------------------------------------------------------- pass mark: 80 passes, 79.5 does not
def hunan_half_points(total: str) -> dict[str, str]:
    """A Hunan sheet whose total is reached with the half-point criteria (1.5, 2.5, 3.5)."""
    entries = {c.code: plain(str(c.cap)) for c in HN.criteria()}
    entries.update({"1.1.1": "0", "2.1.1": "0", "2.1.2": "0", "3.1.1": "0"})   # 100 - 20 = 80
    if total == "79.5":
        entries["3.1.3"] = "1"   # 1.5 → 1
    return entries


def test_hunan_half_point_sheets_score_as_intended() -> None:
    assert [c.cap for c in HN.criteria() if c.code in ("3.1.3", "3.3.1", "4.1.2")] == [
        Decimal("1.5"), Decimal("2.5"), Decimal("3.5")]
    _, at_80 = verified(ctx_of(HUNAN, HN), hunan_half_points("80"))
    _, at_79_5 = verified(ctx_of(HUNAN, HN), hunan_half_points("79.5"))
    assert (Decimal(at_80.payload["total"]), Decimal(at_79_5.payload["total"])) == (Decimal(80), Decimal("79.5"))


def test_shanxi_verified_at_79_5_is_refused_certification_and_ordered_to_rectify() -> None:
    built, event = verified(ctx_of(SHANXI, SX), sheet(SX, "79.5"))
    assert event.payload == {"v": 2, "entries": sheet(SX, "79.5"), "total": event.payload["total"],
                             "pass_mark": "80", "passed": False, "must_pass_failed": []}
    assert Decimal(event.payload["total"]) == Decimal("79.5")
    assert (built.case.verified_total, built.case.passed) == (Decimal("79.5"), False)
    err = built.refused("certify")
    assert "below the pass mark" in str(err)
    assert built.allowed() == ["order_rectification", "close", "withdraw"]
    built.act("order_rectification")
    assert built.case.state == "rectification"


def test_shanxi_verified_at_80_may_be_certified() -> None:
    built, event = verified(ctx_of(SHANXI, SX), sheet(SX, "80"))
    assert Decimal(event.payload["total"]) == Decimal(80) and event.payload["passed"] is True
    assert built.allowed() == ["certify", "close", "withdraw"]
    built.refused("order_rectification")
    built.act("certify")
    assert built.case.state == "certified"


@pytest.mark.parametrize("make", [lambda t: sheet(HN, t), hunan_half_points], ids=["sheet_for", "half_points"])
def test_hunan_fail_is_allowed_only_below_the_pass_mark(make: Any) -> None:
    low, event = verified(ctx_of(HUNAN, HN), make("79.5"))
    assert event.payload["passed"] is False and event.payload["pass_mark"] == "80"
    assert low.allowed() == ["fail", "close", "withdraw"]
    low.refused("certify")
    fail = low.act("fail")
    assert low.case.state == "not_certified"
    assert fail.payload == {"verified_total": low.events[-2].payload["total"], "carry_over": True}

    at_mark, event = verified(ctx_of(HUNAN, HN), make("80"))
    assert event.payload["passed"] is True
    assert at_mark.allowed() == ["certify", "close", "withdraw"]
    at_mark.refused("fail")
    at_mark.act("certify")
    assert at_mark.case.state == "certified"


@pytest.mark.parametrize("total, dest", [("79.5", "not_certified"), ("80", "certified")])
def test_the_recheck_sheet_decides_at_the_pass_mark(total: str, dest: str) -> None:
    built, _ = verified(ctx_of(SHANXI, SX), sheet(SX, "60"))
    built.act("order_rectification")
    built.act("request_recheck")
    event = built.act("recheck", {"entries": sheet(SX, total)})
    assert event.type == "CaseRechecked"
    assert event.payload["passed"] is (dest == "certified") and event.payload["must_pass_failed"] == []
    assert built.case.state == dest
    assert (built.case.verified_total, built.case.recheck_total) == (Decimal(60), Decimal(total))


def test_the_recorded_pass_mark_is_the_one_that_decided() -> None:
    ctx = RoundContext("r", SHANXI, Decimal("85"), SX.total, SX)   # the round row says 85, the rubric 80
    _, event = verified(ctx, sheet(SX, "82"))
    assert event.payload["passed"] is (Decimal(event.payload["total"]) >= Decimal(event.payload["pass_mark"]))


# ---------------------------------------------------------------- must-pass criteria
def must_pass_rubric() -> Rubric:
    return rubric_from_dict(
        {
            "id": "mp", "title": "t", "province": "test", "total": 100, "pass_mark": 80,
            "sections": [{"code": "1", "name": "s", "max_points": 100, "items": [
                {"code": "1.1", "name": "i", "max_points": 100, "criteria": [
                    {"code": "1.1.1", "text": "a", "points": 5, "cap": 5, "per_occurrence": False, "must_pass": True},
                    {"code": "1.1.2", "text": "b", "points": 95, "cap": 95, "per_occurrence": False},
                ]},
            ]}],
        },
        "mp.yaml",
    )


MP = must_pass_rubric()


def test_a_must_pass_criterion_at_zero_fails_a_sheet_of_95() -> None:
    built, event = verified(ctx_of(SHANXI, MP), {"1.1.1": "0", "1.1.2": "95"})
    assert event.payload == {"v": 2, "entries": {"1.1.1": "0", "1.1.2": "95"}, "total": "95", "pass_mark": "80",
                             "passed": False, "must_pass_failed": ["1.1.1"]}
    assert (built.case.verified_total, built.case.passed) == (Decimal(95), False)
    assert "below the pass mark" in str(built.refused("certify"))
    built.act("order_rectification")
    built.act("request_recheck")
    recheck = built.act("recheck", {"entries": {"1.1.2": "80", "1.1.1": "0.5"}})
    assert recheck.payload["must_pass_failed"] == [] and recheck.payload["passed"] is True
    assert recheck.payload["entries"] == {"1.1.1": "0.5", "1.1.2": "80"}
    assert Decimal(recheck.payload["total"]) == Decimal("80.5")
    assert built.case.state == "certified"


def test_a_must_pass_criterion_at_zero_fails_the_recheck_too() -> None:
    built, _ = verified(ctx_of(SHANXI, MP), {"1.1.1": "0", "1.1.2": "95"})
    built.act("order_rectification")
    built.act("request_recheck")
    event = built.act("recheck", {"entries": {"1.1.1": "0", "1.1.2": "95"}})
    assert (event.payload["passed"], event.payload["must_pass_failed"]) == (False, ["1.1.1"])
    assert built.case.state == "not_certified"


def test_a_must_pass_failure_under_hunan_policy_is_failed() -> None:
    built, event = verified(ctx_of(HUNAN, MP), {"1.1.1": "0", "1.1.2": "95"})
    assert event.payload["must_pass_failed"] == ["1.1.1"]
    assert built.allowed() == ["fail", "close", "withdraw"]


def test_must_pass_and_pass_mark_both_fail() -> None:
    _, event = verified(ctx_of(SHANXI, MP), {"1.1.1": "0", "1.1.2": "50"})
    assert (event.payload["passed"], event.payload["must_pass_failed"]) == (False, ["1.1.1"])
    _, event = verified(ctx_of(SHANXI, MP), {"1.1.1": "5", "1.1.2": "74.5"})
    assert (event.payload["passed"], event.payload["must_pass_failed"]) == (False, [])


# ---------------------------------------------------------------- submission needs a ready sheet
def test_submit_lists_every_missing_entry_and_evidence_in_rubric_order() -> None:
    built = registered(ctx_of(SHANXI, SX))
    entries = sheet(SX, "85")
    no_entry = ["5.2.2", "2.1.3"]                 # scored in the full sheet, left out here
    no_evidence = ["3.2.1", "1.1.1"]              # scored, no file attached
    assert all(Decimal(entries[c]) > 0 for c in no_entry + no_evidence)
    assert entries["4.3.4"] == "0"
    built.act("self_assess", {"entries": {c: v for c, v in entries.items() if c not in no_entry}})
    for code in scored(entries):
        if code not in no_evidence:
            built.act("attach_evidence", evidence(code))   # 2.1.3 and 5.2.2 get a file but no entry
    built.act("attach_evidence", evidence("4.3.4"))        # evidence on a line scored 0 is harmless

    assert "submit" not in built.allowed() and "submit" not in built.allowed(UNIT)
    before = built.case
    with pytest.raises(Incomplete) as caught:
        decide(built.case, "submit", None, UNIT, NOW, built.ctx)
    err = caught.value
    assert built.case == before
    assert isinstance(err, InvalidInput) and err.code == "incomplete"
    assert err.details["case_id"] == 1
    assert [p.where for p in err.problems] == ["1.1.1", "2.1.3", "3.2.1", "5.2.2"]
    found = problems_of(err)
    assert "no self-assessment entry" in found["2.1.3"] and "no self-assessment entry" in found["5.2.2"]
    assert "evidence" in found["1.1.1"] and "scored 9" in found["1.1.1"]
    assert "evidence" in found["3.2.1"] and "scored 3" in found["3.2.1"]
    assert err.problems == submission_problems(built.case, built.ctx)
    assert "4 thing(s) missing" in str(err)
    assert err.message_zh is not None and "缺少4项" in err.message_zh

    # answer the two lines (one scored, one zero): 2.1.3 now needs evidence — which it has already
    built.act("self_assess", {"entries": {"2.1.3": "1", "5.2.2": "0"}})
    assert [p.where for p in submission_problems(built.case, built.ctx)] == ["1.1.1", "3.2.1"]
    built.act("attach_evidence", evidence("1.1.1"))
    built.act("self_assess", {"entries": {"3.2.1": "0"}})   # a line scored 0 needs no evidence
    assert submission_problems(built.case, built.ctx) == []
    assert "submit" in built.allowed(UNIT)
    built.act("submit")
    assert built.case.state == "submitted"


def test_removing_evidence_of_a_scored_criterion_blocks_submission_again() -> None:
    built = registered(ctx_of(SHANXI, SX))
    entries = sheet(SX, "90")
    built.act("self_assess", {"entries": entries})
    built.attach_for(entries)
    built.act("attach_evidence", evidence("2.1.2", "-second"))
    assert "submit" in built.allowed()
    built.act("remove_evidence", {"criterion": "2.1.1", "sha256": fake_sha("2.1.1")})
    err = built.invalid("submit", {})
    assert isinstance(err, Incomplete) and [p.where for p in err.problems] == ["2.1.1"]
    built.act("remove_evidence", {"criterion": "2.1.2", "sha256": fake_sha("2.1.2")})   # a second file remains
    assert [p.where for p in submission_problems(built.case, built.ctx)] == ["2.1.1"]
    built.act("attach_evidence", evidence("2.1.1"))   # the same file, attached again
    built.act("submit")
    assert built.case.state == "submitted"


def test_a_returned_case_must_be_ready_again_before_resubmission() -> None:
    built = submitted(ctx_of(SHANXI, SX), self_total="85")
    built.act("return", {"reason": REASON})
    assert "submit" in built.allowed()      # still ready: nothing changed
    built.act("self_assess", {"entries": {"4.3.4": "2"}})   # a line that was 0, now scored, has no file
    err = built.invalid("submit", None)
    assert isinstance(err, Incomplete) and [p.where for p in err.problems] == ["4.3.4"]
    built.act("attach_evidence", evidence("4.3.4"))
    built.act("submit", {"note": "4.3.4 added"})
    assert built.case.state == "submitted" and built.case.self_total == Decimal(87)


def test_an_empty_case_cannot_be_submitted_and_names_every_criterion() -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("self_assess", {"entries": {"1.1.1": "0"}})
    err = built.invalid("submit", None)
    assert isinstance(err, Incomplete)
    assert [p.where for p in err.problems] == [c.code for c in SX.criteria()][1:]


# ---------------------------------------------------------------- evidence
def test_attach_and_remove_evidence() -> None:
    built = registered(ctx_of(SHANXI, SX))
    first = built.act("attach_evidence", evidence("2.1.1"))
    assert first.type == "EvidenceAttached"
    assert first.payload == {"criterion": "2.1.1", "sha256": fake_sha("2.1.1"), "filename": "2.1.1.pdf",
                             "size": 2048, "type": "pdf"}
    assert (built.case.state, built.case.version) == ("registered", 2)
    built.act("attach_evidence", evidence("2.1.1", "-b"))   # a second file on the same line
    built.act("attach_evidence", {**evidence("2.1.2"), "sha256": fake_sha("2.1.1")})   # one file, two lines
    assert built.case.evidence == (("2.1.1", fake_sha("2.1.1"), "2.1.1.pdf"),
                                   ("2.1.1", fake_sha("2.1.1-b"), "2.1.1-b.pdf"),
                                   ("2.1.2", fake_sha("2.1.1"), "2.1.2.pdf"))
    removed = built.act("remove_evidence", {"criterion": "2.1.1", "sha256": fake_sha("2.1.1")})
    assert removed.type == "EvidenceRemoved"
    assert removed.payload == {"criterion": "2.1.1", "sha256": fake_sha("2.1.1")}
    assert built.case.evidence == (("2.1.1", fake_sha("2.1.1-b"), "2.1.1-b.pdf"),
                                   ("2.1.2", fake_sha("2.1.1"), "2.1.2.pdf"))
    assert built.case.state == "registered"


def test_the_same_file_twice_on_a_criterion_is_refused() -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("attach_evidence", evidence("3.1.1"))
    found = problems_of(built.invalid("attach_evidence", {**evidence("3.1.1"), "filename": "renamed.pdf"}))
    assert list(found) == ["sha256"] and "already attached to 3.1.1" in found["sha256"]
    assert len(built.case.evidence) == 1


@pytest.mark.parametrize("data", [
    {"criterion": "3.1.1", "sha256": fake_sha("never attached")},
    {"criterion": "3.1.2", "sha256": fake_sha("3.1.1")},   # attached, but to another criterion
])
def test_removing_a_file_that_is_not_there_is_refused(data: dict[str, Any]) -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("attach_evidence", evidence("3.1.1"))
    found = problems_of(built.invalid("remove_evidence", data))
    assert list(found) == ["sha256"] and f"no such file on {data['criterion']}" in found["sha256"]


@pytest.mark.parametrize("action", ["attach_evidence", "remove_evidence"])
def test_evidence_for_an_unknown_criterion_is_refused(action: str) -> None:
    built = registered(ctx_of(SHANXI, SX))
    data = evidence("9.9.9") if action == "attach_evidence" else {"criterion": "9.9.9", "sha256": fake_sha("x")}
    found = problems_of(built.invalid(action, data))
    assert "criterion" in found and "no criterion '9.9.9'" in found["criterion"]


@pytest.mark.parametrize("field, value", [
    ("sha256", fake_sha("x").upper()), ("sha256", fake_sha("x")[:63]), ("sha256", "z" * 64), ("sha256", 12),
    ("size", 0), ("size", -1), ("size", True), ("size", "2048"), ("size", 1.5),
    ("filename", "a/b.pdf"), ("filename", "a\\b.pdf"), ("filename", ""), ("filename", "x" * 256),
    ("type", ""), ("type", "x" * 33), ("criterion", ""), ("criterion", 221),
])
def test_evidence_input_is_checked(field: str, value: Any) -> None:
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("attach_evidence", {**evidence("2.1.1"), field: value}))
    assert list(found) == [field]


def test_every_evidence_input_problem_is_listed_at_once() -> None:
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("attach_evidence", {"criterion": "2.1.1", "sha256": "ABC", "size": 0,
                                                          "colour": "red"}))
    assert set(found) == {"sha256", "size", "filename", "type", "colour"}


@pytest.mark.parametrize("state", ["submitted", "verified", "recheck", "certified", "not_certified", "withdrawn"])
@pytest.mark.parametrize("action", ["attach_evidence", "remove_evidence"])
def test_evidence_is_refused_outside_registered_self_assessed_and_rectification(action: str, state: str) -> None:
    ctx = ctx_of(SHANXI, SX)
    if state == "withdrawn":
        built = registered(ctx)
        built.act("withdraw", {"reason": REASON})
    else:
        built, _ = verified(ctx, sheet(SX, "90" if state in ("verified", "certified") else "60"))
        steps = {"submitted": [], "verified": [], "recheck": ["order_rectification", "request_recheck"],
                 "certified": ["certify"], "not_certified": ["order_rectification", "request_recheck"]}
        if state == "submitted":
            built = submitted(ctx)
        for step in steps[state]:
            built.act(step)
        if state == "not_certified":
            built.act("recheck", {"entries": sheet(SX, "60")})
    assert built.case.state == state
    data = evidence("1.1.1", "-new") if action == "attach_evidence" else {"criterion": "1.1.1",
                                                                         "sha256": fake_sha("1.1.1")}
    err = built.refused(action, data, UNIT)
    assert action not in built.allowed()
    assert err.details["state"] == state


def test_evidence_may_be_added_during_rectification() -> None:
    built, _ = verified(ctx_of(SHANXI, SX), sheet(SX, "79.5"))
    built.act("order_rectification")
    before = built.case.evidence
    built.act("attach_evidence", evidence("4.3.4", "-rectified"))
    built.act("remove_evidence", {"criterion": "1.1.1", "sha256": fake_sha("1.1.1")})
    assert built.case.state == "rectification"
    assert built.case.evidence == (*before[1:], ("4.3.4", fake_sha("4.3.4-rectified"), "4.3.4-rectified.pdf"))
    assert {"attach_evidence", "remove_evidence", "request_recheck"} <= set(built.allowed(UNIT))


@pytest.mark.parametrize("actor", [COORDINATOR, Actor("auditor", "x"), Actor("system", "s"), Actor("unit", "2")])
@pytest.mark.parametrize("action", ["attach_evidence", "remove_evidence"])
def test_only_the_unit_itself_and_admins_handle_evidence(actor: Actor, action: str) -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("attach_evidence", evidence("1.1.1"))
    data = evidence("1.1.1", "-2") if action == "attach_evidence" else {"criterion": "1.1.1",
                                                                       "sha256": fake_sha("1.1.1")}
    built.refused(action, data, actor)
    assert action not in built.allowed(actor)
    assert built.act(action, data, ADMIN).actor == "admin:a"


# ---------------------------------------------------------------- per-occurrence criteria
@pytest.mark.parametrize("code, points", [("2.2.2", 5), ("2.2.2", "5"), ("2.2.2", "3"), ("2.2.2", "0"),
                                          ("5.1.1", "2"), ("5.1.1", 4), ("5.2.2", "2"), ("5.1.2", "3")])
def test_per_occurrence_entries_are_points_as_printed(code: str, points: Any) -> None:
    """附件3 records 分项得分: "开展1项活动得2分，累计最高得4分" — one activity is written 2."""
    built = registered(ctx_of(SHANXI, SX))
    event = built.act("self_assess", {"entries": {code: points}})
    assert event.payload["entries"] == {code: str(points)}
    assert Decimal(event.payload["total"]) == Decimal(points)
    assert "counts" not in event.payload


@pytest.mark.parametrize("code, points, allowed", [("5.1.1", "3", "(0, 2, 4)"), ("5.1.1", "6", "(0, 2, 4)"),
                                                   ("2.2.2", "7", "(0, 1, 2, 3, 4, 5)"),
                                                   ("2.2.2", "123456", "(0, 1, 2, 3, 4, 5)"),
                                                   ("5.2.2", "1", "(0, 2, 4)")])
def test_impossible_points_are_refused_never_capped(code: str, points: str, allowed: str) -> None:
    """Nothing is ever silently capped: 7 on 2.2.2 ("每项得1分，最高得5分") is refused, not read as 5."""
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("self_assess", {"entries": {code: points}}))
    assert list(found) == [code] and found[code].startswith(f"{points} 分 is not possible") and allowed in found[code]
    assert built.case.self_entries is None


@pytest.mark.parametrize("code, count, points", [("5.1.1", 1, "2"), ("5.1.1", "1", "2"), ("5.1.1", 2, "4"),
                                                 ("5.1.1", 3, "4"), ("2.2.2", 7, "5"), ("5.2.2", 0, "0")])
def test_a_count_given_as_one_is_turned_into_points(code: str, count: Any, points: str) -> None:
    """A count only in a form that says so ({"count": N}): turned into points before scoring
    and storing, and kept beside them; "累计最高得4分" is the document's own maximum."""
    built = registered(ctx_of(SHANXI, SX))
    event = built.act("self_assess", {"entries": {code: {"count": count}}})
    assert event.payload["entries"] == {code: points}
    assert event.payload["counts"] == {code: int(count)}
    assert built.case.self_entries == {code: points}


@pytest.mark.parametrize("value", [{"count": 2.5}, {"count": -1}, {"count": "x"}, {"count": 1, "points": 2},
                                   {"times": 1}, {"count": 1001}])
def test_a_malformed_count_is_refused(value: Any) -> None:
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("self_assess", {"entries": {"5.1.1": value}}))
    assert list(found) == ["entries"] and "5.1.1" in found["entries"]


def test_a_count_for_a_criterion_scored_once_is_refused() -> None:
    built = registered(ctx_of(SHANXI, SX))
    found = problems_of(built.invalid("self_assess", {"entries": {"3.1.1": {"count": 1}}}))
    assert list(found) == ["3.1.1"] and "only for a criterion scored per occurrence" in found["3.1.1"]


def test_a_verification_sheet_is_points_too() -> None:
    assert sheet(SX, "80")["2.2.2"] == "5"   # sheet_for gives the cap: 5 rules × 1 分
    _, event = verified(ctx_of(SHANXI, SX), {**sheet(SX, "80"), "2.2.2": {"count": 7}})
    assert event.payload["entries"]["2.2.2"] == "5" and event.payload["counts"] == {"2.2.2": 7}
    assert Decimal(event.payload["total"]) == Decimal(80) and event.payload["passed"] is True


def test_a_per_occurrence_criterion_above_zero_needs_evidence() -> None:
    built = registered(ctx_of(SHANXI, SX))
    built.act("self_assess", {"entries": sheet_with(SX, {"2.2.2": "1"})})
    assert [p.where for p in submission_problems(built.case, built.ctx)] == ["2.2.2"]


# ---------------------------------------------------------------- how entries are stored
def test_entries_are_stored_in_rubric_order_as_exact_text() -> None:
    built = registered(ctx_of(SHANXI, SX))
    given = {"5.2.2": 4, "3.1.3": Decimal("0.50"), "2.2.2": "5", "1.1.1": " 8.5 "}
    event = built.act("self_assess", {"entries": given})
    assert list(event.payload["entries"].items()) == [("1.1.1", "8.5"), ("2.2.2", "5"), ("3.1.3", "0.50"),
                                                      ("5.2.2", "4")]
    assert list((built.case.self_entries or {}).items()) == list(event.payload["entries"].items())
    assert Decimal(event.payload["total"]) == Decimal("18")   # 8.5 + 5 + 0.5 + 4
    assert isinstance(event.payload["total"], str)
    assert json.loads(event.payload_json)["entries"] == event.payload["entries"]
    assert event.expected_hash() == event.hash

    # merging keeps rubric order
    event = built.act("self_assess", {"entries": {"4.1.1": "2", "2.1.1": "1"}})
    assert list(event.payload["entries"]) == ["1.1.1", "2.1.1", "2.2.2", "3.1.3", "4.1.1", "5.2.2"]

    # and so does a verification sheet given back to front
    submitted_case = submitted(ctx_of(SHANXI, SX))
    entries = sheet(SX, "85")
    backwards = dict(reversed(list(entries.items())))
    event = submitted_case.act("verify", {"entries": backwards})
    assert list(event.payload["entries"]) == [c.code for c in SX.criteria()]
    assert event.payload["entries"] == entries


def test_rubric_order_is_not_text_order() -> None:
    """Codes 1.1.9 and 1.1.10: the sheet is kept in rubric order, not sorted as text."""
    rubric = rubric_from_dict({
        "id": "ten", "title": "t", "province": "test", "total": 100, "pass_mark": 80,
        "sections": [{"code": "1", "name": "s", "max_points": 100, "items": [
            {"code": "1.1", "name": "i", "max_points": 100, "criteria": [
                {"code": f"1.1.{n}", "text": "x", "points": 10, "cap": 10, "per_occurrence": False}
                for n in range(1, 11)]}]}],
    }, "ten.yaml")
    built = registered(ctx_of(SHANXI, rubric))
    event = built.act("self_assess", {"entries": {"1.1.10": "10", "1.1.9": "9", "1.1.2": "2"}})
    assert list(event.payload["entries"]) == ["1.1.2", "1.1.9", "1.1.10"]
    assert list(built.case.self_entries or {}) == ["1.1.2", "1.1.9", "1.1.10"]


# ---------------------------------------------------------------- replay
def test_replay_of_the_events_equals_the_state() -> None:
    ctx = ctx_of(SHANXI, SX)
    built = registered(ctx)
    built.act("attach_evidence", evidence("1.1.1"))
    built.act("self_assess", {"entries": {"1.1.1": "9", "2.2.2": {"count": 7}}})
    built.act("attach_evidence", evidence("2.2.2"))
    rest = sheet(SX, "85")
    built.act("self_assess", {"entries": {c: v for c, v in rest.items() if c not in ("1.1.1", "2.2.2")}})
    built.attach_for({c: v for c, v in rest.items() if c not in ("1.1.1", "2.2.2")})
    built.act("attach_evidence", evidence("3.1.1", "-wrong"))
    built.act("remove_evidence", {"criterion": "3.1.1", "sha256": fake_sha("3.1.1-wrong")})
    built.act("submit")
    built.act("return", {"reason": REASON})
    built.act("self_assess", {"entries": {"4.3.4": "2"}})
    built.act("attach_evidence", evidence("4.3.4"))
    built.act("submit")
    built.act("verify", {"entries": sheet(SX, "79.5")})
    built.act("order_rectification")
    built.act("attach_evidence", evidence("4.3.3", "-rectified"))
    built.act("request_recheck")
    built.act("recheck", {"entries": sheet(SX, "88.5")})

    final = built.case
    assert final.state == "certified" and final.version == len(built.events)
    assert (final.self_total, final.verified_total, final.recheck_total, final.passed) == (
        Decimal(87), Decimal("79.5"), Decimal("88.5"), True)
    assert final.self_entries == {**rest, "4.3.4": "2", "2.2.2": "5"}
    assert ("3.1.1", fake_sha("3.1.1-wrong"), "3.1.1-wrong.pdf") not in final.evidence
    assert final.evidence[-1] == ("4.3.3", fake_sha("4.3.3-rectified"), "4.3.3-rectified.pdf")
    for n in range(1, len(built.events) + 1):
        assert replay(built.events[:n]) == built.states[n - 1]
    assert replay(built.events) == final


# ---------------------------------------------------------------- documents the submission needs
DOCS = (RequiredDocument("self_report", "自评报告"), RequiredDocument("score_sheet", "自评打分表", "附件3，单位盖章"))


def doc(document: str, tag: str = "") -> dict[str, Any]:
    return {"document": document, "sha256": fake_sha(document + tag), "filename": f"{document}{tag}.pdf",
            "size": 3000, "type": "pdf"}


def test_submit_is_refused_listing_the_documents_missing() -> None:
    """Shanxi: "10月20日前请将自评报告、自评打分表（见附件3）和佐证材料报省机关事务管理局" —
    the documents are attached to the case (not to a criterion) and submission lists what is missing."""
    ctx = RoundContext("r", SHANXI, SX.pass_mark, SX.total, SX, DOCS)
    built = registered(ctx)
    entries = sheet(SX, "90")
    built.act("self_assess", {"entries": entries})
    built.attach_for(entries)
    err = built.invalid("submit", None)
    assert isinstance(err, Incomplete)
    assert [(p.where, p.what, p.zh) for p in err.problems] == [
        ("documents.self_report", "自评报告 not attached", "未上传自评报告"),
        ("documents.score_sheet", "自评打分表 not attached", "未上传自评打分表")]
    event = built.act("attach_document", doc("self_report"))
    assert event.type == "DocumentAttached" and event.payload == doc("self_report")
    assert [p.where for p in submission_problems(built.case, ctx)] == ["documents.score_sheet"]
    built.act("attach_document", doc("score_sheet"))
    built.act("attach_document", doc("score_sheet", "-signed"))
    built.act("remove_document", {"document": "score_sheet", "sha256": fake_sha("score_sheet")})
    assert built.case.documents == (("self_report", fake_sha("self_report"), "self_report.pdf"),
                                    ("score_sheet", fake_sha("score_sheet-signed"), "score_sheet-signed.pdf"))
    built.act("submit")
    assert built.case.state == "submitted"
    assert replay(built.events) == built.case


def test_a_document_the_round_does_not_ask_for_is_refused() -> None:
    ctx = RoundContext("r", HUNAN, HN.pass_mark, HN.total, HN, (RequiredDocument("plan", "创建工作方案"),))
    built = registered(ctx)
    found = problems_of(built.invalid("attach_document", doc("self_report")))
    assert list(found) == ["document"] and "plan (创建工作方案)" in found["document"]
    built.act("attach_document", doc("plan"))
    assert "already attached" in problems_of(built.invalid("attach_document", doc("plan")))["sha256"]
    assert "no such file" in problems_of(built.invalid("remove_document", {"document": "plan",
                                                                          "sha256": fake_sha("x")}))["sha256"]


# ---------------------------------------------------------------- the contact form, once per round
def test_a_missed_contact_form_is_overdue_until_it_is_given() -> None:
    """"省级党政机关创建单位…请于6月5日前，将《…联系人信息表》（附件2）…发送": owed once per round,
    and a late form settles the miss (the case is no longer overdue)."""
    built = registered(ctx_of(SHANXI, SX))
    built.act("record_missed_deadline", {"milestone": "contact_form", "due_on": "2021-06-05",
                                         "noticed_on": "2021-06-06", "owed_in": ["contact_form"]},
              Actor("system", "sweep"))
    assert built.case.overdue and not built.case.contact_form
    built.act("self_assess", {"entries": {"1.1.1": "9"}})
    assert built.case.overdue   # still owed whatever else the unit does
    event = built.act("give_contact_form", {"how": "form", "contacts": 1}, UNIT)
    assert event.type == "ContactFormGiven" and event.payload == {"how": "form", "contacts": 1}
    assert built.case.contact_form and not built.case.overdue
    assert "already on file" in str(built.refused("give_contact_form", {"how": "confirmed", "contacts": 1}, UNIT))
    assert replay(built.events) == built.case


def test_ordering_rectification_implies_the_rectification_notice() -> None:
    """"未通过评价验收的部门需在20天之内完成整改": the 整改通知 goes out at once (an outbox notice in
    the same transaction), and again with the new date when the deadline is extended."""
    from workflow.domain.case import notices_for

    built, _ = verified(ctx_of(SHANXI, SX), sheet(SX, "76.5"))
    ordered = built.act("order_rectification")
    [notice] = notices_for(ordered)
    assert (notice.kind, notice.dedupe_key, notice.due_on.isoformat()) == (
        "rectification_notice", "rectification_notice:1:2021-11-30", "2021-11-30")
    extended = built.act("extend_rectification", {"reason": REASON, "days": 5})
    assert [n.dedupe_key for n in notices_for(extended)] == ["rectification_notice:1:2021-12-05"]
    assert notices_for(built.act("request_recheck")) == []
