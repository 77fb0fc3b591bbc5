"""The sweep on a province of 100,000 cases: nothing due, and 10,000 reminders coming due.

Setup (not timed): a province tree (1 province, 14 cities, 10 counties each), 100,000
units with a contact person, one round opened through the real service (a case and its
CaseRegistered event per unit); then 90% of the cases are moved to ``submitted`` with one
UPDATE (a setup shortcut: those cases no longer owe the self-assessment).

Timed, in one run:
- ``big``: the first sweep on 2021-10-07 09:00, when the 14-day tier of the 2021-10-20
  self-assessment deadline has come: 10,000 reminder rows written to the outbox;
- ``idle``: the same sweep again an hour later: nothing due (every stage marked);
- ``floor``: raw sqlite3 inserting the same 10,000 outbox rows with ``executemany`` in
  one transaction (same columns, same unique key), into a copy of the schema.
``ratio`` = floor time / big-sweep time (≥ 0.5 wanted). The big sweep runs in a fresh
process whose peak resident memory (VmHWM: ru_maxrss would carry the parent's over the
fork) is its peak memory (≤ 250 MB wanted). The last line is one JSON object.

    python bench/sweep.py [--cases 100000]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from sqlalchemy import insert, text  # noqa: E402

from workflow.adapters.calendar_files import CalendarCatalog  # noqa: E402
from workflow.adapters.db.engine import make_engine  # noqa: E402
from workflow.adapters.db.migrate import upgrade  # noqa: E402
from workflow.adapters.db.store import Database  # noqa: E402
from workflow.adapters.db.tables import Coordinator, Jurisdiction, Unit  # noqa: E402
from workflow.adapters.rubric_files import RubricCatalog  # noqa: E402
from workflow.clock import BUSINESS_TZ  # noqa: E402
from workflow.config import REPO_ROOT  # noqa: E402
from workflow.domain.case import Actor  # noqa: E402
from workflow.service.deadlines import sweep  # noqa: E402
from workflow.service.rounds import open_round  # noqa: E402

T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
BIG = datetime(2021, 10, 7, 9, 0, tzinfo=BUSINESS_TZ)


def prepare(url: str, n: int) -> Database:
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    cities = [f"shanxi-c{i:02d}" for i in range(14)]
    counties = [f"{c}-x{j}" for c in cities for j in range(10)]
    places = ["shanxi", *cities, *counties]
    with engine.begin() as conn:
        conn.execute(insert(Jurisdiction), [dict(id="shanxi", name="山西省", level="province", parent_id=None,
                                                 path="/shanxi/")])
        conn.execute(insert(Jurisdiction), [dict(id=c, name=f"市{c[-2:]}", level="city", parent_id="shanxi",
                                                 path=f"/shanxi/{c}/") for c in cities])
        conn.execute(insert(Jurisdiction), [dict(id=x, name=f"县{x[-6:]}", level="county", parent_id=x[:-3],
                                                 path=f"/shanxi/{x[:-3]}/{x}/") for x in counties])
        level = {"shanxi": "provincial", **dict.fromkeys(cities, "city"), **dict.fromkeys(counties, "county")}
        rows = []
        for i in range(n):
            place = places[i % len(places)]
            rows.append(dict(jurisdiction_id=place, name=f"单位{i:06d}", level=level[place], category="行政机关",
                             contacts=[{"name": "联系人", "position": "", "phone": "",
                                        "email": f"u{i}@units.example"}], created_at=T0, updated_at=T0))
        conn.execute(insert(Unit), rows)
        conn.execute(insert(Coordinator), [dict(jurisdiction_id=p, name=f"协调员{p}", email=f"{p}@bureau.example",
                                                active=True) for p in places])
    open_round(db, RubricCatalog(REPO_ROOT / "rubrics"), CalendarCatalog(REPO_ROOT / "calendars"),
               province_id="shanxi", year=2021, rubric_id="shanxi-2020", calendar_id="shanxi-2021",
               target_share="0.5", actor=Actor("admin", "bench"), now=T0)
    with engine.begin() as conn:  # setup shortcut: 90% of the cases have submitted
        conn.execute(text("UPDATE cases SET state = 'submitted' WHERE id % 10 != 0"))
    return db


CHILD = """
import json, sys, time
from datetime import datetime
from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.config import REPO_ROOT
from workflow.service.deadlines import sweep
db = Database(make_engine(sys.argv[1]))
calendars = CalendarCatalog(REPO_ROOT / "calendars")
calendars.all()
t = time.perf_counter()
report = sweep(db, calendars, datetime.fromisoformat(sys.argv[2]))
seconds = time.perf_counter() - t
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "reminders": report.reminders, "max_rss_mb": hwm / 1024}))
"""


def floor(path: Path, rows: int, schema: list[str]) -> float:
    """Raw sqlite3: the same rows into a table of the same shape (same indexes), one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for ddl in schema:
        conn.execute(ddl)
    data = [(f"reminder:{i}:self_assessment:14", "reminder", "shanxi-2021", i, "self_assessment", 14, "2021-10-20",
             "pending", 0, "2021-10-07 01:00:00.000000", "2021-10-07 01:00:00.000000") for i in range(1, rows + 1)]
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO outbox (dedupe_key, kind, round_id, case_id, milestone, tier, due_on, status, "
                     "attempts, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                     "ON CONFLICT (dedupe_key) DO NOTHING", data)
    conn.execute("COMMIT")
    return time.perf_counter() - t


def _without_foreign_keys(ddl: str) -> str:
    """The outbox DDL as created by the migration, minus the FOREIGN KEY clauses (the floor
    has no parent tables)."""
    import re

    return re.sub(r",\s*FOREIGN KEY\([^)]*\) REFERENCES [a-z_]+ \([^)]*\)", "", ddl)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    args = ap.parse_args()
    calendars = CalendarCatalog(REPO_ROOT / "calendars")
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        db = prepare(f"sqlite:///{tmp}/bench.db", args.cases)
        setup = time.perf_counter() - t
        print(f"setup: {args.cases:,} cases in {setup:.1f} s", file=sys.stderr)
        sweep(db, calendars, datetime(2021, 6, 1, 9, 0, tzinfo=BUSINESS_TZ))  # earlier stages, not timed
        sweep(db, calendars, datetime(2021, 6, 6, 9, 0, tzinfo=BUSINESS_TZ))
        # The big sweep runs in a fresh process, so its peak memory is its own.
        child = subprocess.run([sys.executable, "-c", CHILD, f"sqlite:///{tmp}/bench.db", BIG.isoformat()],
                               capture_output=True, text=True, check=True)
        big_json = json.loads(child.stdout.strip().splitlines()[-1])
        big_s, reminders = big_json["seconds"], big_json["reminders"]
        rss_mb = big_json["max_rss_mb"]
        t = time.perf_counter()
        idle = sweep(db, calendars, BIG.replace(hour=10))
        idle_s = time.perf_counter() - t
        with db.engine.connect() as conn:
            schema = [r[0] for r in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'outbox' AND sql IS NOT NULL")]
        schema = [_without_foreign_keys(ddl) for ddl in schema]
        floor_s = floor(Path(tmp) / "floor.db", reminders, schema)
        db.engine.dispose()
    result = {"benchmark": "sweep", "cases": args.cases, "reminders": reminders, "big_sweep_ms": round(big_s * 1e3, 1),
              "idle_sweep_ms": round(idle_s * 1e3, 2), "idle_total": idle.total,
              "floor_insert_ms": round(floor_s * 1e3, 1), "ratio": round(floor_s / big_s, 3),
              "big_sweep_max_rss_mb": round(rss_mb, 1)}
    print(f"big sweep {big_s * 1e3:.0f} ms for {reminders:,} reminders (floor {floor_s * 1e3:.0f} ms, ratio "
          f"{floor_s / big_s:.2f}); idle sweep {idle_s * 1e3:.1f} ms; big sweep process max RSS {rss_mb:.0f} MB",
          file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
