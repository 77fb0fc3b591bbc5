"""Jurisdictions and units: imports that write everything or nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from ..adapters.db.store import Database
from ..adapters.db.tables import Case, Coordinator, Jurisdiction, Unit
from ..adapters.rosters import read_jurisdictions_csv, read_units, unit_row_as_dict
from ..clock import require_aware
from ..domain.case import Actor
from ..domain.errors import AlreadyExists, ProblemList
from ..domain.units import (JURISDICTION_LEVEL_ALIASES, JURISDICTION_LEVELS, check_jurisdiction,
                            check_unit)


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int


def import_jurisdictions(db: Database, path: Path) -> ImportResult:
    """Import jurisdictions; a parent may come later in the same file."""
    sheet = read_jurisdictions_csv(path)
    rows = sheet.rows
    with db.write_connection() as conn, Session(bind=conn) as session:
        existing = {j.id: j for j in session.exec(select(Jurisdiction)).scalars()}
        levels = {j.id: j.level for j in existing.values()}
        for row in rows:  # parents named anywhere in the file are known
            level = JURISDICTION_LEVEL_ALIASES.get(row.values.get("level", ""), row.values.get("level", ""))
            levels.setdefault(row.values.get("id", ""), level)
        problems = ProblemList(list(sheet.problems))
        drafts = []
        seen: dict[str, int] = {}
        for row in rows:
            where = f"{path}:{row.line}"
            draft = check_jurisdiction(row.values, where, levels, problems)
            if draft is None:
                continue
            if draft.id in seen:
                problems.add(f"{where}.id", f"{draft.id!r} is also on line {seen[draft.id]}")
                continue
            seen[draft.id] = row.line
            old = existing.get(draft.id)
            if old is not None and (old.level != draft.level or old.parent_id != draft.parent_id):
                problems.add(f"{where}.id", f"{draft.id!r} exists as a {old.level} under {old.parent_id}; "
                                            "moving a jurisdiction is not an import")
                continue
            levels[draft.id] = draft.level
            drafts.append(draft)
        problems.raise_if_any(f"{path}: {len(problems.problems)} problem(s); nothing imported")
        paths = {j.id: j.path for j in existing.values()}
        created = updated = unchanged = 0
        for d in sorted(drafts, key=lambda d: JURISDICTION_LEVELS.index(d.level)):  # parents first
            paths[d.id] = (paths[d.parent_id] if d.parent_id else "/") + d.id + "/"
            old = existing.get(d.id)
            if old is None:
                session.add(Jurisdiction(id=d.id, name=d.name, level=d.level, parent_id=d.parent_id, path=paths[d.id]))
                created += 1
            elif old.name != d.name:
                old.name = d.name
                updated += 1
            else:
                unchanged += 1
        session.commit()
    return ImportResult(created, updated, unchanged)


def import_units(db: Database, path: Path, now: datetime, *, update: bool = False) -> ImportResult:
    """Import a unit roster file (.csv or .xlsx); see :func:`import_units_data`."""
    return import_units_data(db, Path(path).read_bytes(), str(path), now, update=update)


def import_units_data(db: Database, data: bytes, source: str, now: datetime, *, update: bool = False,
                      within_path: str | None = None) -> ImportResult:
    """Import a unit roster. Any bad row: every problem reported with its line, nothing written.

    A unit is known by (jurisdiction, name). An existing unit is an error unless
    ``update`` is set, in which case its category and contacts are replaced. With
    ``within_path`` (a coordinator's subtree) a row for a jurisdiction outside it is a problem.
    """
    require_aware(now, "now")
    sheet = read_units(data, source)
    rows = sheet.rows
    path = source
    with db.write_connection() as conn, Session(bind=conn) as session:
        jurisdictions = list(session.exec(select(Jurisdiction)).scalars())
        levels = {j.id: j.level for j in jurisdictions
                  if within_path is None or j.path.startswith(within_path)}
        existing = {(u.jurisdiction_id, u.name): u for u in session.exec(select(Unit)).scalars()}
        problems = ProblemList(list(sheet.problems))
        seen: dict[tuple[str, str], int] = {}
        drafts = []
        for row in rows:
            where = f"{path}:{row.line}"
            draft = check_unit(unit_row_as_dict(row), where, levels, problems)
            if draft is None:
                continue
            key = (draft.jurisdiction_id, draft.name)
            if key in seen:
                problems.add(f"{where}.name", f"{draft.name} ({draft.jurisdiction_id}) is also on line {seen[key]}")
                continue
            seen[key] = row.line
            if key in existing and not update:
                problems.add(f"{where}.name", f"{draft.name} ({draft.jurisdiction_id}) already exists "
                                              f"(unit {existing[key].id}); use --update to replace it")
                continue
            drafts.append(draft)
        problems.raise_if_any(f"{path}: {len(problems.problems)} problem(s); nothing imported")
        created = updated = unchanged = 0
        for d in drafts:
            contacts = [c.to_dict() for c in d.contacts]
            old = existing.get((d.jurisdiction_id, d.name))
            certified = (d.certified_year, d.certified_note or None)
            if old is None:
                session.add(Unit(jurisdiction_id=d.jurisdiction_id, name=d.name, level=d.level, category=d.category,
                                 contacts=contacts, certified_year=certified[0], certified_note=certified[1],
                                 created_at=now, updated_at=now))
                created += 1
            elif (old.category, old.contacts, old.certified_year, old.certified_note) != (d.category, contacts,
                                                                                          *certified):
                old.category, old.contacts, old.updated_at = d.category, contacts, now
                old.certified_year, old.certified_note = certified
                updated += 1
            else:
                unchanged += 1
        session.commit()
    return ImportResult(created, updated, unchanged)



def add_coordinator(db: Database, jurisdiction_id: str, name: str, email: str) -> Coordinator:
    """Add a coordinator; the jurisdiction must exist and the email look like one."""
    from ..domain.units import check_contact

    problems = ProblemList()
    with db.write_connection() as conn, Session(bind=conn) as session:
        if session.get(Jurisdiction, jurisdiction_id) is None:
            problems.add("jurisdiction", f"unknown jurisdiction {jurisdiction_id!r}")
        contact = check_contact({"name": name, "email": email}, "coordinator", problems)
        if contact is not None and not contact.email:
            problems.add("coordinator.email", "an email is needed (digests are mailed)")
        problems.raise_if_any("cannot add coordinator")
        exists = session.exec(select(Coordinator).where(Coordinator.jurisdiction_id == jurisdiction_id,
                                                        Coordinator.email == email)).first()
        if exists is not None:
            raise AlreadyExists(f"{email} is already a coordinator of {jurisdiction_id} (id {exists[0].id})")
        coordinator = Coordinator(jurisdiction_id=jurisdiction_id, name=name.strip(), email=email.strip(),
                                  active=True)
        session.add(coordinator)
        session.commit()
        session.refresh(coordinator)
        return coordinator


# ---------------------------------------------------------------- one at a time (the API)

def _levels(session: Session, within_path: str | None) -> dict[str, str]:
    return {j.id: j.level for j in session.exec(select(Jurisdiction)).scalars()
            if within_path is None or j.path.startswith(within_path)}


def create_jurisdiction(db: Database, data: dict, *, within_path: str | None = None) -> Jurisdiction:
    """Add one jurisdiction under an existing parent (inside ``within_path`` when given)."""
    problems = ProblemList()
    with db.write_connection() as conn, Session(bind=conn) as session:
        known = {j.id: j for j in session.exec(select(Jurisdiction)).scalars()}
        visible = {k: j.level for k, j in known.items() if within_path is None or j.path.startswith(within_path)}
        draft = check_jurisdiction(data, "jurisdiction", visible, problems)
        if draft is not None and within_path is not None and draft.parent_id is None:
            problems.add("jurisdiction.parent", "a coordinator adds jurisdictions under their own")
        problems.raise_if_any("cannot add the jurisdiction")
        assert draft is not None
        if draft.id in known:
            raise AlreadyExists(f"jurisdiction {draft.id!r} already exists", jurisdiction_id=draft.id)
        parent_path = known[draft.parent_id].path if draft.parent_id else "/"
        row = Jurisdiction(id=draft.id, name=draft.name, level=draft.level, parent_id=draft.parent_id,
                           path=parent_path + draft.id + "/")
        session.add(row)
        _commit(session, f"jurisdiction {draft.id!r} already exists")
        session.refresh(row)
        return row


def create_unit(db: Database, data: dict, now: datetime, *, within_path: str | None = None) -> Unit:
    """Add one unit; the same checks as a roster row."""
    require_aware(now, "now")
    problems = ProblemList()
    with db.write_connection() as conn, Session(bind=conn) as session:
        draft = check_unit(data, "unit", _levels(session, within_path), problems)
        problems.raise_if_any("cannot add the unit")
        assert draft is not None
        exists = session.exec(select(Unit.id).where(Unit.jurisdiction_id == draft.jurisdiction_id,
                                                    Unit.name == draft.name)).first()
        if exists is not None:
            raise AlreadyExists(f"{draft.name} ({draft.jurisdiction_id}) already exists (unit {exists[0]})",
                                unit_id=exists[0])
        unit = Unit(jurisdiction_id=draft.jurisdiction_id, name=draft.name, level=draft.level,
                    category=draft.category, contacts=[c.to_dict() for c in draft.contacts],
                    certified_year=draft.certified_year, certified_note=draft.certified_note or None,
                    created_at=now, updated_at=now)
        session.add(unit)
        _commit(session, f"{draft.name} ({draft.jurisdiction_id}) already exists")
        session.refresh(unit)
        return unit


UNIT_FIELDS = ("name", "category", "contacts", "certified_year", "certified_note")


def update_unit(db: Database, unit_id: int, changes: dict, now: datetime) -> Unit:
    """Change a unit's name, category, contacts, or the year it was certified before the system
    kept the province's rounds (its jurisdiction and level stay)."""
    from ..domain.errors import NotFound

    require_aware(now, "now")
    problems = ProblemList()
    for key in sorted(set(changes) - set(UNIT_FIELDS)):
        problems.add(f"unit.{key}", f"cannot be changed (changeable: {', '.join(UNIT_FIELDS)})")
    with db.write_connection() as conn, Session(bind=conn) as session:
        unit = session.get(Unit, unit_id)
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist")
        merged = {"name": unit.name, "jurisdiction": unit.jurisdiction_id, "level": unit.level,
                  "category": unit.category, "contacts": unit.contacts, "certified_year": unit.certified_year,
                  "certified_note": unit.certified_note}
        merged.update({k: v for k, v in changes.items() if k in UNIT_FIELDS})
        draft = check_unit(merged, "unit", {unit.jurisdiction_id: _jurisdiction_level(session, unit)}, problems)
        problems.raise_if_any(f"cannot change unit {unit_id}")
        assert draft is not None
        if draft.name != unit.name and session.exec(select(Unit.id).where(
                Unit.jurisdiction_id == unit.jurisdiction_id, Unit.name == draft.name)).first() is not None:
            raise AlreadyExists(f"{draft.name} ({unit.jurisdiction_id}) already exists")
        unit.name, unit.category = draft.name, draft.category
        unit.contacts = [c.to_dict() for c in draft.contacts]
        unit.certified_year, unit.certified_note = draft.certified_year, draft.certified_note or None
        unit.updated_at = now
        session.add(unit)
        _commit(session, f"{draft.name} ({unit.jurisdiction_id}) already exists")
        session.refresh(unit)
        return unit


def _jurisdiction_level(session: Session, unit: Unit) -> str:
    j = session.get(Jurisdiction, unit.jurisdiction_id)
    assert j is not None
    return j.level


def _commit(session: Session, exists: str) -> None:
    """Flush and commit; a unique key taken by a concurrent request meanwhile is AlreadyExists."""
    from sqlalchemy.exc import IntegrityError

    try:
        session.commit()
    except IntegrityError as exc:
        raise AlreadyExists(exists) from exc


@dataclass(frozen=True, slots=True)
class ContactFormResult:
    unit_id: int
    contacts: list[dict[str, str]]
    cases: list[int]  # the open cases that recorded the form for their round


def give_contact_form(db: Database, unit_id: int, contacts: list[dict[str, Any]] | None, actor: Actor,
                      now: datetime) -> ContactFormResult:
    """The contact-person form (附件2) for the unit's open rounds, in one transaction: with
    ``contacts`` the unit's contacts are replaced by the form's; without, the contacts on file
    are confirmed for this round. Every open case of the unit records it (ContactFormGiven);
    a contact on file from an earlier round counts for a round only once confirmed."""
    from ..domain.case import apply, decide
    from ..domain.errors import InvalidInput, NotFound, Problem
    from ..domain.lifecycle import TERMINAL_STATES
    from ..domain.units import check_contact

    require_aware(now, "now")
    checked: list[dict[str, str]] | None = None
    if contacts is not None:
        problems = ProblemList()
        given = [check_contact(c, f"unit.contacts[{i}]", problems) for i, c in enumerate(contacts)]
        if not contacts or any(c is None for c in given):
            problems.add("unit.contacts", "the form needs at least one contact with a name and a phone or an email",
                         "联系人信息表至少填写一名联系人（姓名及电话或邮箱）")
        problems.raise_if_any("invalid contact form; nothing was recorded", "联系人信息表有误，未保存")
        checked = [c.to_dict() for c in given if c is not None]
    with db.unit_of_work(core=True) as uow:
        conn = uow.connection
        unit = conn.execute(select(Unit.id, Unit.contacts).where(Unit.id == unit_id)).first()
        if unit is None:
            raise NotFound(f"unit {unit_id} does not exist", unit_id=unit_id)
        on_file = checked if checked is not None else list(unit.contacts or [])
        if not on_file:
            raise InvalidInput(f"unit {unit_id} has no contact on file to confirm: fill in the form",
                               [Problem("contacts", "no contact on file", "尚无联系人信息，请填写联系人信息表")],
                               "尚无联系人信息可确认，请填写联系人信息表", unit_id=unit_id)
        if checked is not None:
            conn.execute(update(Unit).where(Unit.id == unit_id).values(contacts=checked, updated_at=now))
        how = "form" if checked is not None else "confirmed"
        recorded = []
        for case_id in conn.execute(select(Case.id).where(Case.unit_id == unit_id,
                                                             Case.state.notin_(sorted(TERMINAL_STATES)))
                                    .order_by(Case.id)).scalars():
            case = uow.get(case_id)
            if how == "confirmed" and case.contact_form:
                continue
            event = decide(case, "give_contact_form", {"how": how, "contacts": len(on_file)}, actor, now,
                           uow.round_context(case.round_id))
            uow.append(case, event, apply(case, event))
            recorded.append(case_id)
        if how == "confirmed" and not recorded:
            raise InvalidInput(f"unit {unit_id} has no open case whose round still needs the contact form",
                               [Problem("contacts", "nothing to confirm", "本轮联系人信息已确认或没有进行中的创建")],
                               "没有需要确认联系人的进行中创建", unit_id=unit_id)
        uow.commit()
    return ContactFormResult(unit_id, on_file, recorded)
