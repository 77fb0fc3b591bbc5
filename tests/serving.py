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
