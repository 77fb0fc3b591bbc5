"""The README's first five minutes, as a newcomer follows them: a fresh clone in a
temporary folder, a new virtual environment, every ``<!-- newcomer -->`` command as
written. The long-running ``workflow serve`` is started in the background and asked
over HTTP whether it answers; the test command is run collecting one file (running the whole
suite inside itself would recurse)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from workflow.config import REPO_ROOT

README = REPO_ROOT / "README.md"


def _blocks(marker: str) -> list[list[str]]:
    """The commands of every fenced block that follows ``marker``."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(re.escape(marker) + r"\s*```sh\n(.*?)```", text, re.S):
        out.append([line for line in m.group(1).splitlines() if line.strip() and not line.startswith("#")])
    return out


def test_the_readme_marks_its_newcomer_commands() -> None:
    commands = [c for block in _blocks("<!-- newcomer -->") for c in block]
    assert any(c.endswith("workflow serve") for c in commands)
    assert any("simulate examples/shanxi-2021.yaml" in c for c in commands)
    assert any("tokens create" in c for c in commands)
    assert len(_blocks("<!-- test-command -->")) == 1


def test_the_readme_walks_a_unit_a_coordinator_and_an_auditor_through_a_day() -> None:
    unit, coordinator, auditor = _blocks("<!-- day -->")
    assert any("--actor unit01" in c for c in unit) and any("curl" in c for c in unit)
    assert any("--actor coord-shanxi" in c for c in coordinator) and any("curl" in c for c in coordinator)
    assert any("audit verify" in c for c in auditor) and any("curl" in c for c in auditor)


def _a_day_in_the_round(clone: Path, env: dict[str, str], base: str) -> None:
    """Each ``<!-- day -->`` block as one script (its variables carry from line to line), on the
    demo's database while the server runs; then what the day left behind."""
    for block in _blocks("<!-- day -->"):
        done = subprocess.run(["bash", "-ec", "\n".join(block)], cwd=clone, env={**env, "API": base},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{block}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    history = next((clone / "var").glob("*-历史.csv")).read_text(encoding="utf-8-sig")
    certified = [line for line in history.splitlines() if ",CaseCertified," in line and line.startswith("10,")]
    assert certified and ",王科长," in certified[0] and ",cli," in certified[0], certified
    assessed = [line for line in history.splitlines() if ",SelfAssessmentRecorded," in line and line.startswith("1,")]
    assert assessed and ",unit:1;account=" in assessed[-1], assessed
    assert "发放令牌" in (clone / "var" / "令牌变更.csv").read_text(encoding="utf-8-sig")
    assert any((clone / "var").glob("*-进度.xlsx")) and any((clone / "var").glob("*-案件.xlsx"))


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(os.environ.get("WORKFLOW_README_TEST") == "inner", reason="inside the README test itself")
def test_a_newcomer_follows_the_readme(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WORKFLOW_", "VIRTUAL_ENV", "PYTHON")) and k != "COLUMNS"}
    env.update(COLUMNS="160", WORKFLOW_README_TEST="inner")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)

    def sh(command: str, timeout: int = 900) -> str:
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout

    newcomer = _blocks("<!-- newcomer -->")
    (run_command,) = newcomer[0]
    assert run_command.endswith("&& .venv/bin/workflow serve")
    setup, serve = run_command.rsplit(" && ", 1)
    sh(setup)  # the venv, the install from the package index, the demo data
    port = 8000 if _port_free(8000) else None
    serve_args = serve if port else f"{serve} --port 18765"
    proc = subprocess.Popen(["bash", "-c", f"exec {serve_args}"], cwd=clone, env=env, stdout=subprocess.PIPE,
                            stderr=open(tmp_path / "serve.log", "w"), text=True)  # a file: an unread pipe would fill and block the server
    base = f"http://127.0.0.1:{port or 18765}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.1)  # waiting for the server to listen, not timing anything
        (token_command,) = newcomer[1]
        secret = sh(token_command).strip().splitlines()[-1]
        cases = httpx.get(f"{base}/api/v1/cases?round=shanxi-2021", headers={"Authorization": f"Bearer {secret}"})
        assert cases.status_code == 200 and len(cases.json()["items"]) == 35
        assert httpx.get(f"{base}/docs").status_code == 200
        # the console, as the README's first five minutes open it: the demo's coordinator signs in
        with httpx.Client(base_url=base) as browser:
            signed = browser.post("/signin", data={"login": "coord-shanxi", "password": "jieyue-demo-2021"})
            assert signed.status_code == 303 and "wf_session" in signed.headers.get("set-cookie", "")
            home = browser.get("/")
            assert home.status_code == 200 and "创建进度" in home.text and "王科长" in home.text
        _a_day_in_the_round(clone, env, base)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    for command in newcomer[2]:
        out = sh(command)
        assert "summary" in out and "actions refused 0" in out
    assert any((clone / "var" / "simulate" / "shanxi-2021" / "mail" / "new").iterdir())
    assert (clone / "var" / "hunan-events.jsonl").stat().st_size > 0
    (test_command,) = _blocks("<!-- test-command -->")[0]
    # the test command as written (its venv and install again: nothing to do), collecting one
    # file: collecting every test would take ~15 s more and prove nothing more about the command
    collected = sh(f"{test_command} --collect-only -q -n0 tests/unit/test_architecture.py")
    assert re.search(r"\d+ tests? collected", collected)
