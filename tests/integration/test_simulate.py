"""`workflow simulate`: scenarios checked before anything runs; the example rounds run
through the production services; mails to a maildir or an SMTP server."""
from __future__ import annotations

import json
import mailbox
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from notifications.testing import InMemoryTransport
from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings
from workflow.domain.errors import DomainError, InvalidInput
from workflow.simulate import load_scenario, run

from .smtp_server import SmtpServer, smtp_server  # noqa: F401

WORKFLOW = str(Path(sys.executable).parent / "workflow")
EXAMPLES = REPO_ROOT / "examples"

SMALL = """\
title: small
round: {province: shanxi, year: 2021, rubric: shanxi-2020, calendar: shanxi-2021, target_share: "0.5"}
start: 2021-10-10
end: 2021-11-12
jurisdictions: %s
units:
  - {name: 甲单位, jurisdiction: shanxi, category: 行政机关, contacts: [{name: 甲, email: jia@example.cn}]}
  - {name: 乙单位, jurisdiction: shanxi, category: 行政机关, contacts: [{name: 乙, email: yi@example.cn}]}
coordinators:
  - {jurisdiction: shanxi, name: 王科长, email: wang@example.cn}
actions:
  - {date: 2021-10-12, unit: 甲单位, do: self_assess, total: "90"}
  - {date: 2021-10-13, unit: 甲单位, do: submit}
  - {date: 2021-11-09, unit: 甲单位, do: verify, total: "90"}
  - {date: 2021-11-10, unit: 甲单位, do: certify}
  - {date: 2021-11-10, unit: 乙单位, do: certify}
""" % (EXAMPLES / "jurisdictions.csv")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    return subprocess.run([WORKFLOW, *args], env={**base, "COLUMNS": "200", **(env or {})}, capture_output=True,
                          text=True, timeout=600)


def test_a_malformed_scenario_names_every_line_and_runs_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("do: submit", "do: sumbit").replace("date: 2021-11-09", "on: 2021-11-09")
                   .replace("unit: 乙单位, do: certify", "unit: 丙单位, do: certify")
                   .replace('total: "90"}', 'total: 90.5}', 1), encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_scenario(bad)
    found = {(p.where, p.what.split(";")[0].split(" (")[0]) for p in caught.value.problems}
    assert (f"{bad}:12 actions[0].total", "total must be a number written as text, e.g. \"85.5\"") in found
    assert (f"{bad}:13 actions[1].do", "unknown action 'sumbit'") in found
    assert (f"{bad}:14 actions[2].True", "write date:, not on:") in found
    assert (f"{bad}:16 actions[4]", "unknown unit '丙单位'") in found
    db = tmp_path / "kept.db"
    done = _cli("simulate", str(bad), "--db", f"sqlite:///{db}")
    assert done.returncode == 2 and f"{bad}:13" in done.stderr and not db.exists()
    twins = tmp_path / "twins.yaml"
    twins.write_text(SMALL.replace("乙单位, jurisdiction: shanxi", "甲单位, jurisdiction: shanxi-taiyuan"),
                     encoding="utf-8")
    with pytest.raises(InvalidInput, match="two units are named '甲单位'"):
        load_scenario(twins)
    outcomes = tmp_path / "outcomes.yaml"
    outcomes.write_text(SMALL + "  - {date: 2021-11-10, unit: 甲单位, do: spot_check_outcome, outcome: problems}\n"
                        "  - {date: 2021-11-10, unit: 甲单位, do: national_result, outcome: fine}\n", encoding="utf-8")
    with pytest.raises(InvalidInput) as caught:
        load_scenario(outcomes)
    found = {p.where.split(" ")[-1]: p.what for p in caught.value.problems}
    assert found.keys() >= {f"actions[{n}].findings" for n in (5,)} | {"actions[6].outcome", "actions[6].document"}
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("title: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"syntax.yaml:2"):
        load_scenario(syntax)


def _application(tmp_path: Path, url: str) -> App:
    settings = Settings(database_url=url, maildir=tmp_path / "mail", evidence_dir=tmp_path / "ev")
    engine = make_engine(url)
    return App(settings=settings, engine=engine, db=Database(engine),
               clock=ManualClock(datetime(2021, 1, 1, tzinfo=UTC)),
               calendars=CalendarCatalog(REPO_ROOT / "calendars"))


def test_mails_go_to_an_smtp_server_and_refusals_are_reported(tmp_path: Path, smtp_server: SmtpServer) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL, encoding="utf-8")
    application = _application(tmp_path, f"sqlite:///{tmp_path}/s.db")
    result = run(load_scenario(scenario), application, smtp_server.transport())
    assert result.days == 34 and result.round_ids == ["shanxi-2021"]
    assert [(o.line, o.ok) for o in result.outcomes] == [(16, False)]  # 乙 was never verified
    assert "certify refused" in result.outcomes[0].what
    assert result.mails_sent == len(smtp_server.received) > 0
    assert smtp_server.to("yi@example.cn") and smtp_server.to("wang@example.cn")
    # the same scenario again on that database: it had finished, nothing more happens
    again = run(load_scenario(scenario), _application(tmp_path, f"sqlite:///{tmp_path}/s.db"), smtp_server.transport())
    assert again.resumed_after == result_end(scenario) and again.days == 0 and again.outcomes == []
    assert len(smtp_server.received) == result.mails_sent
    other = tmp_path / "other.yaml"
    other.write_text(SMALL.replace("title: small", "title: other"), encoding="utf-8")
    with pytest.raises(DomainError, match="not empty"):
        run(load_scenario(other), _application(tmp_path, f"sqlite:///{tmp_path}/s.db"), smtp_server.transport())


def result_end(scenario: Path):
    return load_scenario(scenario).end


def test_the_shanxi_example_round(tmp_path: Path) -> None:
    db, events = tmp_path / "shanxi.db", tmp_path / "events.jsonl"
    done = _cli("simulate", str(EXAMPLES / "shanxi-2021.yaml"), "--db", f"sqlite:///{db}", "--maildir",
                str(tmp_path / "mail"), "--events-out", str(events), "--timeline-rows", "5",
                env={"COLUMNS": "260"})  # the summary's rows unwrapped
    assert done.returncode == 0, done.stderr
    # the calendar's target, over all 35 agencies of the province
    # (33: one filed unit's title was revoked after the national bureau's spot check)
    assert "33/35 = 94.3% / 50% ✓" in done.stdout and "actions refused 0" in done.stdout
    # the bureaus' duties: 太原 reported its year, the 10 other cities did not; the province
    # recorded its spot checks and its filing with the national bureau
    assert "city_report: done 1, overdue 10" in done.stdout
    assert "spot_checks: done 1" in done.stdout and "national_filing: done 1" in done.stdout
    conn = sqlite3.connect(db)
    states = dict(conn.execute("SELECT state, count(*) FROM cases GROUP BY state"))
    assert states == {"filed": 33, "revoked": 1, "registered": 1}
    [revoked] = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM events WHERE type = 'TitleRevoked'")]
    assert revoked["decided_by"] == "national" and revoked["previous_state"] == "filed"
    assert revoked["draw"] == "shanxi-2021-filing-1" and revoked["reason"] == "能耗统计数据与实际不符"
    # the December spot check: three passed; 省国资委's problems held its title for 20 days of
    # rectification, its recheck passed, and it was filed with the others
    outcomes = conn.execute("SELECT o.check_id, u.name, o.outcome, o.consequence, o.due_on FROM spot_check_outcomes o "
                            "JOIN cases c ON c.id = o.case_id JOIN units u ON u.id = c.unit_id "
                            "ORDER BY o.check_id DESC, u.name").fetchall()
    assert sorted(outcomes) == sorted([
        ("shanxi-2021-spot-1", "省委统战部", "passed", "none", None),
        ("shanxi-2021-spot-1", "省农业农村厅", "passed", "none", None),
        ("shanxi-2021-spot-1", "省政府研究室", "passed", "none", None),
        ("shanxi-2021-spot-1", "省国资委", "problems", "rectification", "2021-12-30"),
        ("shanxi-2021-filing-1", "省委统战部", "passed", "none", None),
        ("shanxi-2021-filing-1", "省招生考试管理中心", "problems", "revoked", None)])
    held = conn.execute("SELECT e.type FROM events e JOIN cases c ON c.id = e.case_id JOIN units u ON u.id = c.unit_id "
                        "WHERE u.name = '省国资委' ORDER BY e.seq").fetchall()
    assert [t for (t,) in held][-5:] == ["SpotCheckDrawn", "SpotRectificationOrdered", "RecheckRequested",
                                         "CaseRechecked", "CaseFiled"]
    notice = [m for m in (tmp_path / "mail" / "new").iterdir() if "抽查发现问题" in _subject(m)]
    assert len(notice) == 1 and "能耗计量台账缺2021年7月至9月数据" in _body(notice[0])
    told = conn.execute("SELECT status FROM outbox WHERE kind = 'revocation_notice' AND channel_id IS NULL").fetchall()
    assert told == [("sent",)]
    lines = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == conn.execute("SELECT count(*) FROM events").fetchone()[0]
    rechecked = {e["case_id"] for e in lines if e["type"] == "CaseRechecked"}
    assert len(rechecked) == 4  # three after the November evaluation, 省国资委 after the spot check
    late = [e for e in lines if e["type"] == "DeadlineMissed" and e["payload"]["milestone"] == "self_assessment"]
    assert len(late) == 2  # 省信访局 (caught up) and 省贸促会 (never did)
    sent = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent' AND channel_id IS NULL").fetchone()[0]
    assert len(list(mailbox.Maildir(tmp_path / "mail", create=False).keys())) == sent > 0
    # the channels: the coordinators' digest in their WeCom group, 省贸促会 (no email) in the units' group
    robots = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((tmp_path / "robots").glob("*.json"))]
    channel_rows = conn.execute("SELECT count(*) FROM outbox WHERE status = 'sent' AND channel_id IS NOT NULL")
    assert len(robots) == channel_rows.fetchone()[0] > 0 and f"robot messages {len(robots)}" in done.stdout
    wecom = [r["body"]["markdown"]["content"] for r in robots if r["to"].startswith("https://qyapi.weixin.qq.com")]
    assert any("各位协调人员" in text and "省贸促会" in text for text in wecom), wecom[:2]  # a digest of misses
    dingtalk = [r for r in robots if r["to"].startswith("https://oapi.dingtalk.com")]
    assert dingtalk and all("省贸促会" in r["body"]["markdown"]["text"] or "省信访局" in r["body"]["markdown"]["text"]
                            for r in dingtalk)
    assert all("key=" not in r["to"] and "access_token" not in r["to"] for r in robots)
    duties = [(r[0], r[1], json.loads(r[2])["duty"]) for r in conn.execute(
        "SELECT jurisdiction_id, type, payload FROM duty_events ORDER BY position")]
    assert ("shanxi-taiyuan", "DutyDone", "city_report") in duties
    assert sum(1 for d in duties if d[1:] == ("DutyMissed", "city_report")) == 10
    assert ("shanxi", "DutyDone", "national_filing") in duties
    # the four rectifications (three after the evaluation, one after the spot check) got their
    # 整改通知 at once, each
    notices = conn.execute("SELECT count(*) FROM outbox WHERE kind = 'rectification_notice' AND status = 'sent' "
                           "AND channel_id IS NULL")
    assert notices.fetchone()[0] == 4
    # every unit's own misses only: the bureau's evaluation is not a unit's miss
    assert not [e for e in lines if e["type"] == "DeadlineMissed" and e["payload"]["milestone"] == "evaluation"]
    audit = _cli("audit", "verify", env={"WORKFLOW_DATABASE_URL": f"sqlite:///{db}"})
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "12 duty streams, 13 duty events" in audit.stdout   # 11 cities and the province


def test_the_hunan_plan_over_three_years_reaches_25_50_70_percent_of_all_agencies(tmp_path: Path) -> None:
    """湘管发〔2020〕12号: "至2020年底有25%左右建成节约型机关；至2021年底有50%左右…；至2022年底有70%左右"
    — of all twenty agencies, taking part that year or not; the targets are the calendar's."""
    db = tmp_path / "hunan3.db"
    done = _cli("simulate", str(EXAMPLES / "hunan-2020-2022.yaml"), "--db", f"sqlite:///{db}", "--maildir",
                str(tmp_path / "mail"), "--timeline-rows", "0")
    assert done.returncode == 0, done.stderr
    assert "actions refused 0" in done.stdout
    for line in ("5/20 = 25.0% / 25% ✓", "11/20 = 55.0% / 50% ✓", "14/20 = 70.0% / 70% ✓"):
        assert line in done.stdout, done.stdout
    conn = sqlite3.connect(db)
    targets = dict(conn.execute("SELECT id, target_share FROM rounds"))
    assert targets == {"hunan-2020": "0.25", "hunan-2021": "0.5", "hunan-2022": "0.7"}
    # 5.1.1 given as two activities (a count): recorded as 4 分, the count beside it
    counted = [json.loads(p) for (p,) in conn.execute("SELECT payload FROM events WHERE type = "
                                                       "'SelfAssessmentRecorded' AND payload LIKE '%counts%'")]
    assert counted and counted[0]["counts"] == {"5.1.1": 2} and counted[0]["entries"]["5.1.1"] == "4"
    done_duties = conn.execute("SELECT round_id, jurisdiction_id, payload FROM duty_events WHERE type = 'DutyDone'")
    recorded = {(r, j, json.loads(p)["duty"]) for r, j, p in done_duties}
    assert {("hunan-2021", "hunan-changsha", "city_filing"), ("hunan-2022", "hunan", "national_filing"),
            ("hunan-2020", "hunan", "results")} <= recorded
    audit = _cli("audit", "verify", env={"WORKFLOW_DATABASE_URL": f"sqlite:///{db}"})
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_the_hunan_example_carries_failed_units_into_2022(tmp_path: Path) -> None:
    db = tmp_path / "hunan.db"
    done = _cli("simulate", str(EXAMPLES / "hunan-2021.yaml"), "--db", f"sqlite:///{db}", "--maildir",
                str(tmp_path / "mail"), "--timeline-rows", "0")
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT round_id, state, carried_over_from FROM cases ORDER BY id").fetchall()
    assert [r[1] for r in rows if r[0] == "hunan-2021"].count("not_certified") == 2
    carried = [r for r in rows if r[0] == "hunan-2022"]
    assert len(carried) == 2 and all(r[1] == "filed" and r[2] is not None for r in carried)


def test_a_refused_sheet_in_a_scenario_shows_every_problem(tmp_path: Path) -> None:
    """Every front shows the domain's full list for a refused sheet, never a bare "invalid input"."""
    scenario = tmp_path / "refused.yaml"
    scenario.write_text(SMALL.replace('do: self_assess, total: "90"}',
                                      'do: self_assess, entries: {"5.1.1": "3", "2.2.2": "7"}}'), encoding="utf-8")
    result = run(load_scenario(scenario), _application(tmp_path, f"sqlite:///{tmp_path}/r.db"),
                 InMemoryTransport())
    [refused, *_] = result.refused
    assert refused.line == 12
    assert "5.1.1: 3 分 is not possible: 2 分 per activity, up to 4 (0, 2, 4)" in refused.what
    assert "2.2.2: 7 分 is not possible: 1 分 per rule, up to 5 (0, 1, 2, 3, 4, 5)" in refused.what


# ---------------------------------------------------------------- its files: temporary, or kept beside --db
def _leftovers(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.glob("workflow-simulate-*"))


def test_a_run_without_db_leaves_no_temporary_files(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL, encoding="utf-8")
    done = _cli("simulate", str(scenario), "--maildir", str(tmp_path / "mail"), "--timeline-rows", "0",
                env={"TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr
    assert "database: temporary, removed at the end" in done.stdout
    assert _leftovers(tmp) == [] and list(tmp.iterdir()) == []
    assert any((tmp_path / "mail" / "new").iterdir())  # the mails are kept: they are the output
    # a run that fails half-way (an unknown rubric: refused when the round opens) cleans up too
    broken = tmp_path / "broken.yaml"
    broken.write_text(SMALL.replace("rubric: shanxi-2020", "rubric: shanxi-1999"), encoding="utf-8")
    failed = _cli("simulate", str(broken), "--maildir", str(tmp_path / "mail2"), env={"TMPDIR": str(tmp)})
    assert failed.returncode == 2 and "shanxi-1999" in failed.stderr, failed.stdout + failed.stderr
    assert _leftovers(tmp) == []


def test_a_run_with_db_keeps_the_evidence_beside_it(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL, encoding="utf-8")
    kept = tmp_path / "kept"
    done = _cli("simulate", str(scenario), "--db", f"sqlite:///{kept / 'small.db'}", "--maildir",
                str(tmp_path / "mail"), "--timeline-rows", "0", env={"TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr
    evidence = kept / "small-evidence"
    assert f"evidence: {evidence}" in done.stdout
    assert sorted(p.name for p in kept.iterdir() if not p.name.startswith("small.db")) == ["small-evidence"]
    stored = [p for p in evidence.rglob("*") if p.is_file()]
    (attached,), = sqlite3.connect(kept / "small.db").execute(
        "SELECT count(DISTINCT json_extract(payload, '$.sha256')) FROM events WHERE type = 'EvidenceAttached'")
    assert attached > 0 and len(stored) >= attached  # every attached file is there to read
    assert _leftovers(tmp) == []


def _subject(path: Path) -> str:
    from email import message_from_bytes, policy

    return str(message_from_bytes(path.read_bytes(), policy=policy.default)["Subject"])


def _body(path: Path) -> str:
    from email import message_from_bytes, policy

    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""
