"""End to end: `workflow serve` in a subprocess on a free port, driven over HTTP."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from workflow.demo import ADMIN_LOGIN

from ..serving import WORKFLOW, cli_account, start_serve, stop


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), COLUMNS="200")
    _run(env, "demo", "--example-only")
    secret = cli_account(env, "wang", "王科长", "coordinator", "--jurisdiction", "shanxi", actor=ADMIN_LOGIN,
                         token=True)  # made by the demo's admin
    proc, base = start_serve(env, tmp_path / "serve.log", "--name", "e2e")
    yield base, {"Authorization": f"Bearer {secret}"}, proc
    stop(proc)


def test_serve_answers_and_acts(served) -> None:
    base, auth, proc = served
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["database"] == "ok"
    case = httpx.get(f"{base}/api/v1/cases/1", headers=auth).json()
    assert case["state"] == "registered" and "withdraw" in case["allowed_actions"]
    r = httpx.post(f"{base}/api/v1/cases/1/actions/withdraw", headers=auth,
                   json={"version": case["version"], "data": {"reason": "机构改革，单位撤并"}})
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    history = httpx.get(f"{base}/api/v1/cases/1/history", headers=auth).json()
    assert [e["type"] for e in history][-1] == "CaseWithdrawn"
    actor = history[-1]["actor"]  # the account, its display name and the channel
    assert actor.startswith("coordinator:wang;account=") and actor.endswith(";name=王科长;via=api"), actor
    assert httpx.get(f"{base}/openapi.json").json()["info"]["version"] == "1"
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully and then re-raises the signal, as a server should
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)



@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_upload_works_as_written(served, tmp_path: Path) -> None:
    """The README's upload line, run with curl against a real server: two files with Chinese
    names in one multipart request, stored as themselves (not the multipart wrapper)."""
    base, _, _ = served
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db")  # the served database (same tmp_path)
    token = cli_account(env, "sw.bgt", "省委办公厅", "unit", "--unit", "1", actor=ADMIN_LOGIN, token=True)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in readme.split("\ncurl ")[1:] if "-F file=@" in b)
    command = "curl " + " ".join(part.split("#")[0].strip().rstrip("\\").strip() for part in block.splitlines()[:2])
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("方案.pdf", "节水照片.pdf"):
        (folder / name).write_bytes(b"%PDF-1.4\n% " + name.encode() + b"\n%%EOF\n")
    done = subprocess.run(["bash", "-c", command.replace("http://127.0.0.1:8000", base) + " -s --fail-with-body"],
                          cwd=folder, capture_output=True, text=True, env={**env, "TOKEN": token}, timeout=60)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    files = json.loads(done.stdout)["files"]
    assert [f["filename"] for f in files] == ["方案.pdf", "节水照片.pdf"]
    got = httpx.get(f"{base}/api/v1/cases/1/evidence/{files[0]['sha256']}", headers={"Authorization": f"Bearer {token}"})
    assert got.content == (folder / "方案.pdf").read_bytes()


def test_serve_signs_a_checkpoint_as_soon_as_it_leads(tmp_path: Path) -> None:
    """With a key, the elected process anchors the audit chain at once (then every hour)."""
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"), WORKFLOW_CHECKPOINT_DIR=str(tmp_path / "checkpoints"),
               WORKFLOW_CHECKPOINT_KEY=str(tmp_path / "keys" / "k.pem"), COLUMNS="200")
    _run(env, "demo", "--example-only")
    _run(env, "audit", "keygen")
    proc, _ = start_serve(env, tmp_path / "serve.log", "--name", "anchor")
    try:
        written = []
        for _ in range(300):  # waiting for the subprocess to lead, not timing anything
            written = sorted((tmp_path / "checkpoints").glob("checkpoint-*.json"))
            if written:
                break
            time.sleep(0.1)
        assert [p.name for p in written] == ["checkpoint-00000001.json"], (tmp_path / "serve.log").read_text()[-2000:]
    finally:
        stop(proc)
    assert "checkpoints ok" in _run(env, "audit", "verify", "--checkpoints")
