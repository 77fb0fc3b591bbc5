"""Templates: every kind renders, StrictUndefined, HTML escaping, cn_date."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import jinja2
import pytest

from notifications import KINDS, cn_date, render

ROUND = "2021年度节约型机关创建评价"
MILESTONE = "自评报告、自评打分表和佐证材料报送"

CONTEXTS: dict[str, dict[str, Any]] = {
    "reminder": dict(
        unit_name="某某市财政局", round_title=ROUND, milestone_name=MILESTONE, due_date=date(2021, 10, 20),
        days_left=7, case_id="HN-2021-0042", what_to_do="1. 登录系统填写自评打分表\n2. 上传佐证材料",
        contact_line="省机关事务管理局节能处 0731-12345678",
    ),
    "missed": dict(
        unit_name="某某市财政局", round_title=ROUND, milestone_name=MILESTONE, due_date=date(2021, 10, 20),
        noticed_on=date(2021, 10, 21), case_id="HN-2021-0042", what_to_do="请尽快报送自评报告。",
    ),
    "digest": dict(
        coordinator_name="张科长", jurisdiction_name="长沙市", round_title=ROUND, as_of=date(2021, 10, 25),
        rows=[
            dict(unit_name="甲局", milestone_name=MILESTONE, due_date=date(2021, 10, 20), days_overdue=5, case_id="C-1"),
            dict(unit_name="乙委", milestone_name="整改报告报送", due_date=date(2021, 10, 22), days_overdue=3, case_id="C-2"),
        ],
    ),
    "rectification": dict(
        unit_name="某某市财政局", round_title=ROUND, due_date=date(2021, 11, 10), days_left=20, case_id="HN-2021-0042",
        verified_total="82.5", pass_mark="85", spot_findings="",
    ),
    "coordinator_reminder": dict(
        coordinator_name="张科长", jurisdiction_name="长沙市", round_title=ROUND, milestone_name="核查验收",
        due_date=date(2021, 11, 30), days_left=7,
        rows=[dict(unit_name="甲局", case_id="C-1"), dict(unit_name="乙委", case_id="C-2")],
    ),
    "rectification_notice": dict(
        unit_name="某某市财政局", round_title=ROUND, due_date=date(2021, 12, 1), days_left=20, case_id="SX-2021-0022",
        verified_total="76.5", pass_mark="80", what_to_do="未通过评价验收的部门需在20天之内完成整改，并申请复核验收。",
        contact_line="山西省机关事务管理局 0351-2859734", spot_findings="",
    ),
    "duty_reminder": dict(
        coordinator_name="张主任", jurisdiction_name="太原市", round_title=ROUND, duty_name="年度创建总体情况报省机关事务管理局",
        due_date=date(2021, 11, 30), days_left=7, what_to_do="将年度创建总体情况于11月底前报省机关事务管理局。",
        how_to_record="请在系统中登记完成并上传相关材料",
    ),
    "duty_missed": dict(
        coordinator_name="王科长", round_title=ROUND, duty_name="评价验收", due_date=date(2021, 11, 30), days_overdue=2,
        how_to_record="",
        items=[dict(jurisdiction_name="山西省", rows=[dict(unit_name="甲局", case_id="C-1")]),
               dict(jurisdiction_name="太原市", rows=[])],
    ),
    "revocation_notice": dict(
        unit_name="某某市财政局", round_title=ROUND, as_of=date(2022, 3, 28), case_id="SX-2021-0022",
        decided_by="国管局（抽查评价结果）", reason="能耗统计数据与实际不符", evidence="国管局抽查评价结果通报",
        contact_line="山西省机关事务管理局 0351-2859734",
    ),
    "checkpoint": dict(
        coordinator_name="王科长", round_title=ROUND, as_of=date(2021, 10, 21), sequence=12, chains=3500,
        created_at="2021-10-21 09:00", merkle_root="9481972c58e493ad2de8b4ecf82ea29e36bc558544677969d08107520889375d",
    ),
}


def test_every_kind_has_a_context_here() -> None:
    assert set(KINDS) == set(CONTEXTS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders(kind: str) -> None:
    rendered = render(kind, CONTEXTS[kind])
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and rendered.html.strip().startswith("<!DOCTYPE html>")
    assert CONTEXTS[kind]["round_title"] in rendered.text
    shown = CONTEXTS[kind].get("due_date") or CONTEXTS[kind]["as_of"]
    assert cn_date(shown) in rendered.subject and cn_date(shown) in rendered.text
    assert "{{" not in rendered.text + rendered.html + rendered.subject


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_variable_raises(kind: str) -> None:
    for name in CONTEXTS[kind]:
        context = {k: v for k, v in CONTEXTS[kind].items() if k != name}
        with pytest.raises(jinja2.UndefinedError):
            render(kind, context)


def test_reminder_subject_and_body() -> None:
    rendered = render("reminder", CONTEXTS["reminder"])
    assert rendered.subject == f"【提醒】{MILESTONE}截止日期：2021年10月20日（还有7天）"
    assert rendered.text.startswith("某某市财政局：\n")
    assert "HN-2021-0042" in rendered.text and "0731-12345678" in rendered.text
    assert "2. 上传佐证材料" in rendered.text
    assert "1. 登录系统填写自评打分表<br>\n2. 上传佐证材料" in rendered.html


def test_reminder_due_today_and_without_contact() -> None:
    rendered = render("reminder", {**CONTEXTS["reminder"], "days_left": 0, "contact_line": ""})
    assert rendered.subject.endswith("（今日截止）")
    assert "联系方式" not in rendered.text and "联系方式" not in rendered.html


def test_missed_mentions_both_dates() -> None:
    rendered = render("missed", CONTEXTS["missed"])
    assert "逾期" in rendered.subject and "2021年10月20日" in rendered.subject
    assert "截至2021年10月21日" in rendered.text


def test_digest_counts_and_tabulates() -> None:
    rendered = render("digest", CONTEXTS["digest"])
    assert "2项" in rendered.subject
    assert rendered.html.count("<tr>") == 3  # header + 2 rows
    assert "<td>甲局</td>" in rendered.html and "<td>5</td>" in rendered.html
    assert "乙委：整改报告报送，截止日期2021年10月22日，已逾期3天（创建编号：C-2）" in rendered.text


def test_empty_digest() -> None:
    rendered = render("digest", {**CONTEXTS["digest"], "rows": []})
    assert "0项" in rendered.subject
    assert "暂无逾期事项" in rendered.text and "<table" not in rendered.html


def test_digest_row_missing_a_key_raises() -> None:
    rows = [{k: v for k, v in CONTEXTS["digest"]["rows"][0].items() if k != "case_id"}]
    with pytest.raises(jinja2.UndefinedError):
        render("digest", {**CONTEXTS["digest"], "rows": rows})


def test_rectification_states_scores() -> None:
    rendered = render("rectification", CONTEXTS["rectification"])
    assert "2021年11月10日" in rendered.subject and "还有20天" in rendered.subject
    assert "82.5分" in rendered.text and "85分" in rendered.text


@pytest.mark.parametrize("kind", KINDS)
def test_html_is_escaped(kind: str) -> None:
    evil = "<script>alert('x')</script>某局&"
    context = dict(CONTEXTS[kind])
    if kind in ("digest", "coordinator_reminder"):
        context["coordinator_name"] = evil
        context["rows"] = [{**context["rows"][0], "unit_name": evil}]
    elif kind == "duty_reminder":
        context["jurisdiction_name"] = evil
    elif kind == "checkpoint":
        context["coordinator_name"] = evil
    elif kind == "duty_missed":
        context["items"] = [{"jurisdiction_name": evil, "rows": [{"unit_name": evil, "case_id": "C-1"}]}]
    else:
        context["unit_name"] = evil
    rendered = render(kind, context)
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html and "某局&amp;" in rendered.html
    assert evil in rendered.text  # plain text is not escaped


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="reminder, missed, digest, rectification"):
        render("welcome", {})


def test_cn_date() -> None:
    assert cn_date(date(2021, 10, 20)) == "2021年10月20日"
    assert cn_date(date(2022, 1, 5)) == "2022年1月5日"
    assert cn_date(datetime(2021, 3, 4, 12, 0)) == "2021年3月4日"
    with pytest.raises(TypeError):
        cn_date("2021-10-20")  # type: ignore[arg-type]


def test_the_rectification_notice_says_score_pass_mark_last_day_and_how_to_ask_for_the_recheck() -> None:
    """"未通过评价验收的部门需在20天之内完成整改并接受复核验收": sent at once when rectification is
    ordered, the first evaluation named 评价验收 (not 复核)."""
    rendered = render("rectification_notice", CONTEXTS["rectification_notice"])
    assert rendered.subject.startswith("【整改通知】") and "76.5分" in rendered.subject
    assert "2021年12月1日" in rendered.subject
    text = rendered.text
    assert "经评价验收" in text and "76.5分" in text and "80分（含）" in text and "2021年12月1日" in text
    assert "复核验收申请" in text and "20天之内完成整改" in text and "0351-2859734" in text
    assert "经复核" not in text


@pytest.mark.parametrize("kind", ["rectification_notice", "rectification"])
def test_a_spot_checks_rectification_says_what_was_found_and_that_the_title_is_at_stake(kind: str) -> None:
    context = {**CONTEXTS["rectification_notice"], "spot_findings": "能耗统计台账缺7月至9月数据\n垃圾分类未落实"}
    rendered = render(kind, context)
    for text in (rendered.text, rendered.html):
        assert "经抽查" in text and "能耗统计台账缺7月至9月数据" in text and "垃圾分类未落实" in text
        assert "76.5" not in text and "经评价验收" not in text  # no score: the problems are what to rectify
    assert "76.5" not in rendered.subject
    if kind == "rectification_notice":
        assert "抽查发现问题" in rendered.subject
        assert "撤销节约型机关称号" in rendered.text and "称号在整改期间暂停" in rendered.text


@pytest.mark.parametrize("kind", KINDS)
def test_no_doubled_words_and_the_case_is_called_as_a_bureau_calls_it(kind: str) -> None:
    """The round's title ends in 工作 ("山西省2021年节约型机关创建工作"): no "工作工作"; no 案件."""
    context = {**CONTEXTS[kind], "round_title": "山西省2021年节约型机关创建工作"}
    rendered = render(kind, context)
    for text in (rendered.subject, rendered.text, rendered.html):
        assert "工作工作" not in text and "案件" not in text


def test_a_duty_missed_by_several_jurisdictions_is_one_mail() -> None:
    rendered = render("duty_missed", CONTEXTS["duty_missed"])
    assert rendered.subject == "【逾期】2个地区“评价验收”已逾期（截止日期：2021年11月30日）"
    assert "1. 山西省：1个单位的材料仍在等待办理" in rendered.text and "甲局（创建编号：C-1）" in rendered.text
    assert "2. 太原市\n" in rendered.text
    one = render("duty_missed", {**CONTEXTS["duty_missed"], "items": CONTEXTS["duty_missed"]["items"][1:]})
    assert one.subject.startswith("【逾期】太原市“评价验收”")
