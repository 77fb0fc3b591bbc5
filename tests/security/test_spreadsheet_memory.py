"""The memory a hostile roster makes a real server spend: `workflow serve` in a subprocess (on
SQLite, and on PostgreSQL when configured), each hostile file of test_spreadsheets.py uploaded
to it, and the growth of its peak resident memory measured: VmHWM of /proc/<pid>/status, reset
to the present resident size through /proc/<pid>/clear_refs before each upload and read after
it. One request must never grow the process by more than a few hundred MB; the figures (MB,
and milliseconds to the refusal, never asserted) are printed (run with -s).

The issue's file, 1.6 KB with a merged range A2:XFD1048576, took the server to gigabytes.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from workflow.demo import ADMIN_LOGIN

from ..conftest import PG_SKIP_REASON, PG_URL
from ..serving import WORKFLOW, cli_account, start_serve, stop
from .test_spreadsheets import HEADER, HOSTILE, XLSX_MEDIA, package, row, sheet

BOUND_MB = 300  # the most one request may grow the server's peak memory by


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


# A hostile file is refused before the database is asked anything, so the default run measures
# on SQLite; the same measures on PostgreSQL run with --run-slow (docs/security.md has both).
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The environment of a served demo database, an admin token, and the database's name."""
    from workflow.adapters.db.engine import make_engine

    folder = tmp_path_factory.mktemp("memory")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_MAILDIR=str(folder / "mail"), WORKFLOW_EVIDENCE_DIR=str(folder / "ev"), COLUMNS="200",
               WORKFLOW_DATABASE_URL=f"sqlite:///{folder}/w.db")
    schema = None
    if request.param == "postgres":
        if not PG_URL:
            pytest.skip(PG_SKIP_REASON)
        schema = f"wf_memory_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with make_engine(PG_URL).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        env["WORKFLOW_DATABASE_URL"] = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    _run(env, "demo", "--example-only")
    secret = cli_account(env, "memory", "内存测试", "admin", actor=ADMIN_LOGIN, token=True)
    yield env, {"Authorization": f"Bearer {secret}"}, request.param, folder
    if schema is not None:
        with make_engine(PG_URL).begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def server(database: Any) -> Iterator[Any]:
    """A fresh server for each file (memory a process freed is reused before it grows again, so a
    server that read one file would hide what the next one costs), warmed up by a small roster
    of each kind so that the code that reads them is loaded before the measure."""
    env, auth, name, folder = database
    proc, base = start_serve(env, folder / "serve.log", "--name", "memory")
    warm = ("name,jurisdiction,category\n" + "预热单位,nowhere,行政机关\n").encode()
    for data, kind in ((warm, "text/csv"), (package(sheet(row(1, HEADER), row(2, ("预热单位", "nowhere", "行政机关")))),
                                            XLSX_MEDIA)):
        r = httpx.post(f"{base}/api/v1/units/import", params={"filename": "预热"}, content=data,
                       headers={**auth, "Content-Type": kind}, timeout=60)
        assert r.status_code == 422, r.text
    yield proc, base, auth, name
    stop(proc)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def upload(server: Any, data: bytes, filename: str) -> tuple[httpx.Response, float, float]:
    """The answer, the growth of the server's peak memory in MB, and the milliseconds it took."""
    proc, base, auth, _ = server
    Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # the peak, from now on
    before = peak_mb(proc.pid)
    kind = XLSX_MEDIA if filename.endswith(".xlsx") else "text/csv"
    started = time.perf_counter()
    r = httpx.post(f"{base}/api/v1/units/import", params={"filename": filename}, content=data,
                   headers={**auth, "Content-Type": kind}, timeout=600)
    took = (time.perf_counter() - started) * 1000
    return r, peak_mb(proc.pid) - before, took


def report(server: Any, name: str, size: int, growth: float, took: float) -> None:
    print(f"\n[roster memory] {server[3]:8} {name:28} {size / 1024:9.1f} KB  server peak +{growth:6.1f} MB  "
          f"refused in {took:8.0f} ms")


# A fresh server per file costs ~5 s; the default run measures the files that cost the most
# memory when they were not refused early (the merged range, a million rows, 200 MB of
# names or of shared strings, the zip bomb, a million CSV rows); every other file with --run-slow.
# test_spreadsheets.py checks every file's refusal in the default run.
MEASURED = {"merged A2:XFD1048576", "a million rows", "200 MB of names", "200 MB of shared strings", "zip bomb",
            "a million CSV rows"}
MEMORY_CASES = [pytest.param(*p.values, id=p.id, marks=() if p.id in MEASURED else (pytest.mark.slow,))
                for p in HOSTILE]


@pytest.mark.parametrize("build,filename,where,what", MEMORY_CASES)
def test_a_hostile_roster_grows_the_server_by_less_than_the_bound(
        request: pytest.FixtureRequest, server: Any, build: Callable[[], bytes], filename: str, where: str,
        what: str) -> None:
    data = build()
    r, growth, took = upload(server, data, filename)
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["details"]["problems"][0]
    assert problem["where"] == f"{filename}{where}" and what in problem["what"], problem
    report(server, request.node.callspec.id.split("-", 1)[-1], len(data), growth, took)
    assert growth < BOUND_MB, f"{growth:.0f} MB"


def test_150000_bad_rows_grow_the_server_by_less_than_the_bound(server: Any) -> None:
    data = ("name,jurisdiction,category\n" + "".join(f"错误类别测试局{i},shanxi,乱写\n" for i in range(150_000))).encode()
    r, growth, took = upload(server, data, "坏名单.csv")
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert len(details["problems"]) == 100 and details["problem_count"] == 150_000
    report(server, "150000 bad rows", len(data), growth, took)
    assert growth < BOUND_MB, f"{growth:.0f} MB"


def test_the_measure_sees_a_request_that_holds_memory(server: Any) -> None:
    """The measure itself: a roster of 100,000 good rows within the limits and one bad last row,
    checked row by row (the rows stream, but every row's key is kept to find duplicates, and the
    good rows are written in the transaction the bad one refuses), shows as growth."""
    data = ("name,jurisdiction,category\n" + "".join(f"量测单位{i},shanxi,行政机关\n" for i in range(100_000))
            + "量测单位,nowhere,行政机关\n").encode()
    r, growth, took = upload(server, data, "量测.csv")
    assert r.status_code == 422 and len(r.json()["error"]["details"]["problems"]) == 1, r.text
    report(server, "100000 rows (a reference)", len(data), growth, took)
    assert growth > 10
