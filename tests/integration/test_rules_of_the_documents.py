"""The rules as the documents write them, through the services on SQLite and PostgreSQL:
targets over all agencies (per year, level and jurisdiction), units certified before the
system, the calendar a round takes, the contact form once per round, the documents a
submission needs, and the jurisdictions' own duties (reminded to their coordinators only,
missed on their own streams, recorded done with what they need, verified by the audit)."""
from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import text

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.store import Database
from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.config import REPO_ROOT
from workflow.domain.errors import ActionRefused, InvalidInput, NotFound
from workflow.files import import_units
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.deadlines import sweep
from workflow.service.directory import add_coordinator, give_contact_form, update_unit
from workflow.service.duties import duty_board, duty_history, record_duty
from workflow.service.oversight import file_round
from workflow.service.queries import list_cases
from workflow.service.reports import progress
from workflow.service.rounds import open_round, roll_over

from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    OPERATOR_NOW,
    RUBRICS,
    attach_documents,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    unit_actor,
)

SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, hour: int = 10) -> datetime:
    return datetime(y, m, d, hour, tzinfo=SH)


def hunan_units(db: Database, tmp_path: Path) -> None:
    """Four provincial agencies of Hunan (one certified in 2019, before the plan) and two of 长沙."""
    seed_jurisdictions(db)
    csv = tmp_path / "hunan.csv"
    csv.write_text("单位名称,所属地区,类别,联系人,电子邮箱,已建成年份,建成依据\n"
                   "省甲厅,hunan,行政机关,甲,jia@hn.example.cn,2019,国管局2019年名单\n"
                   "省乙厅,hunan,行政机关,乙,yi@hn.example.cn,,\n"
                   "省丙厅,hunan,行政机关,丙,bing@hn.example.cn,,\n"
                   "省丁厅,hunan,行政机关,丁,ding@hn.example.cn,,\n"
                   "长沙甲局,hunan-changsha,行政机关,戊,wu@cs.example.cn,,\n"
                   "长沙乙局,hunan-changsha,行政机关,己,ji@cs.example.cn,,\n", encoding="utf-8")
    import_units(db, csv, at(2020, 5, 1), actor=OPERATOR)


def cases_by_name(db: Database, round_id: str) -> dict[str, tuple[int, int]]:
    return {r.unit_name: (r.id, r.unit_id) for r in list_cases(db, round_id=round_id, limit=1000)}


def certify(db: Database, case_id: int, unit_id: int, now: datetime, rubric_id: str = "hunan-2020") -> None:
    ready_to_submit(db, case_id, unit_id, "90", now, RUBRICS.get(rubric_id))
    perform_action(db, case_id, "submit", {}, unit_actor(unit_id), now)
    perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRICS.get(rubric_id), "90")}, COORDINATOR, now)
    perform_action(db, case_id, "certify", {}, COORDINATOR, now)


# ---------------------------------------------------------------- targets over all agencies

def test_hunan_targets_are_shares_of_all_agencies_certified_to_date(db: Database, tmp_path: Path) -> None:
    """湘管发〔2020〕12号: "全省县级以上党政机关，至2020年底有25%左右建成节约型机关；至2021年底有50%左右…"
    The share counts every agency in scope (taking part this year or not), certified in this round or an
    earlier one, or recorded as certified before the system; not one withdrawn since."""
    hunan_units(db, tmp_path)
    opened = open_round(db, RUBRICS, CALENDARS, province_id="hunan", year=2020, rubric_id="hunan-2020",
                        calendar_id=None, target_share=None, actor=ADMIN, now=at(2020, 5, 20))
    # no target given: the calendar's schedule; the agency certified in 2019 is not registered again
    assert (opened.calendar_id, opened.target_share, opened.registered, opened.already_certified) == (
        "hunan", Decimal("0.25"), 5, 1)
    cases = cases_by_name(db, "hunan-2020")
    certify(db, *cases["省乙厅"], at(2020, 11, 10))
    report = progress(db, "hunan-2020", "/hunan/")
    top, rows = report.rows[0], {r.jurisdiction_id: r for r in report.rows}
    assert (top.agencies, top.certified_to_date, top.certified_share) == (6, 2, Decimal("0.3333"))
    assert top.target == Decimal("0.25") and top.target_met() is True   # 2 ≥ 0.25 × 6
    assert top.round_pass_rate == Decimal("0.2000")                     # 1 of the 5 cases of the round
    assert (top.by_level["provincial"].agencies, top.by_level["provincial"].certified) == (4, 2)
    assert (top.by_level["city"].agencies, top.by_level["city"].certified) == (2, 0)
    assert (rows["hunan-changsha"].agencies, rows["hunan-changsha"].certified_to_date) == (2, 0)
    assert rows["hunan-zhuzhou"].agencies == 0 and rows["hunan-zhuzhou"].certified_share is None

    later = roll_over(db, RUBRICS, CALENDARS, "hunan-2020", actor=ADMIN, now=at(2021, 5, 20))
    assert (later.round_id, later.target_share, later.registered) == ("hunan-2021", Decimal("0.5"), 4)
    # 2020's certification counts in 2021 (to date); a certified case withdrawn since does not
    report = progress(db, "hunan-2021", "/hunan/")
    assert (report.rows[0].certified_to_date, report.target_share) == (2, Decimal("0.5"))
    cases = cases_by_name(db, "hunan-2021")
    certify(db, *cases["长沙甲局"], at(2021, 11, 10))
    perform_action(db, cases_by_name(db, "hunan-2020")["省乙厅"][0], "withdraw", {"reason": "撤销认定"},
                   COORDINATOR, at(2021, 12, 1))
    top = progress(db, "hunan-2021", "/hunan/").rows[0]
    assert (top.certified_to_date, top.target_met()) == (2, False)   # 甲 (2019) + 长沙甲局; 乙 withdrawn
    assert progress(db, "hunan-2020", "/hunan/").rows[0].certified_to_date == 1   # 2020's own view, to date
    assert verify(db).ok


def test_targets_per_level_and_per_jurisdiction_apply_where_they_are_set(db: Database, tmp_path: Path) -> None:
    """Some provinces set different targets per level (provincial, city, county), or per city."""
    hunan_units(db, tmp_path)
    folder = tmp_path / "calendars"
    folder.mkdir()
    data = yaml.safe_load((REPO_ROOT / "calendars" / "hunan.yaml").read_text(encoding="utf-8"))
    data["targets"] = [{"year": 2020, "share": "0.25"}, {"year": 2020, "share": "0.4", "level": "city"},
                       {"year": 2020, "share": "0.6", "jurisdiction": "hunan-changsha"}]
    (folder / "hunan.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    open_round(db, RUBRICS, CalendarCatalog(folder), province_id="hunan", year=2020, rubric_id="hunan-2020",
               calendar_id="hunan", target_share=None, actor=ADMIN, now=at(2020, 5, 20))
    rows = {r.jurisdiction_id: r for r in progress(db, "hunan-2020", "/hunan/").rows}
    assert rows["hunan"].target == Decimal("0.25") and rows["hunan-changsha"].target == Decimal("0.6")
    assert rows["hunan-zhuzhou"].target == Decimal("0.25")
    assert rows["hunan"].by_level["city"].target == Decimal("0.4")
    assert rows["hunan"].by_level["provincial"].target == Decimal("0.25")
    assert rows["hunan-changsha"].by_level["city"].target == Decimal("0.4")


def test_a_round_past_the_schedule_needs_its_target_given(db: Database, tmp_path: Path) -> None:
    """Shanxi's notice sets 50% for 2021 only: a 2022 round without a target is refused, saying so."""
    seed_jurisdictions(db)
    import_units(db, REPO_ROOT / "examples" / "shanxi-2021-units.csv", at(2021, 5, 26), actor=OPERATOR)
    first = open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                       calendar_id=None, target_share=None, actor=ADMIN, now=at(2021, 5, 26))
    assert (first.calendar_id, first.target_share) == ("shanxi-2021", Decimal("0.5"))
    with pytest.raises(InvalidInput) as err:
        roll_over(db, RUBRICS, CALENDARS, "shanxi-2021", actor=ADMIN, now=at(2022, 5, 26))
    [problem] = err.value.problems
    assert problem.where == "target_share" and "sets no target for 2022" in problem.what and problem.zh
    rolled = roll_over(db, RUBRICS, CALENDARS, "shanxi-2021", target_share="0.6", actor=ADMIN, now=at(2022, 5, 26))
    # the standing calendar serves 2022 (the 2021 notice served 2021 only)
    assert (rolled.round_id, rolled.calendar_id, rolled.registered) == ("shanxi-2022", "shanxi", 35)
    with db.engine.connect() as conn:
        documents = conn.execute(text("SELECT documents FROM rounds WHERE id = 'shanxi-2022'")).scalar()
    assert [d["name"] for d in (json.loads(documents) if isinstance(documents, str) else documents)] == [
        "自评报告", "自评打分表"]


def test_a_unit_certified_before_is_recorded_and_counts(db: Database, tmp_path: Path) -> None:
    hunan_units(db, tmp_path)
    with pytest.raises(InvalidInput) as err:
        update_unit(db, 2, {"certified_year": "去年"}, at(2020, 5, 1), actor=OPERATOR)
    assert [p.where for p in err.value.problems] == ["unit.certified_year"]
    unit = update_unit(db, 2, {"certified_year": 2020, "certified_note": "省级示范单位"}, at(2020, 5, 1), actor=OPERATOR)
    assert (unit.certified_year, unit.certified_note) == (2020, "省级示范单位")
    opened = open_round(db, RUBRICS, CALENDARS, province_id="hunan", year=2020, rubric_id="hunan-2020",
                        calendar_id="hunan", target_share=None, actor=ADMIN, now=at(2020, 5, 20))
    assert (opened.registered, opened.already_certified) == (4, 2)
    assert progress(db, "hunan-2020", "/hunan/").rows[0].certified_to_date == 2


# ---------------------------------------------------------------- the contact form, once per round

def test_the_contact_form_is_given_once_per_round_and_settles_a_miss(db: Database, tmp_path: Path) -> None:
    """"请于6月5日前，将《省级党政机关创建工作联系人信息表》（附件2）…": a contact on file from a roster
    counts for the round only when the unit confirms it; a late form clears the unit's overdue."""
    seed_jurisdictions(db)
    csv = tmp_path / "u.csv"
    csv.write_text("name,jurisdiction,category,contact_name,contact_email\n甲局,shanxi,行政机关,甲,jia@sx.example.cn\n"
                   "乙局,shanxi,行政机关,,\n", encoding="utf-8")
    import_units(db, csv, at(2021, 5, 26), actor=OPERATOR)
    open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
               calendar_id="shanxi-2021", target_share=None, actor=ADMIN, now=at(2021, 5, 26))
    cases = cases_by_name(db, "shanxi-2021")
    (jia_case, jia), (yi_case, yi) = cases["甲局"], cases["乙局"]
    with pytest.raises(InvalidInput, match="no contact on file"):
        give_contact_form(db, yi, None, unit_actor(yi), at(2021, 6, 1))
    confirmed = give_contact_form(db, jia, None, unit_actor(jia), at(2021, 6, 1))
    assert confirmed.cases == [jia_case]
    with pytest.raises(InvalidInput, match="no open case"):
        give_contact_form(db, jia, None, unit_actor(jia), at(2021, 6, 2))   # already on file for this round
    sweep(db, CALENDARS, at(2021, 6, 6, 9))
    with db.unit_of_work() as uow:
        assert not uow.get(jia_case).overdue
        yi_state = uow.get(yi_case)
    assert yi_state.overdue and [m for m, _ in yi_state.missed] == ["contact_form"]
    given = give_contact_form(db, yi, [{"name": "乙", "phone": "0351-1234567", "email": "yi@sx.example.cn"}],
                              unit_actor(yi), at(2021, 6, 8))
    assert given.cases == [yi_case] and given.contacts[0]["email"] == "yi@sx.example.cn"
    with db.unit_of_work() as uow:
        late = uow.get(yi_case)
        event = uow.events(yi_case)[-1]
    assert not late.overdue and late.contact_form
    assert (event.type, event.payload) == ("ContactFormGiven", {"how": "form", "contacts": 1})
    assert "email" not in json.dumps(event.payload)   # a person's details stay out of the immutable log
    with pytest.raises(InvalidInput) as err:
        give_contact_form(db, yi, [{"name": "", "email": "bad"}], unit_actor(yi), at(2021, 6, 9))
    assert {p.where for p in err.value.problems} >= {"unit.contacts[0].name", "unit.contacts[0].email"}
    assert verify(db).ok


# ---------------------------------------------------------------- the jurisdictions' duties

@pytest.fixture
def shanxi(db: Database) -> Database:
    seed_jurisdictions(db)
    import_units(db, REPO_ROOT / "examples" / "shanxi-2021-units.csv", at(2021, 5, 26), actor=OPERATOR)
    open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
               calendar_id="shanxi-2021", target_share=None, actor=ADMIN, now=at(2021, 5, 26))
    return db


def outbox(db: Database, kind: str) -> list[tuple[int, str]]:
    with db.engine.connect() as conn:
        return [(r.coordinator_id, json.loads(r.context)) for r in conn.execute(
            text("SELECT coordinator_id, context FROM outbox WHERE kind = :kind ORDER BY id"), {"kind": kind})]


def test_a_citys_report_is_reminded_to_its_own_coordinators_and_missed_on_its_own_stream(
        shanxi: Database, tmp_path: Path) -> None:
    """"各市公共机构节能主管部门…将年度创建总体情况于11月底前报省机关事务管理局": owed by each city;
    reminders to that city's coordinators only; a miss on the city's own stream, escalated to the
    province; never on a unit's case."""
    db = shanxi
    province = add_coordinator(db, "shanxi", "王科长", "wang@sx.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    taiyuan = add_coordinator(db, "shanxi-taiyuan", "张主任", "zhang@ty.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    datong = add_coordinator(db, "shanxi-datong", "钱主任", "qian@dt.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    sweep(db, CALENDARS, at(2021, 11, 16, 9))   # 14 days before November 30
    reminders = outbox(db, "duty_reminder")
    assert sorted((cid, ctx["jurisdiction_id"]) for cid, ctx in reminders) == [
        (taiyuan.id, "shanxi-taiyuan"), (datong.id, "shanxi-datong")]   # not the province's coordinators

    blobs = LocalEvidenceStore(tmp_path / "blobs", max_bytes=1_000_000)
    report = b"%PDF-1.4\n% taiyuan 2021\n%%EOF\n"
    with pytest.raises(InvalidInput) as err:
        record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi-taiyuan", "city_report",
                    actor=COORDINATOR, now=at(2021, 11, 25))
    assert [p.where for p in err.value.problems] == ["attachment"]   # the report itself is needed
    with pytest.raises(ActionRefused, match="owed by each city"):
        record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi", "city_report", actor=COORDINATOR,
                    now=at(2021, 11, 25), files=[("r.pdf", report)])
    with pytest.raises(NotFound, match="no duty 'town_report'"):
        record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi-taiyuan", "town_report", actor=COORDINATOR,
                    now=at(2021, 11, 25))
    done = record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi-taiyuan", "city_report", actor=COORDINATOR,
                       now=at(2021, 11, 25), files=[("太原市年度创建总体情况.pdf", report)], note="已报省局")
    assert done.payload["attachments"][0]["filename"] == "太原市年度创建总体情况.pdf" and not done.payload["late"]
    assert blobs.open(done.payload["attachments"][0]["sha256"]) == report

    sweep(db, CALENDARS, at(2021, 11, 23, 9))
    assert [ctx["jurisdiction_id"] for _, ctx in outbox(db, "duty_reminder")].count("shanxi-taiyuan") == 1
    sweep(db, CALENDARS, at(2021, 12, 1, 9))
    board = {(d.duty, d.jurisdiction_id): d for d in duty_board(db, CALENDARS, "shanxi-2021", "/shanxi/",
                                                                date(2021, 12, 1))}
    assert board[("city_report", "shanxi-taiyuan")].status == "done"
    assert board[("city_report", "shanxi-datong")].status == "overdue"
    assert [e.type for e in duty_history(db, "shanxi-2021", "shanxi-datong")] == ["DutyMissed"]
    missed = {cid: [i["jurisdiction_id"] for i in ctx["jurisdictions"]] for cid, ctx in outbox(db, "duty_missed")}
    assert missed[datong.id] == ["shanxi-datong"]                       # its own coordinators
    assert len(missed[province.id]) == 10 and "shanxi-taiyuan" not in missed[province.id]  # and the province's
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events WHERE type = 'DeadlineMissed' AND payload LIKE "
                                 "'%city_report%'")).scalar() == 0
    # a late report: recorded, marked late; the miss stays in the history
    late = record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi-datong", "city_report", actor=COORDINATOR,
                       now=at(2021, 12, 3), files=[("大同.pdf", report + b" ")])
    assert late.payload["late"] and late.seq == 2
    assert duty_board(db, CALENDARS, "shanxi-2021", "/shanxi/shanxi-datong/", date(2021, 12, 3))[0].status == \
        "done_late"
    assert verify(db).ok


def test_the_evaluation_past_its_date_is_the_bureaus_miss_not_the_units(shanxi: Database) -> None:
    """"11月，省机关事务管理局将组织对省级创建单位进行评价验收": a case still waiting for it after
    November 30 shows it waits on the bureau; the unit's case records no miss."""
    db = shanxi
    add_coordinator(db, "shanxi", "王科长", "wang@sx.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    ready_to_submit(db, 1, 1, "90", at(2021, 10, 12))
    perform_action(db, 1, "submit", {}, unit_actor(1), at(2021, 10, 12))
    sweep(db, CALENDARS, at(2021, 12, 1, 9))
    with db.unit_of_work() as uow:
        case = uow.get(1)
        events = uow.events(1)
    assert [m for m, _ in case.missed] == ["contact_form"]   # its own miss (no 附件2 given), not the bureau's
    assert all(e.payload.get("milestone") != "evaluation" for e in events if e.type == "DeadlineMissed")
    [miss] = [e for e in duty_history(db, "shanxi-2021", "shanxi") if e.payload["duty"] == "evaluation"]
    assert miss.type == "DutyMissed" and miss.payload["cases"] == [1]
    [(_, ctx)] = outbox(db, "duty_missed")[:1]
    assert ctx["jurisdictions"][0]["rows"][0]["case_id"] == 1
    from workflow.domain.duties import waiting_on

    assert waiting_on(CALENDARS.get("shanxi-2021"), 2021, case.state, date(2021, 12, 1))[0]["days_overdue"] == 1


def test_the_national_filing_lists_the_batches_and_is_owed_by_the_province_only(shanxi: Database,
                                                                               tmp_path: Path) -> None:
    """"2022年3月，省机关事务管理局…报国管局备案": the province's duty (no city coordinator is reminded)."""
    db = shanxi
    province = add_coordinator(db, "shanxi", "王科长", "wang@sx.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    add_coordinator(db, "shanxi-taiyuan", "张主任", "zhang@ty.example.cn", actor=OPERATOR, now=OPERATOR_NOW)
    sweep(db, CALENDARS, at(2022, 3, 17, 9))
    national = [(cid, ctx) for cid, ctx in outbox(db, "duty_reminder") if ctx["jurisdiction_id"] == "shanxi"]
    assert [cid for cid, _ in national] == [province.id]
    blobs = LocalEvidenceStore(tmp_path / "blobs", max_bytes=1_000_000)
    with pytest.raises(InvalidInput, match="filing batch"):
        record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi", "national_filing", actor=COORDINATOR,
                    now=at(2022, 3, 18))
    ready_to_submit(db, 1, 1, "90", at(2021, 10, 12))
    attach_documents(db, 1, 1, at(2021, 10, 12))
    perform_action(db, 1, "submit", {}, unit_actor(1), at(2021, 10, 12))
    perform_action(db, 1, "verify", {"entries": sheet_for(RUBRICS.get("shanxi-2020"), "90")}, COORDINATOR,
                   at(2021, 11, 10))
    perform_action(db, 1, "certify", {}, COORDINATOR, at(2021, 11, 10))
    batch = file_round(db, "shanxi-2021", "shanxi", actor=COORDINATOR, now=at(2022, 3, 18))
    event = record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi", "national_filing", actor=COORDINATOR,
                        now=at(2022, 3, 18))
    assert event.payload["filing_batches"] == [batch.id]
    assert verify(db).ok


def test_a_tampered_duty_stream_is_found_by_the_audit(shanxi: Database, tmp_path: Path) -> None:
    db = shanxi
    blobs = LocalEvidenceStore(tmp_path / "blobs", max_bytes=1_000_000)
    record_duty(db, CALENDARS, blobs, "shanxi-2021", "shanxi-taiyuan", "city_report", actor=COORDINATOR,
                now=at(2021, 11, 25), files=[("r.pdf", b"%PDF-1.4\n%%EOF\n")])
    sweep(db, CALENDARS, at(2021, 12, 1, 9))
    report = verify(db)
    assert report.ok and (report.duty_streams, report.duty_events) == (11, 11)   # 太原 done, 10 cities missed
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE duty_streams SET duties = '{}' WHERE jurisdiction_id = 'shanxi-datong'"))
    report = verify(db)
    assert [(f.case_id, f.kind) for f in report.findings] == [("shanxi-2021/shanxi-datong", "duties")]
    assert "stream row differs from the replay" in report.findings[0].what
    with db.engine.begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE duty_events SET actor = 'x'"))
