"""deadline_event: RFC 5545 structure, escaping, folding — checked with a minimal parser."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from notifications import deadline_event
from notifications.ics import fold_line
from tests.notifications.helpers import NOW, properties, unescape, unfold

SUMMARY = "【截止】自评报告、自评打分表和佐证材料报送; 含逗号, 反斜杠\\ 以及很长很长的中文说明" * 2
DESCRIPTION = "第一行：请登录系统报送；\n第二行：联系电话 0731-12345678, 分机 8\r\n第三行\\结束"


def event(**overrides: object) -> bytes:
    values: dict[str, object] = dict(
        uid="case-42.self-assessment@jgswj.example.cn", summary=SUMMARY, description=DESCRIPTION,
        due=date(2021, 10, 20), stamp=NOW,
    )
    values.update(overrides)
    return deadline_event(**values)  # type: ignore[arg-type]


def test_structure() -> None:
    lines = unfold(event())
    names = [name for name, _ in properties(lines)]
    assert lines[0] == "BEGIN:VCALENDAR" and lines[-1] == "END:VCALENDAR"
    assert names.count("BEGIN") == names.count("END") == 3
    for block in ("VCALENDAR", "VEVENT", "VALARM"):
        assert lines.index(f"BEGIN:{block}") < lines.index(f"END:{block}")
    assert lines.index("BEGIN:VEVENT") < lines.index("BEGIN:VALARM") < lines.index("END:VALARM") < lines.index("END:VEVENT")
    props = dict(properties(lines[: lines.index("BEGIN:VALARM")]))
    assert props["VERSION"] == "2.0"
    assert props["METHOD"] == "PUBLISH"
    assert props["PRODID"]
    assert props["UID"] == "case-42.self-assessment@jgswj.example.cn"
    assert props["DTSTAMP"] == "20211013T013000Z"  # 09:30 +08:00 in UTC
    assert props["DTSTART;VALUE=DATE"] == "20211020"
    assert props["DTEND;VALUE=DATE"] == "20211021"
    assert props["X-WR-TIMEZONE"] == "Asia/Shanghai"
    alarm = dict(properties(lines[lines.index("BEGIN:VALARM") + 1 : lines.index("END:VALARM")]))
    assert alarm == {"ACTION": "DISPLAY", "DESCRIPTION": alarm["DESCRIPTION"], "TRIGGER": "-P1D"}


def test_text_is_escaped_and_round_trips() -> None:
    lines = unfold(event())
    props = dict(properties(lines[: lines.index("BEGIN:VALARM")]))
    assert unescape(props["SUMMARY"]) == SUMMARY
    assert unescape(props["DESCRIPTION"]) == DESCRIPTION.replace("\r\n", "\n")
    assert "\\;" in props["SUMMARY"] and "\\," in props["SUMMARY"] and "\\\\" in props["SUMMARY"]


def test_lines_end_in_crlf_and_fold_at_75_octets() -> None:
    raw = event()
    assert raw.endswith(b"\r\n")
    physical = raw.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in physical)
    assert any(line.startswith(b" ") for line in physical)  # something was folded
    assert b"\n" not in raw.replace(b"\r\n", b"")
    for line in physical:
        line.decode("utf-8")  # no multi-byte character was split


@pytest.mark.parametrize("text", ["a" * 200, "中" * 100, "a" + "中" * 100, "ab" + "😀" * 40, ""])
def test_fold_line_never_splits_characters(text: str) -> None:
    folded = fold_line(text)
    physical = folded.split(b"\r\n")[:-1]
    assert all(len(line) <= 75 for line in physical)
    for line in physical:
        line.decode("utf-8")  # raises if a character was split
    assert folded.decode("utf-8").replace("\r\n ", "") == text + "\r\n"


def test_year_end_and_other_timezone_names() -> None:
    lines = unfold(event(due=date(2021, 12, 31), tz="Asia/Urumqi"))
    assert "DTEND;VALUE=DATE:20220101" in lines
    assert "X-WR-TIMEZONE:Asia/Urumqi" in lines


def test_stamp_is_converted_to_utc() -> None:
    stamp = datetime(2021, 10, 13, 0, 30, tzinfo=timezone(timedelta(hours=8)))
    assert "DTSTAMP:20211012T163000Z" in unfold(event(stamp=stamp))


@pytest.mark.parametrize(
    "overrides",
    [{"stamp": datetime(2021, 10, 13)}, {"tz": "Asia/Shanghai\r\nX: y"}, {"uid": "a\r\nb"}, {"uid": ""},
     {"due": datetime(2021, 10, 20, tzinfo=UTC)}],
)
def test_bad_arguments_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        event(**overrides)
