"""Security costs: a signed checkpoint, `audit verify` against checkpoints, the request guard.

Setup (not timed): N units and a round opened through the real service (a case and its
CaseRegistered event each), then 5 `attach_evidence` events a case made by the real
``decide``/``apply`` and appended through the store, in 23 chunks of cases, one transaction
a chunk. A signed checkpoint (Ed25519 key from ``generate_key``, directory store) is written
after the registrations and after every chunk: 24 checkpoints in one directory; another
directory holds only one, written at the end. Both see the same final heads.

Timed, on SQLite (WAL) and, with ``--pg``, on PostgreSQL (a schema of its own):

1. ``checkpoint``: ``write_checkpoint`` (read the chain heads, read the previous checkpoint,
   Merkle tree, sign, write the file with fsync), ``--repeat`` times, each following the one
   before. Floor: the chain heads read with one raw query on the DB-API connection, SHA-256
   over the bytes our checkpoint signed, and one Ed25519 signature of them.
2. ``verify``: ``service/audit.verify`` alone, and followed by ``verify_checkpoints``
   against 1 and against 24 checkpoints (what ``workflow audit verify --checkpoints``
   does). Floor: every event row read raw and each event's hash recomputed once from it
   (``domain/events.chain_hash``'s material) and compared with the stored hash and link.
3. ``guard``: ``GET /api/v1/cases/1`` and ``POST /api/v1/cases/1/actions/self_assess`` (a
   small body with a stale version: answered 409 without writing) as the case's unit,
   through ``TestClient(create_app(app))``, ``--requests`` times each, with the request
   guard and with a copy of the app whose ``user_middleware`` lost the Guard entry (the
   "floor"), in 20 blocks each, the two in turn; the median block counts, wall and CPU
   time of the process (all its threads). Logging as ``workflow serve`` configures it,
   written to /dev/null.

Ratios are floor / ours (1.0: no cost above the floor). Figures are medians of the
repeats. The last line is one JSON object.

    python bench/security.py [--cases 3000] [--repeat 5] [--requests 2000]
                             [--pg postgresql://postgres@127.0.0.1:5432/test]
"""
from __future__ import annotations

import sys
from pathlib import Path

# bench/transitions.py is named like the `transitions` package: keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from typing import Any  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from workflow.adapters.calendar_files import CalendarCatalog  # noqa: E402
from workflow.adapters.checkpoint_files import CheckpointDirectory, Ed25519Signer, generate_key  # noqa: E402
from workflow.adapters.db.engine import make_engine  # noqa: E402
from workflow.adapters.db.migrate import upgrade  # noqa: E402
from workflow.adapters.db.store import Database  # noqa: E402
from workflow.adapters.db.tables import Unit  # noqa: E402
from workflow.adapters.rubric_files import RubricCatalog  # noqa: E402
from workflow.config import REPO_ROOT  # noqa: E402
from workflow.domain.case import Actor, apply, decide  # noqa: E402
from workflow.domain.events import GENESIS_HASH  # noqa: E402
from workflow.files import import_jurisdictions  # noqa: E402
from workflow.service.audit import verify  # noqa: E402
from workflow.service.checkpoints import verify_checkpoints, write_checkpoint  # noqa: E402
from workflow.service.rounds import open_round  # noqa: E402

T0 = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
RUBRIC = RubricCatalog(REPO_ROOT / "rubrics").get("shanxi-2020")
EVIDENCE = 5  # attach_evidence events a case (after its registration)
CHUNKS = 23  # checkpoints after the registrations and after each chunk: 24
BLOCKS = 20  # the requests of each kind in blocks, with and without the guard in turn
HEADS_SQL = ("SELECT e.case_id, e.seq, e.hash FROM events e JOIN (SELECT case_id, MAX(seq) AS seq FROM events "
             "GROUP BY case_id) m ON m.case_id = e.case_id AND m.seq = e.seq ORDER BY e.case_id")
EVENTS_SQL = "SELECT case_id, seq, type, actor, occurred_at, payload, prev_hash, hash FROM events ORDER BY case_id, seq"


def criteria() -> list[str]:
    from workflow.simulate import complete_sheet

    sheet = complete_sheet(RUBRIC, Decimal("85"))
    return [code for code, value in sheet.items() if value != "0"][:EVIDENCE]


class Setup:
    """A database of N cases, 6 events each, and the two checkpoint directories."""

    def __init__(self, url: str, n: int, tmp: Path) -> None:
        self.url = url
        engine = make_engine(url)
        upgrade(engine)
        self.db = db = Database(engine)
        import_jurisdictions(db, REPO_ROOT / "examples" / "jurisdictions.csv")
        with engine.begin() as conn:
            conn.execute(insert(Unit), [dict(jurisdiction_id="shanxi", name=f"单位{i:06d}", level="provincial",
                                             category="行政机关", contacts=[], created_at=T0, updated_at=T0)
                                        for i in range(n)])
        open_round(db, RubricCatalog(REPO_ROOT / "rubrics"), CalendarCatalog(REPO_ROOT / "calendars"),
                   province_id="shanxi", year=2021, rubric_id="shanxi-2020", calendar_id="shanxi-2021",
                   target_share="0.5", actor=Actor("admin", "bench"), now=T0)
        with engine.connect() as conn:
            self.cases = [(r[0], r[1]) for r in conn.execute(text("SELECT id, unit_id FROM cases ORDER BY id"))]
        self.key = tmp / "keys" / "checkpoint-ed25519.pem"
        _, self.verifier = generate_key(self.key)
        self.signer = Ed25519Signer.from_file(self.key)
        self.every = CheckpointDirectory(tmp / "checkpoints-24")
        self.one = CheckpointDirectory(tmp / "checkpoints-1")
        self.written = CheckpointDirectory(tmp / "checkpoints-timed")
        now = T0
        write_checkpoint(db, self.every, self.signer, now)
        codes = criteria()
        work = [(code, case_id, unit_id) for code in codes for case_id, unit_id in self.cases]
        size = -(-len(work) // CHUNKS)
        for start in range(0, len(work), size):
            now += timedelta(minutes=10)
            with db.unit_of_work() as uow:
                for code, case_id, unit_id in work[start:start + size]:
                    case = uow.get(case_id)
                    event = decide(case, "attach_evidence", {"criterion": code, "sha256": "ab" * 32,
                                                             "filename": f"{code}.pdf", "size": 1, "type": "pdf"},
                                   Actor("unit", str(unit_id)), now, uow.round_context(case.round_id))
                    uow.append(case, event, apply(case, event))
                uow.commit()
            write_checkpoint(db, self.every, self.signer, now)
        self.now = now + timedelta(minutes=10)
        write_checkpoint(db, self.one, self.signer, self.now)
        assert len(self.every.sequences()) == CHUNKS + 1 and len(self.one.sequences()) == 1
        with engine.connect() as conn:
            self.events = conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one()
            self.duty_events = conn.execute(text("SELECT COUNT(*) FROM duty_events")).scalar_one()


# ------------------------------------------------------------------ 1. writing a checkpoint

def checkpoint_floor(s: Setup, signed: bytes, key: Any) -> tuple[float, int]:
    """The unavoidable work: the heads in one raw query, SHA-256 of the signed bytes, one signature."""
    raw = s.db.engine.raw_connection()
    try:
        t = time.perf_counter()
        cur = raw.cursor()
        cur.execute(HEADS_SQL)
        rows = cur.fetchall()
        hashlib.sha256(signed).digest()
        key.sign(signed)
        seconds = time.perf_counter() - t
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return seconds, len(rows)


def bench_checkpoint(s: Setup, repeat: int) -> dict[str, Any]:
    key = serialization.load_pem_private_key(s.key.read_bytes(), password=None)
    done = write_checkpoint(s.db, s.written, s.signer, s.now)  # not timed: every timed one has a previous one
    ours, floor, files = [], [], []
    for i in range(repeat):
        signed = done.checkpoint.signed_bytes()
        seconds, heads = checkpoint_floor(s, signed, key)
        assert heads == done.checkpoint.counts["cases"], (heads, done.checkpoint.counts)
        floor.append(seconds)
        t = time.perf_counter()
        done = write_checkpoint(s.db, s.written, s.signer, s.now + timedelta(minutes=i + 1))
        ours.append(time.perf_counter() - t)
        # for the record only (not in the floor): writing those bytes as the store does, fsync'd
        data = (s.written.directory / done.name).read_bytes()
        t = time.perf_counter()
        path = s.written.directory / f"scratch-{i}.json"
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fd = os.open(s.written.directory, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        files.append(time.perf_counter() - t)
        path.unlink()
    o, f = statistics.median(ours), statistics.median(floor)
    return {"checkpoint_s": round(o, 4), "checkpoint_floor_s": round(f, 4), "checkpoint_ratio": round(f / o, 3),
            "checkpoint_bytes": len(data), "checkpoint_file_fsync_s": round(statistics.median(files), 4)}


# ------------------------------------------------------------------ 2. audit verify

def verify_floor(s: Setup) -> tuple[float, int]:
    """Every event row read raw, its hash recomputed once and compared (hash and link)."""
    sqlite = s.db.engine.dialect.name == "sqlite"
    raw = s.db.engine.raw_connection()
    try:
        t = time.perf_counter()
        cur = raw.cursor()
        cur.execute(EVENTS_SQL)
        bad = 0
        last_case, prev = None, GENESIS_HASH
        sha256 = hashlib.sha256
        while rows := cur.fetchmany(5000):
            for case_id, seq, type_, actor, at, payload, prev_hash, hash_ in rows:
                if case_id != last_case:
                    last_case, prev = case_id, GENESIS_HASH
                # SQLite keeps naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; psycopg gives an aware datetime
                iso = f"{at[:10]}T{at[11:]}+00:00" if sqlite else at.astimezone(UTC).isoformat(timespec="microseconds")
                material = f"{case_id}\x1f{seq}\x1f{type_}\x1f{actor}\x1f{iso}\x1f{payload}\x1f{prev_hash}"
                if sha256(material.encode("utf-8")).hexdigest() != hash_ or prev_hash != prev:
                    bad += 1
                prev = hash_
        seconds = time.perf_counter() - t
        cur.close()
        raw.rollback()
    finally:
        raw.close()
    return seconds, bad


def bench_verify(s: Setup, repeat: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"floor": [], "plain": [], "one": [], "every": [], "one_ckpt": [],
                                     "every_ckpt": []}
    for _ in range(repeat):
        seconds, bad = verify_floor(s)
        assert bad == 0, f"the floor recomputed {bad} hashes differently"
        times["floor"].append(seconds)
        t = time.perf_counter()
        report = verify(s.db)
        times["plain"].append(time.perf_counter() - t)
        assert report.ok and report.events == s.events, report.findings[:3]
        for name, store in (("one", s.one), ("every", s.every)):
            t = time.perf_counter()
            report = verify(s.db)
            middle = time.perf_counter()
            anchored = verify_checkpoints(s.db, store, s.verifier)
            end = time.perf_counter()
            assert report.ok and anchored.ok, (report.findings[:3], anchored.findings[:3])
            assert anchored.checked == len(store.sequences())
            times[name].append(end - t)
            times[f"{name}_ckpt"].append(end - middle)
    m = {k: statistics.median(v) for k, v in times.items()}
    f = m["floor"]
    return {"verify_floor_s": round(f, 3), "verify_s": round(m["plain"], 3), "verify_ratio": round(f / m["plain"], 3),
            "verify_1_s": round(m["one"], 3), "verify_1_ratio": round(f / m["one"], 3),
            "verify_1_checkpoints_part_s": round(m["one_ckpt"], 3),
            "verify_24_s": round(m["every"], 3), "verify_24_ratio": round(f / m["every"], 3),
            "verify_24_checkpoints_part_s": round(m["every_ckpt"], 3)}


# ------------------------------------------------------------------ 3. the request guard

def bench_guard(s: Setup, tmp: Path, requests: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from workflow.api.app import create_app
    from workflow.api.guard import Guard
    from workflow.bootstrap import App
    from workflow.clock import ManualClock
    from workflow.config import Settings
    from workflow.logging import configure_logging
    from workflow.service.tokens import create_token

    configure_logging("INFO")  # as `workflow serve` does; the lines go nowhere
    logging.getLogger().handlers[0].setStream(open(os.devnull, "w"))  # open until the process ends
    settings = Settings(database_url=s.url, evidence_dir=tmp / "evidence", maildir=tmp / "mail",
                        checkpoint_dir=s.every.directory, checkpoint_key=s.key)
    application = App(settings=settings, engine=s.db.engine, db=s.db, clock=ManualClock(s.now),
                      calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    case_id, unit_id = s.cases[0]
    made = create_token(s.db, name="unit-bench", role="unit", unit_id=unit_id, created_by="admin:bench", now=s.now)
    headers = {"Authorization": f"Bearer {made.secret}"}
    body = {"version": 999, "data": {"entries": {"1.1.1": "2"}}}  # stale version: 409, nothing written
    guarded = create_app(application)
    bare = create_app(application)
    bare.user_middleware = [m for m in bare.user_middleware if m.cls is not Guard]  # before the stack is built
    assert len(bare.user_middleware) == len(guarded.user_middleware) - 1
    get_path, post_path = f"/api/v1/cases/{case_id}", f"/api/v1/cases/{case_id}/actions/self_assess"
    result: dict[str, Any] = {}
    with TestClient(guarded) as with_guard, TestClient(bare) as without:
        clients = {"guard": with_guard, "bare": without}
        for method in ("get", "post"):
            def call(client: TestClient, method: str = method) -> int:
                if method == "get":
                    return client.get(get_path, headers=headers).status_code
                return client.post(post_path, headers=headers, json=body).status_code

            statuses = {name: {call(c) for _ in range(50)} for name, c in clients.items()}  # warm-up
            assert statuses["guard"] == statuses["bare"] and len(statuses["guard"]) == 1, statuses
            assert "x-content-type-options" in with_guard.get(get_path, headers=headers).headers
            # µs a request, block by block: wall, and CPU of the whole process (every thread)
            wall: dict[str, list[float]] = {"guard": [], "bare": []}
            cpu: dict[str, list[float]] = {"guard": [], "bare": []}
            size = max(1, requests // BLOCKS)
            for b in range(BLOCKS):
                for name in (("guard", "bare") if b % 2 == 0 else ("bare", "guard")):
                    client = clients[name]
                    t, c = time.perf_counter(), time.process_time()
                    for _ in range(size):
                        call(client)
                    wall[name].append((time.perf_counter() - t) / size * 1e6)
                    cpu[name].append((time.process_time() - c) / size * 1e6)
            g, f = statistics.median(wall["guard"]), statistics.median(wall["bare"])
            gc, fc = statistics.median(cpu["guard"]), statistics.median(cpu["bare"])
            result.update({f"{method}_status": next(iter(statuses["guard"])), f"{method}_guard_us": round(g, 1),
                           f"{method}_bare_us": round(f, 1), f"{method}_ratio": round(f / g, 3),
                           f"{method}_guard_cpu_us": round(gc, 1), f"{method}_bare_cpu_us": round(fc, 1),
                           f"{method}_cpu_ratio": round(fc / gc, 3)})
    return result


def run(url: str, n: int, tmp: Path, repeat: int, requests: int, label: str) -> dict[str, Any]:
    t = time.perf_counter()
    s = Setup(url, n, tmp)
    print(f"{label}: setup {len(s.cases):,} cases, {s.events:,} events ({s.duty_events} duty events), 24 "
          f"checkpoints in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    out: dict[str, Any] = {"events": s.events}
    out.update(bench_checkpoint(s, repeat))
    print(f"{label}: checkpoint {out['checkpoint_s'] * 1e3:.1f} ms ({out['checkpoint_bytes']:,} bytes), floor "
          f"{out['checkpoint_floor_s'] * 1e3:.1f} ms, ratio {out['checkpoint_ratio']:.3f} (an fsync'd write of the "
          f"file alone: {out['checkpoint_file_fsync_s'] * 1e3:.1f} ms)", file=sys.stderr)
    out.update(bench_verify(s, repeat))
    print(f"{label}: verify {out['verify_s']:.2f} s, with 1 checkpoint {out['verify_1_s']:.2f} s, with 24 "
          f"{out['verify_24_s']:.2f} s; floor {out['verify_floor_s']:.3f} s; ratios {out['verify_ratio']:.3f} · "
          f"{out['verify_1_ratio']:.3f} · {out['verify_24_ratio']:.3f}", file=sys.stderr)
    out.update(bench_guard(s, tmp, requests))
    for method in ("get", "post"):
        print(f"{label}: {method.upper()} ({out[f'{method}_status']}) with the guard {out[f'{method}_guard_us']:.0f} "
              f"us, without {out[f'{method}_bare_us']:.0f} us, ratio {out[f'{method}_ratio']:.3f}; CPU "
              f"{out[f'{method}_guard_cpu_us']:.0f} · {out[f'{method}_bare_cpu_us']:.0f} us, ratio "
              f"{out[f'{method}_cpu_ratio']:.3f}", file=sys.stderr)
    s.db.engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5, help="checkpoint writes and verifications timed (median)")
    ap.add_argument("--requests", type=int, default=2000, help="requests of each kind, with and without the guard")
    ap.add_argument("--pg", help="also run on this PostgreSQL URL (a schema of its own, dropped after)")
    args = ap.parse_args()
    result: dict[str, Any] = {"benchmark": "security", "cases": args.cases, "checkpoints": CHUNKS + 1,
                              "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        out = run(f"sqlite:///{tmp}/bench.db", args.cases, Path(tmp), args.repeat, args.requests, "sqlite")
        result.update({f"sqlite_{k}": v for k, v in out.items()})
    if args.pg:
        schema = f"bench_{uuid.uuid4().hex[:6]}"
        admin = make_engine(args.pg)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        sep = "&" if "?" in args.pg else "?"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                out = run(f"{args.pg}{sep}options=-csearch_path%3D{schema}", args.cases, Path(tmp), args.repeat,
                          args.requests, "postgres")
                result.update({f"pg_{k}": v for k, v in out.items()})
        finally:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
