"""A country on PostgreSQL: 1,000,000 cases in 10 provinces, the mixed API load on three
``serve`` workers, and a sweep of the whole country, each beside its floor (raw psycopg).

Setup (not timed against the targets; its duration is printed):
- a schema of its own in the PostgreSQL database (``--pg``), migrated (``upgrade``), reached
  through ``options=-csearch_path=<schema>`` as the tests reach theirs. 10 provinces, each with
  11 cities of 10 counties (122 jurisdictions, a coordinator each); ``--cases`` units spread
  evenly over the provinces (round-robin over each province's jurisdictions), one round per
  province (the row as ``open_round`` writes it: rubric snapshot, documents, targets) and one
  case per unit. Every province's round runs Shanxi's rules (``rubrics/shanxi-2020.yaml`` and
  the standing ``calendars/shanxi.yaml``: the only complete pair the repository holds).
- ``--events-per-case`` valid events a case, as ``bench/api.py`` makes them: the registration
  from ``domain.case.registration_event``, then what the real ``decide`` makes of a scripted
  ``self_assess`` / ``attach_evidence`` sequence (``bench/api.py``'s ``scripts``: 90% of the
  cases end ``self_assessed``, every tenth stays ``registered`` with evidence only), each
  case's chain hashed with ``domain.events.chain_hash``; the log written in waves (every
  case's event k, then every case's event k+1: its order is time order) with psycopg's
  ``COPY``; every case row is the replay of its events; then ``counts.repair`` and
  ``VACUUM ANALYZE``. Accounts and tokens (``service.accounts`` / ``service.tokens``): an
  admin, each province's coordinator, each city's coordinator, ``--unit-tokens`` units; their
  secrets kept in the schema's ``bench_country_tokens`` table.
- the seeded schema is the cache: ``bench_country_<cases>c_<events>e_<migration head>_<hash of
  the migration files>_f<seed format>``, built under another name and renamed when complete, so
  a re-run finds it and skips seeding (``--fresh`` rebuilds it, ``--drop-cache`` drops it at the
  end). The mixed load's ``self_assess`` actions are real appends and stay in it (a few
  thousand events a run; the data stay valid: each run reads the versions back and audits a
  sample with ``service.audit.verify``).

Timed:
1. ``mixed``: ``workflow serve --workers 3`` on the cached schema, ``bench/api.py``'s load
   generator (``mixed``: open loop at ``--rate`` requests/s for ``--seconds``, latency from each
   request's planned time; 30% case lists, 20% one case, 20% a case's history, 10% a unit's
   history, 20% ``self_assess``) with a plan over the whole country (a random province per
   request; admin, province and city coordinators, units). This process wins the scheduler's
   election first (the product's ``LeaderLock`` on the server's URL: the advisory lock keys the
   workers will ask for), so no worker ever sweeps during the run; a sweep mark appearing in the
   schema during the run stops the benchmark. Then each read alone, one after another, each API call followed at once by its floor:
   the same SQL in raw psycopg on the same schema with the same parameters. CPU during the mixed
   load: the ``serve`` processes, the PostgreSQL processes, the load generator, the rest.
2. ``sweep``: a copy of the cached schema (``INSERT … SELECT`` into a freshly migrated schema)
   with the set-up folded into the copy as ``bench/sweep.py`` does it with one UPDATE: every case
   but every tenth is ``submitted`` (so 10% still owe the self-assessment due 2021-10-20), the
   counts recounted, ``VACUUM ANALYZE``. Timed in a fresh process (its peak memory is its own):
   ``service.deadlines.sweep(db, calendars, 2021-10-21 09:00 Asia/Shanghai)`` over the 10 rounds,
   as the scheduler runs it; then the same sweep an hour later (nothing due). Floor, same schema,
   right after: raw psycopg doing the same writes for the same cases in the same batches
   (``deadlines.BATCH`` cases a transaction: one read of the batch's rows, the case UPDATEs,
   the event INSERTs, the notices' outbox INSERTs; per round one read of the owing cases first
   and one transaction of coordinator digests and the stage mark at the end). The copy is
   dropped at the end (``--keep-work`` keeps it).

    python bench/country.py [--cases 1000000] [--events-per-case 3] [--rate 500] [--seconds 30]
                            [--workers 3] [--pg URL] [--skip-mixed] [--skip-sweep] [--fresh] [--drop-cache]

Experiments (not the product as shipped): ``--server-pool N`` (each server process keeps N pooled
connections and opens no others: a ``sitecustomize`` on the server's ``PYTHONPATH`` wraps
``make_engine``), ``--no-parallel-query`` (``-c max_parallel_workers_per_gather=0`` in the server
URL's options), ``--cases-fillfactor PERCENT`` (the sweep's copy of ``cases`` with that fillfactor).

Targets (the issue): mixed load at 500 requests/s with p99 ≤ 100 ms; a sweep of the whole
country ≤ 10 s; each beside its floor. The last line is one JSON object.
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import concurrent.futures  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402


def _load_api() -> ModuleType:
    """``bench/api.py`` as a module (its load generator, ``scripts``, ``_Sample``, ``start_server``),
    loaded from its file: this folder stays off ``sys.path``."""
    if "bench_api" in sys.modules:
        return sys.modules["bench_api"]
    spec = importlib.util.spec_from_file_location("bench_api", Path(__file__).resolve().parent / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = module
    spec.loader.exec_module(module)
    return module


api = _load_api()

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
N_PROVINCES, N_CITIES, N_COUNTIES = 10, 11, 10
YEAR = 2021
T0 = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)  # the rounds open; wave k is k days later
OPENED_BY = api.OPENED_BY
RUBRIC, CALENDAR = "shanxi-2020", "shanxi"
CATEGORIES = api.CATEGORIES
UNIT_LEVEL = api.UNIT_LEVEL
SEED_FORMAT = 1  # bump when the seeded data change: the cache key has it
SWEEP_AT = "2021-10-21T09:00:00+08:00"  # the day after the self-assessment's due date, 09:00 Asia/Shanghai
IDLE_AT = "2021-10-21T10:00:00+08:00"
PREFIX = "bench_country_"


# ------------------------------------------------------------------ the country

def province_id(p: int) -> str:
    return f"p{p}"


def round_id(p: int) -> str:
    return f"p{p}-{YEAR}"


def places(p: int) -> list[tuple[str, str, str, str | None, str]]:
    """(id, name, level, parent, path) of province ``p``: the province, its cities, their counties."""
    prov = province_id(p)
    out: list[tuple[str, str, str, str | None, str]] = [(prov, f"省{p}", "province", None, f"/{prov}/")]
    for c in range(N_CITIES):
        city = f"{prov}-c{c:02d}"
        out.append((city, f"省{p}市{c:02d}", "city", prov, f"/{prov}/{city}/"))
    for c in range(N_CITIES):
        city = f"{prov}-c{c:02d}"
        for x in range(N_COUNTIES):
            out.append((f"{city}-x{x}", f"省{p}县{c:02d}-{x}", "county", city, f"/{prov}/{city}/{city}-x{x}/"))
    return out


PLACES = [places(p) for p in range(N_PROVINCES)]
N_PLACES = len(PLACES[0])  # 122 a province


class Country:
    """Where each unit (and its case: case id = unit id) is: ``per`` units a province, in id order."""

    def __init__(self, n_cases: int) -> None:
        self.n = n_cases
        self.per = n_cases // N_PROVINCES

    def province(self, unit_id: int) -> int:
        return (unit_id - 1) // self.per

    def index(self, unit_id: int) -> int:
        """The unit's position within its province (0-based)."""
        return (unit_id - 1) % self.per

    def place(self, unit_id: int) -> tuple[str, str, str, str | None, str]:
        return PLACES[self.province(unit_id)][self.index(unit_id) % N_PLACES]

    def category(self, unit_id: int) -> str:
        return CATEGORIES[(self.index(unit_id) // 7) % len(CATEGORIES)]

    def first(self, p: int) -> int:
        return p * self.per + 1

    def case_in_place(self, rng: random.Random, p: int, place: int) -> int:
        """A random case of province ``p`` whose unit is in its jurisdiction number ``place``."""
        count = (self.per - place + N_PLACES - 1) // N_PLACES
        return self.first(p) + place + N_PLACES * rng.randrange(count)

    def city_places(self, city: int) -> list[int]:
        """The jurisdiction numbers (within a province) of a city and its counties."""
        return [1 + city] + [1 + N_CITIES + city * N_COUNTIES + x for x in range(N_COUNTIES)]


def wave_time(k: int, case_id: int, n_cases: int) -> datetime:
    """When case ``case_id`` took its step ``k`` (k ≥ 1): day k, the cases spread over the day."""
    step_us = max(1, min(50_000, 80_000_000_000 // max(n_cases, 1)))
    return T0 + timedelta(days=k, microseconds=(case_id - 1) * step_us)


# ------------------------------------------------------------------ PostgreSQL plumbing

def schema_url(base: str, schema: str) -> str:
    """The URL of one schema (as ``tests/conftest.py``'s ``pg_schema_url``)."""
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def connect(base: str, schema: str | None = None, autocommit: bool = True) -> Any:
    import psycopg

    kwargs: dict[str, Any] = {"autocommit": autocommit, "application_name": "bench/country.py"}
    if schema:
        kwargs["options"] = f"-c search_path={schema}"
    return psycopg.connect(base, **kwargs)


def schemas(base: str) -> dict[str, int]:
    """This benchmark's schemas and their sizes in bytes (tables, indexes, TOAST)."""
    with connect(base) as conn:
        rows = conn.execute(
            "SELECT n.nspname, COALESCE(SUM(pg_total_relation_size(c.oid)) FILTER (WHERE c.relkind IN ('r', 'm')), 0) "
            "FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid "
            "WHERE n.nspname LIKE 'bench\\_country\\_%' GROUP BY n.nspname").fetchall()
    return {name: int(size) for name, size in rows}


def drop_schema(base: str, schema: str) -> None:
    with connect(base) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def cache_name(n_cases: int, events_per_case: int) -> str:
    from sqlalchemy import create_engine

    from workflow.adapters.db.migrate import MIGRATIONS, head_revision

    head = head_revision(create_engine("sqlite://"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in sorted(MIGRATIONS.rglob("*.py")))).hexdigest()[:8]
    return f"{PREFIX}{n_cases}c_{events_per_case}e_{head}_{digest}_f{SEED_FORMAT}"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def pg_cpu() -> float:
    """CPU seconds so far of every ``postgres`` process on this machine (every session's backends,
    the background workers), with those that have exited: the postmaster's reaped children's time."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if name == "postgres" or name.startswith("postgres:"):
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def pg_cpu_since(before: float) -> float:
    """CPU seconds the PostgreSQL processes used since ``before`` (``pg_cpu()``)."""
    return pg_cpu() - before


def pg_stats(base: str) -> dict[str, int]:
    """The database's session and transaction counters (``pg_stat_database``: every session of it)."""
    with connect(base) as conn:
        row = conn.execute("SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return {"sessions": int(row[0]), "transactions": int(row[1]) + int(row[2])}


def machine_busy() -> float:
    return api.cpu_seconds()


# ------------------------------------------------------------------ seeding

def build(base: str, schema: str, n_cases: int, events_per_case: int, unit_tokens: int) -> dict[str, float]:
    """Create, migrate and fill ``schema``; returns timings of the parts."""
    from sqlalchemy import insert

    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.adapters.db import counts
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.migrate import upgrade
    from workflow.adapters.db.store import Database
    from workflow.adapters.db.tables import Coordinator, Jurisdiction, Round
    from workflow.adapters.rubric_files import RubricCatalog
    from workflow.config import REPO_ROOT
    from workflow.domain.case import registration_event
    from workflow.domain.events import chain_hash, utc_iso
    from workflow.domain.rubric import rubric_to_data

    country = Country(n_cases)
    took: dict[str, float] = {}
    t = time.perf_counter()
    with connect(base) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(base, schema)
    engine = make_engine(url)
    upgrade(engine)
    took["migrate"] = time.perf_counter() - t

    t = time.perf_counter()
    rubric = RubricCatalog(REPO_ROOT / "rubrics").get(RUBRIC)
    calendar = CalendarCatalog(REPO_ROOT / "calendars").get(CALENDAR)
    policy = calendar.policy
    with engine.begin() as conn:
        conn.execute(insert(Jurisdiction), [dict(id=i, name=n, level=lv, parent_id=pa, path=pt)
                                            for ps in PLACES for i, n, lv, pa, pt in ps])
        conn.execute(insert(Coordinator), [dict(jurisdiction_id=pl[0], name=f"协调员{pl[0]}",
                                                email=f"{pl[0]}@bureau.example", active=True)
                                           for ps in PLACES for pl in ps])
        for p in range(N_PROVINCES):  # the row as open_round writes it
            conn.execute(insert(Round).values(
                id=round_id(p), province_id=province_id(p), year=YEAR, rubric_id=rubric.id, calendar_id=calendar.id,
                target_share=Decimal("0.5"), pass_mark=rubric.pass_mark, max_total=rubric.total,
                policy={"on_fail": policy.on_fail, "rectification_days": policy.rectification_days,
                        "carry_over": policy.carry_over},
                rubric_data=rubric_to_data(rubric), documents=[d.to_data() for d in calendar.documents],
                targets=[x.to_data() for x in calendar.targets_for(YEAR)], opened_at=T0, opened_by=OPENED_BY))
    db = Database(engine)
    with db.reader() as uow:
        ctx = uow.round_context(round_id(0))  # read back as the server will
    plans = api.scripts(ctx, events_per_case - 1)  # the payloads depend on the rubric only, not the round
    took["directory"] = time.perf_counter() - t

    raw = connect(base, schema, autocommit=False)
    raw.execute("SET synchronous_commit = off")
    raw.execute("SET session_replication_role = replica")  # the load is valid by construction: no FK checks
    cur = raw.cursor()
    stamp = "2021-05-20 00:00:00+00"
    t = time.perf_counter()
    with cur.copy("COPY units (id, jurisdiction_id, name, level, category, contacts, created_at, updated_at) "
                  "FROM STDIN") as copy:
        for u in range(1, n_cases + 1):
            place = country.place(u)
            copy.write_row((u, place[0], f"单位{u:07d}", UNIT_LEVEL[place[2]], country.category(u),
                            json.dumps([{"name": "联系人", "position": "", "phone": "",
                                         "email": f"u{u}@units.example"}]), stamp, stamp))
    raw.commit()
    took["units"] = time.perf_counter() - t

    # The cases' rows first (the events refer to them): their final columns are known from the scripts.
    t = time.perf_counter()
    last = [""] * (n_cases + 1)
    reg_rows = []
    for c in range(1, n_cases + 1):
        e = registration_event(c, round_id(country.province(c)), c, OPENED_BY, T0)
        last[c] = e.hash
        reg_rows.append((e.type, e.actor, e.payload_json, e.hash))
    took["registrations (hashing)"] = time.perf_counter() - t
    templates = {k: v["events"] for k, v in plans.items()}
    reg_at = utc_iso(T0)
    t = time.perf_counter()
    position = 0
    with cur.copy("COPY events (position, case_id, seq, type, actor, occurred_at, payload, prev_hash, hash) "
                  "FROM STDIN") as copy:
        for c in range(1, n_cases + 1):
            position += 1
            type_, actor, payload, h = reg_rows[c - 1]
            copy.write_row((position, c, 1, type_, actor, reg_at, payload, "0" * 64, h))
    del reg_rows
    took["registrations (COPY)"] = time.perf_counter() - t
    t = time.perf_counter()
    last_at = [reg_at] * (n_cases + 1)
    for k in range(1, events_per_case):
        with cur.copy("COPY events (position, case_id, seq, type, actor, occurred_at, payload, prev_hash, hash) "
                      "FROM STDIN") as copy:
            for c in range(1, n_cases + 1):
                type_, payload = templates[api.script_of(c)][k - 1]
                actor = f"unit:{c}"
                at = utc_iso(wave_time(k, c, n_cases))
                h = chain_hash(c, k + 1, type_, actor, at, payload, last[c])
                position += 1
                copy.write_row((position, c, k + 1, type_, actor, at, payload, last[c], h))
                last[c] = h
                last_at[c] = at
    took["events"] = time.perf_counter() - t
    t = time.perf_counter()
    with cur.copy("COPY cases (id, round_id, unit_id, state, version, last_hash, self_total, registered_at, "
                  "updated_at, self_entries, evidence, overdue, contact_form) FROM STDIN") as copy:
        for c in range(1, n_cases + 1):
            final = plans[api.script_of(c)]
            copy.write_row((c, round_id(country.province(c)), c, final["state"], events_per_case, last[c],
                            final["self_total"], reg_at, last_at[c], final["self_entries"], final["evidence"],
                            False, False))
    raw.commit()
    took["cases"] = time.perf_counter() - t
    del last, last_at
    t = time.perf_counter()
    for table, column in (("units", "id"), ("cases", "id"), ("events", "position")):
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT MAX({column}) FROM {table}))")
    raw.commit()
    raw.close()
    # the raw load wrote no progress counts (a transition keeps them): count them as the migration did
    counts.repair(engine)
    took["counts"] = time.perf_counter() - t
    t = time.perf_counter()
    tokens = make_tokens(db, country, unit_tokens)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE bench_country_tokens (tokens TEXT NOT NULL)")
        conn.exec_driver_sql("INSERT INTO bench_country_tokens (tokens) VALUES (%(t)s)", {"t": json.dumps(tokens)})
    engine.dispose()
    took["accounts"] = time.perf_counter() - t
    t = time.perf_counter()
    with connect(base, schema) as conn:
        conn.execute("VACUUM (ANALYZE)")
    took["vacuum"] = time.perf_counter() - t
    return took


def make_tokens(db: Any, country: Country, n_unit_tokens: int) -> dict[str, Any]:
    """An account and a token for each caller of the load (``bench/api.py``'s ``make_tokens``
    over the country): an admin, each province's coordinator, each city's coordinator,
    ``n_unit_tokens`` units spread over the country."""
    from workflow.service.accounts import create_account, principal_of
    from workflow.service.tokens import create_token

    now = datetime.now(UTC)
    admin = create_account(db, by=None, login="bench-admin", name="bench admin", role="admin", now=now)
    by = principal_of(admin, "cli")

    def make(login: str, name: str, role: str, **scope: Any) -> str:
        account = admin if role == "admin" else create_account(db, by=by, login=login, name=name, role=role,
                                                               now=now, **scope)
        return create_token(db, account_id=account.id, by=by, now=now).secret

    tokens: dict[str, Any] = {
        "admin": make("bench-admin", "bench admin", "admin"),
        "provinces": [make(f"prov-p{p}", f"省{p}协调员", "coordinator", jurisdiction_id=province_id(p))
                      for p in range(N_PROVINCES)],
        "cities": [[make(f"city-p{p}-c{c:02d}", f"省{p}市{c:02d}协调员", "coordinator",
                         jurisdiction_id=f"{province_id(p)}-c{c:02d}") for c in range(N_CITIES)]
                   for p in range(N_PROVINCES)],
        "units": {}}
    for u in sorted(random.Random(11).sample(range(1, country.n + 1), min(n_unit_tokens, country.n))):
        tokens["units"][str(u)] = make(f"unit{u:07d}", f"单位{u:07d}", "unit", unit_id=u)
    return tokens


def prepared(base: str, n_cases: int, events_per_case: int, unit_tokens: int, fresh: bool
             ) -> tuple[str, dict[str, float] | None]:
    """The cached schema for this size (built if missing): (name, the seeding's timings or None)."""
    name = cache_name(n_cases, events_per_case)
    existing = schemas(base)
    if name in existing and not fresh:
        return name, None
    building = name[:55] + "_build"
    drop_schema(base, building)
    t = time.perf_counter()
    took = build(base, building, n_cases, events_per_case, unit_tokens)
    took["total"] = time.perf_counter() - t
    drop_schema(base, name)
    with connect(base) as conn:
        conn.execute(f'ALTER SCHEMA "{building}" RENAME TO "{name}"')
    print("seeding: " + ", ".join(f"{k} {v:.1f} s" for k, v in took.items()), file=sys.stderr)
    for other in existing:  # caches of the same size made by older migrations are stale
        if other != name and other.startswith(f"{PREFIX}{n_cases}c_{events_per_case}e_") and \
                not other.endswith("_build"):
            print(f"dropping stale cache {other}", file=sys.stderr)
            drop_schema(base, other)
    return name, took


def check(url: str, country: Country, events_per_case: int, sample: int) -> dict[str, Any]:
    """The seeded data are valid: chains and rows (``service.audit.verify``) on a sample over all
    provinces, and a few cases (none the mixed load touched) replayed through the real ``decide``
    give the very events stored."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.domain.case import Actor, apply, decide
    from workflow.service.audit import verify

    db = Database(make_engine(url))
    rng = random.Random(7)
    n = country.n
    ids = sorted(set(rng.sample(range(1, n + 1), min(sample, n))) | {1, country.per, n})
    t = time.perf_counter()
    report = verify(api._Sample(db, ids))
    seconds = time.perf_counter() - t
    if not report.ok or report.cases != len(ids) or report.events < report.cases * events_per_case:
        raise SystemExit(f"seeded data invalid: {report.findings[:5]} ({report.cases} cases, {report.events} events)")
    replayed = 0
    with db.reader() as uow:
        for c in ids:
            stored = uow.events(c)
            if len(stored) != events_per_case:
                continue  # acted on by an earlier run's mixed load
            ctx = uow.round_context(round_id(country.province(c)))
            case = apply(None, stored[0])
            for k, (action, data) in enumerate(api.scripts(ctx, events_per_case - 1)[api.script_of(c)]["plan"],
                                               start=1):
                event = decide(case, action, data, Actor("unit", str(c)), wave_time(k, c, n), ctx)
                if event.hash != stored[k].hash:
                    raise SystemExit(f"case {c} event #{k + 1}: decide gives {event.hash}, stored {stored[k].hash}")
                case = apply(case, event)
            replayed += 1
            if replayed == 5:
                break
    db.engine.dispose()
    return {"audited_cases": report.cases, "audited_events": report.events, "audit_s": round(seconds, 2),
            "replayed": replayed}


# ------------------------------------------------------------------ the mixed load

class CountryPlan(api.Plan):
    """``bench/api.py``'s ``Plan`` over the country: every request picks a province, and its
    reader a case of the province they may see. ``mixed`` builds its plan from ``api.Plan``,
    which the load generator's process replaces by this class."""

    def __init__(self, cfg: dict[str, Any]) -> None:  # not the province's: no super().__init__
        self.rng = random.Random(cfg["seed"])
        self.n = cfg["cases"]
        self.country = Country(self.n)
        t = cfg["tokens"]
        self.admin, self.provinces, self.city_tokens = t["admin"], t["provinces"], t["cities"]
        self.units = {int(u): s for u, s in t["units"].items()}
        self.unit_ids = sorted(self.units)
        self.criteria = cfg["criteria"]
        self.round = round_id(0)
        self._p, self._city = 0, 0

    def reader(self) -> tuple[str, str, int]:
        """(role, token, a case it may see); remembers the province (and city) for ``list_query``."""
        rng, country = self.rng, self.country
        r = rng.random()
        p = self._p = rng.randrange(N_PROVINCES)
        if r < 0.25:
            return "admin", self.admin, country.first(p) + rng.randrange(country.per)
        if r < 0.5:
            return "province", self.provinces[p], country.first(p) + rng.randrange(country.per)
        if r < 0.75:
            city = self._city = rng.randrange(N_CITIES)
            return f"city{city}", self.city_tokens[p][city], country.case_in_place(
                rng, p, rng.choice(country.city_places(city)))
        u = rng.choice(self.unit_ids)
        self._p = country.province(u)
        return "unit", self.units[u], u

    def list_query(self, role: str) -> tuple[str, dict[str, Any]]:
        rng, p = self.rng, self._p
        q: dict[str, Any] = {"round": round_id(p), "limit": 100,
                             "after": self.country.first(p) - 1 + rng.randrange(self.country.per)}
        if role == "unit":
            q["after"] = 0
            return "list unit", q
        options = ["plain", "state", "jurisdiction"]
        if role == "admin":
            options += ["category", "level", "overdue"]
        kind = rng.choice(options)
        if kind == "state":
            q["state"] = "registered"
        elif kind == "jurisdiction":
            q["jurisdiction"] = (f"{province_id(p)}-c{self._city:02d}-x{rng.randrange(N_COUNTIES)}"
                                 if role.startswith("city") else f"{province_id(p)}-c{rng.randrange(N_CITIES):02d}")
        elif kind == "category":
            q["category"] = rng.choice(CATEGORIES)
        elif kind == "level":
            q["level"] = rng.choice(("provincial", "city", "county"))
        elif kind == "overdue":
            q["overdue"] = "false"
        return f"list {kind}", q


FLOOR_SQL = {  # the reads as the product builds them for PostgreSQL (psycopg placeholders)
    "list": ("SELECT cases.id, cases.round_id, cases.unit_id, units.name, units.jurisdiction_id, units.category, "
             "cases.state, cases.version, cases.self_total, cases.verified_total, cases.recheck_total, "
             "cases.rectification_due, cases.updated_at FROM cases JOIN units ON cases.unit_id = units.id "
             "JOIN jurisdictions ON units.jurisdiction_id = jurisdictions.id "
             "WHERE cases.id > %s AND cases.round_id = %s ORDER BY cases.id LIMIT %s"),
    "case": ("SELECT id, round_id, unit_id, state, version, last_hash, carried_over_from, self_total, verified_total, "
             "recheck_total, passed, rectification_due, registered_at, updated_at, self_entries, evidence, missed, "
             "overdue, documents, contact_form FROM cases WHERE id = %s"),
    "history": ("SELECT position, case_id, seq, type, actor, occurred_at, payload, prev_hash, hash FROM events "
                "WHERE case_id = %s ORDER BY seq"),
    "unit_cases": "SELECT id FROM cases WHERE unit_id = %s ORDER BY id",
    # the report's three reads: the subtree's jurisdictions and the kept counts (``adapters/db/read.py``)
    "progress_places": ("SELECT jurisdictions.id, jurisdictions.name, jurisdictions.level, jurisdictions.parent_id, "
                        "jurisdictions.path FROM jurisdictions WHERE (jurisdictions.path LIKE %s || '%%' ESCAPE '/') "
                        "ORDER BY jurisdictions.path"),
    "progress_cases": ("SELECT case_counts.jurisdiction_id, case_counts.state, case_counts.overdue, "
                       "case_counts.missed, sum(case_counts.n) FROM case_counts "
                       "JOIN jurisdictions ON jurisdictions.id = case_counts.jurisdiction_id "
                       "WHERE case_counts.round_id = %s AND case_counts.n != 0 "
                       "AND (jurisdictions.path LIKE %s || '%%' ESCAPE '/') GROUP BY case_counts.jurisdiction_id, "
                       "case_counts.state, case_counts.overdue, case_counts.missed"),
    "progress_agencies": ("SELECT agency_counts.jurisdiction_id, agency_counts.level, sum(agency_counts.n), "
                          "sum(CASE WHEN (agency_counts.certified_since > 0 AND agency_counts.certified_since <= %s) "
                          "THEN agency_counts.n ELSE 0 END) FROM agency_counts "
                          "JOIN jurisdictions ON jurisdictions.id = agency_counts.jurisdiction_id "
                          "WHERE (jurisdictions.path LIKE %s || '%%' ESCAPE '/') "
                          "GROUP BY agency_counts.jurisdiction_id, agency_counts.level"),
}


def _escaped(path: str) -> str:
    """A path bound as SQLAlchemy's ``startswith(autoescape=True)`` binds it ("/" escapes)."""
    return path.replace("/", "//").replace("%", "/%").replace("_", "/_")


def sequential(cfg: dict[str, Any]) -> dict[str, Any]:
    """Each read alone, one after another (one keep-alive connection), each API call followed at
    once by its floor: the same SQL in raw psycopg on the same schema with the same parameters."""
    import httpx

    plan = CountryPlan(cfg | {"seed": cfg["seed"] + 1})
    rng, country = plan.rng, plan.country
    out: dict[str, Any] = {}
    floors: dict[str, Any] = {}
    bad: list[Any] = []
    raw = connect(cfg["pg"], cfg["schema"])
    raw.prepare_threshold = 0  # prepared at once, as the product's statements are after a few calls
    cur = raw.cursor()
    busy0 = (api.cpu_seconds(), sum(api.cpu_seconds(pid) for pid in cfg["server_pids"]), time.process_time(),
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

        def paired(name: str, n: int, draw: Any, call: Any, floor_fn: Any) -> None:
            api_ms, floor_ms = [], []
            for _ in range(n):
                x = draw()
                api_ms.append(call(x))
                t = time.perf_counter()
                floor_fn(x)
                floor_ms.append((time.perf_counter() - t) * 1e3)
            out[name], floors[name] = api.summary(api_ms), api.summary(floor_ms)

        def floor_progress(p: int) -> None:
            path = _escaped(f"/{province_id(p)}/")
            cur.execute(FLOOR_SQL["progress_places"], (path,)).fetchall()
            cur.execute(FLOOR_SQL["progress_cases"], (round_id(p), path)).fetchall()
            cur.execute(FLOOR_SQL["progress_agencies"], (YEAR, path)).fetchall()

        def floor_unit_history(u: int) -> None:
            for (case_id,) in cur.execute(FLOOR_SQL["unit_cases"], (u,)).fetchall():
                cur.execute(FLOOR_SQL["history"], (case_id,)).fetchall()

        def any_case() -> int:
            return rng.randint(1, plan.n)

        def list_draw() -> tuple[int, int]:
            p = rng.randrange(N_PROVINCES)
            return p, country.first(p) - 1 + rng.randrange(country.per)

        for p in range(N_PROVINCES):  # warm
            timed(f"/api/v1/rounds/{round_id(p)}/progress", plan.provinces[p])
        paired("progress", cfg["progress_n"], lambda: rng.randrange(N_PROVINCES),
               lambda p: timed(f"/api/v1/rounds/{round_id(p)}/progress", plan.provinces[p]), floor_progress)
        paired("unit_history", cfg["history_n"], any_case,
               lambda u: timed(f"/api/v1/units/{u}/history", plan.admin), floor_unit_history)
        paired("history", cfg["history_n"], any_case, lambda c: timed(f"/api/v1/cases/{c}/history", plan.admin),
               lambda c: cur.execute(FLOOR_SQL["history"], (c,)).fetchall())
        paired("case", cfg["history_n"], any_case, lambda c: timed(f"/api/v1/cases/{c}", plan.admin),
               lambda c: cur.execute(FLOOR_SQL["case"], (c,)).fetchall())
        paired("list", cfg["history_n"], list_draw,
               lambda x: timed("/api/v1/cases", plan.admin, {"round": round_id(x[0]), "limit": 100, "after": x[1]}),
               lambda x: cur.execute(FLOOR_SQL["list"], (x[1], round_id(x[0]), 100)).fetchall())
        acted = []
        h = {"Authorization": f"Bearer {plan.admin}"}
        for case in rng.sample(range(1, plan.n + 1), cfg["history_n"] // 2):
            version = client.get(f"/api/v1/cases/{case}", headers=h).json()["version"]
            t = time.perf_counter()
            r = client.post(f"/api/v1/cases/{case}/actions/self_assess", headers=h,
                            json={"version": version, "data": {"entries": plan.entries()}})
            r.json()
            acted.append((time.perf_counter() - t) * 1e3)
            if r.status_code != 200:
                bad.append((case, r.status_code, r.text[:200]))
        out["action"] = api.summary(acted)
        # Every list filter alone (which ones are slow), 20 calls each, in province p3.
        p = 3
        first, per = country.first(p), country.per
        variants: dict[str, tuple[str, dict[str, Any]]] = {
            "admin plain": (plan.admin, {}),
            "province plain": (plan.provinces[p], {}),
            "city plain": (plan.city_tokens[p][3], {}),
            "state=registered (10%)": (plan.admin, {"state": "registered"}),
            "state=submitted (none)": (plan.admin, {"state": "submitted"}),
            "jurisdiction=city": (plan.admin, {"jurisdiction": f"p{p}-c03"}),
            "jurisdiction=county": (plan.admin, {"jurisdiction": f"p{p}-c03-x4"}),
            "category": (plan.admin, {"category": CATEGORIES[4]}),
            "level=provincial": (plan.admin, {"level": "provincial"}),
            "overdue=true (none)": (plan.admin, {"overdue": "true"}),
            "county, cursor in the last 5%": (plan.admin, {"jurisdiction": f"p{p}-c03-x4"}),
        }
        out["list_variants"] = {}
        for name, (token, extra) in variants.items():
            ms = []
            for _ in range(20):
                after = (first - 1 + per - rng.randrange(max(1, per // 20)) if "last 5%" in name
                         else first - 1 + rng.randrange(per))
                ms.append(timed("/api/v1/cases", token, {"round": round_id(p), "limit": 100, "after": after} | extra))
            out["list_variants"][name] = api.summary(ms)
        u = plan.unit_ids[0]
        out["list_variants"]["unit own"] = api.summary([
            timed("/api/v1/cases", plan.units[u], {"round": round_id(country.province(u)), "limit": 100, "after": 0})
            for _ in range(20)])
    wall = time.perf_counter() - busy0[3]
    others = (api.cpu_seconds() - busy0[0] - (sum(api.cpu_seconds(pid) for pid in cfg["server_pids"]) - busy0[1])
              - (time.process_time() - busy0[2]))
    raw.close()
    out["floor"] = floors
    out["others_cores"] = max(0.0, others) / wall
    out["errors"] = len(bad)
    out["error_samples"] = bad[:5]
    return out


def loadgen(cfg: dict[str, Any]) -> dict[str, Any]:
    """The client process: warm-up, the mixed load (``bench/api.py``'s ``mixed`` with the
    country's plan), then the reads alone beside their floors."""
    import httpx

    api.Plan = CountryPlan  # ``mixed`` builds its plan from this name
    for base in cfg["bases"]:
        with httpx.Client(base_url=base, timeout=60.0) as client:  # lazy imports, round caches of each worker
            h = {"Authorization": f"Bearer {cfg['tokens']['admin']}"}
            for _ in range(3):
                for p in range(N_PROVINCES):
                    c = Country(cfg["cases"]).first(p)
                    client.get(f"/api/v1/cases/{c}", headers=h)
                    client.get(f"/api/v1/cases/{c}/history", headers=h)
                    client.get(f"/api/v1/units/{c}/history", headers=h)
                    client.get("/api/v1/cases", params={"round": round_id(p), "limit": 100}, headers=h)
    stats0, pg0, t0 = pg_stats(cfg["pg"]), pg_cpu(), time.perf_counter()
    mixed = asyncio.run(api.mixed(cfg))
    wall = time.perf_counter() - t0
    pg = pg_cpu_since(pg0)
    time.sleep(1.5)  # backends report their counters at most once a second
    stats = pg_stats(cfg["pg"])
    mixed["pg_sessions"] = stats["sessions"] - stats0["sessions"]
    mixed["pg_transactions"] = stats["transactions"] - stats0["transactions"]
    mixed["pg_cores"] = pg / wall
    mixed["pg_cpu_ms_per_request"] = pg / max(mixed["completed"], 1) * 1e3
    mixed["client_cpu_ms_per_request"] = mixed["client_cores"] * wall / max(mixed["completed"], 1) * 1e3
    time.sleep(1)
    return {"mixed": mixed, "sequential": sequential(cfg)}


def hold_scheduler_lock(server_url: str) -> Any:
    """Win the scheduler's election first, with the product's own ``LeaderLock`` on the server's URL
    (the same advisory lock keys the workers will ask for), so no worker ever sweeps during the run."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.scheduler import LeaderLock

    lock = LeaderLock(make_engine(server_url), "bench/country.py")
    if not lock.try_acquire():
        raise SystemExit(f"the scheduler lock is held by {lock.holder()!r} (a serve running on this schema?)")
    return lock


def swept(base: str, schema: str) -> int:
    """The sweep's marks in a schema: a scheduler that swept during the run leaves some."""
    with connect(base, schema) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM sweep_marks").fetchone()[0])


POOL_PATCH = """# written by bench/country.py --server-pool: an experiment, not the product
import workflow.adapters.db.engine as _engine

_make_engine = _engine.make_engine


def make_engine(url, **kwargs):
    if str(url).startswith("postgres"):
        kwargs.setdefault("pool_size", {size})
        kwargs.setdefault("max_overflow", 0)
    return _make_engine(url, **kwargs)


_engine.make_engine = make_engine
"""


def pool_patch(workdir: Path, size: int) -> dict[str, str]:
    """The environment of a server whose SQLAlchemy pool keeps ``size`` connections and opens no
    others (``sitecustomize`` in each of its processes wraps ``make_engine``)."""
    folder = workdir / "pool-patch"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(POOL_PATCH.format(size=size))
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)}


def run_mixed(args: argparse.Namespace, schema: str, country: Country, workdir: Path) -> dict[str, Any]:
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database

    url = schema_url(args.pg, schema)
    server_url = url + ("%20-cmax_parallel_workers_per_gather%3D0" if args.no_parallel_query else "")
    with connect(args.pg, schema) as conn:
        tokens = json.loads(conn.execute("SELECT tokens FROM bench_country_tokens").fetchone()[0])
        versions = [0] * (country.n + 1)
        for case_id, version in conn.execute("SELECT id, version FROM cases"):
            versions[case_id] = version
    db = Database(make_engine(url))
    with db.reader() as uow:
        ctx = uow.round_context(round_id(0))
    criteria = [(c.code, format(c.cap, "f"), format(c.step, "f"))
                for c in ctx.rubric.criteria() if not c.per_occurrence]
    db.engine.dispose()
    marks = swept(args.pg, schema)
    lock = hold_scheduler_lock(server_url)
    port = api.free_port()
    log_path = workdir / "server.log"
    saved = dict(os.environ)
    try:
        if args.server_pool:  # start_server hands this process's environment to the server
            os.environ.update(pool_patch(workdir, args.server_pool))
        try:
            server = api.start_server(server_url, port, workdir, log_path, args.workers)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        try:
            cfg = {"bases": [f"http://127.0.0.1:{port}"], "rate": args.rate, "seconds": args.seconds,
                   "cases": country.n, "tokens": tokens, "versions": versions, "criteria": criteria,
                   "seed": args.seed, "progress_n": args.progress_n, "history_n": args.history_n,
                   "pg": args.pg, "schema": schema,
                   "server_pids": [server.pid, *api.worker_pids(server.pid)], "concurrency": args.concurrency}
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                client = pool.submit(loadgen, cfg).result()
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    finally:
        lock.release()
    if swept(args.pg, schema) != marks:
        raise SystemExit(f"a scheduler swept schema {schema} during the run: its data changed; rebuild it (--fresh)")
    text = log_path.read_text(encoding="utf-8", errors="replace")
    client["server_log_errors"] = sum(1 for line in text.splitlines()
                                      if '"level": "error"' in line or "Traceback" in line)
    client["server_log_error_samples"] = [line[:300] for line in text.splitlines()
                                          if '"level": "error"' in line or "Traceback" in line][:5]
    if not args.keep_work:
        log_path.unlink(missing_ok=True)
    return client


# ------------------------------------------------------------------ the sweep

def clone(base: str, cache: str, work: str, fillfactor: int = 0) -> dict[str, float]:
    """A migrated schema ``work`` holding ``cache``'s rows, with the sweep's set-up folded into the
    copy (every case but every tenth ``submitted``, as ``bench/sweep.py`` sets it with one UPDATE);
    the counts recounted; ``VACUUM ANALYZE``."""
    from workflow.adapters.db import counts
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.migrate import upgrade
    from workflow.adapters.db.tables import metadata

    took: dict[str, float] = {}
    t = time.perf_counter()
    drop_schema(base, work)
    with connect(base) as conn:
        conn.execute(f'CREATE SCHEMA "{work}"')
    engine = make_engine(schema_url(base, work))
    upgrade(engine)
    if fillfactor:  # experiment: room on each page of cases for its rows' next versions (HOT updates)
        with connect(base, work) as conn:
            conn.execute(f"ALTER TABLE cases SET (fillfactor = {int(fillfactor)})")
    took["migrate"] = time.perf_counter() - t
    t = time.perf_counter()
    with connect(base, autocommit=False) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET session_replication_role = replica")  # a copy of valid rows: no FK checks
        for table in reversed(metadata.sorted_tables):
            conn.execute(f'DELETE FROM "{work}"."{table.name}"')  # what the migrations wrote (stream heads)
        for table in metadata.sorted_tables:
            names = [c.name for c in table.columns]
            exprs = [("CASE WHEN id % 10 <> 0 AND state IN ('registered', 'self_assessed') THEN 'submitted' "
                      "ELSE state END") if (table.name, n) == ("cases", "state") else f'"{n}"' for n in names]
            conn.execute(f'INSERT INTO "{work}"."{table.name}" ({", ".join(chr(34) + n + chr(34) for n in names)}) '
                         f'SELECT {", ".join(exprs)} FROM "{cache}"."{table.name}"')
        for table, column in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND column_default LIKE 'nextval%%'", (work,)).fetchall():
            conn.execute(f"SELECT setval(pg_get_serial_sequence('\"{work}\".\"{table}\"', '{column}'), "
                         f'COALESCE((SELECT MAX("{column}") FROM "{work}"."{table}"), 0) + 1, false)')
        conn.commit()
    took["copy"] = time.perf_counter() - t
    t = time.perf_counter()
    counts.repair(engine)
    engine.dispose()
    took["counts"] = time.perf_counter() - t
    t = time.perf_counter()
    with connect(base, work) as conn:
        conn.execute("VACUUM (ANALYZE)")
    took["vacuum"] = time.perf_counter() - t
    return took


CHILD = """
import json, resource, sys, time
from datetime import datetime
from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.store import Database
from workflow.config import REPO_ROOT
from workflow.service.deadlines import sweep
db = Database(make_engine(sys.argv[1]))
calendars = CalendarCatalog(REPO_ROOT / "calendars")
calendars.all()
with db.reader() as uow:  # connect once, as a running scheduler has
    pass
t, cpu = time.perf_counter(), time.process_time()
report = sweep(db, calendars, datetime.fromisoformat(sys.argv[2]))
seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "cpu_s": cpu, "max_rss_mb": hwm / 1024, "reminders": report.reminders,
                  "missed": report.missed, "unit_notices": report.unit_notices, "digests": report.digests,
                  "coordinator_reminders": report.coordinator_reminders, "expired": report.expired,
                  "duty_reminders": report.duty_reminders, "duties_missed": report.duties_missed,
                  "skipped": report.skipped, "warnings": report.warnings}))
"""


def sweep_floor(base: str, work: str, country: Country) -> dict[str, Any]:
    """Raw psycopg doing the sweep's writes for the same cases, in the same batches: per round
    the owing cases read once (with their units, as the product reads them); per batch of
    ``deadlines.BATCH`` one transaction: the rows read, a version-guarded UPDATE of each, an
    event INSERT each, a notice each in the outbox; per round one transaction of the
    coordinators' digests and the stage mark. The cases are the ones the sweep just marked (they
    still owe), so the floor writes their next event."""
    from workflow.domain.events import canonical_json, utc_iso
    from workflow.service.deadlines import BATCH

    now = datetime.fromisoformat(SWEEP_AT).astimezone(UTC)
    at = utc_iso(now)
    coordinators: dict[str, int] = {}
    with connect(base, work) as conn:
        for cid, jid in conn.execute("SELECT id, jurisdiction_id FROM coordinators WHERE active ORDER BY id"):
            coordinators.setdefault(jid, cid)
    conn = connect(base, work, autocommit=False)
    cur = conn.cursor()
    rows = {"events": 0, "updates": 0, "outbox": 0, "batches": 0}
    busy0, pg0, cpu0 = machine_busy(), pg_cpu(), time.process_time()
    t = time.perf_counter()
    for p in range(N_PROVINCES):
        rid = round_id(p)
        payload = canonical_json({"milestone": "self_assessment", "due_on": "2021-10-20", "noticed_on": "2021-10-21",
                                  "owed_in": ["registered", "self_assessed"]})
        owing = cur.execute(
            "SELECT c.id, u.name, u.jurisdiction_id FROM cases c JOIN units u ON u.id = c.unit_id "
            "WHERE c.round_id = %s AND c.state = ANY(%s) ORDER BY c.id",
            (rid, ["registered", "self_assessed"])).fetchall()
        conn.commit()
        ids = [r[0] for r in owing]
        for i in range(0, len(ids), BATCH):
            batch = ids[i:i + BATCH]
            found = cur.execute("SELECT id, version, last_hash, missed FROM cases WHERE id = ANY(%s) ORDER BY id",
                                (batch,)).fetchall()
            updates, events, notices = [], [], []
            for case_id, version, prev, missed in found:
                h = hashlib.sha256(f"{case_id}\x1f{version + 1}\x1fDeadlineMissed\x1fsystem:sweep\x1f{at}\x1f"
                                   f"{payload}\x1f{prev}".encode()).hexdigest()
                updates.append((version + 1, h, missed or '[["self_assessment",["registered","self_assessed"]]]',
                                now, case_id, version))
                events.append((case_id, version + 1, "DeadlineMissed", "system:sweep", now, payload, prev, h))
                notices.append((f"floor-missed:{case_id}:{version + 1}", "missed", rid, case_id, "self_assessment",
                                "2021-10-20", now, now))
            cur.executemany("UPDATE cases SET version = %s, last_hash = %s, missed = %s, overdue = true, "
                            "updated_at = %s WHERE id = %s AND version = %s", updates)
            cur.executemany("INSERT INTO events (case_id, seq, type, actor, occurred_at, payload, prev_hash, hash) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", events)
            cur.executemany("INSERT INTO outbox (dedupe_key, kind, round_id, case_id, milestone, due_on, status, "
                            "attempts, next_attempt_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s, "
                            "%s) ON CONFLICT (dedupe_key) DO NOTHING", notices)
            conn.commit()
            rows["events"] += len(events)
            rows["updates"] += len(updates)
            rows["outbox"] += len(notices)
            rows["batches"] += 1
        digests: dict[int, list[dict[str, Any]]] = {}
        for case_id, name, jid in owing:
            digests.setdefault(coordinators[jid], []).append({"case_id": case_id, "unit_name": name})
        cur.executemany("INSERT INTO outbox (dedupe_key, kind, round_id, coordinator_id, milestone, due_on, context, "
                        "status, attempts, next_attempt_at, created_at) VALUES (%s, 'digest', %s, %s, "
                        "'self_assessment', '2021-10-20', %s, 'pending', 0, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING",
                        [(f"floor-digest:{cid}:{rid}", rid, cid, json.dumps({"rows": r}, ensure_ascii=False), now, now)
                         for cid, r in sorted(digests.items())])
        cur.execute("INSERT INTO sweep_marks (round_id, milestone, stage, done_at) VALUES (%s, 'floor', 'missed', %s)",
                    (rid, now))
        conn.commit()
        rows["outbox"] += len(digests)
    seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu0
    pg = pg_cpu_since(pg0)
    busy = machine_busy() - busy0
    conn.close()
    return {"seconds": seconds, "cpu_s": cpu, "pg_cpu_s": pg, "machine_busy_s": busy, **rows}


def case_updates(base: str, schema: str) -> dict[str, int]:
    """Updates of ``cases`` rows so far in ``schema``, and how many were HOT (no index entry written)."""
    with connect(base) as conn:
        row = conn.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE schemaname = %s "
                           "AND relname = 'cases'", (schema,)).fetchone()
    return {"updates": int(row[0]), "hot": int(row[1])}


def run_sweep(args: argparse.Namespace, cache: str, country: Country) -> dict[str, Any]:
    from workflow.adapters.calendar_files import CalendarCatalog
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.config import REPO_ROOT
    from workflow.service.deadlines import sweep

    work = f"{PREFIX}sweep_{os.getpid()}"
    out: dict[str, Any] = {"work_schema": work, "cases_fillfactor_experiment": args.cases_fillfactor or None}
    try:
        out["setup"] = clone(args.pg, cache, work, args.cases_fillfactor)
        print("sweep set-up (copy of the cache, 90% submitted): "
              + ", ".join(f"{k} {v:.1f} s" for k, v in out["setup"].items()), file=sys.stderr)
        url = schema_url(args.pg, work)
        with connect(args.pg, work) as conn:
            out["owing"] = conn.execute("SELECT COUNT(*) FROM cases WHERE state IN ('registered', 'self_assessed')"
                                        ).fetchone()[0]
        out["uptime_before"] = uptime()
        print(f"uptime before the sweep: {out['uptime_before']}", file=sys.stderr)
        busy0, pg0 = machine_busy(), pg_cpu()
        child = subprocess.run([sys.executable, "-c", CHILD, url, SWEEP_AT], capture_output=True, text=True)
        if child.returncode != 0:
            raise RuntimeError(f"the sweep failed:\n{child.stderr[-4000:]}")
        big = json.loads(child.stdout.strip().splitlines()[-1])
        big["pg_cpu_s"] = pg_cpu_since(pg0)
        big["machine_busy_s"] = machine_busy() - busy0
        out["big"] = big
        time.sleep(1.5)  # backends report their counters at most once a second
        big["cases_updates"] = case_updates(args.pg, work)
        db = Database(make_engine(url))
        calendars = CalendarCatalog(REPO_ROOT / "calendars")
        calendars.all()
        t = time.perf_counter()
        idle = sweep(db, calendars, datetime.fromisoformat(IDLE_AT))
        out["idle"] = {"seconds": time.perf_counter() - t, "total": idle.total}
        db.engine.dispose()
        out["floor"] = sweep_floor(args.pg, work, country)
        time.sleep(1.5)
        after = case_updates(args.pg, work)
        out["floor"]["cases_updates"] = {k: after[k] - big["cases_updates"][k] for k in after}
        with connect(args.pg, work) as conn:
            out["work_schema_bytes"] = conn.execute(
                "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (work,)).fetchone()[0]
    finally:
        if not args.keep_work:
            drop_schema(args.pg, work)
    return out


# ------------------------------------------------------------------ main

def git_state() -> dict[str, str]:
    root = Path(__file__).resolve().parent.parent

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True).stdout.strip()

    return {"head": git("rev-parse", "--short", "HEAD"),
            "sweep_files_diff": git("diff", "--stat", "--", "src/workflow/service/deadlines.py",
                                    "src/workflow/adapters/db/store.py")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=1_000_000, help="cases (= units) in the country, a multiple of 10")
    ap.add_argument("--events-per-case", type=int, default=3)
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second of the mixed load")
    ap.add_argument("--seconds", type=float, default=30.0, help="duration of the mixed load")
    ap.add_argument("--workers", type=int, default=3, help="`workflow serve --workers N`")
    ap.add_argument("--pg", default=os.environ.get("WORKFLOW_BENCH_PG", PG_URL), help="the PostgreSQL database")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "workflow-bench-country",
                    help="the server's log and scratch directories")
    ap.add_argument("--fresh", action="store_true", help="rebuild the cached schema")
    ap.add_argument("--drop-cache", action="store_true", help="drop the cached schema at the end")
    ap.add_argument("--keep-work", action="store_true", help="keep the sweep's copy and the server log")
    ap.add_argument("--skip-mixed", action="store_true")
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--audit-sample", type=int, default=300)
    ap.add_argument("--unit-tokens", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=256, help="most requests in flight at once (the load generator)")
    ap.add_argument("--progress-n", type=int, default=20)
    ap.add_argument("--history-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--server-pool", type=int, default=0, metavar="N",
                    help="experiment: each server process keeps N pooled connections and opens no others "
                         "(the product: SQLAlchemy's default 5, and up to 10 more opened and closed as needed)")
    ap.add_argument("--no-parallel-query", action="store_true",
                    help="experiment: the server's sessions with max_parallel_workers_per_gather=0 (in its URL's "
                         "options; PostgreSQL's default is 2)")
    ap.add_argument("--cases-fillfactor", type=int, default=0, metavar="PERCENT",
                    help="experiment: the sweep's copy of cases with this fillfactor (the product: 100)")
    args = ap.parse_args()
    if args.events_per_case < 2:
        ap.error("--events-per-case must be at least 2")
    if args.cases % N_PROVINCES or args.cases < N_PROVINCES * N_PLACES:
        ap.error(f"--cases must be a multiple of {N_PROVINCES} and at least {N_PROVINCES * N_PLACES}")
    args.dir.mkdir(parents=True, exist_ok=True)
    country = Country(args.cases)
    result: dict[str, Any] = {"benchmark": "country", "nproc": os.cpu_count(), "cases": args.cases,
                              "events_per_case": args.events_per_case, "rate": args.rate, "seconds": args.seconds,
                              "workers": args.workers, "server_pool_experiment": args.server_pool or None,
                              "cases_fillfactor_experiment": args.cases_fillfactor or None,
                              "no_parallel_query_experiment": args.no_parallel_query,
                              "git": git_state()}
    with connect(args.pg) as conn:
        result["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        result["shared_buffers"] = conn.execute("SHOW shared_buffers").fetchone()[0]
    result["uptime_before_seeding"] = uptime()
    cache, seeding = prepared(args.pg, args.cases, args.events_per_case, args.unit_tokens, args.fresh)
    result["cache_schema"], result["seeding"] = cache, seeding
    url = schema_url(args.pg, cache)
    result["audit"] = check(url, country, args.events_per_case, args.audit_sample)
    size = schemas(args.pg).get(cache, 0)
    result["cache_bytes"] = size
    print(f"schema {cache} ({size / 2**30:.2f} GiB); "
          + (f"seeded in {seeding['total']:.1f} s" if seeding else "from the cache") + f"; audit {result['audit']}",
          file=sys.stderr)
    print(f"sweep code measured: HEAD {result['git']['head']}; working tree vs HEAD: "
          f"{result['git']['sweep_files_diff'] or 'no changes'}", file=sys.stderr)

    if not args.skip_mixed:
        result["uptime_before_mixed"] = uptime()
        print(f"uptime before the mixed load: {result['uptime_before_mixed']}", file=sys.stderr)
        client = run_mixed(args, cache, country, args.dir)
        report_mixed(args, client)
        result["mixed"] = {k: v for k, v in client["mixed"].items() if k != "error_samples"}
        result["mixed_error_samples"] = client["mixed"]["error_samples"][:5]
        result["sequential"] = client["sequential"]
        result["server_log_errors"] = client["server_log_errors"]
    if not args.skip_sweep:
        sw = run_sweep(args, cache, country)
        report_sweep(sw)
        result["sweep"] = sw
    if args.drop_cache:
        drop_schema(args.pg, cache)
        print(f"dropped the cached schema {cache}", file=sys.stderr)
    else:
        print(f"cached schema kept: {cache} ({size / 2**30:.2f} GiB); --drop-cache drops it", file=sys.stderr)

    def rounded(x: Any) -> Any:
        if isinstance(x, float):
            return round(x, 3)
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x

    print(json.dumps(rounded(result), ensure_ascii=False, default=str))


def report_mixed(args: argparse.Namespace, client: dict[str, Any]) -> None:
    m, s = client["mixed"], client["sequential"]
    fl = s["floor"]
    per_request = m["server_cpu_ms_per_request"] + m["pg_cpu_ms_per_request"] + m["client_cpu_ms_per_request"]
    cores = os.cpu_count() or 1
    print(f"\nmixed load {args.rate:g}/s for {args.seconds:g} s, serve --workers {args.workers}: "
          f"{m['completed']:,}/{m['requests']:,} requests, sent at {m['sent_rate']:.1f}/s, completed at "
          f"{m['achieved_rate']:.1f}/s, p50 {m['all']['p50']:.1f} ms, p90 {m['all']['p90']:.1f}, "
          f"p99 {m['all']['p99']:.1f}, max {m['all']['max']:.1f}; errors {m['errors']} "
          f"(client send lag p99 {m['send_lag_ms_p99']:.1f} ms)", file=sys.stderr)
    print(f"CPU: serve {m['server_cores']:.2f} cores ({m['server_cpu_ms_per_request']:.2f} ms a request), "
          f"PostgreSQL {m['pg_cores']:.2f} ({m['pg_cpu_ms_per_request']:.2f} ms), load generator "
          f"{m['client_cores']:.2f} ({m['client_cpu_ms_per_request']:.2f} ms), other processes "
          f"{max(0.0, m['others_cores'] - m['pg_cores']):.2f} (of {cores}); all three: {per_request:.2f} ms a "
          f"request, so at most {cores * 1000 / per_request:.0f} requests/s on {cores} cores", file=sys.stderr)
    print(f"PostgreSQL sessions opened during the mixed load: {m['pg_sessions']:,} "
          f"({m['pg_sessions'] / max(m['completed'], 1):.2f} a request); transactions {m['pg_transactions']:,} "
          f"({m['pg_transactions'] / max(m['completed'], 1):.2f} a request)"
          + (f"; EXPERIMENT: server pool {args.server_pool} connections, no overflow" if args.server_pool else "")
          + ("; EXPERIMENT: no parallel query" if args.no_parallel_query else ""),
          file=sys.stderr)
    print(f"{'request (mixed load)':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  ms", file=sys.stderr)
    for name, v in m["by_kind"].items():
        print(f"{name:<28}{v['n']:>6}{v['p50']:>9.1f}{v['p90']:>9.1f}{v['p99']:>9.1f}{v['max']:>9.1f}", file=sys.stderr)
    print(f"\n{'alone (in a row)':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'floor p50':>11}{'ratio':>8}"
          f"   (other processes, PostgreSQL included: {s['others_cores']:.2f} cores)", file=sys.stderr)
    for name in ("progress", "unit_history", "history", "case", "list", "action"):
        v, f = s[name], fl.get(name)
        ratio = f["p50"] / v["p50"] if f else None
        print(f"{name:<28}{v['n']:>6}{v['p50']:>9.2f}{v['p90']:>9.2f}{v['p99']:>9.2f}{v['max']:>9.2f}"
              + (f"{f['p50']:>11.3f}{ratio:>8.3f}" if f else f"{'—':>11}{'—':>8}"), file=sys.stderr)
    print(f"\n{'list filter alone (20 each)':<32}{'p50':>9}{'p90':>9}{'max':>9}  ms", file=sys.stderr)
    for name, v in s["list_variants"].items():
        print(f"{name:<32}{v['p50']:>9.1f}{v['p90']:>9.1f}{v['max']:>9.1f}", file=sys.stderr)
    met = m["all"]["p99"] <= 100 and m["errors"] == 0 and m["achieved_rate"] >= 0.98 * args.rate
    print(f"target mixed {args.rate:g}/s with p99 ≤ 100 ms: {'MET' if met else 'NOT MET'}; server log errors "
          f"{client['server_log_errors']}; sequential errors {s['errors']}", file=sys.stderr)
    if m["errors"]:
        print(f"error samples: {m['error_samples'][:5]}", file=sys.stderr)
    if client["server_log_error_samples"]:
        print(f"server log: {client['server_log_error_samples']}", file=sys.stderr)


def report_sweep(sw: dict[str, Any]) -> None:
    big, fl = sw["big"], sw["floor"]
    print(f"\nsweep of the country ({sw['owing']:,} cases owing the self-assessment after 2021-10-20): "
          f"{big['seconds']:.2f} s — {big['missed']:,} misses, {big['unit_notices']:,} unit notices, "
          f"{big['digests']:,} digests, {big['reminders']:,} reminders; process CPU {big['cpu_s']:.2f} s, "
          f"PostgreSQL CPU {big['pg_cpu_s']:.2f} s, peak RSS {big['max_rss_mb']:.0f} MB"
          + (f"; EXPERIMENT: cases with fillfactor {sw['cases_fillfactor_experiment']}"
             if sw["cases_fillfactor_experiment"] else ""), file=sys.stderr)
    print(f"floor (raw psycopg, same writes, same batches): {fl['seconds']:.2f} s ({fl['events']:,} events, "
          f"{fl['updates']:,} updates, {fl['outbox']:,} outbox rows, {fl['batches']} batches; CPU {fl['cpu_s']:.2f} s, "
          f"PostgreSQL {fl['pg_cpu_s']:.2f} s); ratio floor/ours {fl['seconds'] / big['seconds']:.2f}; "
          f"idle sweep {sw['idle']['seconds'] * 1e3:.1f} ms", file=sys.stderr)
    print(f"case row updates (HOT, no index entries written): sweep {big['cases_updates']['updates']:,} "
          f"({big['cases_updates']['hot']:,} HOT), floor {fl['cases_updates']['updates']:,} "
          f"({fl['cases_updates']['hot']:,} HOT)", file=sys.stderr)
    print(f"target sweep ≤ 10 s: {'MET' if big['seconds'] <= 10 else 'NOT MET'}", file=sys.stderr)


if __name__ == "__main__":
    main()
