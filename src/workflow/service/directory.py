"""Jurisdictions and units: imports that write everything or nothing."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from ..adapters.db.store import Database
from ..adapters.db.tables import Coordinator, Jurisdiction, Unit
from ..adapters.rosters import read_jurisdictions_csv, read_units_csv, unit_row_as_dict
from ..clock import require_aware
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
    """Import a unit roster. Any bad row: every problem reported with its line, nothing written.

    A unit is known by (jurisdiction, name). An existing unit is an error unless
    ``update`` is set, in which case its category and contacts are replaced.
    """
    require_aware(now, "now")
    sheet = read_units_csv(path)
    rows = sheet.rows
    with db.write_connection() as conn, Session(bind=conn) as session:
        levels = {j.id: j.level for j in session.exec(select(Jurisdiction)).scalars()}
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
            if old is None:
                session.add(Unit(jurisdiction_id=d.jurisdiction_id, name=d.name, level=d.level, category=d.category,
                                 contacts=contacts, created_at=now, updated_at=now))
                created += 1
            elif (old.category, old.contacts) != (d.category, contacts):
                old.category, old.contacts, old.updated_at = d.category, contacts, now
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
