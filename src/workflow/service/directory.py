"""Jurisdictions, units and coordinators: imports that write everything or nothing, one at a
time for the API, and the unit's contact form (附件2) for its open rounds.

Imports take rows already read from a roster (``adapters.rosters`` reads .csv and .xlsx;
``workflow.files`` joins the two for the CLI and the API).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from notifications.addresses import check_address  # the mailer's rule, at input too

from ..domain.case import Actor
from ..domain.dates import require_aware
from ..domain.errors import AlreadyExists, InvalidInput, NotFound, Problem, ProblemList
from ..domain.units import (
    JURISDICTION_LEVEL_ALIASES,
    JURISDICTION_LEVEL_NAMES,
    JURISDICTION_LEVELS,
    UnitDraft,
    check_contact,
    check_jurisdiction,
    check_unit,
    unit_row_as_dict,
)
from .cases import take
from .ports import CaseStore, CoordinatorRecord, JurisdictionRecord, NewUnit, Storage, UnitRecord


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def import_jurisdiction_rows(db: Storage, sheet: Any, source: str, *, actor: Actor, now: datetime) -> ImportResult:
    """Jurisdictions from a roster's rows (id, name, level, parent): every bad row reported with
    its line, nothing imported; a known jurisdiction is renamed, never moved."""
    with db.unit_of_work(core=True) as uow:
        existing = {j.id: j for j in uow.directory.jurisdictions()}
        levels = {j.id: j.level for j in existing.values()}
        for row in sheet.rows:  # parents named anywhere in the file are known
            level = JURISDICTION_LEVEL_ALIASES.get(row.values.get("level", ""), row.values.get("level", ""))
            levels.setdefault(row.values.get("id", ""), level)
        problems = ProblemList()
        problems.extend(sheet.problems, sheet.problem_count)  # the reader's first problems, and a count
        drafts = []
        seen: dict[str, int] = {}
        for row in sheet.rows:
            where = f"{source}:{row.line}"
            draft = check_jurisdiction(row.values, where, levels, problems)
            if draft is None:
                continue
            if draft.id in seen:
                problems.add(f"{where}.id", f"{draft.id!r} is also on line {seen[draft.id]}",
                             f"{draft.id!r} 与第 {seen[draft.id]} 行重复")
                continue
            seen[draft.id] = row.line
            old = existing.get(draft.id)
            if old is not None and (old.level != draft.level or old.parent_id != draft.parent_id):
                problems.add(f"{where}.id", f"{draft.id!r} exists as a {old.level} under {old.parent_id}; "
                                            "moving a jurisdiction is not an import",
                             f"{draft.id!r} 已是 {old.parent_id or '（无上级）'} 下的"
                             f"{JURISDICTION_LEVEL_NAMES.get(old.level, old.level)}级地区（{old.level}）；"
                             "导入不能调整地区的级别或上级")
                continue
            levels[draft.id] = draft.level
            drafts.append(draft)
        _refuse_if_any(problems, source, "地区")
        paths = {j.id: j.path for j in existing.values()}
        created = updated = unchanged = 0
        for d in sorted(drafts, key=lambda d: JURISDICTION_LEVELS.index(d.level)):  # parents first
            paths[d.id] = (paths[d.parent_id] if d.parent_id else "/") + d.id + "/"
            old = existing.get(d.id)
            if old is None:
                uow.directory.add_jurisdiction(JurisdictionRecord(d.id, d.name, d.level, d.parent_id, paths[d.id]))
                created += 1
            elif old.name != d.name:
                uow.directory.rename_jurisdiction(d.id, d.name)
                updated += 1
            else:
                unchanged += 1
        if created or updated:
            uow.operator.append("jurisdictions", "JurisdictionsImported", str(actor), now, {
                "source": source, "created": created, "updated": updated, "unchanged": unchanged,
                "jurisdictions": sorted(d.id for d in drafts)[:LISTED]})
        uow.commit()
    return ImportResult(created, updated, unchanged)


LISTED = 1000  # ids listed in an import's operator event (the counts are always whole)


def _refuse_if_any(problems: ProblemList, source: str, what_zh: str) -> None:
    """An import with problems: refused whole, every problem named (``what_zh``: what it imports)."""
    problems.raise_if_any(f"{source}: {problems.count} problem(s); nothing imported",
                          f"{source}：共{problems.count}处问题，未导入任何{what_zh}")


def _new_unit(d: UnitDraft) -> NewUnit:
    return NewUnit(d.jurisdiction_id, d.name, d.level, d.category, [c.to_dict() for c in d.contacts],
                   d.certified_year, d.certified_note or None)


ADD_BATCH = 1000  # new units written per statement while a roster is imported


class _UnitImport:
    """A unit roster's rows as they are read: each checked, and written in batches while the
    roster has no problem (the unit of work commits only if none has one, so a roster with a
    problem still writes nothing); after the first problem the rest are only checked. Neither
    the rows nor the units already known are held whole: their keys, and a batch at a time."""

    def __init__(self, uow: CaseStore, source: str, now: datetime, update: bool, within_path: str | None) -> None:
        self.uow, self.source, self.now, self.update = uow, source, now, update
        self.levels = {j.id: j.level for j in uow.directory.jurisdictions(within_path)}
        self.known = uow.directory.unit_keys()  # (jurisdiction, name) → id
        self.problems = ProblemList()  # the rows' (the reader's own come first when reported)
        self.seen: dict[tuple[str, str], int] = {}
        self.pending: list[NewUnit] = []  # new units, written a batch at a time
        self.replacing: list[tuple[int, NewUnit]] = []  # (``update``) known units and their rows, likewise
        self.created = self.updated = self.unchanged = 0
        self.changed: list[int] = []

    def row(self, row: Any, writing: bool) -> None:
        where = f"{self.source}:{row.line}"
        draft = check_unit(unit_row_as_dict(row.values), where, self.levels, self.problems, address=check_address)
        if draft is None:
            return
        key = (draft.jurisdiction_id, draft.name)
        if key in self.seen:
            self.problems.add(f"{where}.name", f"{draft.name} ({draft.jurisdiction_id}) is also on line "
                                               f"{self.seen[key]}",
                              f"{draft.name}（{draft.jurisdiction_id}）与第 {self.seen[key]} 行重复")
            return
        self.seen[key] = row.line
        if key in self.known and not self.update:
            self.problems.add(f"{where}.name", f"{draft.name} ({draft.jurisdiction_id}) already exists "
                                               f"(unit {self.known[key]}); use --update to replace it",
                              f"{draft.name}（{draft.jurisdiction_id}）已是单位 {self.known[key]}，可用 --update 替换")
            return
        if writing and not self.problems:
            if key in self.known:
                self.replacing.append((self.known[key], _new_unit(draft)))
            else:
                self.pending.append(_new_unit(draft))
                self.created += 1
            if len(self.pending) + len(self.replacing) >= ADD_BATCH:
                self.flush()

    def flush(self) -> None:
        """Write the batch: the new units together; each known unit replaced if its row changes it."""
        if self.pending:
            self.uow.directory.add_units(self.pending, self.now)
            self.pending = []
        if self.replacing:
            olds = {u.id: u for u in self.uow.directory.units_of([unit_id for unit_id, _ in self.replacing])}
            for unit_id, new in self.replacing:
                self.compare_and_save(olds[unit_id], new)
            self.replacing = []

    def compare_and_save(self, old: UnitRecord, new: NewUnit) -> None:
        if (old.category, old.contacts, old.certified_year, old.certified_note) == (
                new.category, new.contacts, new.certified_year, new.certified_note):
            self.unchanged += 1
            return
        self.uow.directory.save_unit(replace(old, category=new.category, contacts=new.contacts,
                                             certified_year=new.certified_year, certified_note=new.certified_note,
                                             updated_at=self.now))
        self.updated += 1
        if len(self.changed) < LISTED:
            self.changed.append(old.id)


def import_unit_rows(db: Storage, sheet: Any, source: str, now: datetime, *, update: bool = False,
                     within_path: str | None = None, actor: Actor) -> ImportResult:
    """Units from a roster's rows (a ``Sheet``, or a ``RowStream`` read as it goes). Any bad row:
    every problem reported with its line, nothing written.

    A unit is known by (jurisdiction, name). An existing unit is an error unless ``update`` is
    set, in which case its category, contacts and certification before the system are replaced.
    With ``within_path`` (a coordinator's subtree) a row for a jurisdiction outside it is a problem.
    """
    require_aware(now, "now")
    with db.unit_of_work(core=True) as uow:
        run = _UnitImport(uow, source, now, update, within_path)
        for row in sheet.rows:
            run.row(row, writing=not (sheet.problems or sheet.problem_count))
        problems = ProblemList()
        problems.extend(sheet.problems, sheet.problem_count)  # the reader's first problems, and a count
        problems.extend(run.problems.problems, run.problems.count)
        _refuse_if_any(problems, source, "单位")
        run.flush()
        if run.created or run.updated:
            uow.operator.append("units", "UnitsImported", str(actor), now, {
                "source": source, "created": run.created, "updated": run.updated, "unchanged": run.unchanged,
                "updated_units": run.changed})
        uow.commit()
    return ImportResult(run.created, run.updated, run.unchanged)


def add_coordinator(db: Storage, jurisdiction_id: str, name: str, email: str, *, actor: Actor,
                    now: datetime) -> CoordinatorRecord:
    """Add a coordinator; the jurisdiction must exist and the email look like one."""
    problems = ProblemList()
    with db.unit_of_work(core=True) as uow:
        if uow.directory.jurisdiction(jurisdiction_id) is None:
            problems.add("jurisdiction", f"unknown jurisdiction {jurisdiction_id!r}",
                         f"地区 {jurisdiction_id!r} 不存在")
        contact = check_contact({"name": name, "email": email}, "coordinator", problems, address=check_address)
        if contact is not None and not contact.email:
            problems.add("coordinator.email", "an email is needed (digests are mailed)",
                         "须填写邮箱（汇总通知通过邮件发送）")
        problems.raise_if_any("cannot add coordinator", f"无法在地区 {jurisdiction_id!r} 添加协调人员")
        assert contact is not None
        email = contact.email  # the normal form, so one address is one coordinator
        if any(c.jurisdiction_id == jurisdiction_id and c.email.lower() == email.lower()
               for c in uow.directory.coordinators()):
            raise AlreadyExists(f"{email} is already a coordinator of {jurisdiction_id}",
                                f"{email} 已是地区 {jurisdiction_id} 的协调人员")
        coordinator = uow.directory.add_coordinator(jurisdiction_id, name.strip(), email)
        uow.operator.append("coordinators", "CoordinatorAdded", str(actor), now, {
            "coordinator": coordinator.id, "jurisdiction_id": jurisdiction_id, "name": coordinator.name,
            "email": email})
        uow.commit()
    return coordinator


# ---------------------------------------------------------------- one at a time (the API)

def create_jurisdiction(db: Storage, data: dict[str, Any], *, within_path: str | None = None, actor: Actor,
                        now: datetime) -> JurisdictionRecord:
    """Add one jurisdiction under an existing parent (inside ``within_path`` when given)."""
    problems = ProblemList()
    with db.unit_of_work(core=True) as uow:
        known = {j.id: j for j in uow.directory.jurisdictions()}
        visible = {k: j.level for k, j in known.items() if within_path is None or j.path.startswith(within_path)}
        draft = check_jurisdiction(data, "jurisdiction", visible, problems)
        if draft is not None and within_path is not None and draft.parent_id is None:
            problems.add("jurisdiction.parent", "a coordinator adds jurisdictions under their own",
                         "协调人员只能在本地区之下添加地区")
        problems.raise_if_any("cannot add the jurisdiction", "无法添加该地区")
        assert draft is not None
        if draft.id in known:
            raise AlreadyExists(f"jurisdiction {draft.id!r} already exists", f"地区 {draft.id!r} 已存在",
                                jurisdiction_id=draft.id)
        parent_path = known[draft.parent_id].path if draft.parent_id else "/"
        record = JurisdictionRecord(draft.id, draft.name, draft.level, draft.parent_id, parent_path + draft.id + "/")
        uow.directory.add_jurisdiction(record)
        uow.operator.append("jurisdictions", "JurisdictionCreated", str(actor), now, {
            "jurisdiction_id": record.id, "name": record.name, "level": record.level, "parent_id": record.parent_id})
        uow.commit()
    return record


def create_unit(db: Storage, data: dict[str, Any], now: datetime, *, within_path: str | None = None,
                actor: Actor) -> UnitRecord:
    """Add one unit; the same checks as a roster row."""
    require_aware(now, "now")
    problems = ProblemList()
    with db.unit_of_work(core=True) as uow:
        levels = {j.id: j.level for j in uow.directory.jurisdictions(within_path)}
        draft = check_unit(data, "unit", levels, problems, address=check_address)
        problems.raise_if_any("cannot add the unit", "无法添加该单位")
        assert draft is not None
        exists = uow.directory.unit_named(draft.jurisdiction_id, draft.name)
        if exists is not None:
            raise AlreadyExists(f"{draft.name} ({draft.jurisdiction_id}) already exists (unit {exists.id})",
                                f"{draft.name}（{draft.jurisdiction_id}）已存在（单位 {exists.id}）",
                                unit_id=exists.id)
        unit = uow.directory.add_unit(_new_unit(draft), now)
        uow.operator.append("units", "UnitCreated", str(actor), now, {
            "unit": unit.id, "jurisdiction_id": unit.jurisdiction_id, "name": unit.name, "level": unit.level,
            "category": unit.category})
        uow.commit()
    return unit


UNIT_FIELDS = ("name", "category", "contacts", "certified_year", "certified_note")


def update_unit(db: Storage, unit_id: int, changes: dict[str, Any], now: datetime, *, actor: Actor) -> UnitRecord:
    """Change a unit's name, category, contacts, or the year it was certified before the system
    kept the province's rounds (its jurisdiction and level stay)."""
    require_aware(now, "now")
    problems = ProblemList()
    for key in sorted(set(changes) - set(UNIT_FIELDS)):
        problems.add(f"unit.{key}", f"cannot be changed (changeable: {', '.join(UNIT_FIELDS)})",
                     f"不能修改（可修改：{'、'.join(UNIT_FIELDS)}）")
    with db.unit_of_work(core=True) as uow:
        unit = uow.directory.unit(unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在")
        merged = {"name": unit.name, "jurisdiction": unit.jurisdiction_id, "level": unit.level,
                  "category": unit.category, "contacts": unit.contacts, "certified_year": unit.certified_year,
                  "certified_note": unit.certified_note}
        merged.update({k: v for k, v in changes.items() if k in UNIT_FIELDS})
        jurisdiction = uow.directory.jurisdiction(unit.jurisdiction_id)
        assert jurisdiction is not None
        draft = check_unit(merged, "unit", {unit.jurisdiction_id: jurisdiction.level}, problems,
                           address=check_address)
        problems.raise_if_any(f"cannot change unit {unit_id}", f"无法修改单位 {unit_id}")
        assert draft is not None
        if draft.name != unit.name and uow.directory.unit_named(unit.jurisdiction_id, draft.name) is not None:
            raise AlreadyExists(f"{draft.name} ({unit.jurisdiction_id}) already exists",
                                f"{draft.name}（{unit.jurisdiction_id}）已存在")
        new = _new_unit(draft)
        saved = uow.directory.save_unit(replace(unit, name=new.name, category=new.category, contacts=new.contacts,
                                                certified_year=new.certified_year,
                                                certified_note=new.certified_note, updated_at=now))
        diff = {k: getattr(saved, k) for k in UNIT_FIELDS if getattr(saved, k) != getattr(unit, k)}
        if diff:
            uow.operator.append("units", "UnitChanged", str(actor), now, {"unit": unit_id, "changed": diff})
        uow.commit()
    return saved


@dataclass(frozen=True, slots=True)
class ContactFormResult:
    unit: UnitRecord  # as it is after the form
    cases: list[int]  # the open cases that recorded the form for their round

    @property
    def unit_id(self) -> int:
        return self.unit.id

    @property
    def contacts(self) -> list[dict[str, Any]]:
        return self.unit.contacts


def give_contact_form(db: Storage, unit_id: int, contacts: list[dict[str, Any]] | None, actor: Actor,
                      now: datetime) -> ContactFormResult:
    """The contact-person form (附件2) for the unit's open rounds, in one transaction: with
    ``contacts`` the unit's contacts are replaced by the form's; without, the contacts on file
    are confirmed for this round. Every open case of the unit records it (ContactFormGiven);
    a contact on file from an earlier round counts for a round only once confirmed."""
    require_aware(now, "now")
    checked: list[dict[str, Any]] | None = None
    if contacts is not None:
        problems = ProblemList()
        given = [check_contact(c, f"unit.contacts[{i}]", problems, address=check_address)
                 for i, c in enumerate(contacts)]
        if not contacts or any(c is None for c in given):
            problems.add("unit.contacts", "the form needs at least one contact with a name and a phone or an email",
                         "联系人信息表至少填写一名联系人（姓名及电话或邮箱）")
        problems.raise_if_any("invalid contact form; nothing was recorded", "联系人信息表有误，未保存")
        checked = [c.to_dict() for c in given if c is not None]
    with db.unit_of_work(core=True) as uow:
        unit = uow.directory.unit(unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在", unit_id=unit_id)
        on_file = checked if checked is not None else list(unit.contacts)
        if not on_file:
            raise InvalidInput(f"unit {unit_id} has no contact on file to confirm: fill in the form",
                               [Problem("contacts", "no contact on file", "尚无联系人信息，请填写联系人信息表")],
                               f"尚无联系人信息可确认（单位 {unit_id}），请填写联系人信息表", unit_id=unit_id)
        if checked is not None:
            before = unit.contacts
            unit = uow.directory.save_unit(replace(unit, contacts=checked, updated_at=now))
            if unit.contacts != before:
                uow.operator.append("units", "UnitChanged", str(actor), now,
                                    {"unit": unit_id, "changed": {"contacts": unit.contacts}, "by": "contact form"})
        how = "form" if checked is not None else "confirmed"
        recorded = []
        for case_id in uow.open_case_ids(unit_id):
            case = uow.get(case_id)
            if how == "confirmed" and case.contact_form:
                continue
            take(uow, case, "give_contact_form", {"how": how, "contacts": len(on_file)}, actor, now)
            recorded.append(case_id)
        if how == "confirmed" and not recorded:
            raise InvalidInput(f"unit {unit_id} has no open case whose round still needs the contact form",
                               [Problem("contacts", "nothing to confirm", "本轮联系人信息已确认或没有进行中的创建")],
                               f"没有需要确认联系人的进行中创建（单位 {unit_id}）", unit_id=unit_id)
        uow.commit()
    return ContactFormResult(unit, recorded)
