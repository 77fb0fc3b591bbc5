"""An action's input: every field read and checked, every problem named at once.

Each field has one parser (``PARSERS``); an action's spec (``lifecycle.ACTIONS``) says which
fields it requires and allows. Sheet entries are points, or ``{"count": N}`` for a number of
occurrences of a per-occurrence criterion.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import BadValue, InvalidInput, ProblemList, problems_gist_zh, zh_of
from .lifecycle import ACTIONS, CONTACT_FORM, STATES, action_zh
from .rubric import Count


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadValue("must be a non-empty text", "须填写文字，不能为空")
    if len(value) > 2000:
        raise BadValue(f"must be at most 2000 characters, got {len(value)}", f"最多2000个字符，填写了{len(value)}个")
    return value.strip()


def _note(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue("must be a text", "须为文字")
    if len(value) > 2000:
        raise BadValue(f"must be at most 2000 characters, got {len(value)}", f"最多2000个字符，填写了{len(value)}个")
    return value.strip()


def _decimal(value: Any) -> Decimal:
    if isinstance(value, (bool, float)):
        raise BadValue(f"must be a decimal number written as text or an integer (no floating point), got {value!r}",
                       f"须为文字形式的小数或整数（不可用浮点数），填写的是 {value!r}")
    try:
        d = Decimal(str(value).strip()) if isinstance(value, (str, int, Decimal)) else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite():
        raise BadValue(f"must be a decimal number, got {value!r}", f"须为数字，填写的是 {value!r}")
    if d.as_tuple().exponent < -2 or d.adjusted() > 5:  # type: ignore[operator]
        raise BadValue(f"must have at most 2 decimal places and 6 digits before the point, got {value!r}",
                       f"最多2位小数、小数点前最多6位，填写的是 {value!r}")
    return d


def _days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise BadValue(f"must be a whole number of days, got {value!r}", f"须为整数天数，填写的是 {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise BadValue(f"must be a whole number of days, got {value!r}", f"须为整数天数，填写的是 {value!r}") from None
    if not 1 <= n <= 366:
        raise BadValue(f"must be from 1 to 366 days, got {n}", f"须为1至366天，填写的是{n}天")
    return n


def _date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise BadValue(f"must be a date YYYY-MM-DD, got {value!r}",
                       f"须为“年-月-日”格式的日期（如 2021-10-20），填写的是 {value!r}") from None


MAX_COUNT = 1000


def _entry(raw: Any) -> Decimal | Count:
    """Points (text or integer), or ``{"count": N}``: a number of occurrences."""
    if isinstance(raw, Mapping):
        if set(raw) != {"count"}:
            raise BadValue('must be points, or {"count": N} for a number of occurrences; got ' + repr(dict(raw)),
                           '须为分数，或按次计分的 {"count": 次数}；填写的是 ' + repr(dict(raw)))
        n = raw["count"]
        if isinstance(n, str) and n.strip().isdigit():
            n = int(n.strip())
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_COUNT:
            raise BadValue(f"count must be a whole number of occurrences from 0 to {MAX_COUNT}, got {n!r}",
                           f"次数须为0至{MAX_COUNT}的整数，填写的是 {n!r}")
        return Count(n)
    return _decimal(raw)


def _entries(value: Any, problems: ProblemList) -> tuple[dict[str, Decimal | Count] | None, set[str]]:
    """The well-formed entries, and the codes of the malformed ones (named in ``problems``)."""
    if not isinstance(value, Mapping) or not value:
        problems.add("entries", "must be a non-empty mapping of criterion code to points "
                                '(or {"count": N} for a number of occurrences)',
                     "评分须为“评分项编号: 分数”的列表（按次计分的可写 {\"count\": 次数}）")
        return None, set()
    out: dict[str, Decimal | Count] = {}
    bad: set[str] = set()
    messages: list[tuple[str, str]] = []
    for code, raw in value.items():
        try:
            out[str(code)] = _entry(raw)
        except ValueError as exc:
            bad.add(str(code))
            messages.append((f"{code}: {exc}", f"{code}：{zh_of(exc) or exc}"))
    if messages:
        problems.add("entries", "; ".join(en for en, _ in messages), "；".join(zh for _, zh in messages))
    return out, bad


def _sha256(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(ch not in "0123456789abcdef" for ch in value):
        raise BadValue(f"must be 64 lowercase hex digits, got {value!r}",
                       f"须为64位小写十六进制数字，填写的是 {value!r}")
    return value


def _filename(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255 or any(c in value for c in "/\\\0"):
        raise BadValue(f"must be a file name (1-255 characters, no path), got {value!r}",
                       f"须为文件名（1-255个字符，不含路径），填写的是 {value!r}")
    return value.strip()


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadValue(f"must be a positive whole number of bytes, got {value!r}",
                       f"须为正整数字节数，填写的是 {value!r}")
    return value


def _code(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 32:
        raise BadValue(f"must be a criterion code such as 2.2.1.1, got {value!r}",
                       f"须为评分项编号（如 2.2.1.1），填写的是 {value!r}")
    return value.strip()


def _milestone(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "").isalnum() or len(value) > 64:
        raise BadValue(f"must be a milestone id such as self_assessment, got {value!r}",
                       f"须为时间节点编号（如 self_assessment），填写的是 {value!r}")
    return value


def _states(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value or any(v not in (*STATES, CONTACT_FORM) for v in value):
        raise BadValue(f"must be a non-empty list of states (or {CONTACT_FORM}), got {value!r}",
                       f"须为非空的状态列表（或 {CONTACT_FORM}），填写的是 {value!r}")
    return sorted(set(value))


def _document(value: Any) -> str:
    if not isinstance(value, str) or not value.replace("_", "").isalnum() or len(value) > 64:
        raise BadValue(f"must be a document id such as self_report, got {value!r}",
                       f"须为材料编号（如 self_report），填写的是 {value!r}")
    return value


def _how(value: Any) -> str:
    if value not in ("form", "confirmed"):
        raise BadValue(f"must be form (filled in) or confirmed (the contact on file), got {value!r}",
                       f"须为 form（填写新表）或 confirmed（确认已有联系人），填写的是 {value!r}")
    return str(value)


def _decided_by(value: Any) -> str:
    if value not in ("province", "national"):
        raise BadValue(f"must be province (the province's spot check) or national (the national bureau), "
                       f"got {str(value)[:40]!r}",
                       f"须为 province（省级抽查、回头看）或 national（国管局抽查评价），填写的是 {str(value)[:40]!r}")
    return str(value)


def _contacts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 50:
        raise BadValue(f"must be the number of contact persons, got {value!r}",
                       f"须为联系人人数（0至50），填写的是 {value!r}")
    return value


def _type(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 32:
        raise BadValue(f"must be a short content type name such as pdf, got {value!r}",
                       f"须为简短的文件类型名（如 pdf），填写的是 {value!r}")
    return value.strip()


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise BadValue(f"must be a whole number from 0 to 2^63-1, got {value!r}",
                       f"须为0至2^63-1的整数，填写的是 {value!r}")
    return value


def _share(value: Any) -> Decimal:
    share = _decimal(value)
    if not Decimal(0) < share <= Decimal(1):
        raise BadValue(f"must be a share in (0, 1], e.g. 0.1; got {value!r}",
                       f"须为大于0且不超过1的比例（如 0.1），填写的是 {value!r}")
    return share


PARSERS: dict[str, Callable[[Any], Any]] = {
    "reason": _reason,
    "note": _note,
    "days": _days,
    "until": _date,
    "batch": _note,
    "criterion": _code,
    "milestone": _milestone,
    "due_on": _date,
    "noticed_on": _date,
    "owed_in": _states,
    "notification": _note,
    "kind": _note,
    "error": _note,
    "sha256": _sha256,
    "filename": _filename,
    "size": _size,
    "type": _type,
    "draw": _note,
    "seed": _seed,
    "share": _share,
    "document": _document,
    "how": _how,
    "contacts": _contacts,
    "decided_by": _decided_by,
    "evidence": _note,
    "findings": _reason,
}


def problems_zh(problems: ProblemList, action: str | None = None) -> str:
    """The gist in Chinese: which action (when given), how many problems, and the first ones
    as the domain wrote them."""
    gist = problems_gist_zh(problems.problems, problems.count)
    return f"“{action_zh(action)}”（{action}）的{gist}" if action else gist


def parse_input(action: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check an action's input: every problem (unknown, missing, malformed field) at once."""
    out, problems = read_input(action, data)
    if problems:
        raise InvalidInput(f"invalid input for action {action}", problems.problems, problems_zh(problems, action),
                           problem_count=problems.count, action=action)
    return out


def read_input(action: str, data: Mapping[str, Any] | None) -> tuple[dict[str, Any], ProblemList]:
    """The input's good fields and the problems of the others. Sheet entries are read one
    by one: the good ones are kept (and scored later), the bad ones named under ``entries``."""
    spec = ACTIONS[action]
    if not data and not spec.required:
        return {}, ProblemList()
    data = dict(data or {})
    problems = ProblemList()
    allowed = set(spec.required) | set(spec.optional)
    for key in sorted(set(data) - allowed):
        problems.add(key, f"unknown field for {action} (allowed: {', '.join(sorted(allowed)) or 'none'})",
                     f"“{action_zh(action)}”没有此字段（可填：{'、'.join(sorted(allowed)) or '无'}）")
    out: dict[str, Any] = {}
    for key in spec.required:
        if data.get(key) is None:
            problems.add(key, f"required for {action}", f"“{action_zh(action)}”须填写此项")
    for key in (*spec.required, *spec.optional):
        if data.get(key) is None:
            continue
        if key == "entries":
            entries, bad = _entries(data[key], problems)
            if entries is not None:
                out["entries"], out["bad_entries"] = entries, bad
            continue
        try:
            out[key] = PARSERS[key](data[key])
        except ValueError as exc:
            problems.add(key, str(exc), zh_of(exc))
    if action == "extend_rectification" and (data.get("days") is None) == (data.get("until") is None):
        problems.add("days/until", "give exactly one of days (to add) or until (a new due date)",
                     "days（延长的天数）与 until（新的整改期限）须填且只填一项")
    return out, problems
