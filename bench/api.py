"""The HTTP API under load: `workflow serve` on SQLite with 100,000 cases and 2,000,000 events.

Setup (not timed against the targets; its duration is printed):
- a fresh SQLite file, migrated (``upgrade``); a province (11 cities, 10 counties each),
  100,000 units, one round (the row as ``service.rounds.open_round`` writes it, rubric
  snapshot included) and a case per unit with ``--events-per-case`` events each, written
  with raw ``sqlite3.executemany`` in waves (every case's event k, then every case's event
  k+1: the log's global order is time order, as in a real round). The data are valid:
  registration events come from ``domain.case.registration_event``; the later events are
  what ``domain.case.decide`` makes of a scripted sequence of ``self_assess`` /
  ``attach_evidence`` / ``remove_evidence`` (90% of the cases end ``self_assessed``,
  10% stay ``registered`` with evidence only); each case's chain is hashed with
  ``domain.events.chain_hash`` and its row is the replay of its events. A sample is
  checked with ``service.audit.verify`` (``--audit``: all of it) and, for a few cases,
  against a replay through the real ``decide``.
- the built file is cached in ``--dir`` (default ``$TMPDIR/workflow-bench-api``) under a
  name keyed by the size and a hash of the migration files; each run works on a fresh copy
  of it (``run.db``), so every run starts from the same data. ``--fresh`` rebuilds it.
- tokens (``service.tokens.create_token``): an admin, the province's coordinator, a
  coordinator per city, ``--unit-tokens`` unit tokens.
- ``workflow serve`` in a subprocess on a free port. This process holds the scheduler's
  lock file (``<db>.scheduler.lock``) first, so the server never becomes the scheduling
  leader: no sweep or dispatch runs during the measurement (``serve`` has no
  ``--no-scheduler`` flag). The server logs (one JSON line per request) go to a file.

Timed, from a separate process (spawned; asyncio + ``httpx.AsyncClient``, several clients
with a semaphore each, ``--concurrency`` requests in flight at most):
- ``mixed``: open loop at ``--rate`` requests/s for ``--seconds``: each request is sent at
  its planned time and its latency counts from that planned time (no coordinated
  omission). 80% reads: case lists (``limit=100``, random cursors, filters by state,
  jurisdiction, category, level, overdue; as admin, province and city coordinators and
  units), one case, a case's history, a unit's history; 20% ``self_assess`` actions with
  the version the client tracked from the previous answer, never two at a time on one
  case (so a 409 is a bug); a unit token acts on its own case, the admin on any.
  An error is any non-2xx answer or exception.
- ``progress``: the whole province's progress report (the province's coordinator),
  ``--progress-n`` calls in a row;
- ``unit_history``: ``--history-n`` random units, in a row; likewise a case's history, one
  case, a list page, and ``self_assess`` actions alone; then every list filter alone, 20
  calls each (which filters are slow).

Floor: each of those API calls is followed at once by the same read in raw ``sqlite3`` on
the same file with the same parameters (the list query as ``service.queries.list_cases``
builds it, a case row, a case's events, a unit's events, the progress GROUP BY as
``service.reports.progress`` builds it): ``ratio`` = floor median / API median. Also
reported: CPU used by the server(s), the load generator and other processes during the
mixed load (this machine is shared: a run where others used much CPU is not comparable).
The last line is one JSON object.

Experiments (not the product as shipped): ``--with-round-index`` adds ``CREATE INDEX ON
cases (round_id)`` to the run's copy; ``--servers N`` runs N ``workflow serve`` processes on
the same file and spreads the load over them.

``--workers N`` runs each server as ``workflow serve --workers N`` (the product's way to use
several cores; the CPU of its worker processes is counted as the server's).

Targets (issues): mixed p99 ≤ 50 ms at 200/s with no errors; progress ≤ 20 ms (the report reads
the counts kept with every transition: its floor is those two reads in raw sqlite3; the GROUP BY
over every case row it ran before is timed too); unit history ≤ 10 ms.

    python bench/api.py [--cases 100000] [--events-per-case 20] [--rate 200] [--seconds 30] [--dir DIR]
                        [--with-round-index] [--servers N] [--workers N] [--audit] [--fresh] [--keep]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

ROUND = "shanxi-2021"
T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)  # the round opens; wave k is k days later
OPENED_BY = "admin:bench"
N_CITIES, N_COUNTIES = 11, 10
CATEGORIES = ("党的机关", "人大机关", "行政机关", "政协机关", "监察机关", "审判机关", "检察机关", "人民团体", "参公事业单位")
SEED_FORMAT = 2  # bump when the seeded data change: the cache key has it


# ------------------------------------------------------------------ the province

def places() -> list[tuple[str, str, str, str | None, str]]:
    """(id, name, level, parent, path): the province, its cities, their counties."""
    out = [("shanxi", "山西省", "province", None, "/shanxi/")]
    for c in range(N_CITIES):
        city = f"shanxi-c{c:02d}"
        out.append((city, f"市{c:02d}", "city", "shanxi", f"/shanxi/{city}/"))
    for c in range(N_CITIES):
        city = f"shanxi-c{c:02d}"
        for x in range(N_COUNTIES):
            out.append((f"{city}-x{x}", f"县{c:02d}-{x}", "county", city, f"/shanxi/{city}/{city}-x{x}/"))
    return out


PLACES = places()
UNIT_LEVEL = {"province": "provincial", "city": "city", "county": "county"}


def unit_place(unit_id: int) -> int:
    """Index in PLACES of a unit's jurisdiction (units are spread round-robin)."""
    return (unit_id - 1) % len(PLACES)


def unit_category(unit_id: int) -> str:
    return CATEGORIES[((unit_id - 1) // 7) % len(CATEGORIES)]


def city_of(unit_id: int) -> int | None:
    """The city index of a unit (None for a provincial unit)."""
    p = unit_place(unit_id)
    if p == 0:
        return None
    return p - 1 if p <= N_CITIES else (p - 1 - N_CITIES) // N_COUNTIES


def sql_time(at_iso: str) -> str:
    """The hashed UTC ISO text as SQLite keeps it (what ``SqlCaseStore.append`` writes)."""
    return f"{at_iso[:10]} {at_iso[11:26]}"


# ------------------------------------------------------------------ the scripted histories

def scripts(ctx: Any, steps: int) -> dict[str, Any]:
    """Two scripted case histories of ``steps`` actions after registration, made by the real
    ``decide`` and ``apply`` on a prototype case: what each step's event is (type, payload
    text: neither depends on the case, the actor or the time) and the final row's columns."""
    from workflow.domain.case import Actor, apply, decide, registration_event
    from workflow.domain.events import canonical_json

    codes = [(c.code, c.cap, c.step) for c in ctx.rubric.criteria() if not c.per_occurrence]

    def entry(j: int) -> dict[str, str]:
        code, cap, step = codes[j % len(codes)]
        value = min(cap, step * (1 + j % 3))
        return {code: format(value, "f"), codes[(j + 7) % len(codes)][0]: "0"}

    def attach(j: int) -> dict[str, Any]:
        return {"criterion": codes[(j * 5) % len(codes)][0], "sha256": hashlib.sha256(f"file {j}".encode()).hexdigest(),
                "filename": f"佐证材料{j:02d}.pdf", "size": 20_000 + j, "type": "pdf"}

    def plan(kind: str) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        attached: list[dict[str, Any]] = []
        for j in range(steps):
            # A: self_assess, attach, attach, remove the first of the two, ...; B: evidence only.
            slot = j % 4 if kind == "A" else 1 + j % 3
            if slot == 0:
                out.append(("self_assess", {"entries": entry(j)}))
            elif slot in (1, 2):
                a = attach(j)
                attached.append(a)
                out.append(("attach_evidence", a))
            else:
                a = attached.pop(-2)
                out.append(("remove_evidence", {"criterion": a["criterion"], "sha256": a["sha256"]}))
        return out

    result = {}
    actor = Actor("unit", "1")
    for kind in ("A", "B"):
        case = apply(None, registration_event(1, ctx.round_id, 1, OPENED_BY, T0))
        events = []
        for j, (action, data) in enumerate(plan(kind)):
            event = decide(case, action, data, actor, T0 + timedelta(days=j + 1), ctx)
            case = apply(case, event)
            events.append((event.type, event.payload_json))
        result[kind] = {
            "plan": plan(kind), "events": events, "state": case.state,
            "self_total": None if case.self_total is None else format(case.self_total, "f"),
            "self_entries": None if case.self_entries is None else canonical_json(case.self_entries),
            "evidence": json.dumps(case.evidence, ensure_ascii=False) if case.evidence else None,
        }
    return result


def script_of(case_id: int) -> str:
    return "B" if case_id % 10 == 0 else "A"


def wave_time(k: int, case_id: int) -> datetime:
    """When case ``case_id`` took its step ``k`` (k ≥ 1): day k, spread over the day."""
    return T0 + timedelta(days=k, microseconds=(case_id - 1) * 400_000)


# ------------------------------------------------------------------ seeding

def build(path: Path, n_cases: int, events_per_case: int) -> dict[str, float]:
    """Create, migrate and fill a database file; returns timings of the parts."""
    from sqlalchemy import insert

    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.migrate import upgrade
    from workflow.adapters.db.store import Database
    from workflow.adapters.db.tables import Jurisdiction, Round
    from workflow.adapters.rubric_files import RubricCatalog
    from workflow.config import REPO_ROOT
    from workflow.domain.case import registration_event
    from workflow.domain.events import chain_hash, utc_iso
    from workflow.domain.rubric import rubric_to_data

    took: dict[str, float] = {}
    t = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    took["migrate"] = time.perf_counter() - t

    # The jurisdictions and the round row as open_round writes it (rubric snapshot, pass mark, policy).
    t = time.perf_counter()
    rubric = RubricCatalog(REPO_ROOT / "rubrics").get("shanxi-2020")
    calendar = CalendarCatalog(REPO_ROOT / "calendars").get("shanxi-2021")
    policy = calendar.policy
    with engine.begin() as conn:
        conn.execute(insert(Jurisdiction), [dict(id=i, name=n, level=lv, parent_id=pa, path=pt)
                                            for i, n, lv, pa, pt in PLACES])
        conn.execute(insert(Round).values(
            id=ROUND, province_id="shanxi", year=2021, rubric_id=rubric.id, calendar_id=calendar.id,
            target_share=Decimal("0.5"), pass_mark=rubric.pass_mark, max_total=rubric.total,
            policy={"on_fail": policy.on_fail, "rectification_days": policy.rectification_days,
                    "carry_over": policy.carry_over},
            rubric_data=rubric_to_data(rubric), opened_at=T0, opened_by=OPENED_BY))
    db = Database(engine)
    with db.reader() as uow:
        ctx = uow.round_context(ROUND)  # read back as the server will
    steps = events_per_case - 1
    plans = scripts(ctx, steps)
    engine.dispose()  # the bulk load below has the file to itself

    stamp = "2021-05-20 00:00:00.000000"
    raw = sqlite3.connect(path, isolation_level=None)
    if raw.execute("PRAGMA journal_mode=OFF").fetchone()[0] != "off":  # bulk load; WAL again at the end
        raise RuntimeError("could not leave WAL mode for the bulk load")
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-1000000")
    raw.execute("BEGIN")
    raw.executemany(
        "INSERT INTO units (id, jurisdiction_id, name, level, category, contacts, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?)",
        ((u, PLACES[unit_place(u)][0], f"单位{u:06d}", UNIT_LEVEL[PLACES[unit_place(u)][2]], unit_category(u),
          json.dumps([{"name": "联系人", "position": "", "phone": "", "email": f"u{u}@units.example"}]), stamp, stamp)
         for u in range(1, n_cases + 1)))
    raw.executemany("INSERT INTO coordinators (jurisdiction_id, name, email, active) VALUES (?,?,?,1)",
                    [(p[0], f"协调员{p[0]}", f"{p[0]}@bureau.example") for p in PLACES])
    raw.execute("COMMIT")
    took["units"] = time.perf_counter() - t

    # Events in waves: every case's registration, then every case's step 1, ...
    insert_event = ("INSERT INTO events (case_id, seq, type, actor, occurred_at, payload, prev_hash, hash) "
                    "VALUES (?,?,?,?,?,?,?,?)")
    t = time.perf_counter()
    last = [""] * (n_cases + 1)
    reg_at = utc_iso(T0)
    raw.execute("BEGIN")
    rows = []
    for c in range(1, n_cases + 1):
        e = registration_event(c, ROUND, c, OPENED_BY, T0)
        last[c] = e.hash
        rows.append((c, 1, e.type, e.actor, sql_time(reg_at), e.payload_json, e.prev_hash, e.hash))
    raw.executemany(insert_event, rows)
    took["registrations"] = time.perf_counter() - t
    t = time.perf_counter()
    templates = {k: v["events"] for k, v in plans.items()}
    last_at = [""] * (n_cases + 1)
    for k in range(1, events_per_case):
        rows = []
        for c in range(1, n_cases + 1):
            type_, payload = templates[script_of(c)][k - 1]
            actor = f"unit:{c}"
            at = utc_iso(wave_time(k, c))
            h = chain_hash(c, k + 1, type_, actor, at, payload, last[c])
            at_sql = sql_time(at)
            rows.append((c, k + 1, type_, actor, at_sql, payload, last[c], h))
            last[c] = h
            last_at[c] = at_sql
        raw.executemany(insert_event, rows)
    took["events"] = time.perf_counter() - t

    t = time.perf_counter()
    reg_sql = sql_time(reg_at)
    raw.executemany(
        "INSERT INTO cases (id, round_id, unit_id, state, version, last_hash, carried_over_from, self_total, "
        "verified_total, recheck_total, passed, rectification_due, registered_at, updated_at, self_entries, "
        "evidence, missed, overdue) VALUES (?,?,?,?,?,?,NULL,?,NULL,NULL,NULL,NULL,?,?,?,?,NULL,0)",
        ((c, ROUND, c, plans[script_of(c)]["state"], events_per_case, last[c], plans[script_of(c)]["self_total"],
          reg_sql, last_at[c] or reg_sql, plans[script_of(c)]["self_entries"], plans[script_of(c)]["evidence"])
         for c in range(1, n_cases + 1)))
    raw.execute("COMMIT")
    raw.execute("PRAGMA journal_mode=WAL")
    raw.close()
    took["cases"] = time.perf_counter() - t
    # the raw load wrote no progress counts (a transition keeps them): count them as the
    # migration that made them does
    from workflow.adapters.db import counts

    t = time.perf_counter()
    engine = make_engine(f"sqlite:///{path}")
    counts.repair(engine)
    engine.dispose()
    took["counts"] = time.perf_counter() - t
    return took


class _Sample:
    """An event source (``service.audit``) over some cases only."""

    def __init__(self, db: Any, ids: list[int]) -> None:
        self.db, self.ids = db, sorted(ids)

    def all_cases(self):
        with self.db.reader() as uow:
            return [uow.get(i) for i in self.ids]

    def all_events(self):
        with self.db.reader() as uow:
            return [e for i in self.ids for e in uow.events(i)]

    def __getattr__(self, name: str) -> Any:  # the rest as the whole database has it (duty streams, counts, ...)
        return getattr(self.db, name)


def check(path: Path, n_cases: int, events_per_case: int, sample: int, full: bool) -> dict[str, Any]:
    """The seeded data are valid: chains and rows (``service.audit.verify``) on a sample (or
    all), and a few cases replayed through the real ``decide`` give the very events stored."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.domain.case import Actor, apply, decide
    from workflow.service.audit import verify

    db = Database(make_engine(f"sqlite:///{path}"))
    rng = random.Random(7)
    ids = sorted(set(rng.sample(range(1, n_cases + 1), min(sample, n_cases))) | {1, 10, n_cases})
    t = time.perf_counter()
    report = verify(db if full else _Sample(db, ids))
    seconds = time.perf_counter() - t
    if not report.ok or report.events != report.cases * events_per_case:
        raise SystemExit(f"seeded data invalid: {report.findings[:5]} ({report.cases} cases, {report.events} events)")
    with db.reader() as uow:
        ctx = uow.round_context(ROUND)
        for c in ids[:5]:
            stored = uow.events(c)
            case = apply(None, stored[0])
            for k, (action, data) in enumerate(scripts(ctx, events_per_case - 1)[script_of(c)]["plan"], start=1):
                event = decide(case, action, data, Actor("unit", str(c)), wave_time(k, c), ctx)
                if event.hash != stored[k].hash:
                    raise SystemExit(f"case {c} event #{k + 1}: decide gives {event.hash}, stored {stored[k].hash}")
                case = apply(case, event)
    db.engine.dispose()
    return {"audited_cases": report.cases, "audited_events": report.events, "audit_s": round(seconds, 2)}


def prepared(directory: Path, n_cases: int, events_per_case: int, fresh: bool) -> tuple[Path, float, bool]:
    """The cached database file for this size (built if missing): (path, seconds, built)."""
    from sqlalchemy import create_engine

    from workflow.adapters.db.migrate import MIGRATIONS, head_revision

    head = head_revision(create_engine("sqlite://"))
    schema = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(MIGRATIONS.rglob("*.py")))).hexdigest()[:8]
    cached = directory / f"api-{n_cases}c-{events_per_case}e-{head}-{schema}-f{SEED_FORMAT}.db"
    if cached.exists() and not fresh:
        return cached, 0.0, False
    building = cached.with_suffix(".building")
    for p in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    parts = build(building, n_cases, events_per_case)
    seconds = time.perf_counter() - t
    print("seeding: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()) + f"; total {seconds:.1f} s",
          file=sys.stderr)
    os.replace(building, cached)
    return cached, seconds, True


# ------------------------------------------------------------------ the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold_scheduler_lock(db_path: Path) -> Any:
    """Take the lock file ``LeaderLock`` uses on SQLite, so the server never schedules."""
    handle = open(db_path.with_suffix(".scheduler.lock"), "a+")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.seek(0)
    handle.truncate()
    handle.write(f"bench/api.py pid {os.getpid()} (no scheduling during the benchmark)\n")
    handle.flush()
    return handle


def make_tokens(url: str, n_units: int, n_unit_tokens: int) -> dict[str, Any]:
    """An account and a token for each caller of the load: an admin, the province's
    coordinator, a coordinator per city, ``n_unit_tokens`` units."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.service.accounts import create_account, principal_of
    from workflow.service.tokens import create_token

    db = Database(make_engine(url))
    now = datetime.now(UTC)
    admin = create_account(db, by=None, login="bench-admin", name="bench admin", role="admin", now=now)
    by = principal_of(admin, "cli")

    def make(login: str, name: str, role: str, **scope: Any) -> str:
        account = admin if role == "admin" else create_account(db, by=by, login=login, name=name, role=role,
                                                               now=now, **scope)
        return create_token(db, account_id=account.id, by=by, now=now).secret

    tokens = {"admin": make("bench-admin", "bench admin", "admin"),
              "province": make("province", "省局协调员", "coordinator", jurisdiction_id="shanxi"),
              "cities": [make(f"city{c:02d}", f"市协调员{c:02d}", "coordinator", jurisdiction_id=f"shanxi-c{c:02d}")
                         for c in range(N_CITIES)],
              "units": {}}
    for u in random.Random(11).sample(range(1, n_units + 1), min(n_unit_tokens, n_units)):
        tokens["units"][u] = make(f"unit{u:06d}", f"单位{u:06d}", "unit", unit_id=u)
    db.engine.dispose()
    return tokens


def worker_pids(pid: int) -> list[int]:
    """The worker processes of a ``serve --workers N`` supervisor."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line]


def start_server(url: str, port: int, directory: Path, log_path: Path, workers: int = 1) -> subprocess.Popen:
    env = dict(os.environ, WORKFLOW_DATABASE_URL=url, WORKFLOW_EVIDENCE_DIR=str(directory / "evidence"),
               WORKFLOW_MAILDIR=str(directory / "mail"))
    workflow = Path(sys.executable).parent / "workflow"
    log = open(log_path, "w")
    proc = subprocess.Popen([str(workflow), "serve", "--name", "bench-api", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    return wait_ready(proc, port, log_path, 300, lambda: workers == 1 or len(worker_pids(proc.pid)) == workers)


def wait_ready(proc: subprocess.Popen, port: int, log_path: Path, tries: int,
               also: Callable[[], bool] = lambda: True) -> subprocess.Popen:
    """``proc`` once its /readyz answers 200 (and ``also`` holds), polled every 0.1 s ``tries``
    times; killed, and an error naming its log, when it never does or exits."""
    import httpx

    for _ in range(tries):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200 and also():
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start; see {log_path}")


# ------------------------------------------------------------------ the load (separate process)

def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


def cpu_seconds(pid: int | None = None, system_only: bool = False) -> float:
    """CPU time (user + system, or system only) of a process so far; the machine's busy time
    when pid is None."""
    tick = os.sysconf("SC_CLK_TCK")
    if pid is None:
        f = open("/proc/stat").readline().split()[1:]
        return (sum(int(x) for x in f[:8]) - int(f[3]) - int(f[4])) / tick  # all but idle and iowait
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[12]) if system_only else int(f[11]) + int(f[12])) / tick


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50": pct(ms, 50), "p90": pct(ms, 90), "p99": pct(ms, 99), "max": max(ms) if ms else 0.0}


class Plan:
    """Who asks what: random choices over the seeded province."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.rng = random.Random(cfg["seed"])
        self.n = cfg["cases"]
        self.round = ROUND
        t = cfg["tokens"]
        self.admin, self.province, self.cities = t["admin"], t["province"], t["cities"]
        self.units = {int(u): s for u, s in t["units"].items()}
        self.unit_ids = sorted(self.units)
        self.by_city: list[list[int]] = [[] for _ in range(N_CITIES)]
        for c in range(1, self.n + 1):
            city = city_of(c)
            if city is not None:
                self.by_city[city].append(c)
        self.criteria = cfg["criteria"]

    def reader(self) -> tuple[str, str, int]:
        """(role, token, a case it may see)."""
        r = self.rng.random()
        if r < 0.25:
            return "admin", self.admin, self.rng.randint(1, self.n)
        if r < 0.5:
            return "province", self.province, self.rng.randint(1, self.n)
        if r < 0.75:
            city = self.rng.randrange(N_CITIES)
            return f"city{city}", self.cities[city], self.rng.choice(self.by_city[city])
        u = self.rng.choice(self.unit_ids)
        return "unit", self.units[u], u

    def list_query(self, role: str) -> tuple[str, dict[str, Any]]:
        q: dict[str, Any] = {"round": self.round, "limit": 100, "after": self.rng.randrange(self.n)}
        if role == "unit":
            q["after"] = 0
            return "list unit", q
        options = ["plain", "state", "jurisdiction"]
        if role == "admin":
            options += ["category", "level", "overdue"]
        kind = self.rng.choice(options)
        if kind == "state":
            q["state"] = "registered"
        elif kind == "jurisdiction":
            city = int(role[4:]) if role.startswith("city") else self.rng.randrange(N_CITIES)
            q["jurisdiction"] = f"shanxi-c{city:02d}" if not role.startswith("city") else \
                f"shanxi-c{city:02d}-x{self.rng.randrange(N_COUNTIES)}"
        elif kind == "category":
            q["category"] = self.rng.choice(CATEGORIES)
        elif kind == "level":
            q["level"] = self.rng.choice(("provincial", "city", "county"))
        elif kind == "overdue":
            q["overdue"] = "false"
        return f"list {kind}", q

    def entries(self) -> dict[str, str]:
        code, cap, step = self.rng.choice(self.criteria)
        k = self.rng.randint(0, int(Decimal(cap) / Decimal(step)))
        return {code: format(Decimal(step) * k, "f")}


async def mixed(cfg: dict[str, Any]) -> dict[str, Any]:
    import httpx

    plan = Plan(cfg)
    rng = plan.rng
    versions: list[int] = cfg["versions"]
    in_flight: set[int] = set()
    lat: dict[str, list[float]] = {}
    errors: list[dict[str, Any]] = []
    lags: list[float] = []
    done = 0
    total = int(cfg["rate"] * cfg["seconds"])
    mix = (("list", 0.30), ("case", 0.20), ("history", 0.20), ("unit_history", 0.10), ("action", 0.20))
    # httpcore's pool does O(queued × connections) work per event, so a deep queue inside one
    # client makes the load generator the bottleneck: several small clients, and an asyncio
    # semaphore in front of each so that nothing queues inside httpx. Waiting for the semaphore
    # counts in the latency (measured from the planned time).
    shards = max(1, min(16, cfg["concurrency"] // 16))
    per = max(1, cfg["concurrency"] // shards)
    # keep-alive shorter than uvicorn's 5 s, so the client never reuses a connection the server is closing
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per, keepalive_expiry=2.0)
    bases = cfg["bases"]  # one per server process; shards take them in turn
    shards = max(shards, len(bases))
    clients = [httpx.AsyncClient(base_url=bases[k % len(bases)], limits=limits, timeout=60.0) for k in range(shards)]
    gates = [asyncio.Semaphore(per) for _ in range(shards)]
    async with contextlib.AsyncExitStack() as stack:
        for c in clients:
            await stack.enter_async_context(c)

        async def one(i: int, planned: float, kind: str, method: str, url: str, token: str, params: Any = None,
                      body: Any = None, case: int | None = None) -> None:
            nonlocal done
            lags.append((time.perf_counter() - planned) * 1e3)
            status, detail = None, None
            client = clients[i % shards]
            try:
                async with gates[i % shards]:
                    r = await client.request(method, url, params=params, json=body,
                                             headers={"Authorization": f"Bearer {token}"})
                status = r.status_code
                if r.is_success:
                    if kind == "action":
                        versions[case] = r.json()["version"]
                else:
                    detail = r.text[:300]
            except Exception as exc:
                detail = f"{type(exc).__name__}: {exc}"
            ms = (time.perf_counter() - planned) * 1e3
            lat.setdefault(kind, []).append(ms)
            done += 1
            if status is None or not 200 <= status < 300:
                errors.append({"kind": kind, "url": url, "status": status, "detail": detail})
                if kind == "action" and status == 409:  # resynchronise, so one bug is one error
                    r = await client.get(f"/api/v1/cases/{case}", headers={"Authorization": f"Bearer {plan.admin}"})
                    versions[case] = r.json()["version"]
            if kind == "action":
                in_flight.discard(case)

        def request() -> tuple:
            r = rng.random()
            for kind, share in mix:  # noqa: B007 - the kind the draw stops at is used below
                r -= share
                if r < 0:
                    break
            if kind == "action":
                if rng.random() < 0.5:
                    for _ in range(20):
                        u = rng.choice(plan.unit_ids)
                        if u not in in_flight:
                            token, case = plan.units[u], u
                            break
                    else:
                        token, case = plan.admin, None
                else:
                    token, case = plan.admin, None
                while case is None or case in in_flight:
                    case = rng.randint(1, plan.n)
                in_flight.add(case)
                return ("action", "POST", f"/api/v1/cases/{case}/actions/self_assess", token, None,
                        {"version": versions[case], "data": {"entries": plan.entries()}}, case)
            role, token, case = plan.reader()
            if kind == "list":
                name, q = plan.list_query(role)
                return (name, "GET", "/api/v1/cases", token, q, None, None)
            if kind == "case":
                return ("case", "GET", f"/api/v1/cases/{case}", token, None, None, None)
            if kind == "history":
                return ("history", "GET", f"/api/v1/cases/{case}/history", token, None, None, None)
            return ("unit_history", "GET", f"/api/v1/units/{case}/history", token, None, None, None)

        tasks = set()
        servers_cpu = lambda: sum(cpu_seconds(pid) for pid in cfg["server_pids"])  # noqa: E731
        servers_sys = lambda: sum(cpu_seconds(pid, system_only=True) for pid in cfg["server_pids"])  # noqa: E731
        cpu0 = (cpu_seconds(), servers_cpu(), time.process_time(), servers_sys())
        start = time.perf_counter() + 0.2
        for i in range(total):
            planned = start + i / cfg["rate"]
            kind, method, url, token, params, body, case = request()
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(i, planned, kind, method, url, token, params, body, case))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent_s = time.perf_counter() - start
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        machine, server, client = (cpu_seconds() - cpu0[0], servers_cpu() - cpu0[1],
                                   time.process_time() - cpu0[2])
        server_sys = servers_sys() - cpu0[3]
    all_ms = [x for v in lat.values() for x in v]
    kinds = {}
    for name in sorted(lat):
        kinds[name] = summary(lat[name])
    groups: dict[str, list[float]] = {}
    for name, v in lat.items():
        groups.setdefault(name.split(" ")[0] if name.startswith("list") else name, []).extend(v)
    return {"requests": total, "completed": done, "sent_rate": total / sent_s, "achieved_rate": done / wall,
            "all": summary(all_ms), "by_kind": kinds, "by_group": {k: summary(v) for k, v in groups.items()},
            "errors": len(errors), "error_samples": errors[:10], "send_lag_ms_p99": pct(lags, 99),
            "send_lag_ms_max": max(lags) if lags else 0.0,
            "server_cpu_ms_per_request": server / max(done, 1) * 1e3, "server_cores": server / wall,
            "server_system_share": server_sys / server if server else 0.0,
            "client_cores": client / wall, "others_cores": max(0.0, machine - server - client) / wall}


def sequential(cfg: dict[str, Any]) -> dict[str, Any]:
    """Each read alone, one after another (one keep-alive connection), each API call followed
    by its floor: the same read in raw sqlite3 on the same file with the same parameters (so
    both see the same machine at the same moment)."""
    import httpx

    plan = Plan(cfg | {"seed": cfg["seed"] + 1})
    rng = plan.rng
    out: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    bad: list[Any] = []
    raw = sqlite3.connect(cfg["db_path"], isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    busy0 = (cpu_seconds(), sum(cpu_seconds(pid) for pid in cfg["server_pids"]), time.process_time(),
             time.perf_counter())
    with httpx.Client(base_url=cfg["bases"][0], timeout=60.0) as client:
        def timed(url: str, token: str, params: Any = None) -> float:
            t = time.perf_counter()
            r = client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})
            r.json()
            ms = (time.perf_counter() - t) * 1e3
            if r.status_code != 200:
                bad.append((url, r.status_code, r.text[:200]))
            return ms

        def paired(name: str, n: int, draw: Any, api: Any, floor_fn: Any) -> None:
            api_ms, floor_ms = [], []
            for _ in range(n):
                x = draw()
                api_ms.append(api(x))
                t = time.perf_counter()
                floor_fn(raw, x)
                floor_ms.append((time.perf_counter() - t) * 1e3)
            out[name], floors[name] = summary(api_ms), summary(floor_ms)

        timed(f"/api/v1/rounds/{ROUND}/progress", plan.province)  # warm
        floor_progress(raw, None)
        paired("progress", cfg["progress_n"], lambda: None,
               lambda _: timed(f"/api/v1/rounds/{ROUND}/progress", plan.province), floor_progress)
        scan_ms = []
        for _ in range(min(cfg["progress_n"], 10)):  # the query the report ran before the counts were kept
            t = time.perf_counter()
            scan_progress(raw, None)
            scan_ms.append((time.perf_counter() - t) * 1e3)
        floors["progress_scan"] = summary(scan_ms)
        paired("unit_history", cfg["history_n"], lambda: rng.randint(1, plan.n),
               lambda u: timed(f"/api/v1/units/{u}/history", plan.admin), floor_unit_history)
        paired("history", cfg["history_n"], lambda: rng.randint(1, plan.n),
               lambda c: timed(f"/api/v1/cases/{c}/history", plan.admin), floor_history)
        paired("case", cfg["history_n"], lambda: rng.randint(1, plan.n),
               lambda c: timed(f"/api/v1/cases/{c}", plan.admin), floor_case)
        paired("list", cfg["history_n"], lambda: rng.randrange(plan.n),
               lambda a: timed("/api/v1/cases", plan.admin, {"round": ROUND, "limit": 100, "after": a}), floor_list)
        acted = []
        for case in rng.sample(range(1, plan.n + 1), cfg["history_n"] // 2):
            h = {"Authorization": f"Bearer {plan.admin}"}
            version = client.get(f"/api/v1/cases/{case}", headers=h).json()["version"]
            t = time.perf_counter()
            r = client.post(f"/api/v1/cases/{case}/actions/self_assess", headers=h,
                            json={"version": version, "data": {"entries": plan.entries()}})
            r.json()
            acted.append((time.perf_counter() - t) * 1e3)
            if r.status_code != 200:
                bad.append((case, r.status_code, r.text[:200]))
        out["action"] = summary(acted)
        # Every list filter alone (which ones are slow), 20 calls each.
        variants = {
            "admin plain": (plan.admin, {}),
            "province plain": (plan.province, {}),
            "city plain": (plan.cities[3], {}),
            "unit own": (plan.units[plan.unit_ids[0]], {"after": 0}),
            "state=registered (10%)": (plan.admin, {"state": "registered"}),
            "state=submitted (none)": (plan.admin, {"state": "submitted"}),
            "jurisdiction=city": (plan.admin, {"jurisdiction": "shanxi-c03"}),
            "jurisdiction=county": (plan.admin, {"jurisdiction": "shanxi-c03-x4"}),
            "category": (plan.admin, {"category": CATEGORIES[4]}),
            "level=provincial": (plan.admin, {"level": "provincial"}),
            "overdue=true (none)": (plan.admin, {"overdue": "true"}),
        }
        out["list_variants"] = {}
        for name, (token, extra) in variants.items():
            ms = [timed("/api/v1/cases", token, {"round": ROUND, "limit": 100, "after": rng.randrange(plan.n)} | extra)
                  for _ in range(20)]
            out["list_variants"][name] = summary(ms)
    wall = time.perf_counter() - busy0[3]
    others = (cpu_seconds() - busy0[0] - (sum(cpu_seconds(pid) for pid in cfg["server_pids"]) - busy0[1])
              - (time.process_time() - busy0[2]))
    raw.close()
    out["floor"] = floors
    out["others_cores"] = max(0.0, others) / wall
    out["errors"] = len(bad)
    out["error_samples"] = bad[:5]
    return out


def loadgen(cfg: dict[str, Any]) -> dict[str, Any]:
    """The client process: warm-up, the mixed load, then the sequential measurements."""
    import httpx

    for base in cfg["bases"]:
        with httpx.Client(base_url=base, timeout=60.0) as client:  # warm-up: lazy imports, round cache
            h = {"Authorization": f"Bearer {cfg['tokens']['admin']}"}
            for c in (1, 2, 3):
                client.get(f"/api/v1/cases/{c}", headers=h)
                client.get(f"/api/v1/cases/{c}/history", headers=h)
                client.get(f"/api/v1/units/{c}/history", headers=h)
                client.get("/api/v1/cases", params={"round": ROUND, "limit": 100}, headers=h)
    result = {"mixed": asyncio.run(mixed(cfg))}
    time.sleep(1)
    result["sequential"] = sequential(cfg)
    return result


# ------------------------------------------------------------------ the floor (raw sqlite3)

FLOOR_SQL = {
    "list": ("SELECT cases.id, cases.round_id, cases.unit_id, units.name, units.jurisdiction_id, units.category, "
             "cases.state, cases.version, cases.self_total, cases.verified_total, cases.recheck_total, "
             "cases.rectification_due, cases.updated_at FROM cases JOIN units ON cases.unit_id = units.id "
             "JOIN jurisdictions ON units.jurisdiction_id = jurisdictions.id "
             "WHERE cases.id > ? AND cases.round_id = ? ORDER BY cases.id LIMIT 100"),
    "case": ("SELECT id, round_id, unit_id, state, version, last_hash, carried_over_from, self_total, verified_total, "
             "recheck_total, passed, rectification_due, registered_at, updated_at, self_entries, evidence, missed, "
             "overdue FROM cases WHERE id = ?"),
    "history": ("SELECT position, case_id, seq, type, actor, occurred_at, payload, prev_hash, hash FROM events "
                "WHERE case_id = ? ORDER BY seq"),
    "unit_cases": "SELECT id FROM cases WHERE unit_id = ? ORDER BY id",
    # the two reads of the kept counts, as ``adapters/db/read.py`` makes them
    "progress_cases": ("SELECT case_counts.jurisdiction_id, case_counts.state, case_counts.overdue, "
                       "case_counts.missed, sum(case_counts.n) FROM case_counts "
                       "JOIN jurisdictions ON jurisdictions.id = case_counts.jurisdiction_id "
                       "WHERE case_counts.round_id = ? AND case_counts.n != 0 "
                       "AND (jurisdictions.path LIKE ? || '%' ESCAPE '/') GROUP BY case_counts.jurisdiction_id, "
                       "case_counts.state, case_counts.overdue, case_counts.missed"),
    "progress_agencies": ("SELECT agency_counts.jurisdiction_id, agency_counts.level, sum(agency_counts.n), "
                          "sum(CASE WHEN (agency_counts.certified_since > 0 AND agency_counts.certified_since <= ?) "
                          "THEN agency_counts.n ELSE 0 END) FROM agency_counts "
                          "JOIN jurisdictions ON jurisdictions.id = agency_counts.jurisdiction_id "
                          "WHERE (jurisdictions.path LIKE ? || '%' ESCAPE '/') "
                          "GROUP BY agency_counts.jurisdiction_id, agency_counts.level"),
    # what the report read before the counts were kept: every case row of the round, grouped
    "progress_scan": ("SELECT units.jurisdiction_id, cases.state, cases.overdue, cases.missed, count(*) AS count_1 "
                      "FROM cases JOIN units ON units.id = cases.unit_id "
                      "JOIN jurisdictions ON jurisdictions.id = units.jurisdiction_id "
                      "WHERE cases.round_id = ? AND (jurisdictions.path LIKE ? || '%' ESCAPE '/') "
                      "GROUP BY units.jurisdiction_id, cases.state, cases.overdue, cases.missed"),
}


def floor_list(conn: sqlite3.Connection, after: int) -> None:
    conn.execute(FLOOR_SQL["list"], (after, ROUND)).fetchall()


def floor_case(conn: sqlite3.Connection, case_id: int) -> None:
    conn.execute(FLOOR_SQL["case"], (case_id,)).fetchall()


def floor_history(conn: sqlite3.Connection, case_id: int) -> None:
    conn.execute(FLOOR_SQL["history"], (case_id,)).fetchall()


def floor_unit_history(conn: sqlite3.Connection, unit_id: int) -> None:
    for (case_id,) in conn.execute(FLOOR_SQL["unit_cases"], (unit_id,)).fetchall():
        conn.execute(FLOOR_SQL["history"], (case_id,)).fetchall()


def floor_progress(conn: sqlite3.Connection, _: Any) -> None:
    # the path bound as SQLAlchemy's startswith(autoescape=True) binds it ("/" is the escape character)
    conn.execute(FLOOR_SQL["progress_cases"], (ROUND, "//shanxi//")).fetchall()
    conn.execute(FLOOR_SQL["progress_agencies"], (2021, "//shanxi//")).fetchall()


def scan_progress(conn: sqlite3.Connection, _: Any) -> None:
    conn.execute(FLOOR_SQL["progress_scan"], (ROUND, "//shanxi//")).fetchall()


# ------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--events-per-case", type=int, default=20)
    ap.add_argument("--rate", type=float, default=200.0, help="requests per second of the mixed load")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of the mixed load")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "workflow-bench-api",
                    help="where the built database is cached and the run's copy lives")
    ap.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    ap.add_argument("--audit", action="store_true", help="audit every seeded case and event (slow), not a sample")
    ap.add_argument("--unit-tokens", type=int, default=500)
    ap.add_argument("--workers", type=int, default=1, help="`workflow serve --workers N` (each server process)")
    ap.add_argument("--servers", type=int, default=1,
                    help="`workflow serve` processes on the same file (the load is spread over them)")
    ap.add_argument("--concurrency", type=int, default=256, help="most requests in flight at once (the load generator)")
    ap.add_argument("--progress-n", type=int, default=20)
    ap.add_argument("--history-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the run's database copy and server log")
    ap.add_argument("--with-round-index", action="store_true",
                    help="experiment: add CREATE INDEX ON cases (round_id) to the run's copy (not in the migrations)")
    args = ap.parse_args()
    if args.events_per_case < 2:
        ap.error("--events-per-case must be at least 2")
    args.dir.mkdir(parents=True, exist_ok=True)

    cached, seed_s, built = prepared(args.dir, args.cases, args.events_per_case, args.fresh)
    checked = check(cached, args.cases, args.events_per_case, 300, args.audit)
    print(f"database {cached} ({cached.stat().st_size / 2**20:,.0f} MiB); "
          + (f"seeded in {seed_s:.1f} s" if built else "from the cache") + f"; audit {checked}", file=sys.stderr)

    work = args.dir / "run.db"
    for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    shutil.copyfile(cached, work)
    copy_s = time.perf_counter() - t
    if args.with_round_index:
        with sqlite3.connect(work) as conn:
            conn.execute("CREATE INDEX ix_bench_cases_round_id ON cases (round_id)")
    url = f"sqlite:///{work}"
    tokens = make_tokens(url, args.cases, args.unit_tokens)
    with sqlite3.connect(work) as conn:
        versions = [0] * (args.cases + 1)
        for case_id, version in conn.execute("SELECT id, version FROM cases"):
            versions[case_id] = version
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database

    db = Database(make_engine(url))
    with db.reader() as uow:
        ctx = uow.round_context(ROUND)
    criteria = [(c.code, format(c.cap, "f"), format(c.step, "f"))
                for c in ctx.rubric.criteria() if not c.per_occurrence]
    db.engine.dispose()

    lock = hold_scheduler_lock(work)
    ports = [free_port() for _ in range(args.servers)]
    log_paths = [args.dir / f"server{k}.log" for k in range(args.servers)]
    servers = []
    try:
        for port, log_path in zip(ports, log_paths):
            servers.append(start_server(url, port, args.dir, log_path, args.workers))
        cfg = {"bases": [f"http://127.0.0.1:{port}" for port in ports], "rate": args.rate, "seconds": args.seconds,
               "cases": args.cases,
               "tokens": {**tokens, "units": {str(u): s for u, s in tokens["units"].items()}},
               "versions": versions, "criteria": criteria, "seed": args.seed, "progress_n": args.progress_n,
               "history_n": args.history_n, "db_path": str(work),
               "server_pids": [p for server in servers for p in (server.pid, *worker_pids(server.pid))],
               "concurrency": args.concurrency}
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            client = pool.submit(loadgen, cfg).result()
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    lock.close()
    server_errors = sum(1 for log_path in log_paths for line in open(log_path, encoding="utf-8")
                        if '"level": "error"' in line or "Traceback" in line)

    m, s = client["mixed"], client["sequential"]
    fl = s["floor"]
    print(f"\nnproc {os.cpu_count()}; SQLite {sqlite3.sqlite_version}; {args.cases:,} cases × "
          f"{args.events_per_case} events; mixed load {args.rate:g}/s for {args.seconds:g} s"
          + (f"; {args.servers} server processes" if args.servers > 1 else "")
          + (f"; serve --workers {args.workers}" if args.workers > 1 else "")
          + ("; EXPERIMENT: with an index on cases (round_id)" if args.with_round_index else ""), file=sys.stderr)
    print(f"mixed: {m['completed']:,}/{m['requests']:,} requests, sent at {m['sent_rate']:.1f}/s, completed at "
          f"{m['achieved_rate']:.1f}/s, p50 {m['all']['p50']:.1f} ms, p90 {m['all']['p90']:.1f}, "
          f"p99 {m['all']['p99']:.1f}, max {m['all']['max']:.1f}; errors {m['errors']} "
          f"(client send lag p99 {m['send_lag_ms_p99']:.1f} ms)", file=sys.stderr)
    print(f"CPU during the mixed load: server {m['server_cores']:.2f} cores ({m['server_cpu_ms_per_request']:.2f} ms "
          f"a request, {m['server_system_share']:.0%} of it in the kernel), load generator {m['client_cores']:.2f}, "
          f"other processes {m['others_cores']:.2f} (of {os.cpu_count()})", file=sys.stderr)
    print(f"{'request (mixed load)':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  ms", file=sys.stderr)
    for name, v in m["by_kind"].items():
        print(f"{name:<28}{v['n']:>6}{v['p50']:>9.1f}{v['p90']:>9.1f}{v['p99']:>9.1f}{v['max']:>9.1f}", file=sys.stderr)
    print(f"\n{'alone (in a row)':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'floor p50':>11}{'ratio':>8}"
          f"   (other processes {s['others_cores']:.2f} cores)", file=sys.stderr)
    ratios = {}
    for name in ("progress", "unit_history", "history", "case", "list", "action"):
        v, f = s[name], fl.get(name)
        if f is not None:
            ratios[name] = f["p50"] / v["p50"]
        print(f"{name:<28}{v['n']:>6}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['p99']:>9.2f}{v['max']:>9.2f}"
              + (f"{f['p50']:>11.3f}{ratios[name]:>8.3f}" if f is not None else f"{'—':>11}{'—':>8}"),
              file=sys.stderr)
    scan = fl["progress_scan"]
    print(f"{'(progress before the counts: the GROUP BY over every case row, raw sqlite3)':<28} p50 {scan['p50']:.2f} "
          f"ms, max {scan['max']:.2f} ms", file=sys.stderr)
    print(f"\n{'list filter alone (20 each)':<28}{'p50':>9}{'p90':>9}{'max':>9}  ms", file=sys.stderr)
    for name, v in s["list_variants"].items():
        print(f"{name:<28}{v['p50']:>9.1f}{v['p90']:>9.1f}{v['max']:>9.1f}", file=sys.stderr)
    verdict = {
        "mixed_p99_le_50ms_no_errors": m["all"]["p99"] <= 50 and m["errors"] == 0,
        "progress_le_20ms": s["progress"]["p50"] <= 20,
        "unit_history_le_10ms": s["unit_history"]["p50"] <= 10,
    }
    print("\ntargets: " + "; ".join(f"{k} {'MET' if v else 'NOT MET'}" for k, v in verdict.items())
          + f"; server log errors {server_errors}; sequential errors {s['errors']}", file=sys.stderr)
    if m["errors"]:
        print(f"error samples: {m['error_samples'][:5]}", file=sys.stderr)
    if not args.keep:
        for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm"), work.with_suffix(".scheduler.lock"), *log_paths):
            p.unlink(missing_ok=True)

    def rounded(x: Any) -> Any:
        if isinstance(x, float):
            return round(x, 3)
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        return x

    print(json.dumps(rounded({
        "benchmark": "api", "nproc": os.cpu_count(), "with_round_index": args.with_round_index,
        "servers": args.servers, "workers": args.workers, "sqlite": sqlite3.sqlite_version, "cases": args.cases,
        "events": args.cases * args.events_per_case, "rate": args.rate, "seconds": args.seconds,
        "seeding_s": seed_s if built else None, "copy_s": copy_s, "audit": checked,
        "mixed": {k: v for k, v in m.items() if k != "error_samples"}, "sequential": s,
        "ratio_floor_over_api": ratios, "server_log_errors": server_errors, "targets": verdict}),
        ensure_ascii=False))


if __name__ == "__main__":
    main()
