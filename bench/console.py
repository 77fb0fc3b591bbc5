"""The console's pages on SQLite with 100,000 cases and 2,000,000 events: server time per page.

Target (the issue): with 100,000 cases and 2,000,000 events on SQLite, every page's server
time p95 ≤ 150 ms.

Setup (not timed against the target):
- the seeded database of ``bench/api.py`` (loaded from its file: this folder stays off
  ``sys.path``): a province of 11 cities × 10 counties, a unit and a case per unit with
  ``--events-per-case`` events each (90% of the cases ``self_assessed``, 10% ``registered``),
  cached in ``--dir`` (default ``$TMPDIR/workflow-bench-api``) and copied to
  ``console-run.db`` for the run; a sample checked with ``service.audit.verify``.
- people with a password (``service.accounts.create_account(password_hash=...)``, the hash
  made once): an admin, the province's coordinator, a city's coordinator, an auditor of the
  province, a unit (in that city); and ``--unit-accounts`` more units' accounts (what the
  people page lists).
- the server in a subprocess on a free port: the product's app (``api.app.create_app`` over
  ``bootstrap.build``) under the product's uvicorn set-up (``api.server.run``), exactly as
  ``workflow serve`` runs it, but with no scheduler thread and a ``ManualClock`` at ``--now``
  (default 2021-10-13 09:00 Beijing time: a week before the self-assessment's due date, so the
  home pages' deadlines and at-risk lists are those of a live round; with the system clock, years
  after the seeded round, they are empty and cheap). ``--system-clock`` runs ``workflow serve``
  itself instead (holding its scheduler's lock file, as ``bench/api.py`` does).
  Every request logs a JSON line with its duration (``ms``, taken by the outermost middleware:
  session check, route, rendering); the client sends its own ``x-request-id`` to find its line.

Timed: each page is signed in through ``POST /signin``, warmed up (``--warmup`` requests), then
asked ``--n`` times in a row over one keep-alive ``httpx`` connection (loopback); a page whose
requests and floors take more than ``--budget`` seconds gets fewer (at least 3; its verdict is
then NOT MET: the target needs 30). For each request: the client's time (send to last byte
read) and the server's logged ``ms``. A page that does not answer 200 on its first try is
reported absent (another part of the console may not be built yet), with the status it gave.

Floor: each request is followed at once by the reads its route makes, called directly in this
process on the same file (the same service calls with the same arguments, through the same
``Storage``: the session lookup, ``progress``, ``owed_ahead``, ``at_risk(limit=30)``,
``at_risk_count``, ``list_cases``, ``count_cases``, ``read_case``, ``audit_view`` ...), without
HTTP or rendering. server − floor ≈ rendering + framework.

The audit pages show the latest kept check (``service/audit_runs``): the setup runs the nightly
check of every chain once, timed and reported (it runs in the background in production, never
while a page waits).

For each page whose server p95 is over the target: a cProfile of ``--profile-n`` requests (fewer
after 60 s) to the same app in this process (ASGI, the thread pool run inline so that the route
is profiled), the top 10 functions by own time and the top 10 of the product's (``workflow/``,
templates) by cumulative time. The load average is printed at the start and the end (the machine is shared).
The last line is one JSON object.

    python bench/console.py [--cases 100000 | --quick] [--n 40] [--warmup 5] [--budget 240] [--now ISO]
                            [--unit-accounts 1000] [--system-clock] [--dir DIR] [--fresh] [--keep]
                            [--no-profile] [--profile-n 10] [--only NAMES] [--skip NAMES]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from types import ModuleType, SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402


def _load_api() -> ModuleType:
    """``bench/api.py`` as a module (its seeding, cache and server start), loaded from its file."""
    if "bench_api" in sys.modules:
        return sys.modules["bench_api"]
    spec = importlib.util.spec_from_file_location("bench_api", Path(__file__).resolve().parent / "api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = module
    spec.loader.exec_module(module)
    return module


api = _load_api()

ROUND = api.ROUND
TARGET_MS = 150.0
PASSWORD = "bench-console-2021"
NOW = "2021-10-13T09:00:00+08:00"
CITY = 3  # the city coordinator's city (shanxi-c03)
UNIT = 5  # the unit that signs in: place 4 of PLACES, the city shanxi-c03 itself; its case is case 5


# ------------------------------------------------------------------ people

def make_people(url: str, now: datetime, n_cases: int, n_unit_accounts: int) -> dict[str, dict[str, Any]]:
    """An account with a password for each role (the argon2 hash made once, reused); and
    ``n_unit_accounts`` more units' accounts (what the people page lists)."""
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.service.accounts import create_account, hash_password, principal_of

    db = Database(make_engine(url))
    hashed = hash_password(PASSWORD)
    admin = create_account(db, by=None, login="console-admin", name="bench admin", role="admin", now=now,
                           password_hash=hashed)
    by = principal_of(admin, "cli")
    wanted = {
        "admin": None,
        "province": dict(login="console-province", name="省局协调员", role="coordinator", jurisdiction_id="shanxi"),
        "city": dict(login="console-city", name="市协调员", role="coordinator", jurisdiction_id=f"shanxi-c{CITY:02d}"),
        "auditor": dict(login="console-auditor", name="省审计员", role="auditor", jurisdiction_id="shanxi"),
        "unit": dict(login="console-unit", name="单位联络员", role="unit", unit_id=UNIT),
    }
    people = {}
    for key, spec in wanted.items():
        account = admin if spec is None else create_account(db, by=by, now=now, password_hash=hashed, **spec)
        people[key] = {"login": account.login}
    for u in random.Random(11).sample(range(1, n_cases + 1), min(n_unit_accounts, n_cases)):
        if u != UNIT:
            create_account(db, by=by, now=now, password_hash=hashed, login=f"unit{u:06d}", name=f"单位{u:06d}联络员",
                           role="unit", unit_id=u)
    db.engine.dispose()
    return people


# ------------------------------------------------------------------ the server

def serve_here(port: int, now: str) -> None:
    """The server subprocess: what ``workflow serve`` runs (the product's app and uvicorn set-up,
    its JSON request log), without the scheduler thread and with the clock fixed at ``now``."""
    from workflow.api.app import create_app
    from workflow.api.server import run
    from workflow.bootstrap import build
    from workflow.clock import ManualClock
    from workflow.logging import configure_logging

    application = build(clock=ManualClock(datetime.fromisoformat(now)))
    application.require_schema()
    configure_logging(application.settings.log_level)
    st = application.settings
    run(create_app(application), host="127.0.0.1", port=port, header_timeout=st.header_timeout_seconds,
        keep_alive=st.keep_alive_seconds)


def start_server(url: str, port: int, directory: Path, log_path: Path, now: str) -> subprocess.Popen:
    env = dict(os.environ, WORKFLOW_DATABASE_URL=url, WORKFLOW_EVIDENCE_DIR=str(directory / "evidence"),
               WORKFLOW_MAILDIR=str(directory / "mail"))
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-port", str(port),
                             "--now", now], env=env, stdout=log, stderr=subprocess.STDOUT)
    return api.wait_ready(proc, port, log_path, 600)


def server_times(log_path: Path) -> dict[str, float]:
    """request id → the server's logged ``ms``."""
    out = {}
    for line in open(log_path, encoding="utf-8"):
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "request" and "ms" in rec and "request_id" in rec:
            out[rec["request_id"]] = float(rec["ms"])
    return out


# ------------------------------------------------------------------ the floor: the routes' reads, direct

class Floor:
    """The reads each page's route makes, called directly on the same file and clock."""

    def __init__(self, url: str, now: datetime, n_cases: int) -> None:
        from workflow.bootstrap import build
        from workflow.clock import ManualClock
        from workflow.config import Settings

        self.app = build(Settings(database_url=url), clock=ManualClock(now))
        self.n = n_cases
        self.secrets: dict[str, str] = {}

    def who(self, person: str) -> Any:
        from workflow.service.sign_in import session_of

        got = session_of(self.app.db, self.secrets[person], self.app.clock.now())
        assert got is not None, f"no session for {person}"
        return got[0]

    # -- home
    def home(self, person: str, _: Any = None, view: str | None = None) -> None:
        from workflow.domain.dates import business_date
        from workflow.service.reports import at_risk, at_risk_count, owed_ahead, progress
        from workflow.web.pages import DEADLINE_DAYS, SOON_DAYS, SOON_SHOWN, subtree, the_round, visible_rounds

        a, who = self.app, self.who(person)
        if who.role == "unit":
            return self.unit_home(who)
        rnd = the_round(a, who, None)
        if who.role == "auditor" and view is None:
            visible_rounds(a, who)
            return None
        _, path, _ = subtree(a, who, rnd, None)
        progress(a.db, rnd.id, path)
        today = business_date(a.clock.now())
        owed_ahead(a.db, a.calendars, rnd.id, path, today, DEADLINE_DAYS)
        at_risk(a.db, a.calendars, rnd.id, path, today, SOON_DAYS, limit=SOON_SHOWN)
        at_risk_count(a.db, a.calendars, rnd.id, path, today, SOON_DAYS)
        visible_rounds(a, who)
        return None

    def unit_home(self, who: Any) -> None:
        from workflow.domain.guards import allowed_actions
        from workflow.service.cases import read_case
        from workflow.service.due import what_is_due
        from workflow.service.queries import list_cases

        a = self.app
        for row in list_cases(a.db, unit_id=who.unit_id, limit=20):
            what_is_due(a.db, a.calendars, row.id, a.clock.now())
            found = read_case(a.db, row.id)
            allowed_actions(found.case, found.ctx, a.clock.now(), actor=who.actor)
        a.db.directory.unit(who.unit_id)

    # -- the case list
    def cases(self, person: str, query: str) -> None:
        from urllib.parse import quote

        from starlette.requests import Request

        from workflow.service.queries import count_cases
        from workflow.web.pages import PAGE, ListQuery, the_round, visible_rounds

        a, who = self.app, self.who(person)
        rnd = the_round(a, who, None)
        raw = quote(query, safe="=&").encode()  # as a browser sends it
        q = ListQuery(Request({"type": "http", "query_string": raw, "headers": []}),
                      SimpleNamespace(who=who), a, rnd)  # type: ignore[arg-type]
        q.rows(a, (q.page - 1) * PAGE, PAGE + 1)
        count_cases(a.db, **q.filters())
        visible_rounds(a, who)
        a.calendars.get(rnd.calendar_id)
        with a.db.reader() as uow:
            uow.round_context(rnd.id)

    # -- one case
    def case(self, person: str, case_id: int) -> None:
        from workflow.domain.guards import allowed_actions
        from workflow.service.cases import read_case
        from workflow.service.due import what_is_due
        from workflow.service.evidence import list_documents, list_evidence
        from workflow.service.queries import list_notifications
        from workflow.service.sheets import case_sheets

        a, who = self.app, self.who(person)
        a.db.read.case_scope(case_id)
        found = read_case(a.db, case_id, events=True)
        allowed_actions(found.case, found.ctx, a.clock.now(), actor=who.actor)
        case_sheets(a.db, case_id)
        what_is_due(a.db, a.calendars, case_id, a.clock.now())
        a.db.directory.unit(found.case.unit_id)
        list_notifications(a.db, case_id=case_id, limit=50)
        list_evidence(a.db, case_id)
        list_documents(a.db, case_id)

    def sheet(self, person: str, case_id: int) -> None:
        from workflow.domain.guards import allowed_actions
        from workflow.service.cases import read_case
        from workflow.service.due import what_is_due
        from workflow.service.evidence import list_documents, list_evidence
        from workflow.service.sheets import case_sheets

        a, who = self.app, self.who(person)
        a.db.read.case_scope(case_id)
        found = read_case(a.db, case_id)
        if not who.read_only:
            allowed_actions(found.case, found.ctx, a.clock.now(), actor=who.actor)
        list_evidence(a.db, case_id)
        list_documents(a.db, case_id)
        case_sheets(a.db, case_id)
        what_is_due(a.db, a.calendars, case_id, a.clock.now())

    def calendar(self, person: str, _: Any = None) -> None:
        from workflow.domain.dates import business_date
        from workflow.service.due import round_timeline, upcoming_reminders
        from workflow.service.duties import duty_board
        from workflow.service.outbox_admin import failed_mails
        from workflow.service.oversight import list_filings, list_spot_checks
        from workflow.service.reports import milestone_names, owed_ahead, progress
        from workflow.web.pages import subtree, the_round, visible_rounds

        a, who = self.app, self.who(person)
        db, calendars = a.db, a.calendars
        rnd = the_round(a, who, None)
        _, path, _ = subtree(a, who, rnd, None)
        today = business_date(a.clock.now())
        _, dated = round_timeline(db, calendars, rnd.id)
        last_due = max((d.due_on for d in dated), default=today)
        owed_ahead(db, calendars, rnd.id, path, today, max((last_due - today).days, 0))
        progress(db, rnd.id, path)
        duty_board(db, calendars, rnd.id, path, today)
        upcoming_reminders(db, calendars, rnd.id, path, today, 30, sample=5)
        checks = list_spot_checks(db, rnd.id, path)
        list_filings(db, rnd.id, path)
        drawn = sorted({c for s in checks for c in s.drawn})
        if drawn:
            db.read.cases_by_id(drawn)
        failed_mails(db, who, rnd.id, path)
        milestone_names(db, calendars, rnd.id)
        visible_rounds(a, who)

    def audit(self, person: str, _: Any = None) -> None:
        from workflow.service.audit_runs import audit_view

        a, who = self.app, self.who(person)
        audit_view(a.db, who)  # the kept checks (the setup ran the nightly one)
        a.checkpoint_store().sequences()

    def people(self, person: str, _: Any = None) -> None:
        from workflow.service.accounts import list_accounts

        a, who = self.app, self.who(person)
        found = list_accounts(a.db, who)
        shown = found[:300]
        a.db.directory.units_of(sorted({x.unit_id for x in shown if x.unit_id is not None}))
        for j in {x.jurisdiction_id for x in shown if x.jurisdiction_id is not None}:
            a.db.directory.jurisdiction(j)
        path = None if who.role == "admin" else who.jurisdiction_path
        if path:
            a.db.directory.jurisdiction(path.strip("/").rsplit("/", 1)[-1])
        a.db.directory.units(path, limit=501)
        a.db.directory.jurisdictions(path)

    def unit_history(self, person: str, unit_id: int) -> None:
        from workflow.service.queries import unit_history

        db = self.app.db
        self.who(person)
        db.directory.unit(unit_id)
        events = unit_history(db, unit_id)[1]
        for cid in sorted({e.case_id for e in events}):
            db.read.case_scope(cid)
        db.rounds.rounds()


# ------------------------------------------------------------------ the pages

@dataclass
class Page:
    name: str
    person: str
    url: str  # "{x}" is replaced by the request's drawn parameter
    floor: Callable[[Floor, str, Any], None]
    draw: Callable[[random.Random, int], Any] | None = None
    result: dict[str, Any] = field(default_factory=dict)


def any_case(rng: random.Random, n: int) -> int:
    return rng.randint(1, n)


def pages() -> list[Page]:
    lists = {
        "cases first page": "",
        "cases page 50": "page=50",
        "cases state=registered": "state=registered",
        "cases overdue=1": "overdue=1",
        "cases name search": "name=单位0421",
        "cases sort=-verified_total": "sort=-verified_total",
    }
    out = [
        Page("home province coordinator", "province", "/", Floor.home),
        Page("home admin", "admin", "/", Floor.home),
        Page("home city coordinator", "city", "/", Floor.home),
        Page("home unit (我的任务)", "unit", "/", Floor.home),
        Page("home auditor", "auditor", "/", Floor.home),
        Page("home auditor progress", "auditor", "/?view=progress",
             lambda f, p, x: f.home(p, x, view="progress")),
    ]
    for name, query in lists.items():
        out.append(Page(name, "province", "/cases" + (f"?{query}" if query else ""),
                        lambda f, p, x, query=query: f.cases(p, query)))
    out.append(Page("cases city coordinator", "city", "/cases", lambda f, p, x: f.cases(p, "")))
    out += [
        Page("case page", "province", "/cases/{x}", Floor.case, any_case),
        Page("case page (unit, own)", "unit", f"/cases/{UNIT}", lambda f, p, x: f.case(p, UNIT)),
        Page("case sheet", "province", "/cases/{x}/sheet", Floor.sheet, any_case),
        Page("case sheet (unit, own)", "unit", f"/cases/{UNIT}/sheet", lambda f, p, x: f.sheet(p, UNIT)),
        Page("calendar province coordinator", "province", "/calendar", Floor.calendar),
        Page("calendar city coordinator", "city", "/calendar", Floor.calendar),
        Page("audit auditor (province)", "auditor", "/audit", Floor.audit),
        Page("audit city coordinator", "city", "/audit", Floor.audit),
        Page("people province coordinator", "province", "/people", Floor.people),
        Page("people admin", "admin", "/people", Floor.people),
        Page("unit history", "province", "/units/{x}/history", Floor.unit_history, any_case),
    ]
    return out


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50": api.pct(xs, 50), "p95": api.pct(xs, 95), "max": max(xs) if xs else float("nan")}


def sign_in(base: str, login: str) -> Any:
    import httpx

    client = httpx.Client(base_url=base, timeout=120.0,
                          limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=4.0))
    r = client.post("/signin", data={"login": login, "password": PASSWORD, "next": "/"}, follow_redirects=False)
    if r.status_code != 303 or "wf_session" not in client.cookies:
        raise SystemExit(f"sign-in of {login} failed: {r.status_code} {r.text[:300]}")
    return client


def measure(base: str, people: dict[str, dict[str, Any]], floor: Floor, todo: list[Page], n: int, warmup: int,
            seed: int, budget: float) -> None:
    """Each page in a row: warm-up, then n requests each followed by its floor (fewer, at least
    3, when a page's requests and floors take more than ``budget`` seconds)."""
    clients = {key: sign_in(base, p["login"]) for key, p in people.items()}
    floor.secrets = {key: c.cookies["wf_session"] for key, c in clients.items()}
    rng = random.Random(seed)
    try:
        for k, pg in enumerate(todo):
            client = clients[pg.person]
            url0 = pg.url.replace("{x}", str(pg.draw(rng, floor.n) if pg.draw else ""))
            t = time.perf_counter()
            first = client.get(url0)
            first_s = time.perf_counter() - t
            if first.status_code != 200:
                pg.result = {"absent": True, "status": first.status_code, "url": url0}
                print(f"  {pg.name:<32} {url0}: {first.status_code} (absent)", file=sys.stderr)
                continue
            for _ in range(warmup if first_s < 2 else 0):  # a slow page: its first request was the warm-up
                client.get(pg.url.replace("{x}", str(pg.draw(rng, floor.n) if pg.draw else "")))
                pg.floor(floor, pg.person, pg.draw(rng, floor.n) if pg.draw else None)
            client_ms, floor_ms, ids, bad, sizes = [], [], [], [], []
            started = time.perf_counter()
            for i in range(n):
                if i >= 3 and time.perf_counter() - started > budget:
                    break
                x = pg.draw(rng, floor.n) if pg.draw else None
                url = pg.url.replace("{x}", str(x))
                rid = f"bc{k}-{i}"
                t = time.perf_counter()
                r = client.get(url, headers={"x-request-id": rid})
                r.read()
                client_ms.append((time.perf_counter() - t) * 1e3)
                ids.append(rid)
                sizes.append(len(r.content))
                if r.status_code != 200:
                    bad.append((url, r.status_code))
                t = time.perf_counter()
                pg.floor(floor, pg.person, x)
                floor_ms.append((time.perf_counter() - t) * 1e3)
            pg.result = {"absent": False, "url": pg.url, "person": pg.person, "ids": ids,
                         "client": summary(client_ms), "floor": summary(floor_ms), "errors": bad,
                         "bytes": int(sum(sizes) / len(sizes))}
            print(f"  {pg.name:<32} client p50 {pg.result['client']['p50']:.1f} ms, "
                  f"floor p50 {pg.result['floor']['p50']:.1f} ms", file=sys.stderr)
    finally:
        for c in clients.values():
            c.close()


# ------------------------------------------------------------------ profiling a slow page (in process)

def profile_pages(url: str, now: datetime, people: dict[str, dict[str, Any]], slow: list[Page], n_cases: int,
                  n: int, seed: int, budget: float = 60.0) -> dict[str, Any]:
    """cProfile of ``n`` requests (fewer after ``budget`` seconds) of each slow page to the same
    app in this process: the ASGI
    app driven from this thread, the thread pool run inline (so the route is in the profile)."""
    import fastapi.dependencies.utils
    import fastapi.routing
    import httpx

    async def inline(func: Any, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    fastapi.routing.run_in_threadpool = inline  # type: ignore[assignment]
    fastapi.dependencies.utils.run_in_threadpool = inline  # type: ignore[assignment]
    from workflow.api.app import create_app
    from workflow.bootstrap import build
    from workflow.clock import ManualClock
    from workflow.config import Settings

    application = build(Settings(database_url=url), clock=ManualClock(now))
    asgi = create_app(application)
    rng = random.Random(seed)
    out: dict[str, Any] = {}

    async def run() -> None:
        transport = httpx.ASGITransport(app=asgi)
        clients: dict[str, httpx.AsyncClient] = {}
        try:
            for pg in slow:
                if pg.person not in clients:
                    clients[pg.person] = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
                    r = await clients[pg.person].post("/signin", data={"login": people[pg.person]["login"],
                                                                       "password": PASSWORD}, follow_redirects=False)
                    assert r.status_code == 303, r.text[:300]
                client = clients[pg.person]
                urls = [pg.url.replace("{x}", str(pg.draw(rng, n_cases) if pg.draw else "")) for _ in range(n + 2)]
                t = time.perf_counter()
                await client.get(urls[0])
                if time.perf_counter() - t < 2:  # a second warm-up for a fast page
                    await client.get(urls[1])
                prof = cProfile.Profile()
                done = 0
                t = time.perf_counter()
                prof.enable()
                for u in urls[2:]:
                    if done and time.perf_counter() - t > budget:
                        break
                    await client.get(u)
                    done += 1
                prof.disable()
                wall = (time.perf_counter() - t) * 1e3 / done
                out[pg.name] = {"requests": done, "ms_per_request_profiled": wall, **top_entries(prof, done)}
        finally:
            for c in clients.values():
                await c.aclose()

    asyncio.run(run())
    application.engine.dispose()
    return out


def top_entries(prof: cProfile.Profile, n: int) -> dict[str, Any]:
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((file, line, func, calls, tottime, cumtime))

    def where(file: str, line: int, func: str) -> str:
        short = file.split("site-packages/")[-1].split("/src/")[-1]
        return f"{short}:{line}({func})"

    own = sorted(rows, key=lambda r: -r[4])[:10]
    ours = sorted((r for r in rows if ("/workflow/" in r[0] or r[0].endswith(".html"))
                   and r[2] not in ("__call__", "dispatch", "app")), key=lambda r: -r[5])[:10]
    return {"by_own_time": [{"where": where(*r[:3]), "calls_per_request": r[3] / n, "ms_per_request": r[4] * 1e3 / n}
                            for r in own],
            "product_by_cumulative": [{"where": where(*r[:3]), "calls_per_request": r[3] / n,
                                       "ms_per_request": r[5] * 1e3 / n} for r in ours]}


# ------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--quick", action="store_true", help="10,000 cases (for trying)")
    ap.add_argument("--events-per-case", type=int, default=20)
    ap.add_argument("--n", type=int, default=40, help="timed requests per page (at least 30 for the target)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--budget", type=float, default=240.0,
                    help="seconds a page may take (requests and floors); a slower page gets fewer requests (≥ 3)")
    ap.add_argument("--unit-accounts", type=int, default=1000, help="units' accounts besides the five signed in")
    ap.add_argument("--now", default=NOW, help="the server's fixed clock (ISO with a zone)")
    ap.add_argument("--system-clock", action="store_true",
                    help="run `workflow serve` itself (system clock, years after the seeded round)")
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "workflow-bench-api",
                    help="where bench/api.py caches the built database; the run's copy lives there too")
    ap.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    ap.add_argument("--keep", action="store_true", help="keep the run's database copy and server log")
    ap.add_argument("--no-profile", action="store_true", help="do not profile the pages over the target")
    ap.add_argument("--profile-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="measure only the pages whose names contain one of these "
                                               "(comma-separated)")
    ap.add_argument("--skip", default="", help="leave out the pages whose names contain one of these (comma-separated)")
    ap.add_argument("--serve-port", type=int, help=argparse.SUPPRESS)  # the server subprocess
    args = ap.parse_args()
    if args.serve_port:
        serve_here(args.serve_port, args.now)
        return
    if args.quick:
        args.cases = 10_000
    load_start = os.getloadavg()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_start)} (nproc {os.cpu_count()})",
          file=sys.stderr)
    args.dir.mkdir(parents=True, exist_ok=True)
    cached, seed_s, built = api.prepared(args.dir, args.cases, args.events_per_case, args.fresh)
    checked = api.check(cached, args.cases, args.events_per_case, 50, False)
    print(f"database {cached} ({cached.stat().st_size / 2**20:,.0f} MiB); "
          + (f"seeded in {seed_s:.1f} s" if built else "from the cache") + f"; audit {checked}", file=sys.stderr)

    work = args.dir / "console-run.db"
    for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(cached, work)
    url = f"sqlite:///{work}"
    now = datetime.now(UTC) if args.system_clock else datetime.fromisoformat(args.now)
    for name, value in (("EVIDENCE_DIR", "evidence"), ("MAILDIR", "mail"), ("CHECKPOINT_DIR", "checkpoints"),
                        ("CHECKPOINT_KEY", "keys/none.pem")):  # the server's and the floor's (no checkpoints)
        os.environ[f"WORKFLOW_{name}"] = str(args.dir / value)
    t = time.perf_counter()
    people = make_people(url, now, args.cases, args.unit_accounts)
    print(f"accounts made in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    floor = Floor(url, now, args.cases)
    # the nightly check of every chain (the scheduler's, at 02:30): what the audit pages show
    from workflow.adapters.db.migrate import upgrade

    upgrade(floor.app.engine)  # a database cached before the audit_runs table
    t = time.perf_counter()
    ran = floor.app.nightly_audit()
    audit_s = time.perf_counter() - t
    kept = floor.app.db.audit_runs.get(ran[-1]) if ran else None
    print(f"nightly check of every chain: {audit_s:.1f} s in the background "
          f"({kept.status if kept else 'not run'}, ok={kept.ok if kept else None})", file=sys.stderr)
    log_path = args.dir / "console-server.log"
    port = api.free_port()
    lock = None
    if args.system_clock:
        lock = api.hold_scheduler_lock(work)
        server = api.start_server(url, port, args.dir, log_path)
    else:
        server = start_server(url, port, args.dir, log_path, args.now)
    only = [w for w in args.only.split(",") if w]
    skip = [w for w in args.skip.split(",") if w]
    todo = [pg for pg in pages() if (not only or any(w in pg.name for w in only))
            and not any(w in pg.name for w in skip)]
    t = time.perf_counter()
    try:
        measure(f"http://127.0.0.1:{port}", people, floor, todo, args.n, args.warmup, args.seed, args.budget)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        if lock is not None:
            lock.close()
    measured_s = time.perf_counter() - t
    logged = server_times(log_path)
    server_errors = sum(1 for line in open(log_path, encoding="utf-8")
                        if '"level": "error"' in line or "Traceback" in line)

    rows, absent = {}, {}
    for pg in todo:
        res = pg.result
        if res.get("absent", True):
            absent[pg.name] = {"url": res.get("url", pg.url), "status": res.get("status")}
            continue
        server_ms = [logged[i] for i in res.pop("ids") if i in logged]
        res["server"] = summary(server_ms)
        res["met"] = res["server"]["p95"] <= TARGET_MS and len(server_ms) >= 30 and not res["errors"]
        rows[pg.name] = res
    slow = [pg for pg in todo if pg.name in rows and not rows[pg.name]["met"]]
    profiles = {}
    if slow and not args.no_profile:
        profiles = profile_pages(url, now, people, slow, args.cases, args.profile_n, args.seed + 1)
    floor.app.engine.dispose()
    load_end = os.getloadavg()

    print(f"\nnproc {os.cpu_count()}; SQLite {sqlite3.sqlite_version}; {args.cases:,} cases × {args.events_per_case} "
          f"events; server clock {'system' if args.system_clock else args.now}; {args.n} requests a page after "
          f"{args.warmup} warm-up, in a row, one keep-alive connection", file=sys.stderr)
    print(f"{'page':<30}{'n':>4}{'server p50':>11}{'p95':>8}{'max':>8}{'client p50':>12}{'p95':>8}{'floor p50':>11}"
          f"{'p95':>8}{'KiB':>6}  target p95 ≤ {TARGET_MS:g} ms", file=sys.stderr)
    for name, r in rows.items():
        s, c, f = r["server"], r["client"], r["floor"]
        print(f"{name:<30}{s['n']:>4}{s['p50']:>11.1f}{s['p95']:>8.1f}{s['max']:>8.1f}{c['p50']:>12.1f}{c['p95']:>8.1f}"
              f"{f['p50']:>11.1f}{f['p95']:>8.1f}{r['bytes'] / 1024:>6.0f}  {'MET' if r['met'] else 'NOT MET'}"
              + (f" ({len(r['errors'])} errors)" if r["errors"] else ""), file=sys.stderr)
    for name, a in absent.items():
        print(f"{name:<30}absent: {a['url']} answered {a['status']}", file=sys.stderr)
    for name, p in profiles.items():
        print(f"\nprofile of {name} ({p['requests']} requests in process, {p['ms_per_request_profiled']:.0f} ms "
              f"each under the profiler); by own time:", file=sys.stderr)
        for e in p["by_own_time"]:
            print(f"  {e['ms_per_request']:>8.1f} ms {e['calls_per_request']:>9.0f}×  {e['where']}", file=sys.stderr)
        print("  the product's functions by cumulative time:", file=sys.stderr)
        for e in p["product_by_cumulative"]:
            print(f"  {e['ms_per_request']:>8.1f} ms {e['calls_per_request']:>9.0f}×  {e['where']}", file=sys.stderr)
    met = bool(rows) and all(r["met"] for r in rows.values())
    print(f"\ntarget (every page's server p95 ≤ {TARGET_MS:g} ms): {'MET' if met else 'NOT MET'} over {len(rows)} "
          f"pages; absent {len(absent)}; server log errors {server_errors}; load average at end "
          f"{' '.join(f'{x:.2f}' for x in load_end)}", file=sys.stderr)
    if not args.keep:
        for p in (work, Path(f"{work}-wal"), Path(f"{work}-shm"), work.with_suffix(".scheduler.lock"), log_path):
            p.unlink(missing_ok=True)

    def rounded(x: Any) -> Any:
        if isinstance(x, float):
            return round(x, 2)
        if isinstance(x, dict):
            return {k: rounded(v) for k, v in x.items()}
        if isinstance(x, list):
            return [rounded(v) for v in x]
        return x

    print(json.dumps(rounded({
        "benchmark": "console", "nproc": os.cpu_count(), "sqlite": sqlite3.sqlite_version, "cases": args.cases,
        "events": args.cases * args.events_per_case, "clock": "system" if args.system_clock else args.now,
        "n": args.n, "warmup": args.warmup, "seeding_s": seed_s if built else None, "audit": checked,
        "nightly_check_s": round(audit_s, 1),
        "measured_s": measured_s, "load_start": list(load_start), "load_end": list(load_end),
        "target_ms": TARGET_MS, "pages": rows, "absent": absent, "profiles": profiles,
        "server_log_errors": server_errors, "target_met": met}), ensure_ascii=False))


if __name__ == "__main__":
    main()
