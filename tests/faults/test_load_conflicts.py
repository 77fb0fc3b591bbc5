"""Load with conflicts: 50 concurrent clients take conflicting actions on 100 cases for 15
seconds (a minute or more with WORKFLOW_LOAD_SECONDS=60) against `workflow serve` (SQLite).
Every answer is 2xx, 409 or 422 — never 5xx — and afterwards every case equals the replay of its events (`workflow audit verify`)."""
from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx

from workflow.simulate import complete_sheet

from ..serving import WORKFLOW, cli_account, start_serve, stop
from ..support import RUBRICS

SECONDS = float(os.environ.get("WORKFLOW_LOAD_SECONDS", "15"))  # a minute or more: WORKFLOW_LOAD_SECONDS=60
CLIENTS, CASES = 50, 100


def _data(action: str, rng: random.Random) -> dict:
    rubric = RUBRICS.get("shanxi-2020")
    if action == "self_assess":  # an all-zero sheet needs no evidence, so the case can be submitted
        return {"entries": complete_sheet(rubric, Decimal(0)) if rng.random() < 0.7 else {"1.1.1": str(rng.randint(0, 9))}}
    if action in ("verify", "recheck"):
        return {"entries": complete_sheet(rubric, Decimal(rng.choice(["60", "75", "79.5", "80", "92"])))}
    if action in ("return", "withdraw", "close"):
        return {"reason": "负载测试"}
    if action == "extend_rectification":
        return {"reason": "负载测试", "days": rng.randint(1, 10)}
    return {}


def test_fifty_clients_racing_on_a_hundred_cases(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_")}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/load.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"))
    roster = tmp_path / "units.csv"
    roster.write_text("name,jurisdiction,category\n" + "".join(f"负载单位{i},shanxi,行政机关\n" for i in range(CASES)),
                      encoding="utf-8")
    root = Path(__file__).resolve().parents[2]

    def cli(*args: str) -> str:
        done = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120, cwd=root)
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("db", "upgrade")
    secret = cli_account(env, "load", "负载测试", "admin", actor=None, token=True, cwd=root)  # the first account
    cli("jurisdictions", "import", "examples/jurisdictions.csv", "--actor", "load")
    cli("units", "import", str(roster), "--actor", "load")
    cli("rounds", "open", "--province", "shanxi", "--year", "2021", "--rubric", "shanxi-2020", "--calendar",
        "shanxi-2021", "--target", "0.5", "--actor", "load")
    proc, base = start_serve(env, tmp_path / "serve.log", "--name", "load", cwd=root)
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=30) as http:
            for case_id in range(1, CASES + 1):  # the documents the round asks for, so cases can be submitted
                for document in ("self_report", "score_sheet"):
                    r = http.post(f"/api/v1/cases/{case_id}/documents", params={"document": document,
                                                                                "filename": f"{document}.pdf"},
                                  content=b"%PDF-1.4\n% " + f"{case_id} {document}".encode() + b"\n%%EOF\n")
                    assert r.status_code == 201, r.text
        statuses: Counter = Counter()
        bad: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + SECONDS

        def client(seed: int) -> None:
            rng = random.Random(seed)
            auth = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(base_url=base, headers=auth, timeout=30) as http:
                while time.monotonic() < deadline:
                    case_id = rng.randint(1, CASES)
                    got = http.get(f"/api/v1/cases/{case_id}")
                    seen = [got.status_code]
                    if got.status_code == 200:
                        case = got.json()
                        choices = [a for a in case["allowed_actions"] if a not in (
                            "attach_evidence", "remove_evidence", "attach_document", "remove_document")]
                        if rng.random() < 0.9:  # mostly the next step, sometimes the wrong one
                            choices = [a for a in choices if a not in ("withdraw", "close")] or choices
                        action = rng.choice(choices or ["submit"])
                        if rng.random() < 0.1:
                            action = rng.choice(["certify", "submit", "verify", "fail", "request_recheck"])
                        version = case["version"] - (1 if rng.random() < 0.15 and case["version"] > 1 else 0)
                        try:
                            r = http.post(f"/api/v1/cases/{case_id}/actions/{action}",
                                          json={"version": version, "data": _data(action, rng)})
                        except httpx.HTTPError as exc:
                            with lock:
                                bad.append(f"{action} on {case_id}: {type(exc).__name__}")
                            continue
                        seen.append(r.status_code)
                        if r.status_code >= 500 or r.status_code not in (200, 201, 409, 422):
                            with lock:
                                bad.append(f"{action} on {case_id}: {r.status_code} {r.text[:300]}")
                    with lock:
                        statuses.update(seen)

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not bad, bad[:5]
        assert statuses[200] > 0 and statuses[409] > 0, statuses
        assert set(statuses) <= {200, 201, 409, 422}, statuses
    finally:
        stop(proc)
    audit = subprocess.run([WORKFLOW, "audit", "verify"], env=env, capture_output=True, text=True, timeout=300)
    assert audit.returncode == 0, audit.stdout + audit.stderr
