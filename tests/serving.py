"""Running `workflow serve` (and the CLI) in a subprocess for end-to-end tests."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

WORKFLOW = str(Path(sys.executable).parent / "workflow")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(env: dict[str, str], log: Path, *args: str, cwd: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`workflow serve` on a free port, its logs to ``log`` (a file: an unread pipe fills up
    and blocks the server's logging); returns once /healthz answers."""
    port = free_port()
    proc = subprocess.Popen([WORKFLOW, "serve", "--port", str(port), *args], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"), text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {log.read_text()[-3000:]}")
        time.sleep(0.1)  # waiting for a subprocess to listen, not timing anything
    stop(proc)
    pytest.fail(f"serve did not answer within 30 s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def cli_account(env: dict[str, str], login: str, name: str, role: str, *scope: str, actor: str | None = "ops",
                token: bool = False, cwd: Path | None = None) -> str:
    """An account made through the CLI as an operator makes it: ``workflow accounts create`` by
    ``actor`` (None: the very first account, an admin, which nobody names); ``scope`` e.g.
    ``"--unit", "1"`` or ``"--jurisdiction", "shanxi"``. With ``token``, then a token for it
    (``workflow tokens create --account``, by ``actor`` or the account itself): its secret;
    otherwise the command's output."""
    def run(*args: str) -> str:
        done = subprocess.run([WORKFLOW, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    made = run("accounts", "create", "--login", login, "--name", name, "--role", role, *scope,
               *(("--actor", actor) if actor else ()))
    if not token:
        return made
    return run("tokens", "create", "--account", login, "--actor", actor or login).strip().splitlines()[-1]
