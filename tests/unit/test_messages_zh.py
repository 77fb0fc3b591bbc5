"""A clerk reads a refusal in Chinese as precisely as in English.

(a) Refusals triggered through the services (and the domain's file validation): each carries a
Chinese message, and every specific of the English one — ids, numbers, criterion codes, the
value given, the limit, quoted values, dates (``2021-11-01`` read as ``2021年11月1日``) — is in
the Chinese one too; an input error's every problem has its own Chinese, as specific.

(b) A static check: every error the domain, the services and the storage adapters (the SQL
and memory stores, the evidence store, the rosters) construct on purpose passes a Chinese text
(a literal or f-string with Chinese in it, or a value computed elsewhere); a file it must skip
is listed in ``EXCLUDED`` with the reason.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from workflow.adapters.checkpoint_files import CheckpointDirectory
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.evidence_store import LocalEvidenceStore
from workflow.adapters.rosters import read_units
from workflow.domain.calendar import calendar_from_dict
from workflow.domain.case import registration_event
from workflow.domain.duties import DutyStream, apply_duty, record_done
from workflow.domain.errors import (
    ActionRefused,
    AlreadyExists,
    ConflictError,
    DomainError,
    Forbidden,
    Incomplete,
    InvalidInput,
    NotFound,
    ProblemList,
)
from workflow.domain.lifecycle import STATE_NAMES
from workflow.domain.policy import policy_from_dict
from workflow.domain.rubric import rubric_from_dict
from workflow.domain.units import check_jurisdiction, check_unit
from workflow.service.accounts import create_account
from workflow.service.cases import by_name_only, perform_action
from workflow.service.checkpoints import CheckpointDamaged, latest_checkpoint
from workflow.service.directory import create_jurisdiction, update_unit
from workflow.service.duties import record_duty
from workflow.service.evidence import EvidenceQuota, QuotaExceeded, attach_bytes
from workflow.service.oversight import spot_check
from workflow.service.queries import list_cases, round_calendar, unit_history
from workflow.service.rounds import open_round, register_unit

from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    RUBRICS,
    fake_sha,
    open_shanxi,
    ready_to_submit,
    sheet_for,
    unit_actor,
)

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)  # business date 2021-10-12
RUBRIC = RUBRICS.get("shanxi-2020")
RECTIFYING = 1       # case of unit 1: verified at 70, in rectification until 2021-11-01
REGISTERED = 2       # case of unit 2: registered, nothing done
HALF_DONE = 6        # case of unit 6: self-assessed one criterion, nothing attached
KEYED = 4            # case of unit 4: self-assessed once with the idempotency key "key-4"
PDF = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
# The code's general Chinese (the API's fallback): a message that is only one of these says nothing specific.
GISTS = {"未找到", "已存在", "当前状态不允许该操作", "数据已被他人修改，请刷新后重试", "输入有误", "材料不完整",
         "无权执行该操作", "请求有误"}

# ---------------------------------------------------------------- the specifics of a message

CJK = re.compile(r"[\u4e00-\u9fff]")
CHINESE_TEXT = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")  # characters and full-width punctuation
ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
QUOTED = re.compile(r"(?<!\w)'([^']*)'(?!\w)")  # a value as Python shows it ('9.9.9'), not "unit's"
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)*(?!\w)")


def specifics(english: str) -> list[str]:
    """What a Chinese message must repeat of an English one: dates (as a person reads them in
    Chinese, 2021年11月1日; a malformed one as it was written), quoted values, and numbers
    (ids, points, limits, counts; not the digits inside a word such as sha256)."""
    found = []
    for m in ISO_DATE.finditer(english):
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
            found.append(f"{day.year}年{day.month}月{day.day}日")
        except ValueError:
            found.append(m[0])
    rest = ISO_DATE.sub(" ", english)
    found += [q for q in QUOTED.findall(rest) if q.strip()]
    rest = QUOTED.sub(" ", rest)
    return found + NUMBER.findall(rest)


def missing_in(chinese: str, english: str) -> list[str]:
    """The specifics of ``english`` that ``chinese`` does not say (a number must stand alone:
    ``1`` is not found in ``12``)."""
    out = []
    for token in specifics(english):
        if re.fullmatch(r"\d+(?:\.\d+)*", token):
            if not re.search(rf"(?<![\d.]){re.escape(token)}(?![\d])", chinese):
                out.append(token)
        elif token not in chinese:
            out.append(token)
    return out


def zh_problems(exc: DomainError) -> list[str]:
    """Everything a clerk would miss reading ``exc`` in Chinese (empty when nothing)."""
    out = []
    zh = exc.message_zh
    if not zh or not CJK.search(zh):
        return [f"no Chinese message for {exc.message!r}"]
    if zh in GISTS:
        out.append(f"only the general {zh!r} for {exc.message!r}")
    out += [f"{t!r} of {exc.message!r} missing from {zh!r}" for t in missing_in(zh, exc.message)]
    for p in getattr(exc, "problems", []):
        if not p.zh or not CJK.search(p.zh):
            out.append(f"problem {p.where}: no Chinese for {p.what!r}")
        else:
            out += [f"problem {p.where}: {t!r} of {p.what!r} missing from {p.zh!r}" for t in missing_in(p.zh, p.what)]
    return out


def test_the_specifics_helper_reads_dates_numbers_and_quoted_values() -> None:
    en = "must be after the current due date 2021-11-01, got 2021-10-20 for unit's case 12 ('2021-02-30', sha256)"
    assert specifics(en) == ["2021年11月1日", "2021年10月20日", "2021-02-30", "12"]
    assert missing_in("须晚于2021年11月1日，填写的是2021年10月20日；案件 12（'2021-02-30'）", en) == []
    assert missing_in("须晚于2021年11月1日；案件 123", en) == ["2021年10月20日", "2021-02-30", "12"]


# ---------------------------------------------------------------- (a) refusals through the services

@dataclass
class World:
    db: Database
    blobs: LocalEvidenceStore


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The Shanxi round of 2021 with a case in rectification, a registered one, a half-done one
    and one acted on with an idempotency key; no refusal below changes any of them."""
    folder = tmp_path_factory.mktemp("messages")
    path = folder / "workflow.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}")
    db = Database(engine)
    open_shanxi(db, NOW)
    ready_to_submit(db, RECTIFYING, 1, 70, NOW)
    perform_action(db, RECTIFYING, "submit", {}, unit_actor(1), NOW)
    perform_action(db, RECTIFYING, "verify", {"entries": sheet_for(RUBRIC, 70)}, COORDINATOR, NOW)
    perform_action(db, RECTIFYING, "order_rectification", {}, COORDINATOR, NOW)
    perform_action(db, HALF_DONE, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(6), NOW)
    perform_action(db, KEYED, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(4), NOW,
                   idempotency_key="key-4")
    create_account(db, by=None, login="admin", name="管理员甲", role="admin", now=NOW)
    yield World(db, LocalEvidenceStore(folder / "blobs", max_bytes=1024 * 1024))
    engine.dispose()


def act(case_id: int, action: str, data: dict[str, Any], actor: Any = None, now: datetime = NOW,
        **kwargs: Any) -> Callable[[World], object]:
    return lambda w: perform_action(w.db, case_id, action, data, actor or unit_actor(case_id), now, **kwargs)


def append_stale(w: World, case_id: int) -> None:
    """The store writing a transition of a case read at a version it is no longer at."""
    with w.db.unit_of_work() as uow:
        case = uow.get(case_id)
        stale = replace(case, version=case.version + 5)
        uow.append(stale, registration_event(case.id, case.round_id, case.unit_id, "system:test", NOW), stale)


def raises_problems(check: Callable[[ProblemList], object]) -> Callable[[World], object]:
    """A domain check that names problems in a list: raised the way its callers raise them."""
    def run(_: World) -> None:
        problems = ProblemList()
        check(problems)
        problems.raise_if_any("invalid rows", "名单有误")
    return run


EVIDENCE = {"sha256": fake_sha("x"), "filename": "x.pdf", "size": 1000, "type": "pdf"}
BAD_CALENDAR = {"id": "c", "title": "t", "province": "shanxi", "year": 1999, "recurring": "monthly",
                "policy": {"on_fail": "rectification", "rectification_days": 400, "carry_over": "no"},
                "milestones": [{"id": "m", "name": "m", "due": "13-40", "tiers": [3, 3]}],
                "targets": [{"year": 2021, "share": "1.5"}], "extra_holidays": ["2021-02-30"]}
BAD_RUBRIC = {"id": "r", "title": "t", "province": "shanxi", "total": 100, "pass_mark": 120,
              "sections": [{"code": "1", "name": "s", "max_points": 10, "items": [
                  {"code": "1.1", "name": "i", "max_points": 7, "criteria": [
                      {"code": "2.1.1", "text": "x", "points": 3, "cap": 4, "per_occurrence": True, "color": 1}]}]}]}

# id, what to do, the error expected, Chinese it must name besides the specifics
REFUSALS: list[Any] = [
    ("wrong state", act(REGISTERED, "verify", {"entries": sheet_for(RUBRIC, 90)}, COORDINATOR), ActionRefused,
     [STATE_NAMES["registered"], "评价验收"]),
    ("over a criterion's cap", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "9.5"}}), InvalidInput,
     ["不能得9.5分"]),
    ("unknown criterion", act(REGISTERED, "self_assess", {"entries": {"9.9.9": "1"}}), InvalidInput, ["9.9.9"]),
    ("negative points", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "-1"}}), InvalidInput, ["-1"]),
    ("floating point", act(REGISTERED, "self_assess", {"entries": {"1.1.1": 1.5}}), InvalidInput, ["浮点"]),
    ("a count for a criterion scored in points", act(REGISTERED, "self_assess", {"entries": {"1.1.1": {"count": 2}}}),
     InvalidInput, ["1.1.1"]),
    ("unknown field", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "9"}, "colour": "red"}), InvalidInput,
     ["填写自评"]),
    ("required fields missing", act(RECTIFYING, "extend_rectification", {}, COORDINATOR), InvalidInput,
     ["延长整改期限"]),
    ("rectification extended too long", act(RECTIFYING, "extend_rectification", {"reason": "r", "days": 400},
                                            COORDINATOR), InvalidInput, ["366"]),
    ("extended to before the current due date",
     act(RECTIFYING, "extend_rectification", {"reason": "r", "until": "2021-10-20"}, COORDINATOR), InvalidInput,
     ["整改期限"]),
    ("extended to a date already past",
     act(RECTIFYING, "extend_rectification", {"reason": "r", "until": "2021-11-05"}, COORDINATOR,
         datetime(2021, 11, 20, 2, 0, tzinfo=UTC)), InvalidInput, ["已经过去"]),
    ("a bad date", act(RECTIFYING, "extend_rectification", {"reason": "r", "until": "2021-02-30"}, COORDINATOR),
     InvalidInput, ["日期"]),
    ("recheck asked for after the rectification deadline",
     act(RECTIFYING, "request_recheck", {}, unit_actor(1), datetime(2021, 11, 6, 2, 0, tzinfo=UTC)),
     ActionRefused, ["整改期限已过", STATE_NAMES["rectification"]]),
    ("another unit's case", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "9"}}, unit_actor(3)),
     ActionRefused, ["本单位"]),
    ("a role that may not", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "9"}}, COORDINATOR),
     ActionRefused, ["协调人员", "填写自评"]),
    ("submitted incomplete", act(HALF_DONE, "submit", {}), Incomplete, ["佐证材料"]),
    ("evidence for an unknown criterion", act(REGISTERED, "attach_evidence", {"criterion": "9.9", **EVIDENCE}),
     InvalidInput, ["9.9"]),
    ("an unknown document", act(REGISTERED, "attach_document", {"document": "nope", **EVIDENCE}), InvalidInput,
     ["nope", "自评报告"]),
    ("a stale version", act(REGISTERED, "self_assess", {"entries": {"1.1.1": "9"}}, expected_version=7),
     ConflictError, []),
    ("an idempotency key used for another case",
     act(5, "self_assess", {"entries": {"1.1.1": "9"}}, idempotency_key="key-4"), ConflictError, ["key-4"]),
    ("bookkeeping taken by name", lambda w: by_name_only("file"), Forbidden, ["备案"]),
    ("evidence over the quota",
     lambda w: attach_bytes(w.db, w.blobs, REGISTERED, "1.1.1", [("能耗.pdf", PDF)], unit_actor(REGISTERED), NOW,
                            quota=EvidenceQuota(10, 5)), QuotaExceeded, ["配额"]),
    ("a disguised file name",
     lambda w: attach_bytes(w.db, w.blobs, REGISTERED, "1.1.1", [("能耗\u202efdp.exe", PDF)], unit_actor(REGISTERED),
                            NOW, quota=EvidenceQuota(10**9, 100)), InvalidInput, ["U+202E"]),
    ("a file name too long in bytes",
     lambda w: attach_bytes(w.db, w.blobs, REGISTERED, "1.1.1", [("佐" * 70 + ".pdf", PDF)], unit_actor(REGISTERED),
                            NOW, quota=EvidenceQuota(10**9, 100)), InvalidInput, ["214"]),
    ("unknown unit", lambda w: unit_history(w.db, 999), NotFound, ["单位"]),
    ("unknown round", lambda w: round_calendar(w.db, CALENDARS, "shanxi-2099"), NotFound, ["轮次"]),
    ("unknown jurisdiction", lambda w: list_cases(w.db, jurisdiction_id="nowhere-9"), NotFound, ["地区"]),
    ("unknown state", lambda w: list_cases(w.db, state="done"), NotFound, [STATE_NAMES["certified"]]),
    ("a spot check's share over 1",
     lambda w: spot_check(w.db, "shanxi-2021", "shanxi", share="1.5", seed=7, actor=COORDINATOR, now=NOW),
     InvalidInput, ["比例"]),
    ("a spot check with nothing certified",
     lambda w: spot_check(w.db, "shanxi-2021", "shanxi", share="0.1", seed=7, actor=COORDINATOR, now=NOW),
     ActionRefused, ["已认定"]),
    ("an unknown duty",
     lambda w: record_duty(w.db, CALENDARS, w.blobs, "shanxi-2021", "shanxi", "nope", actor=COORDINATOR, now=NOW),
     NotFound, ["nope"]),
    ("a duty of another level",
     lambda w: record_duty(w.db, CALENDARS, w.blobs, "shanxi-2021", "shanxi", "city_report", actor=COORDINATOR,
                           now=NOW), ActionRefused, ["市级"]),
    ("a calendar file with every kind of mistake", lambda w: calendar_from_dict(BAD_CALENDAR, "bad.yaml"),
     InvalidInput, ["bad.yaml"]),
    ("a policy that does not work", lambda w: policy_from_dict({"on_fail": "retry", "rectification_days": 5}, "p"),
     InvalidInput, ["on_fail"]),
    ("a rubric file with every kind of mistake", lambda w: rubric_from_dict(BAD_RUBRIC, "bad-rubric.yaml"),
     InvalidInput, ["bad-rubric.yaml"]),
    ("a roster row with every kind of mistake",
     raises_problems(lambda problems: check_unit(
         {"name": "单" * 201, "jurisdiction": "shanxi-taiyuan", "category": "机关", "level": "省级",
          "contacts": [{"name": "张三", "phone": "call me"}], "certified_year": "1999"}, "名单.csv:3",
         {"shanxi-taiyuan": "city"}, problems, address=lambda a: a)), InvalidInput, ["201"]),
    ("a jurisdiction row with every kind of mistake",
     raises_problems(lambda problems: check_jurisdiction({"id": "Bad Id", "name": "x", "level": "county",
                                                          "parent": "shanxi"}, "地区.csv:4", {"shanxi": "province"},
                                                         problems)), InvalidInput, ["省", "县"]),
    ("an unknown action", act(REGISTERED, "dance", {}), ActionRefused, ["dance", "填写自评"]),
    ("rectification ordered twice", act(RECTIFYING, "order_rectification", {}, COORDINATOR), ActionRefused,
     [STATE_NAMES["rectification"], "通知整改"]),
    ("an account's login taken",
     lambda w: create_account(w.db, by=None, login="admin", name="管理员乙", role="admin", now=NOW), InvalidInput,
     ["admin", "已被使用"]),
    ("a round opened twice",
     lambda w: open_round(w.db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                          calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=NOW), AlreadyExists,
     ["shanxi-2021", "已开启"]),
    ("a round opened for a year out of range",
     lambda w: open_round(w.db, RUBRICS, CALENDARS, province_id="shanxi-taiyuan", year=1999, rubric_id="shanxi-2020",
                          calendar_id="shanxi-2021", target_share=0.5, actor=ADMIN, now=NOW), InvalidInput,
     ["1999", "市级地区", "0.5"]),
    ("a unit registered twice in a round",
     lambda w: register_unit(w.db, "shanxi-2021", REGISTERED, actor=ADMIN, now=NOW), AlreadyExists, ["已有案件"]),
    ("a jurisdiction added twice",
     lambda w: create_jurisdiction(w.db, {"id": "shanxi-taiyuan", "name": "太原市", "level": "city",
                                          "parent": "shanxi"}, actor=ADMIN, now=NOW), AlreadyExists, ["已存在"]),
    ("a unit changed in a field that does not change",
     lambda w: update_unit(w.db, REGISTERED, {"level": "city"}, NOW, actor=ADMIN), InvalidInput, ["不能修改"]),
    ("a stale version in the store", lambda w: append_stale(w, REGISTERED), ConflictError, ["他人修改"]),
    ("an empty evidence file",
     lambda w: attach_bytes(w.db, w.blobs, REGISTERED, "1.1.1", [("空.pdf", b"")], unit_actor(REGISTERED), NOW,
                            quota=EvidenceQuota(10**9, 100)), InvalidInput, ["空文件"]),
    ("evidence of a type not allowed",
     lambda w: attach_bytes(w.db, w.blobs, REGISTERED, "1.1.1", [("x.pdf", b"\x7fELF....")], unit_actor(REGISTERED),
                            NOW, quota=EvidenceQuota(10**9, 100)), InvalidInput, ["elf executable", "允许的类型"]),
    ("an evidence blob missing from the storage", lambda w: w.blobs.open(fake_sha("gone")), NotFound, ["缺失"]),
    ("a roster neither UTF-8 nor GBK", lambda w: read_units(b"\x80\xff\xfe\x00\x01 not text", "名单.csv"), InvalidInput,
     ["名单.csv", "GBK"]),
    ("a roster with a bad header", lambda w: read_units("名字,地区\r\n张三,shanxi\r\n".encode(), "名单.csv"),
     InvalidInput, ["名字", "表头有误"]),
]


@pytest.mark.parametrize(("name", "do", "expected", "names"), REFUSALS,
                         ids=[r.values[0] if hasattr(r, "values") else r[0] for r in REFUSALS])
def test_a_refusal_says_in_chinese_what_it_says_in_english(world: World, name: str, do: Callable[[World], object],
                                                           expected: type[DomainError], names: list[str]) -> None:
    with pytest.raises(expected) as err:
        do(world)
    exc = err.value
    assert zh_problems(exc) == [], name
    said = (exc.message_zh or "") + "".join(p.zh or "" for p in getattr(exc, "problems", []))
    assert [n for n in names if n not in said] == [], said


def test_an_input_error_without_a_chinese_gist_says_its_problems_in_chinese() -> None:
    """The fallback: an InvalidInput given no Chinese message (an adapter's) says its problems'
    Chinese, not the code's general gist."""
    problems = ProblemList()
    problems.add("days", "must be from 1 to 366 days, got 400", "须为1至366天，填写的是400天")
    exc = InvalidInput("invalid input", problems.problems)
    assert exc.message_zh == "输入有误，共1处：days：须为1至366天，填写的是400天"


def test_the_refusal_after_the_deadline_names_the_date_in_chinese(world: World) -> None:
    with pytest.raises(InvalidInput) as err:
        perform_action(world.db, RECTIFYING, "extend_rectification", {"reason": "r", "until": "2021-10-20"},
                       COORDINATOR, NOW)
    assert err.value.problems[0].zh == "须晚于当前整改期限2021年11月1日，填写的是2021年10月20日"
    assert NOW.date() + timedelta(days=20) == date(2021, 11, 1)


def test_a_duty_recorded_twice_says_when_where_and_in_which_round_in_chinese() -> None:
    duty = CALENDARS.get("shanxi-2021").milestone("city_report")
    report = {"sha256": fake_sha("report"), "filename": "太原市年度创建总体情况.pdf", "size": 1200, "type": "pdf"}
    stream = DutyStream("shanxi-2021", "shanxi-taiyuan")
    done = apply_duty(stream, record_done(stream, duty, actor="coordinator:zhang", now=NOW,
                                          due_on=date(2021, 11, 30), attachments=[report]))
    with pytest.raises(ActionRefused) as err:
        record_done(done, duty, actor="coordinator:zhang", now=NOW + timedelta(days=1), due_on=date(2021, 11, 30),
                    attachments=[report])
    assert err.value.message_zh == (f"shanxi-taiyuan 在轮次 shanxi-2021 的“{duty.name}”（city_report）已于"
                                    "2021年10月12日 10:00（北京时间）登记完成，不能重复登记")


def test_a_damaged_checkpoint_names_its_file_and_why_in_chinese(tmp_path: Path) -> None:
    store = CheckpointDirectory(tmp_path)
    store.add(3, b"{not json")
    with pytest.raises(CheckpointDamaged) as err:
        latest_checkpoint(store, None)
    assert zh_problems(err.value) == []
    assert "checkpoint-00000003.json" in (err.value.message_zh or "") and "不是 JSON" in (err.value.message_zh or "")


# ---------------------------------------------------------------- (b) every construction passes Chinese

SRC = Path(__file__).resolve().parents[2] / "src" / "workflow"
CHECKED = ("domain", "service")
ALSO_CHECKED = ("files.py", "adapters/rubric_files.py", "adapters/calendar_files.py", "adapters/data_files.py",
                "adapters/workdays.py", "adapters/memory.py", "adapters/evidence_store.py", "adapters/rosters.py")
CHECKED_FOLDERS = ("adapters/db",)  # every file of these too (but those EXCLUDED)
# Files the static check skips, each with the reason (none now: a new one must say why here).
EXCLUDED: dict[str, str] = {}
# Where each error takes its Chinese: the positional index, or the keyword.
ZH_AT = {"InvalidInput": 2, "Incomplete": 2, "QuotaExceeded": 2, "ActionRefused": 1, "NotFound": 1, "Forbidden": 1,
         "AlreadyExists": 1, "ConflictError": 1, "StorageUnavailable": 1, "ConfigError": 1, "CheckpointDamaged": 1,
         "BadValue": 1, "Problem": 2, "raise_if_any": 1, "refuse": 5}
# A file whose own helper of that name takes its Chinese elsewhere.
ZH_AT_IN = {"adapters/rosters.py": {"refuse": 2}}
ZH_KEYWORDS = {"message_zh", "zh", "why_zh_text"}
PROBLEM_LISTS = {"problems", "self.problems", "read", "read.problems"}


def has_chinese(node: ast.expr) -> bool:
    """A Chinese text: a literal or f-string with Chinese in it, a sum or choice of such, or a
    value computed elsewhere (a name, a call); never None or a literal without Chinese."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and bool(CHINESE_TEXT.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(has_chinese(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp):
        return has_chinese(node.left) or has_chinese(node.right)
    if isinstance(node, ast.IfExp):
        return has_chinese(node.body) and has_chinese(node.orelse)
    return True


def _called(call: ast.Call, zh_at: dict[str, int]) -> tuple[str, int] | None:
    """(what is called, where its Chinese goes) for a call that must pass Chinese."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name == "add" and isinstance(func, ast.Attribute) and ast.unparse(func.value) in PROBLEM_LISTS \
            and len(call.args) >= 2:
        return f"{ast.unparse(func.value)}.add", 2
    return (name, zh_at[name]) if name in zh_at else None


def without_chinese(source: str, where: str) -> list[str]:
    """Every construction of an error (and every problem named) in ``source`` without Chinese."""
    found = []
    zh_at = {**ZH_AT, **ZH_AT_IN.get(where, {})}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or (called := _called(node, zh_at)) is None:
            continue
        name, at = called
        if any(isinstance(a, ast.Starred) for a in node.args):
            continue  # its arguments come from a table (checked where the table is)
        given = [k.value for k in node.keywords if k.arg in ZH_KEYWORDS]
        if len(node.args) > at:
            given.append(node.args[at])
        if not given or not all(has_chinese(g) for g in given):
            found.append((node.lineno, f"{where}:{node.lineno} {name}(...) has no Chinese"))
    return [text for _, text in sorted(found)]


def modules() -> list[str]:
    checked = [str(p.relative_to(SRC)) for layer in CHECKED + CHECKED_FOLDERS
               for p in sorted((SRC / layer).glob("*.py"))]
    return [m for m in checked if m not in EXCLUDED] + list(ALSO_CHECKED)


@pytest.mark.parametrize("module", modules())
def test_every_error_constructed_on_purpose_passes_chinese(module: str) -> None:
    assert without_chinese((SRC / module).read_text(encoding="utf-8"), module) == []


def test_the_check_sees_a_refusal_without_chinese() -> None:
    source = '''
raise NotFound(f"unit {u} does not exist", unit_id=u)
raise NotFound(f"unit {u} does not exist", f"unit {u}")
raise NotFound(f"unit {u} does not exist", f"单位 {u} 不存在")
raise InvalidInput("bad", [Problem("x", "bad")])
raise InvalidInput("bad", [Problem("x", "bad", "有误")], message_zh=None)
problems.add("x", f"got {v!r}")
problems.add("x", f"got {v!r}", zh_of(exc))
read.add("x", "bad", "有误" if a else "")
'''
    assert [line.split(" ", 1)[0] for line in without_chinese(source, "probe.py")] == [
        "probe.py:2", "probe.py:3", "probe.py:5", "probe.py:5", "probe.py:6", "probe.py:7", "probe.py:9"]
