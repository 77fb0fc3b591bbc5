"""Units (创建单位), their jurisdictions and contact people (附件2), validated."""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ProblemList, zh_of

JURISDICTION_LEVELS = ("province", "city", "county")
# A unit's level follows the level of the jurisdiction it belongs to.
UNIT_LEVEL_OF = {"province": "provincial", "city": "city", "county": "county"}
UNIT_LEVELS = tuple(UNIT_LEVEL_OF.values())
CATEGORIES = ("党的机关", "人大机关", "行政机关", "政协机关", "监察机关", "审判机关", "检察机关", "人民团体",
              "参公事业单位")
LEVEL_ALIASES = {"省级": "provincial", "市级": "city", "县级": "county", "省": "provincial", "市": "city",
                 "县": "county", "区": "county", "县级/区": "county"}
JURISDICTION_LEVEL_ALIASES = {"省": "province", "市": "city", "县": "county", "区": "county", "市州": "city"}
# What a bureau calls each level (the first of the aliases above, read back).
JURISDICTION_LEVEL_NAMES = {"province": "省", "city": "市", "county": "县"}
UNIT_LEVEL_NAMES = {"provincial": "省级", "city": "市级", "county": "县级"}

_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_PHONE = re.compile(r"^[0-9+()\- ]{5,30}$")


@dataclass(frozen=True, slots=True)
class Contact:
    """One row of 附件2: 单位 / 姓名 / 职务 / 联系方式 (phone), plus an email for reminders."""

    name: str
    position: str = ""
    phone: str = ""
    email: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "position": self.position, "phone": self.phone, "email": self.email}


@dataclass(frozen=True, slots=True)
class UnitDraft:
    name: str
    jurisdiction_id: str
    level: str
    category: str
    contacts: tuple[Contact, ...] = field(default_factory=tuple)
    # Certified before the system kept the province's rounds (the year, and where it is written).
    certified_year: int | None = None
    certified_note: str = ""


def check_certified_year(value: Any, where: str, problems: ProblemList) -> int | None:
    """A year written as 2020 or 2020年 (blank: not certified before); from 2000 to 2100."""
    text = _text(value).removesuffix("年").strip()
    if not text:
        return None
    if isinstance(value, bool) or not text.isdigit() or not 2000 <= int(text) <= 2100:
        problems.add(f"{where}.certified_year", f"must be the year it was certified, e.g. 2020; got {value!r}",
                     f"须为已建成的年份，如 2020；填写的是 {value!r}")
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class JurisdictionDraft:
    id: str
    name: str
    level: str
    parent_id: str | None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _no_control(where: str, values: Mapping[str, str], problems: ProblemList) -> None:
    """Names and codes are text a person reads: no control characters (NUL, tabs, line breaks)."""
    for key, value in values.items():
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            problems.add(f"{where}.{key}", "contains a control character (NUL, tab, line break, ...)",
                         "含有控制字符（空字符、制表符、换行等）")


# The rule for an email address, given by the caller: the mailer's own (``notifications.addresses
# .check_address``), so that an address accepted here can always be mailed. It answers the
# address in its normal form, or raises ValueError with the reason.
AddressRule = Callable[[str], str]


def check_contact(data: Mapping[str, Any], where: str, problems: ProblemList, *,
                  address: AddressRule) -> Contact | None:
    name, position = _text(data.get("name")), _text(data.get("position"))
    phone, email = _text(data.get("phone")), _text(data.get("email"))
    _no_control(where, {"name": name, "position": position, "phone": phone, "email": email}, problems)
    if not (name or position or phone or email):
        return None
    if not name:
        problems.add(f"{where}.name", "a contact needs a name", "联系人须填写姓名")
    if len(name) > 50:
        problems.add(f"{where}.name", f"at most 50 characters, got {len(name)}", f"最多50个字符，填写了{len(name)}个")
    if phone and not _PHONE.match(phone):
        problems.add(f"{where}.phone", f"not a phone number: {phone!r}", f"不是电话号码：{phone!r}")
    if email:  # the mailer's own rule, so that an address accepted here can always be mailed
        try:
            email = address(email)
        except ValueError as exc:
            problems.add(f"{where}.email", f"not an email address: {email!r} ({exc})",
                         f"邮箱地址格式不正确：{email!r}（{zh_of(exc) or exc}）")
    if not phone and not email:
        problems.add(f"{where}", "a contact needs a phone or an email", "联系人须填写电话或电子邮箱")
    return Contact(name, position, phone, email)


def check_unit(data: Mapping[str, Any], where: str, jurisdiction_levels: Mapping[str, str],
               problems: ProblemList, *, address: AddressRule) -> UnitDraft | None:
    """Validate one unit; ``jurisdiction_levels`` maps known jurisdiction ids to their level."""
    before = problems.count
    name = _text(data.get("name"))
    _no_control(where, {"name": name, "jurisdiction": _text(data.get("jurisdiction")),
                        "category": _text(data.get("category"))}, problems)
    if not name:
        problems.add(f"{where}.name", "required", "须填写单位名称")
    elif len(name) > 200:
        problems.add(f"{where}.name", f"at most 200 characters, got {len(name)}", f"最多200个字符，填写了{len(name)}个")
    jid = _text(data.get("jurisdiction"))
    jlevel = jurisdiction_levels.get(jid)
    if not jid:
        problems.add(f"{where}.jurisdiction", "required", "须填写所属地区")
    elif jlevel is None:
        problems.add(f"{where}.jurisdiction", f"unknown jurisdiction {jid!r}", f"没有地区 {jid!r}")
    category = _text(data.get("category"))
    if category not in CATEGORIES:
        problems.add(f"{where}.category", f"must be one of {'、'.join(CATEGORIES)}; got {category!r}",
                     f"须为 {'、'.join(CATEGORIES)} 之一；填写的是 {category!r}")
    level = _text(data.get("level"))
    level = LEVEL_ALIASES.get(level, level)
    expected = UNIT_LEVEL_OF.get(jlevel or "")
    _check_level(where, level, expected, jid, jlevel, problems)
    contacts = _contacts(data.get("contacts") or [], where, problems, address)
    certified_year = check_certified_year(data.get("certified_year"), where, problems)
    note = _text(data.get("certified_note"))
    if len(note) > 200:
        problems.add(f"{where}.certified_note", f"at most 200 characters, got {len(note)}",
                     f"最多200个字符，填写了{len(note)}个")
    if note and certified_year is None and problems.count == before:
        problems.add(f"{where}.certified_note", "a note on a certification needs its year (certified_year)",
                     "填写了认定说明，须同时填写认定年份（certified_year）")
    if problems.count > before:
        return None
    return UnitDraft(name=name, jurisdiction_id=jid, level=expected or level, category=category,
                     contacts=tuple(contacts), certified_year=certified_year, certified_note=note)


def _check_level(where: str, level: str, expected: str | None, jid: str, jlevel: str | None,
                 problems: ProblemList) -> None:
    if level and level not in UNIT_LEVELS:
        problems.add(f"{where}.level", f"must be one of {', '.join(UNIT_LEVELS)}; got {level!r}",
                     f"须为 {'、'.join(f'{UNIT_LEVEL_NAMES[lv]}（{lv}）' for lv in UNIT_LEVELS)} 之一；"
                     f"填写的是 {level!r}")
    elif level and expected and level != expected:
        problems.add(f"{where}.level", f"{level} does not match jurisdiction {jid} ({jlevel}: {expected})",
                     f"级别 {UNIT_LEVEL_NAMES.get(level, level)}（{level}）与所属地区 {jid} 不符"
                     f"（{jid} 是{JURISDICTION_LEVEL_NAMES.get(jlevel or '', jlevel)}级地区（{jlevel}），"
                     f"单位应为{UNIT_LEVEL_NAMES[expected]}（{expected}））")


def _contacts(given: Any, where: str, problems: ProblemList, address: AddressRule) -> list[Contact]:
    contacts: list[Contact] = []
    if not isinstance(given, (list, tuple)):
        problems.add(f"{where}.contacts", f"must be a list of contacts, got {type(given).__name__}",
                     f"须为联系人列表，实际是 {type(given).__name__}")
        return contacts
    for i, c in enumerate(given):
        if not isinstance(c, Mapping):
            problems.add(f"{where}.contacts[{i}]", "must be an object with name, position, phone, email",
                         "须为含 name（姓名）、position（职务）、phone（电话）、email（邮箱）的对象")
            continue
        contact = check_contact(c, f"{where}.contacts[{i}]", problems, address=address)
        if contact is None:
            problems.add(f"{where}.contacts[{i}]", "an empty contact: give a name, and a phone or an email",
                         "联系人为空：请填写姓名，以及电话或电子邮箱")
        if contact is not None:
            contacts.append(contact)
    return contacts


def check_jurisdiction(data: Mapping[str, Any], where: str, known_levels: Mapping[str, str],
                       problems: ProblemList) -> JurisdictionDraft | None:
    """Validate one jurisdiction; a child is one level below its parent (province → city → county)."""
    before = problems.count
    jid, name = _text(data.get("id")), _text(data.get("name"))
    level = _text(data.get("level"))
    level = JURISDICTION_LEVEL_ALIASES.get(level, level)
    parent = _text(data.get("parent")) or None
    _no_control(where, {"name": name}, problems)
    if not _CODE.match(jid):
        problems.add(f"{where}.id",
                     f"must be 1–64 of a-z, 0-9, '-', '_' (starting with a letter or digit); got {jid!r}",
                     f"须为1–64个 a-z、0-9、'-'、'_' 字符（以字母或数字开头）；填写的是 {jid!r}")
    if not name:
        problems.add(f"{where}.name", "required", "须填写地区名称")
    if level not in JURISDICTION_LEVELS:
        problems.add(f"{where}.level", f"must be one of {', '.join(JURISDICTION_LEVELS)}; got {level!r}",
                     f"须为 province（省）、city（市）、county（县）之一；填写的是 {level!r}")
    elif level == "province" and parent:
        problems.add(f"{where}.parent", "a province has no parent", "省级地区没有上级地区")
    elif level != "province":
        _check_parent(where, level, parent, known_levels, problems)
    if problems.count > before:
        return None
    return JurisdictionDraft(jid, name, level, parent)


def _check_parent(where: str, level: str, parent: str | None, known_levels: Mapping[str, str],
                  problems: ProblemList) -> None:
    """A city's or county's parent: given, known, and one level up."""
    if not parent:
        problems.add(f"{where}.parent", f"a {level} needs a parent",
                     f"{JURISDICTION_LEVEL_NAMES[level]}级地区（{level}）须填写上级地区")
    elif parent not in known_levels:
        problems.add(f"{where}.parent", f"unknown jurisdiction {parent!r}", f"没有地区 {parent!r}")
    else:
        want = JURISDICTION_LEVELS[JURISDICTION_LEVELS.index(level) - 1]
        if known_levels[parent] != want:
            problems.add(f"{where}.parent",
                         f"a {level}'s parent must be a {want}; {parent} is a {known_levels[parent]}",
                         f"{JURISDICTION_LEVEL_NAMES[level]}级地区（{level}）的上级须为"
                         f"{JURISDICTION_LEVEL_NAMES[want]}级地区（{want}）；{parent} 是"
                         f"{JURISDICTION_LEVEL_NAMES.get(known_levels[parent], known_levels[parent])}级地区"
                         f"（{known_levels[parent]}）")


def unit_row_as_dict(values: Mapping[str, str]) -> dict[str, Any]:
    """A roster row (values by column key, as ``adapters.rosters`` reads them) as unit data."""
    contact = {k: values.get(f"contact_{k}", "") for k in ("name", "position", "phone", "email")}
    return {"name": values.get("name"), "jurisdiction": values.get("jurisdiction"), "level": values.get("level"),
            "category": values.get("category"), "contacts": [contact] if any(contact.values()) else [],
            "certified_year": values.get("certified_year"), "certified_note": values.get("certified_note")}
