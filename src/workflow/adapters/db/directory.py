"""Jurisdictions, units and coordinators in SQL (the ``DirectoryStore`` port)."""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ...domain.errors import AlreadyExists, NotFound
from ...service.ports import CoordinatorRecord, JurisdictionRecord, NewUnit, UnitRecord
from .counts import OnConnection, recertify, unit_added, units_added
from .tables import coordinators, jurisdictions, units
from .writes import insert_new, require

_UNIT_COLUMNS = (units.c.id, units.c.jurisdiction_id, units.c.name, units.c.level, units.c.category, units.c.contacts,
                 units.c.certified_year, units.c.certified_note, units.c.created_at, units.c.updated_at,
                 jurisdictions.c.path)


_ADD_UNITS_TEXT = ("INSERT INTO units (jurisdiction_id, name, level, category, contacts, certified_year, "
                   "certified_note, certified_since, created_at, updated_at) VALUES (:jurisdiction_id, :name, :level, "
                   ":category, :contacts, :certified_year, :certified_note, :certified_since, :at, :at)")
_ADD_UNITS = {True: _ADD_UNITS_TEXT, False: re.sub(r"(?<!:):(\w+)", r"%(\1)s", _ADD_UNITS_TEXT)}


def _same(value: Any) -> Any:
    return value


def within(column: Any, path: str | None) -> Any:
    """A subtree filter on a materialised path (``_`` and ``%`` in ids are not wildcards)."""
    return True if path is None else column.startswith(path, autoescape=True)


def _unit(row: Any) -> UnitRecord:
    return UnitRecord(row[0], row[1], row[2], row[3], row[4], list(row[5] or []), row[6], row[7], row[8], row[9],
                      row[10])


class SqlDirectory:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"add_jurisdiction", "rename_jurisdiction", "add_unit", "save_unit",
                                        "add_coordinator", "add_units"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def jurisdictions(self, within_path: str | None = None) -> list[JurisdictionRecord]:
        rows = self.conn.execute(select(jurisdictions.c.id, jurisdictions.c.name, jurisdictions.c.level,
                                        jurisdictions.c.parent_id,
                                        jurisdictions.c.path).where(within(jurisdictions.c.path, within_path))
                                 .order_by(jurisdictions.c.path))
        return [JurisdictionRecord(*row) for row in rows]

    def jurisdiction(self, jurisdiction_id: str) -> JurisdictionRecord | None:
        row = self.conn.execute(select(jurisdictions.c.id, jurisdictions.c.name, jurisdictions.c.level,
                                       jurisdictions.c.parent_id,
                                       jurisdictions.c.path).where(jurisdictions.c.id == jurisdiction_id)).first()
        return None if row is None else JurisdictionRecord(*row)

    def _units(self, *where: Any, limit: int | None = None) -> list[UnitRecord]:
        rows = self.conn.execute(select(*_UNIT_COLUMNS).join(jurisdictions,
                                                             jurisdictions.c.id == units.c.jurisdiction_id)
                                 .where(*where).order_by(units.c.id).limit(limit))
        return [_unit(row) for row in rows]

    def units(self, within_path: str | None = None, *, after_id: int = 0, limit: int | None = None
              ) -> list[UnitRecord]:
        return self._units(within(jurisdictions.c.path, within_path), units.c.id > after_id, limit=limit)

    def unit(self, unit_id: int) -> UnitRecord | None:
        found = self._units(units.c.id == unit_id)
        return found[0] if found else None

    def unit_named(self, jurisdiction_id: str, name: str) -> UnitRecord | None:
        found = self._units(units.c.jurisdiction_id == jurisdiction_id, units.c.name == name)
        return found[0] if found else None

    def coordinators(self, active_only: bool = False) -> list[CoordinatorRecord]:
        q = (select(coordinators.c.id, coordinators.c.jurisdiction_id, coordinators.c.name, coordinators.c.email,
                    coordinators.c.active, jurisdictions.c.name)
             .join(jurisdictions, jurisdictions.c.id == coordinators.c.jurisdiction_id).order_by(coordinators.c.id))
        if active_only:
            q = q.where(coordinators.c.active.is_(True))
        return [CoordinatorRecord(*row) for row in self.conn.execute(q)]

    # -- writes
    def add_jurisdiction(self, record: JurisdictionRecord) -> None:
        if record.parent_id is not None:
            require(self.conn, jurisdictions, record.parent_id, "jurisdiction")
        insert_new(self.conn, insert(jurisdictions).values(id=record.id, name=record.name, level=record.level,
                                                 parent_id=record.parent_id, path=record.path),
                     f"jurisdiction {record.id!r} already exists", f"辖区 {record.id!r} 已存在")

    def rename_jurisdiction(self, jurisdiction_id: str, name: str) -> None:
        self.conn.execute(update(jurisdictions).where(jurisdictions.c.id == jurisdiction_id).values(name=name))

    def add_unit(self, unit: NewUnit, now: datetime) -> UnitRecord:
        require(self.conn, jurisdictions, unit.jurisdiction_id, "jurisdiction")
        unit_id = insert_new(self.conn, insert(units).values(
            jurisdiction_id=unit.jurisdiction_id, name=unit.name, level=unit.level, category=unit.category,
            contacts=unit.contacts, certified_year=unit.certified_year, certified_note=unit.certified_note,
            certified_since=unit.certified_year or 0, created_at=now, updated_at=now).returning(units.c.id),
            f"{unit.name} ({unit.jurisdiction_id}) already exists", f"{unit.name}（{unit.jurisdiction_id}）已存在")
        unit_added(OnConnection(self.conn).run, unit.jurisdiction_id, unit.level, unit.certified_year)
        record = self.unit(unit_id)
        assert record is not None
        return record

    def save_unit(self, unit: UnitRecord) -> UnitRecord:
        try:
            with self.conn.begin_nested():
                done = self.conn.execute(update(units).where(units.c.id == unit.id).values(
                    name=unit.name, category=unit.category, contacts=unit.contacts,
                    certified_year=unit.certified_year, certified_note=unit.certified_note,
                    updated_at=unit.updated_at))
        except IntegrityError as exc:
            raise AlreadyExists(f"{unit.name} ({unit.jurisdiction_id}) already exists",
                                f"{unit.name}（{unit.jurisdiction_id}）已存在") from exc
        if done.rowcount:
            recertify(OnConnection(self.conn).run, unit.id)  # its certified_year may have changed
        record = self.unit(unit.id) if done.rowcount else None
        if record is None:
            raise NotFound(f"unit {unit.id} does not exist", f"单位 {unit.id} 不存在", unit_id=unit.id)
        return record

    def add_coordinator(self, jurisdiction_id: str, name: str, email: str) -> CoordinatorRecord:
        require(self.conn, jurisdictions, jurisdiction_id, "jurisdiction")
        coordinator_id = insert_new(self.conn, insert(coordinators).values(
            jurisdiction_id=jurisdiction_id, name=name, email=email, active=True).returning(coordinators.c.id),
            f"{email} is already a coordinator of {jurisdiction_id}", f"{email} 已是 {jurisdiction_id} 的联络员")
        return next(c for c in self.coordinators() if c.id == coordinator_id)

    # -- many at once (a roster imported)
    def unit_keys(self) -> dict[tuple[str, str], int]:
        return {(j, name): unit_id for unit_id, j, name in
                self.conn.execute(select(units.c.id, units.c.jurisdiction_id, units.c.name))}

    def unit_ids(self, within_path: str | None = None) -> list[int]:
        return list(self.conn.execute(
            select(units.c.id).join(jurisdictions, jurisdictions.c.id == units.c.jurisdiction_id)
            .where(within(jurisdictions.c.path, within_path)).order_by(units.c.id)).scalars())

    def units_of(self, unit_ids: Sequence[int]) -> list[UnitRecord]:
        ids = sorted(set(unit_ids))
        return [u for i in range(0, len(ids), 1000) for u in self._units(units.c.id.in_(ids[i:i + 1000]))]

    def add_units(self, new: Sequence[NewUnit], now: datetime) -> int:
        """``add_unit`` for each, as one INSERT statement (executemany) and one count per key;
        nothing read back."""
        if not new:
            return 0
        wanted = sorted({u.jurisdiction_id for u in new})
        known = set(self.conn.execute(select(jurisdictions.c.id).where(jurisdictions.c.id.in_(wanted))).scalars())
        missing = next((j for j in wanted if j not in known), None)
        if missing is not None:
            raise NotFound(f"jurisdiction {missing!r} does not exist", f"地区 {missing!r} 不存在")
        # On the driver (Core's executemany spends 25 µs a row on its parameters), each value made
        # by its column's own bind processor: the stored text is what ``add_unit`` stores.
        dialect = self.conn.dialect
        as_json: Callable[[Any], Any] = units.c.contacts.type.dialect_impl(dialect).bind_processor(dialect) or _same
        as_time: Callable[[Any], Any] = units.c.created_at.type.dialect_impl(dialect).bind_processor(dialect) or _same
        at = as_time(now)
        rows = [{"jurisdiction_id": u.jurisdiction_id, "name": u.name, "level": u.level, "category": u.category,
                 "contacts": as_json(u.contacts), "certified_year": u.certified_year,
                 "certified_note": u.certified_note, "certified_since": u.certified_year or 0, "at": at} for u in new]
        try:
            with self.conn.begin_nested():
                self.conn.exec_driver_sql(_ADD_UNITS[dialect.name == "sqlite"], rows)
        except IntegrityError as exc:  # a name taken meanwhile (or twice in the batch): say which
            first = _first_taken(new, self.unit_keys())
            raise AlreadyExists(f"{first.name} ({first.jurisdiction_id}) already exists",
                                f"{first.name}（{first.jurisdiction_id}）已存在") from exc
        units_added(lambda sql, params: self.conn.exec_driver_sql(sql, params), self.conn.dialect.name == "sqlite",
                    [(u.jurisdiction_id, u.level, u.certified_year) for u in new])
        return len(new)


def _first_taken(new: Sequence[NewUnit], taken: dict[tuple[str, str], int]) -> NewUnit:
    """The first unit whose name is taken in its jurisdiction (before, or earlier in ``new``)."""
    seen: set[tuple[str, str]] = set()
    for u in new:
        key = (u.jurisdiction_id, u.name)
        if key in taken or key in seen:
            return u
        seen.add(key)
    return new[0]
