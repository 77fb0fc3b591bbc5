"""The counts behind the progress report, kept in the transaction of every change.

Two small tables instead of a scan of every case row (the progress report read 100,000 rows
of ~700 bytes for each request before them):

- ``case_counts``: a round's cases by (jurisdiction, unit level, state, overdue, misses);
  ``missed`` is the ids of the milestones missed, comma-joined in the order recorded ('' for
  none). A transition that changes none of these writes nothing here; one that does moves
  one case from its old row to its new one (two upserts, in key order, so two transactions
  that cross never wait on each other in opposite order).
- ``agency_counts``: every unit by (jurisdiction, level, certified since): the first year it
  was certified, in a round of the system (certified or filed, not withdrawn since) or
  before the system (``units.certified_year``); 0 when never. ``units.certified_since``
  holds each unit's value, so a change moves one unit from its old row to its new one.

``recount`` computes both from the rows themselves; ``audit verify`` compares, and
``rebuild`` (the migration that made the tables, and ``workflow db recount --repair``)
writes the recount over what is kept. The SQL is written once with ``:name`` parameters and
turned into psycopg's style for PostgreSQL.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ...domain.lifecycle import CERTIFIED_STATES

CaseKey = tuple[str, str, str, str, bool, str]  # round, jurisdiction, level, state, overdue, missed
AgencyKey = tuple[str, str, int]  # jurisdiction, level, certified since (0: never)

_CERTIFIED = ", ".join(f"'{s}'" for s in CERTIFIED_STATES)

SQL = {
    "case_delta": (
        "INSERT INTO case_counts (round_id, jurisdiction_id, level, state, overdue, missed, n) "
        "SELECT :round_id, jurisdiction_id, level, :state, :overdue, :missed, :d FROM units WHERE id = :unit_id "
        "ON CONFLICT (round_id, jurisdiction_id, level, state, overdue, missed) DO UPDATE "
        "SET n = case_counts.n + excluded.n"),
    "agency_delta": (
        "INSERT INTO agency_counts (jurisdiction_id, level, certified_since, n) "
        "VALUES (:jurisdiction_id, :level, :since, :d) "
        "ON CONFLICT (jurisdiction_id, level, certified_since) DO UPDATE SET n = agency_counts.n + excluded.n"),
    "unit_certification": (
        "SELECT u.jurisdiction_id, u.level, u.certified_since, u.certified_year, "
        "(SELECT MIN(r.year) FROM cases c JOIN rounds r ON r.id = c.round_id "
        f"WHERE c.unit_id = u.id AND c.state IN ({_CERTIFIED})) FROM units u WHERE u.id = :unit_id"),
    "set_since": "UPDATE units SET certified_since = :since WHERE id = :unit_id",
    "kept_cases": ("SELECT k.round_id, k.jurisdiction_id, k.level, k.state, k.overdue, k.missed, k.n "
                   "FROM case_counts k JOIN jurisdictions j ON j.id = k.jurisdiction_id "
                   "WHERE substr(j.path, 1, :path_len) = :path AND k.n <> 0"),
    "kept_agencies": ("SELECT k.jurisdiction_id, k.level, k.certified_since, k.n "
                      "FROM agency_counts k JOIN jurisdictions j ON j.id = k.jurisdiction_id "
                      "WHERE substr(j.path, 1, :path_len) = :path AND k.n <> 0"),
    "recount_cases": ("SELECT c.round_id, u.jurisdiction_id, u.level, c.state, c.overdue, c.missed, COUNT(*) "
                      "FROM cases c JOIN units u ON u.id = c.unit_id JOIN jurisdictions j ON j.id = u.jurisdiction_id "
                      "WHERE substr(j.path, 1, :path_len) = :path "
                      "GROUP BY c.round_id, u.jurisdiction_id, u.level, c.state, c.overdue, c.missed"),
    "recount_since": (
        "SELECT u.id, u.jurisdiction_id, u.level, u.certified_since, u.certified_year, m.year "
        "FROM units u JOIN jurisdictions j ON j.id = u.jurisdiction_id LEFT JOIN "
        "(SELECT c.unit_id AS unit_id, MIN(r.year) AS year FROM cases c JOIN rounds r ON r.id = c.round_id "
        f"WHERE c.state IN ({_CERTIFIED}) GROUP BY c.unit_id) m ON m.unit_id = u.id "
        "WHERE substr(j.path, 1, :path_len) = :path"),
}
_PARAM = re.compile(r"(?<!:):(\w+)")
PG_SQL = {k: _PARAM.sub(r"%(\1)s", v) for k, v in SQL.items()}

# Run one statement (by name in ``SQL``) with its parameters; the first row, or None.
Run = Callable[[str, dict[str, Any]], Any]


def missed_key(missed: Iterable[tuple[str, Any]]) -> str:
    """The counted form of a case's misses: the milestones' ids in the order recorded."""
    return ",".join(m for m, _ in missed)


def _missed_text_key(text: str | None) -> str:
    return missed_key(json.loads(text)) if text else ""


def since_of(certified_year: int | None, first_round_year: int | None) -> int:
    """The year a unit counts as certified from (0: never)."""
    years = [y for y in (certified_year, first_round_year) if y is not None]
    return min(years) if years else 0


def move_case(run: Run, round_id: str, unit_id: int, before: tuple[str, bool, str] | None,
              after: tuple[str, bool, str]) -> None:
    """Move one case of a unit from its (state, overdue, missed) count to its new one
    (``before`` None: a new case)."""
    if before == after:
        return
    steps = [(after, 1)] if before is None else sorted([(before, -1), (after, 1)])
    for (state, overdue, missed), d in steps:
        run("case_delta", {"round_id": round_id, "state": state, "overdue": overdue, "missed": missed, "d": d,
                           "unit_id": unit_id})


def unit_added(run: Run, jurisdiction_id: str, level: str, certified_year: int | None) -> None:
    run("agency_delta", {"jurisdiction_id": jurisdiction_id, "level": level, "since": since_of(certified_year, None),
                         "d": 1})


def recertify(run: Run, unit_id: int) -> None:
    """Recompute a unit's 'certified since' after its certification may have changed (a case
    entered or left a certified state; its pre-system year was edited) and move its count."""
    row = run("unit_certification", {"unit_id": unit_id})
    if row is None:
        return
    jurisdiction_id, level, old, certified_year, first_round_year = row
    new = since_of(certified_year, first_round_year)
    old = old or 0
    if new == old:
        return
    run("set_since", {"since": new, "unit_id": unit_id})
    for since, d in sorted([(old, -1), (new, 1)]):
        run("agency_delta", {"jurisdiction_id": jurisdiction_id, "level": level, "since": since, "d": d})


def _path(within_path: str | None) -> dict[str, Any]:
    path = within_path or "/"
    return {"path": path, "path_len": len(path)}


def kept(rows: Callable[[str, dict[str, Any]], Iterable[tuple[Any, ...]]], within_path: str | None
         ) -> tuple[Counter[CaseKey], Counter[AgencyKey]]:
    """The counts as kept (of the jurisdictions in the subtree)."""
    cases: Counter[CaseKey] = Counter()
    for r, j, level, state, overdue, missed, n in rows("kept_cases", _path(within_path)):
        cases[(r, j, level, state, bool(overdue), missed)] += int(n)
    agencies: Counter[AgencyKey] = Counter()
    for j, level, since, n in rows("kept_agencies", _path(within_path)):
        agencies[(j, level, int(since))] += int(n)
    return cases, agencies


def recount(rows: Callable[[str, dict[str, Any]], Iterable[tuple[Any, ...]]], within_path: str | None
            ) -> tuple[Counter[CaseKey], Counter[AgencyKey], dict[int, tuple[int, int]]]:
    """The counts from the rows themselves, and the units whose ``certified_since`` is not what
    their rows say (unit → (kept, recounted))."""
    cases: Counter[CaseKey] = Counter()
    for r, j, level, state, overdue, missed, n in rows("recount_cases", _path(within_path)):
        cases[(r, j, level, state, bool(overdue), _missed_text_key(missed))] += int(n)
    agencies: Counter[AgencyKey] = Counter()
    wrong: dict[int, tuple[int, int]] = {}
    for unit_id, j, level, since, certified_year, first_round_year in rows("recount_since", _path(within_path)):
        actual = since_of(certified_year, first_round_year)
        agencies[(j, level, actual)] += 1
        if (since or 0) != actual:
            wrong[int(unit_id)] = (since or 0, actual)
    return cases, agencies, wrong


def differences(within_path: str | None, rows: Callable[[str, dict[str, Any]], Iterable[tuple[Any, ...]]]
                ) -> list[str]:
    """What the kept counts get wrong, one line each (none when they agree with a recount of
    the jurisdictions in the subtree)."""
    kept_cases, kept_agencies = kept(rows, within_path)
    cases, agencies, wrong = recount(rows, within_path)
    out = []
    for key in sorted(set(kept_cases) | set(cases), key=repr):
        if kept_cases[key] != cases[key]:
            r, j, level, state, overdue, missed = key
            out.append(f"round {r}, {j}, {level}, {state}{', overdue' if overdue else ''}"
                       f"{', missed ' + missed if missed else ''}: kept {kept_cases[key]}, recounted {cases[key]}")
    for akey in sorted(set(kept_agencies) | set(agencies)):
        if kept_agencies[akey] != agencies[akey]:
            j, level, since = akey
            when = f"certified since {since}" if since else "not certified"
            out.append(f"units of {j}, {level}, {when}: kept {kept_agencies[akey]}, recounted {agencies[akey]}")
    for unit_id, (was, actual) in sorted(wrong.items()):
        out.append(f"unit {unit_id}: certified since {was or 'never'} kept, {actual or 'never'} recounted")
    return out


def rebuild(execute: Callable[[str, dict[str, Any]], Any],
            rows: Callable[[str, dict[str, Any]], Iterable[tuple[Any, ...]]]) -> tuple[int, int]:
    """Write the recount over the kept counts (every jurisdiction); the rows written."""
    cases, agencies, wrong = recount(rows, None)
    execute("DELETE FROM case_counts", {})
    execute("DELETE FROM agency_counts", {})
    for unit_id, (_, actual) in wrong.items():
        execute(SQL["set_since"], {"since": actual, "unit_id": unit_id})
    for (r, j, level, state, overdue, missed), n in cases.items():
        execute("INSERT INTO case_counts (round_id, jurisdiction_id, level, state, overdue, missed, n) "
                "VALUES (:r, :j, :level, :state, :overdue, :missed, :n)",
                {"r": r, "j": j, "level": level, "state": state, "overdue": overdue, "missed": missed, "n": n})
    for (j, level, since), n in agencies.items():
        execute("INSERT INTO agency_counts (jurisdiction_id, level, certified_since, n) "
                "VALUES (:j, :level, :since, :n)", {"j": j, "level": level, "since": since, "n": n})
    return len(cases), len(agencies)


def repair(engine: Any) -> tuple[int, int]:
    """``rebuild`` while no change can slip between the recount and the write: SQLite's write
    lock from the start; on PostgreSQL the count tables locked against writers first (a change
    committed before holds its count too; one not yet committed is not in the recount and
    moves its count after)."""
    from .engine import SQLITE_BEGIN_OPTION

    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn = conn.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name != "sqlite":
                conn.exec_driver_sql("LOCK TABLE case_counts, agency_counts IN SHARE ROW EXCLUSIVE MODE")
            on = OnConnection(conn)
            return rebuild(on.execute, on.rows)


def _named(sql: str, sqlite: bool) -> str:
    return sql if sqlite else _PARAM.sub(r"%(\1)s", sql)


class OnConnection:
    """The three callables above, on a SQLAlchemy ``Connection`` (its driver's own statements)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def run(self, name: str, params: dict[str, Any]) -> Any:
        result = self.conn.exec_driver_sql(_named(SQL[name], self.sqlite), params)
        return result.first() if name == "unit_certification" else None

    def rows(self, name: str, params: dict[str, Any]) -> Iterable[tuple[Any, ...]]:
        return list(self.conn.exec_driver_sql(_named(SQL[name], self.sqlite), params).all())

    def execute(self, sql: str, params: dict[str, Any]) -> Any:
        return self.conn.exec_driver_sql(_named(sql, self.sqlite), params)


class OnCursor:
    """``run`` on a DB-API cursor (the write path of ``SqlCaseStore``)."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self.cursor, self.sql = cursor, SQL if sqlite else PG_SQL

    def run(self, name: str, params: dict[str, Any]) -> Any:
        self.cursor.execute(self.sql[name], params)
        return self.cursor.fetchone() if name == "unit_certification" else None


# ---------------------------------------------------------------- many changes at once (the bulk paths)
# A batch of changes (a round opened, the sweep's misses, a roster imported) moves many cases or
# units at once: the moves are added up in Python first, then one upsert per key whose count
# changes, in key order (the order ``move_case`` takes within one key's unit, so a batch and a
# single change that cross never wait on each other in opposite order).

BULK_SQL = {
    "case_add": (
        "INSERT INTO case_counts (round_id, jurisdiction_id, level, state, overdue, missed, n) "
        "VALUES (:round_id, :jurisdiction_id, :level, :state, :overdue, :missed, :d) "
        "ON CONFLICT (round_id, jurisdiction_id, level, state, overdue, missed) DO UPDATE "
        "SET n = case_counts.n + excluded.n"),
    "agency_add": SQL["agency_delta"],
}
PG_BULK_SQL = {k: _PARAM.sub(r"%(\1)s", v) for k, v in BULK_SQL.items()}

# Run one statement for each parameter set, in order (a DB-API cursor's ``executemany``).
RunMany = Callable[[str, list[dict[str, Any]]], Any]
Counted = tuple[str, bool, str]  # what a case is counted by: state, overdue, missed
CaseMove = tuple[str, str, str, Counted | None, Counted]  # round, jurisdiction, level, before (None: new), after


def case_deltas(moves: Iterable[CaseMove]) -> Counter[CaseKey]:
    """What the moves change, added up per key (keys that end where they began: 0)."""
    deltas: Counter[CaseKey] = Counter()
    for round_id, jurisdiction_id, level, before, after in moves:
        if before == after:
            continue
        if before is not None:
            deltas[(round_id, jurisdiction_id, level, *before)] -= 1
        deltas[(round_id, jurisdiction_id, level, *after)] += 1
    return deltas


def move_cases(many: RunMany, sqlite: bool, deltas: Counter[CaseKey]) -> int:
    """Apply the deltas to ``case_counts``: one upsert per key that changes, in key order; how many."""
    rows = [{"round_id": r, "jurisdiction_id": j, "level": level, "state": state, "overdue": overdue,
             "missed": missed, "d": d}
            for (r, j, level, state, overdue, missed), d in sorted(deltas.items()) if d]
    if rows:
        many((BULK_SQL if sqlite else PG_BULK_SQL)["case_add"], rows)
    return len(rows)


def units_added(many: RunMany, sqlite: bool, units: Iterable[tuple[str, str, int | None]]) -> int:
    """Count new units, given as (jurisdiction, level, year certified before the system): one
    upsert per (jurisdiction, level, certified since), in key order (``unit_added`` for each); how many."""
    added: Counter[AgencyKey] = Counter((j, level, since_of(year, None)) for j, level, year in units)
    rows = [{"jurisdiction_id": j, "level": level, "since": since, "d": n}
            for (j, level, since), n in sorted(added.items()) if n]
    if rows:
        many((BULK_SQL if sqlite else PG_BULK_SQL)["agency_add"], rows)
    return len(rows)
