"""The duties of jurisdictions as a hash-chained stream (domain.duties): recorded done with what
they need, missed once, replayed; a case waiting on the bureau is not the unit's miss."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from workflow.domain.duties import (
    DONE,
    MISSED,
    DutyStream,
    apply_duty,
    record_done,
    record_missed,
    stream_key,
    waiting_on,
)
from workflow.domain.errors import ActionRefused, InvalidInput
from workflow.domain.events import GENESIS_HASH

from ..support import CALENDARS

SH = ZoneInfo("Asia/Shanghai")
SHANXI = CALENDARS.get("shanxi-2021")
HUNAN = CALENDARS.get("hunan")
CITY_REPORT = SHANXI.milestone("city_report")
NATIONAL = SHANXI.milestone("national_filing")
EVALUATION = SHANXI.milestone("evaluation")
REPORT = {"sha256": "a" * 64, "filename": "太原市年度创建总体情况.pdf", "size": 1200, "type": "pdf"}


def at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=SH)


def test_a_city_records_its_report_with_the_report_attached() -> None:
    """Shanxi: "各市公共机构节能主管部门…将年度创建总体情况于11月底前报省机关事务管理局"."""
    stream = DutyStream("shanxi-2021", "shanxi-taiyuan")
    event = record_done(stream, CITY_REPORT, actor="coordinator:zhang", now=at(2021, 11, 25),
                        due_on=date(2021, 11, 30), attachments=[REPORT], note="已报")
    assert (event.type, event.seq, event.prev_hash) == (DONE, 1, GENESIS_HASH)
    assert event.payload == {"duty": "city_report", "due_on": "2021-11-30", "late": False, "attachments": [REPORT],
                             "note": "已报"}
    assert event.expected_hash() == event.hash
    after = apply_duty(stream, event)
    assert after.status("city_report").done_by == "coordinator:zhang" and after.version == 1
    with pytest.raises(ActionRefused, match="already recorded done"):
        record_done(after, CITY_REPORT, actor="coordinator:zhang", now=at(2021, 11, 26), due_on=date(2021, 11, 30),
                    attachments=[REPORT])


def test_a_report_without_the_report_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        record_done(DutyStream("shanxi-2021", "shanxi-datong"), CITY_REPORT, actor="coordinator:li",
                    now=at(2021, 11, 25), due_on=date(2021, 11, 30))
    assert [p.where for p in err.value.problems] == ["attachment"] and err.value.message_zh


def test_the_national_filing_lists_the_filing_batches() -> None:
    """Shanxi: "2022年3月，省机关事务管理局梳理总结2021年全省节约型机关创建情况，报国管局备案"."""
    stream = DutyStream("shanxi-2021", "shanxi")
    with pytest.raises(InvalidInput, match="filing batch"):
        record_done(stream, NATIONAL, actor="coordinator:wang", now=at(2022, 3, 16), due_on=date(2022, 3, 31))
    event = record_done(stream, NATIONAL, actor="coordinator:wang", now=at(2022, 4, 2), due_on=date(2022, 3, 31),
                        batches=["shanxi-2021-filing-2", "shanxi-2021-filing-1"])
    assert event.payload["filing_batches"] == ["shanxi-2021-filing-1", "shanxi-2021-filing-2"]
    assert event.payload["late"] is True


def test_the_evaluation_is_done_on_the_cases_not_recorded() -> None:
    with pytest.raises(ActionRefused, match="acting on the cases"):
        record_done(DutyStream("shanxi-2021", "shanxi"), EVALUATION, actor="coordinator:wang", now=at(2021, 11, 25),
                    due_on=date(2021, 11, 30))


def test_a_miss_is_recorded_once_and_not_after_the_duty_is_done() -> None:
    stream = DutyStream("shanxi-2021", "shanxi-datong")
    miss = record_missed(stream, CITY_REPORT, actor="system:sweep", now=at(2021, 12, 1), due_on=date(2021, 11, 30),
                         noticed_on=date(2021, 12, 1))
    assert miss is not None and miss.type == MISSED
    after = apply_duty(stream, miss)
    assert record_missed(after, CITY_REPORT, actor="system:sweep", now=at(2021, 12, 2), due_on=date(2021, 11, 30),
                         noticed_on=date(2021, 12, 2)) is None
    late = record_done(after, CITY_REPORT, actor="coordinator:li", now=at(2021, 12, 3), due_on=date(2021, 11, 30),
                       attachments=[REPORT])
    assert late.prev_hash == miss.hash and late.payload["late"] is True
    done = apply_duty(after, late)
    assert done.status("city_report").missed_on == date(2021, 12, 1) and done.status("city_report").done_at
    done_first = apply_duty(stream, record_done(stream, CITY_REPORT, actor="c", now=at(2021, 11, 2),
                                                due_on=date(2021, 11, 30), attachments=[REPORT]))
    assert record_missed(done_first, CITY_REPORT, actor="system:sweep", now=at(2021, 12, 1),
                         due_on=date(2021, 11, 30), noticed_on=date(2021, 12, 1)) is None


def test_the_bureau_miss_names_the_waiting_cases() -> None:
    miss = record_missed(DutyStream("shanxi-2021", "shanxi"), EVALUATION, actor="system:sweep", now=at(2021, 12, 1),
                         due_on=date(2021, 11, 30), noticed_on=date(2021, 12, 1), cases=[7, 3])
    assert miss is not None and miss.payload["cases"] == [3, 7]


def test_the_stream_key_is_in_the_hash() -> None:
    a = record_missed(DutyStream("shanxi-2021", "shanxi-datong"), CITY_REPORT, actor="s", now=at(2021, 12, 1),
                      due_on=date(2021, 11, 30), noticed_on=date(2021, 12, 1))
    b = record_missed(DutyStream("shanxi-2021", "shanxi-yangquan"), CITY_REPORT, actor="s", now=at(2021, 12, 1),
                      due_on=date(2021, 11, 30), noticed_on=date(2021, 12, 1))
    assert a is not None and b is not None and a.payload == b.payload and a.hash != b.hash
    assert stream_key("shanxi-2021", "shanxi-datong") == "shanxi-2021/shanxi-datong"


def test_a_case_past_the_bureaus_date_waits_on_the_bureau() -> None:
    """A case waiting for the bureau past the bureau's date shows that it waits on the bureau."""
    waiting = waiting_on(SHANXI, 2021, "submitted", date(2021, 12, 3))
    assert waiting == [{"party": "bureau", "duty": "evaluation", "name": "评价验收", "due_on": date(2021, 11, 30),
                        "days_overdue": 3}]
    assert waiting_on(SHANXI, 2021, "verified", date(2021, 11, 3))[0]["days_overdue"] == 0
    assert waiting_on(SHANXI, 2021, "self_assessed", date(2021, 12, 3)) == []
    assert waiting_on(HUNAN, 2021, "submitted", date(2021, 12, 1))[0]["name"] == "核查验收"
