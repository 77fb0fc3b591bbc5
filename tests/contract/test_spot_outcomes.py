"""What a spot check found, case by case (回头看), on the memory store, SQLite and PostgreSQL:
passed keeps the title; problems lead where the round's policy says (rectification with the
title held, or revocation); the national bureau's results for a filing batch revoke; every
problem of a request said at once and nothing written."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from workflow.domain.errors import ActionRefused, InvalidInput, NotFound
from workflow.service.audit import verify
from workflow.service.cases import perform_action, read_case
from workflow.service.deadlines import sweep
from workflow.service.oversight import file_round, spot_check
from workflow.service.ports import Storage
from workflow.service.reports import progress
from workflow.service.spot_outcomes import list_outcomes, record_national_results, record_spot_check_outcomes

from ..support import CALENDARS, COORDINATOR, RUBRICS, sheet_for, unit_actor
from .worlds import NOW, RECTIFICATION_POLICY, World, add_round, certify, directory, register, round_record

LATER = NOW + timedelta(days=200)  # 2021-12-18
SPOT_RECTIFY = {**RECTIFICATION_POLICY, "spot_check": {"on_problems": "rectification", "rectification_days": 20}}
SPOT_REVOKE = {**RECTIFICATION_POLICY, "spot_check": {"on_problems": "revoke"}}
NAMES = ("省直甲", "省直乙", "太原丙", "小店丁", "大同戊")
FINDINGS = "能耗统计台账缺7月至9月数据"


def world_with(db: Storage, policy: dict) -> tuple[World, str]:
    """Five certified cases of shanxi-2021 (under ``policy``) and a spot check drawing all of them."""
    world = directory(db)
    add_round(db, round_record(policy=policy))
    for name in NAMES:
        certify(world, name, register(world, name))
    check = spot_check(db, "shanxi-2021", "shanxi", share="1", seed=7, actor=COORDINATOR, now=LATER)
    assert sorted(check.drawn) == sorted(world.cases[n] for n in NAMES)
    return world, check.id


def certified_to_date(db: Storage) -> int:
    return progress(db, "shanxi-2021", "/shanxi/").rows[0].certified_to_date


def test_passed_keeps_the_title_and_problems_hold_it_for_rectification(storage: Storage) -> None:
    world, check = world_with(storage, SPOT_RECTIFY)
    a, b = world.cases["省直甲"], world.cases["省直乙"]
    before = certified_to_date(storage)
    records = record_spot_check_outcomes(storage, "shanxi-2021", check, [
        {"case_id": a, "outcome": "passed"},
        {"case_id": b, "outcome": "problems", "findings": FINDINGS, "evidence": "晋直管函〔2021〕60号"},
    ], actor=COORDINATOR, now=LATER)
    assert [(r.case_id, r.outcome, r.consequence, r.due_on) for r in records] == [
        (a, "passed", "none", None), (b, "problems", "rectification", date(2022, 1, 7))]
    assert read_case(storage, a).case.state == "certified"
    held = read_case(storage, b, events=True)
    assert (held.case.state, held.case.held_title) == ("rectification", "certified")
    assert held.events[-1].type == "SpotRectificationOrdered"
    assert held.events[-1].payload["findings"] == FINDINGS
    assert certified_to_date(storage) == before - 1  # a held title does not count
    notices = [r.kind for r in storage.outbox.rows(case_id=b)]
    assert "rectification_notice" in notices
    assert [r.case_id for r in list_outcomes(storage, "shanxi-2021", check)] == sorted([a, b])
    assert verify(storage).ok
    # the unit rectifies and asks for the recheck; a passing recheck gives the title back
    perform_action(storage, b, "request_recheck", {}, unit_actor(world.unit("省直乙")), LATER)
    perform_action(storage, b, "recheck", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "88")}, COORDINATOR,
                   LATER + timedelta(days=3))
    back = read_case(storage, b).case
    assert (back.state, back.held_title) == ("certified", None)
    assert certified_to_date(storage) == before
    assert verify(storage).ok


def test_a_held_title_is_revoked_when_its_rectification_runs_out(storage: Storage) -> None:
    world, check = world_with(storage, SPOT_RECTIFY)
    b = world.cases["太原丙"]
    record_spot_check_outcomes(storage, "shanxi-2021", check, [{"case_id": b, "outcome": "problems",
                                                                 "findings": FINDINGS}], actor=COORDINATOR, now=LATER)
    sweep(storage, CALENDARS, LATER + timedelta(days=21))
    case = read_case(storage, b, events=True)
    assert case.case.state == "revoked"
    assert case.events[-1].type == "RectificationExpired"
    assert verify(storage).ok


def test_under_a_revoke_policy_problems_revoke_at_once(storage: Storage) -> None:
    world, check = world_with(storage, SPOT_REVOKE)
    b = world.cases["大同戊"]
    before = certified_to_date(storage)
    [record] = record_spot_check_outcomes(storage, "shanxi-2021", check, [
        {"case_id": b, "outcome": "problems", "findings": FINDINGS, "evidence": "湘管函〔2021〕8号"}],
        actor=COORDINATOR, now=LATER)
    assert (record.consequence, record.decided_by) == ("revoked", "province")
    case = read_case(storage, b, events=True)
    assert case.case.state == "revoked"
    assert case.events[-1].payload == {"reason": FINDINGS, "decided_by": "province", "previous_state": "certified",
                                       "evidence": "湘管函〔2021〕8号", "draw": check}
    assert certified_to_date(storage) == before - 1
    assert [r.kind for r in storage.outbox.rows(case_id=b)].count("revocation_notice") == 1
    assert verify(storage).ok


def test_every_problem_of_a_request_at_once_and_nothing_written(storage: Storage) -> None:
    world, check = world_with(storage, SPOT_RECTIFY)
    a = world.cases["省直甲"]
    bad = [{"case_id": a, "outcome": "problems"},                       # no findings
           {"case_id": a, "outcome": "passed"},                         # the same case twice
           {"case_id": "x", "outcome": "fine", "color": 1},             # not a case, not an outcome, unknown field
           {"case_id": a + 1000, "outcome": "passed", "findings": "x" * 2001}]
    with pytest.raises(InvalidInput) as err:
        record_spot_check_outcomes(storage, "shanxi-2021", check, bad, actor=COORDINATOR, now=LATER)
    wheres = [p.where for p in err.value.problems]
    assert wheres == ["outcomes[0].findings", "outcomes[1].case_id", "outcomes[2].color", "outcomes[2].case_id",
                      "outcomes[2].outcome", "outcomes[3].findings"]
    assert all(p.zh for p in err.value.problems)
    # well-formed, but a case not drawn and one already recorded
    record_spot_check_outcomes(storage, "shanxi-2021", check, [{"case_id": a, "outcome": "passed"}],
                               actor=COORDINATOR, now=LATER)
    with pytest.raises(InvalidInput) as err:
        record_spot_check_outcomes(storage, "shanxi-2021", check, [
            {"case_id": world.cases["省直乙"], "outcome": "problems", "findings": FINDINGS},
            {"case_id": a, "outcome": "passed"}, {"case_id": 99999, "outcome": "passed"}],
            actor=COORDINATOR, now=LATER)
    assert [p.where for p in err.value.problems] == ["outcomes[1].case_id", "outcomes[2].case_id"]
    assert "already has an outcome" in err.value.problems[0].what
    assert read_case(storage, world.cases["省直乙"]).case.state == "certified"  # nothing written
    with pytest.raises(NotFound):
        record_spot_check_outcomes(storage, "shanxi-2021", "shanxi-2021-spot-9", [{"case_id": a, "outcome": "passed"}],
                                   actor=COORDINATOR, now=LATER)
    with pytest.raises(InvalidInput):
        record_spot_check_outcomes(storage, "shanxi-2021", check, [], actor=COORDINATOR, now=LATER)


def test_a_round_without_a_spot_check_policy_refuses_problems_saying_so(storage: Storage) -> None:
    world, check = world_with(storage, RECTIFICATION_POLICY)
    with pytest.raises(ActionRefused) as err:
        record_spot_check_outcomes(storage, "shanxi-2021", check, [
            {"case_id": world.cases["省直甲"], "outcome": "passed"},
            {"case_id": world.cases["省直乙"], "outcome": "problems", "findings": FINDINGS}],
            actor=COORDINATOR, now=LATER)
    assert "policy.spot_check" in str(err.value) and "policy.spot_check" in err.value.message_zh
    assert list_outcomes(storage, "shanxi-2021") == []  # not even the pass: one transaction


def test_the_national_bureaus_results_for_a_filing_batch(storage: Storage) -> None:
    world, _ = world_with(storage, SPOT_RECTIFY)
    batch = file_round(storage, "shanxi-2021", "shanxi", actor=COORDINATOR, now=LATER)
    a, b = world.cases["省直甲"], world.cases["小店丁"]
    before = certified_to_date(storage)
    records = record_national_results(storage, batch.id, [
        {"case_id": a, "outcome": "passed"},
        {"case_id": b, "outcome": "problems", "findings": "实地抽查：垃圾分类未落实"}],
        document="国管节能〔2022〕21号", actor=COORDINATOR, now=LATER + timedelta(days=100))
    assert [(r.outcome, r.consequence, r.decided_by, r.evidence) for r in records] == [
        ("passed", "none", "national", "国管节能〔2022〕21号"), ("problems", "revoked", "national", "国管节能〔2022〕21号")]
    assert read_case(storage, a).case.state == "filed"
    revoked = read_case(storage, b, events=True)
    assert revoked.case.state == "revoked" and revoked.events[-1].payload["decided_by"] == "national"
    assert certified_to_date(storage) == before - 1
    with pytest.raises(InvalidInput) as err:
        record_national_results(storage, batch.id, [{"case_id": a, "outcome": "passed"}], document=" ",
                                actor=COORDINATOR, now=LATER)
    assert [p.where for p in err.value.problems] == ["document"]
    with pytest.raises(InvalidInput) as err:  # a case of the batch already revoked; one not in the batch
        record_national_results(storage, batch.id, [{"case_id": b, "outcome": "passed"},
                                                    {"case_id": 99999, "outcome": "passed"}],
                                document="国管节能〔2022〕22号", actor=COORDINATOR, now=LATER)
    assert [p.where for p in err.value.problems] == ["results[0].case_id", "results[1].case_id"]
    assert verify(storage).ok
