"""Durable transitions per second, against the raw-sqlite3 floor measured in the same run.

N cases go through 7 transitions each (self_assess with a full 42-criterion sheet,
submit, verify with a failing sheet, order_rectification, request_recheck, recheck with
a passing sheet, file; evidence is attached in the untimed setup), one durable commit per
transition, in step order (transition 1 for every case, then transition 2, ...), so
every transition loads its case. SQLite in WAL with synchronous=FULL.

The floor: raw sqlite3 with the same pragmas, one transaction per transition doing
one UPDATE of a case row and one INSERT of an event row. Floor and ours alternate
step by step so that machine noise hits both alike. The last line is one JSON object.

    python bench/transitions.py [--cases 2000] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `transitions` package: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402

from sqlalchemy import insert, text  # noqa: E402

from workflow.adapters.calendar_files import CalendarCatalog  # noqa: E402
from workflow.adapters.db import counts  # noqa: E402
from workflow.adapters.db.engine import make_engine  # noqa: E402
from workflow.adapters.db.migrate import upgrade  # noqa: E402
from workflow.adapters.db.store import Database  # noqa: E402
from workflow.adapters.db.tables import Unit  # noqa: E402
from workflow.adapters.rubric_files import RubricCatalog  # noqa: E402
from workflow.config import REPO_ROOT  # noqa: E402
from workflow.domain.case import Actor, apply, decide  # noqa: E402
from workflow.files import import_jurisdictions  # noqa: E402
from workflow.service.cases import perform_action  # noqa: E402
from workflow.service.rounds import open_round  # noqa: E402

T0 = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
COORD = Actor("coordinator", "bench")
RUBRIC = RubricCatalog(REPO_ROOT / "rubrics").get("shanxi-2020")


def sheet(total: str) -> dict[str, str]:
    """A complete Shanxi sheet scoring ``total`` (the one ``workflow simulate`` fills in)."""
    from workflow.simulate import complete_sheet

    return complete_sheet(RUBRIC, Decimal(total))


SELF, FAILING, PASSING = sheet("85"), sheet("79.5"), sheet("86")
STEPS = [
    ("self_assess", {"entries": SELF}, "unit"),
    ("submit", {}, "unit"),
    ("verify", {"entries": FAILING}, "coordinator"),
    ("order_rectification", {}, "coordinator"),
    ("request_recheck", {}, "unit"),
    ("recheck", {"entries": PASSING}, "coordinator"),
    ("file", {"batch": "2022-03"}, "coordinator"),
]


def attach_evidence(db: Database, cases: list[tuple[int, int]]) -> None:
    """Setup, not timed: evidence on every criterion the unit will score above zero and the
    documents the round asks for (submission requires both), one transaction per case."""
    scored = [code for code, value in SELF.items() if value != "0"]
    for case_id, unit_id in cases:
        with db.unit_of_work() as uow:
            case = uow.get(case_id)
            ctx = uow.round_context(case.round_id)
            steps = [("attach_evidence", {"criterion": code, "sha256": "ab" * 32, "filename": f"{code}.pdf",
                                          "size": 1, "type": "pdf"}) for code in scored]
            steps += [("attach_document", {"document": d.id, "sha256": "cd" * 32, "filename": f"{d.id}.pdf",
                                           "size": 1, "type": "pdf"}) for d in ctx.documents]
            for action, data in steps:
                event = decide(case, action, data, Actor("unit", str(unit_id)), T0, ctx)
                after = apply(case, event)
                uow.append(case, event, after)
                case = after
            uow.commit()


def prepare(url: str, n: int) -> tuple[Database, list[tuple[int, int]]]:
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    import_jurisdictions(db, REPO_ROOT / "examples" / "jurisdictions.csv", actor=Actor("admin", "bench"), now=T0)
    with engine.begin() as conn:
        conn.execute(insert(Unit), [dict(jurisdiction_id="shanxi", name=f"单位{i:06d}", level="provincial",
                                         category="行政机关", contacts=[], created_at=T0, updated_at=T0)
                                    for i in range(n)])
    counts.repair(engine)  # the units inserted raw: their progress counts
    open_round(db, RubricCatalog(REPO_ROOT / "rubrics"), CalendarCatalog(REPO_ROOT / "calendars"),
               province_id="shanxi", year=2021, rubric_id="shanxi-2020", calendar_id="shanxi-2021",
               target_share="0.5", actor=Actor("admin", "bench"), now=T0)
    with engine.connect() as conn:
        cases = [(r[0], r[1]) for r in conn.execute(text("SELECT id, unit_id FROM cases ORDER BY id"))]
    attach_evidence(db, cases)
    return db, cases


class SqliteFloor:
    def __init__(self, path: Path, n: int) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE cases (id INTEGER PRIMARY KEY, state TEXT, version INTEGER)")
        self.conn.execute("CREATE TABLE events (position INTEGER PRIMARY KEY, case_id INTEGER, seq INTEGER, "
                          "type TEXT, payload TEXT)")
        self.conn.executemany("INSERT INTO cases VALUES (?, 'registered', 1)", [(i,) for i in range(1, n + 1)])
        self.n = n

    def step(self, k: int) -> None:
        c = self.conn
        for i in range(1, self.n + 1):
            c.execute("BEGIN")
            c.execute("UPDATE cases SET state = ?, version = ? WHERE id = ?", (STEPS[k][0], k + 2, i))
            c.execute("INSERT INTO events (case_id, seq, type, payload) VALUES (?, ?, ?, ?)",
                      (i, k + 2, STEPS[k][0], "{}"))
            c.execute("COMMIT")


class PgFloor:
    def __init__(self, url: str, n: int) -> None:
        import psycopg

        self.schema = f"bench_floor_{uuid.uuid4().hex[:6]}"
        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        c = self.conn
        c.execute(f"CREATE SCHEMA {self.schema}")
        c.execute(f"SET search_path TO {self.schema}")
        c.execute("CREATE TABLE cases (id INTEGER PRIMARY KEY, state TEXT, version INTEGER)")
        c.execute("CREATE TABLE events (position BIGSERIAL PRIMARY KEY, case_id INTEGER, seq INTEGER, "
                  "type TEXT, payload TEXT)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO cases VALUES (%s, 'registered', 1)", [(i,) for i in range(1, n + 1)])
        c.commit()
        self.n = n

    def step(self, k: int) -> None:
        c = self.conn
        with c.cursor() as cur:
            for i in range(1, self.n + 1):
                cur.execute("UPDATE cases SET state = %s, version = %s WHERE id = %s", (STEPS[k][0], k + 2, i))
                cur.execute("INSERT INTO events (case_id, seq, type, payload) VALUES (%s, %s, %s, %s)",
                            (i, k + 2, STEPS[k][0], "{}"))
                c.commit()

    def close(self) -> None:
        self.conn.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.conn.commit()
        self.conn.close()


def run(db: Database, cases: list[tuple[int, int]], floor) -> tuple[float, float, float, float]:
    """Wall and CPU seconds of ours and of the floor, alternating step by step."""
    ours = floor_time = ours_cpu = floor_cpu = 0.0
    now = T0
    for k, (action, data, who) in enumerate(STEPS):
        now += timedelta(days=1)
        t, c = time.perf_counter(), time.process_time()
        floor.step(k)
        floor_time += time.perf_counter() - t
        floor_cpu += time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        for case_id, unit_id in cases:
            actor = Actor("unit", str(unit_id)) if who == "unit" else COORD
            perform_action(db, case_id, action, data, actor, now)
        ours += time.perf_counter() - t
        ours_cpu += time.process_time() - c
    return ours, floor_time, ours_cpu, floor_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--pg", help="also run on this PostgreSQL URL (a schema of its own, dropped after)")
    args = ap.parse_args()
    n, total = args.cases, args.cases * len(STEPS)
    result: dict[str, object] = {"benchmark": "transitions", "cases": n, "transitions": total}
    with tempfile.TemporaryDirectory() as tmp:
        db, cases = prepare(f"sqlite:///{tmp}/ours.db", n)
        ours, floor, ours_cpu, floor_cpu = run(db, cases, SqliteFloor(Path(tmp) / "floor.db", n))
        db.engine.dispose()
        result.update(sqlite_ours_per_s=round(total / ours, 1), sqlite_floor_per_s=round(total / floor, 1),
                      ratio=round(floor / ours, 3), sqlite_ours_cpu_us=round(ours_cpu / total * 1e6, 1),
                      sqlite_floor_cpu_us=round(floor_cpu / total * 1e6, 1))
        print(f"sqlite: ours {total / ours:,.0f}/s, floor {total / floor:,.0f}/s, ratio {floor / ours:.3f}; "
              f"CPU per transition ours {ours_cpu / total * 1e6:.0f} us, floor {floor_cpu / total * 1e6:.0f} us",
              file=sys.stderr)
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:6]}"
        admin = make_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in args.pg else "?"
        try:
            db, cases = prepare(f"{args.pg}{sep}options=-csearch_path%3D{schema}", n)
            pg_floor = PgFloor(args.pg, n)
            ours, floor, _, _ = run(db, cases, pg_floor)
            pg_floor.close()
            db.engine.dispose()
            result.update(pg_ours_per_s=round(total / ours, 1), pg_floor_per_s=round(total / floor, 1),
                          pg_ratio=round(floor / ours, 3))
            print(f"postgres: ours {total / ours:,.0f}/s, floor {total / floor:,.0f}/s, ratio {floor / ours:.3f}",
                  file=sys.stderr)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
