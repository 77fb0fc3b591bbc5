"""Bulk writes on a province of 100,000 units: a roster imported, a round opened, a deadline
missed by every case; each against a raw-sqlite3 floor measured in the same run.

Setup (not timed): a province tree (1 province, 14 cities, 10 counties each) with one
coordinator per jurisdiction, and a roster of N units as Excel writes a CSV (UTF-8; name,
jurisdiction, level, category and one contact person with a phone and an email).

Timed, each of ours in a fresh process (its time, and its peak resident memory, VmHWM, which
is the process's own), then its floor in the same run:

- ``import``: ``workflow.files.import_units`` of the roster file (read, checked row by row,
  written, committed once). Floor, in a fresh process too: raw sqlite3 reading the same file
  (decode, ``csv`` module) and inserting the same unit rows with one ``executemany``, plus the
  same ``agency_counts`` rows, in one transaction.
- ``open``: ``service.rounds.open_round`` of the province's 2021 round (a case and its
  ``CaseRegistered`` event per unit, the counts, in one transaction). Floor: raw sqlite3
  inserting the rows ours wrote (the round, the case rows as they ended, the events, the
  ``case_counts`` rows) into the database as it was before, ``executemany``, one transaction.
- ``misses``: ``service.deadlines.sweep`` on 2021-10-21 09:00 (Asia/Shanghai), the day after
  the self-assessment was due, with every case still owing it: one ``DeadlineMissed`` event,
  the new case row and a ``missed`` notice per case, 500 cases a transaction, then one digest
  per coordinator (the contact form's stages are marked done in the setup, so this is all the
  sweep does). Floor: raw sqlite3 on the database as it was before, batch by batch as ours
  (500 cases, one transaction each): the same case-row UPDATEs (every column ours sets,
  guarded by the version), the same event rows and outbox rows, ``executemany`` each; then the
  digests and the stage mark in one transaction.

SQLite in WAL with ``synchronous=FULL`` (as ours). ``ratio`` = floor time / our time. Then
``audit verify`` (hash chains, every row replayed, the counts recounted) over the result,
unless ``--no-verify``. The load average is printed before each timed run (the machine may be
shared). The last line is one JSON object.

    python bench/bulk.py [--units 100000] [--repeat 1] [--only import,open,misses,reimport] [--no-verify]

``reimport`` (not run unless asked): the same roster imported again with ``--update`` into the
imported database (every unit known, none changed), its time and peak memory; no floor.

Run it against another checkout's code with ``PYTHONPATH=<checkout>/src`` (the children
inherit it): it calls only ``import_units``, ``open_round`` and ``sweep``.
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

UNIT_LEVEL = {"province": "省级", "city": "市级", "county": "县级"}
ROUND = "shanxi-2021"
MISSES_AT = "2021-10-21T09:00:00+08:00"
BATCH = 500  # the sweep's cases per transaction (service/deadlines.BATCH)

# ---------------------------------------------------------------- set-up (not timed)


def places() -> list[tuple[str, str, str, str | None, str]]:
    """(id, name, level, parent, path) of the province's jurisdictions."""
    cities = [f"shanxi-c{i:02d}" for i in range(14)]
    out: list[tuple[str, str, str, str | None, str]] = [("shanxi", "山西省", "province", None, "/shanxi/")]
    out += [(c, f"市{c[-2:]}", "city", "shanxi", f"/shanxi/{c}/") for c in cities]
    out += [(f"{c}-x{j}", f"县{c[-2:]}{j}", "county", c, f"/shanxi/{c}/{c}-x{j}/") for c in cities for j in range(10)]
    return out


def prepare_tree(path: Path) -> None:
    """A migrated database with the jurisdictions and a coordinator for each."""
    from sqlalchemy import insert

    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.migrate import upgrade
    from workflow.adapters.db.tables import Coordinator, Jurisdiction

    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.begin() as conn:
        for level in ("province", "city", "county"):  # parents first
            conn.execute(insert(Jurisdiction), [dict(id=i, name=n, level=lv, parent_id=p, path=pa)
                                                for i, n, lv, p, pa in places() if lv == level])
        conn.execute(insert(Coordinator), [dict(jurisdiction_id=i, name=f"协调员{n}", email=f"{i}@bureau.example",
                                                active=True) for i, n, *_ in places()])
    engine.dispose()


def write_roster(path: Path, n: int) -> int:
    """A roster of ``n`` units spread over the jurisdictions, as a bureau's CSV: its size in bytes."""
    tree = places()
    lines = ["序号,单位名称,所属地区,层级,类别,联系人,职务,联系电话,电子邮箱"]
    for i in range(n):
        place, _, level, _, _ = tree[i % len(tree)]
        lines.append(f"{i + 1},节约型机关创建单位{i:06d},{place},{UNIT_LEVEL[level]},行政机关,张{i % 97}联,"
                     f"办公室主任,0351-{i % 10_000_000:07d},unit{i}@units.example.cn")
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(data)
    return len(data)


def snapshot(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    a.backup(b)
    a.close()
    b.close()


def raw(path: Path) -> sqlite3.Connection:
    """Raw sqlite3 as ours is set up: WAL, synchronous=FULL, foreign keys, transactions begun by hand."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "busy_timeout = 10000"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


# ---------------------------------------------------------------- ours, each in a fresh process

CHILD = r"""
import json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path

def rss(key):
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":")][0] / 1024

task, url, arg = sys.argv[1], sys.argv[2], sys.argv[3]
from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.adapters.rubric_files import RubricCatalog
from workflow.config import REPO_ROOT
from workflow.domain.case import Actor
from workflow.files import import_units
from workflow.service.deadlines import sweep
from workflow.service.rounds import open_round
db = Database(make_engine(url))
calendars, rubrics = CalendarCatalog(REPO_ROOT / "calendars"), RubricCatalog(REPO_ROOT / "rubrics")
calendars.all()
rubrics.get("shanxi-2020")
actor = Actor("admin", "bench")
with db.unit_of_work(core=True) as uow:  # connect and warm up before the clock starts
    uow.directory.jurisdictions()
before = rss("VmRSS")
t = time.perf_counter()
if task in ("import", "reimport"):
    done = str(import_units(db, Path(arg), datetime(2021, 5, 20, 1, 0, tzinfo=UTC), update=task == "reimport",
                            actor=actor))
elif task == "open":
    done = open_round(db, rubrics, calendars, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                      calendar_id="shanxi-2021", target_share="0.5", actor=actor,
                      now=datetime(2021, 5, 26, 1, 0, tzinfo=UTC)).registered
else:
    report = sweep(db, calendars, datetime.fromisoformat(arg))
    done = {"missed": report.missed, "unit_notices": report.unit_notices, "digests": report.digests}
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "done": done, "rss_before_mb": before, "max_rss_mb": rss("VmHWM")}))
"""

FLOOR_IMPORT = r"""
import csv, io, json, sqlite3, sys, time
from collections import Counter

def rss(key):
    return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":")][0] / 1024

path, roster = sys.argv[1], sys.argv[2]
conn = sqlite3.connect(path, isolation_level=None)
for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
    conn.execute(f"PRAGMA {pragma}")
levels = {"省级": "provincial", "市级": "city", "县级": "county"}
now = "2021-05-20 01:00:00.000000"
before = rss("VmRSS")
t = time.perf_counter()
records = csv.reader(io.StringIO(open(roster, "rb").read().decode("utf-8-sig"), newline=""))
next(records)
counted = Counter()

def rows():
    for _, name, place, level, category, person, position, phone, email in records:
        counted[(place, levels[level])] += 1
        contacts = json.dumps([{"name": person, "position": position, "phone": phone, "email": email}])
        yield place, name, levels[level], category, contacts, None, None, 0, now, now

conn.execute("BEGIN IMMEDIATE")
conn.executemany("INSERT INTO units (jurisdiction_id, name, level, category, contacts, certified_year, "
                 "certified_note, certified_since, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows())
conn.executemany("INSERT INTO agency_counts (jurisdiction_id, level, certified_since, n) VALUES (?,?,0,?) "
                 "ON CONFLICT (jurisdiction_id, level, certified_since) DO UPDATE SET n = agency_counts.n + excluded.n",
                 [(p, lv, n) for (p, lv), n in sorted(counted.items())])
conn.execute("COMMIT")
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "done": sum(counted.values()), "rss_before_mb": before,
                  "max_rss_mb": rss("VmHWM")}))
"""


def child(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------- the floors of open and misses

def _columns(conn: sqlite3.Connection, table: str, *, without: tuple[str, ...] = ()) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in without]


def _insert(conn: sqlite3.Connection, table: str, columns: list[str], rows: list[Any]) -> None:
    if rows:
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                         rows)


def floor_open(before: Path, after: Path) -> float:
    """The rows our round opening wrote, inserted raw into the database as it was before."""
    src = sqlite3.connect(after)
    tables = {t: _columns(src, t) for t in ("rounds", "cases", "events", "case_counts", "operator_events")}
    tables["events"] = _columns(src, "events", without=("position",))
    tables["operator_events"] = _columns(src, "operator_events", without=("position",))
    order = {"rounds": "id", "cases": "id", "events": "position", "case_counts": "1", "operator_events": "position"}
    rows = {t: src.execute(f"SELECT {', '.join(c)} FROM {t} ORDER BY {order[t]}").fetchall() for t, c in tables.items()}
    rows["operator_events"] = src.execute(f"SELECT {', '.join(tables['operator_events'])} FROM operator_events "
                                          "WHERE type = 'RoundOpened' ORDER BY position").fetchall()
    src.close()
    dst = raw(before)
    t = time.perf_counter()
    dst.execute("BEGIN IMMEDIATE")
    for table in ("rounds", "cases", "events", "case_counts", "operator_events"):
        _insert(dst, table, tables[table], rows[table])
    dst.execute("COMMIT")
    seconds = time.perf_counter() - t
    dst.close()
    return seconds


_UPDATED = ("state", "version", "last_hash", "self_total", "verified_total", "recheck_total", "passed",
            "rectification_due", "updated_at", "self_entries", "evidence", "missed", "overdue", "documents",
            "contact_form")  # what SqlCaseStore.append sets


def floor_misses(before: Path, after: Path) -> float:
    """The sweep's rows (case rows, events, notices; then digests and the mark), written raw into
    the database as it was before, batch by batch as ours."""
    src = sqlite3.connect(after)
    event_columns = _columns(src, "events", without=("position",))
    outbox_columns = _columns(src, "outbox", without=("id",))
    events = src.execute(f"SELECT {', '.join(event_columns)} FROM events WHERE type = 'DeadlineMissed' "
                         "ORDER BY position").fetchall()
    missed = [e[event_columns.index("case_id")] for e in events]
    cases = {r[-2]: r for r in src.execute(f"SELECT {', '.join(_UPDATED)}, id, version - 1 FROM cases "
                                           "WHERE overdue").fetchall()}
    notices = {r[outbox_columns.index("case_id")]: r for r in src.execute(
        f"SELECT {', '.join(outbox_columns)} FROM outbox WHERE kind = 'missed' ORDER BY id")}
    digests = src.execute(f"SELECT {', '.join(outbox_columns)} FROM outbox WHERE kind = 'digest' ORDER BY id"
                          ).fetchall()
    mark = src.execute("SELECT round_id, milestone, stage, done_at FROM sweep_marks "
                       "WHERE milestone = 'self_assessment' AND stage = 'missed'").fetchall()
    src.close()
    by_case = dict(zip(missed, events, strict=True))
    dst = raw(before)
    update = f"UPDATE cases SET {', '.join(f'{c} = ?' for c in _UPDATED)} WHERE id = ? AND version = ?"
    t = time.perf_counter()
    for i in range(0, len(missed), BATCH):
        batch = missed[i:i + BATCH]
        dst.execute("BEGIN IMMEDIATE")
        dst.executemany(update, [cases[c] for c in batch])
        _insert(dst, "events", event_columns, [by_case[c] for c in batch])
        _insert(dst, "outbox", outbox_columns, [notices[c] for c in batch if c in notices])
        dst.execute("COMMIT")
    dst.execute("BEGIN IMMEDIATE")
    _insert(dst, "outbox", outbox_columns, digests)
    _insert(dst, "sweep_marks", ["round_id", "milestone", "stage", "done_at"], mark)
    dst.execute("COMMIT")
    seconds = time.perf_counter() - t
    dst.close()
    return seconds


# ---------------------------------------------------------------- the run

def run_import(tmp: Path, tree: Path, roster: Path, k: int) -> tuple[dict[str, Any], dict[str, Any], Path]:
    ours_db, floor_db = tmp / f"import-{k}.db", tmp / f"import-floor-{k}.db"
    snapshot(tree, ours_db)
    snapshot(tree, floor_db)
    ours = {"load": load(), **child(CHILD, "import", f"sqlite:///{ours_db}", str(roster))}
    floor = {"load": load(), **child(FLOOR_IMPORT, str(floor_db), str(roster))}
    floor_db.unlink()
    return ours, floor, ours_db


def run_reimport(tmp: Path, imported: Path, roster: Path, k: int) -> dict[str, Any]:
    ours_db = tmp / f"reimport-{k}.db"
    snapshot(imported, ours_db)
    ours = {"load": load(), **child(CHILD, "reimport", f"sqlite:///{ours_db}", str(roster))}
    ours_db.unlink()
    print(f"reimport (--update, every unit known and unchanged): ours {ours['seconds']:.2f} s; peak RSS "
          f"{ours['max_rss_mb']:.0f} MB (at start {ours['rss_before_mb']:.0f} MB) [load {ours['load']}] {ours['done']}",
          file=sys.stderr)
    return {"seconds": round(ours["seconds"], 3), "max_rss_mb": round(ours["max_rss_mb"], 1),
            "rss_at_start_mb": round(ours["rss_before_mb"], 1), "load_before": ours["load"], "done": ours["done"]}


def run_open(tmp: Path, imported: Path, k: int) -> tuple[dict[str, Any], float, Path]:
    ours_db = tmp / f"open-{k}.db"
    snapshot(imported, ours_db)
    ours = {"load": load(), **child(CHILD, "open", f"sqlite:///{ours_db}", "")}
    floor_db = tmp / f"open-floor-{k}.db"
    snapshot(imported, floor_db)
    floor = floor_open(floor_db, ours_db)
    floor_db.unlink()
    return ours, floor, ours_db


def run_misses(tmp: Path, opened: Path, k: int) -> tuple[dict[str, Any], float, Path]:
    before = tmp / f"misses-before-{k}.db"
    snapshot(opened, before)
    conn = raw(before)  # set-up shortcut: the contact form's miss is done (not this benchmark)
    conn.execute("INSERT INTO sweep_marks (round_id, milestone, stage, done_at) VALUES (?, 'contact_form', "
                 "'missed', '2021-06-06 01:00:00.000000')", (ROUND,))
    conn.close()
    ours_db = tmp / f"misses-{k}.db"
    snapshot(before, ours_db)
    ours = {"load": load(), **child(CHILD, "misses", f"sqlite:///{ours_db}", MISSES_AT)}
    floor = floor_misses(before, ours_db)
    before.unlink()
    return ours, floor, ours_db


def audit(path: Path) -> dict[str, Any]:
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.service.audit import verify

    engine = make_engine(f"sqlite:///{path}")
    t = time.perf_counter()
    report = verify(Database(engine))
    engine.dispose()
    return {"ok": report.ok, "findings": len(report.findings), "seconds": round(time.perf_counter() - t, 1)}


def _line(what: str, ours: dict[str, Any], floor_s: float, floor_rss: float | None = None) -> dict[str, Any]:
    ratio = floor_s / ours["seconds"]
    rss = f"; peak RSS {ours['max_rss_mb']:.0f} MB (at start {ours['rss_before_mb']:.0f} MB)"
    if floor_rss is not None:
        rss += f", floor's {floor_rss:.0f} MB"
    print(f"{what}: ours {ours['seconds']:.2f} s, floor {floor_s:.2f} s, ratio {ratio:.2f}{rss} "
          f"[load {ours['load']}] {ours['done']}", file=sys.stderr)
    return {"seconds": round(ours["seconds"], 3), "floor_seconds": round(floor_s, 3), "ratio": round(ratio, 3),
            "max_rss_mb": round(ours["max_rss_mb"], 1), "rss_at_start_mb": round(ours["rss_before_mb"], 1),
            "load_before": ours["load"], "done": ours["done"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each (each on a fresh copy of its database)")
    ap.add_argument("--only", default="import,open,misses",
                    help="which of import,open,misses,reimport to time (reimport: the roster again with --update)")
    ap.add_argument("--no-verify", action="store_true", help="skip audit verify of the result")
    args = ap.parse_args()
    only = set(args.only.split(","))
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        t = time.perf_counter()
        tree, roster = tmp / "tree.db", tmp / "roster.csv"
        prepare_tree(tree)
        size = write_roster(roster, args.units)
        print(f"setup: {len(places())} jurisdictions, roster of {args.units:,} units ({size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t:.1f} s; {os.cpu_count()} cores, sqlite {sqlite3.sqlite_version}",
              file=sys.stderr)
        for k in range(args.repeat):
            run: dict[str, Any] = {}
            imported = _imported(tmp, tree, roster, k, run, "import" in only)
            if "reimport" in only:
                run["reimport"] = run_reimport(tmp, imported, roster, k)
            opened = _opened(tmp, imported, k, run, "open" in only)
            if "misses" in only:
                ours, floor_s, missed = run_misses(tmp, opened, k)
                run["misses"] = _line("misses", ours, floor_s)
                opened = missed
            if not args.no_verify and k == args.repeat - 1:
                run["verify"] = audit(opened)
                print(f"audit verify of the result: {run['verify']}", file=sys.stderr)
            runs.append(run)
    print(json.dumps({"benchmark": "bulk", "units": args.units, "at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "runs": runs}))


def _imported(tmp: Path, tree: Path, roster: Path, k: int, run: dict[str, Any], timed: bool) -> Path:
    ours, floor, imported = run_import(tmp, tree, roster, k)
    if timed:
        run["import"] = _line("import", ours, floor["seconds"], floor["max_rss_mb"])
        run["import"]["floor_max_rss_mb"] = round(floor["max_rss_mb"], 1)
    return imported


def _opened(tmp: Path, imported: Path, k: int, run: dict[str, Any], timed: bool) -> Path:
    ours, floor_s, opened = run_open(tmp, imported, k)
    if timed:
        run["open"] = _line("open", ours, floor_s)
    return opened


if __name__ == "__main__":
    main()
