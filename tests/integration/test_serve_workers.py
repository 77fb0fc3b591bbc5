"""`workflow serve --workers N`: N API processes on one port, one of them elected to schedule;
when the scheduler's process dies, another takes over and the supervisor starts a new worker."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from workflow.demo import ADMIN_LOGIN

from ..serving import WORKFLOW, cli_account, start_serve, stop


def _children(pid: int) -> set[int]:
    """The worker processes of the supervisor ``pid`` (not multiprocessing's resource tracker)."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(line.split()[0]) for line in out.splitlines() if "spawn_main" in line}


def _holder(base: str) -> int:
    return int(httpx.get(f"{base}/readyz", timeout=5).json()["scheduler"].rsplit(" ", 1)[1])


def _wait(what: str, check, seconds: float = 30.0):  # waiting for processes, not timing anything
    for _ in range(int(seconds * 10)):
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def test_workers_share_the_port_and_elect_one_scheduler(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", WORKFLOW_MAILDIR=str(tmp_path / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp_path / "ev"))
    done = subprocess.run([WORKFLOW, "demo", "--example-only"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    secret = cli_account(env, "wang", "王科长", "coordinator", "--jurisdiction", "shanxi", actor=ADMIN_LOGIN,
                         token=True)
    log = tmp_path / "serve.log"
    proc, base = start_serve(env, log, "--name", "w", "--workers", "2")
    try:
        workers = _wait("two workers", lambda: _children(proc.pid) if len(_children(proc.pid)) == 2 else None)
        leader = _wait("a scheduler elected", lambda: _holder(base) if httpx.get(f"{base}/readyz").json()
                       .get("scheduler") else None)
        assert leader in workers
        auth = {"Authorization": f"Bearer {secret}"}
        for _ in range(20):  # every request answered, whichever worker takes it
            assert httpx.get(f"{base}/api/v1/cases/1", headers=auth).json()["id"] == 1
        assert log.read_text().count("scheduler leader elected") == 1

        os.kill(leader, signal.SIGKILL)  # the scheduling worker dies
        successor = _wait("another worker scheduling", lambda: (h if (h := _holder(base)) != leader else None))
        assert successor in _children(proc.pid)
        _wait("the supervisor restores two workers",
              lambda: len(_children(proc.pid) - {leader}) == 2 and leader not in _children(proc.pid))
        assert httpx.get(f"{base}/api/v1/cases/1", headers=auth).status_code == 200
    finally:
        stop(proc)
    assert proc.returncode in (0, -signal.SIGTERM)
    assert _children(proc.pid) == set()


def test_workers_need_the_api(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp_path}/w.db", COLUMNS="200")
    done = subprocess.run([WORKFLOW, "serve", "--no-api", "--workers", "2"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "--workers 与 --no-api 不能同时使用" in done.stderr, done.stderr


def test_a_worker_sends_each_response_at_once() -> None:
    """A worker's sockets come from the supervisor with ``proto`` 0, on which asyncio does not
    set TCP_NODELAY (each response then waited ~40 ms for the client's delayed ACK): the
    protocol sets it itself."""
    import socket

    from workflow.api.server import _no_delay

    class Transport:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> socket.socket | None:
            return self.sock if name == "socket" else None

    with socket.socket() as original, socket.fromfd(original.fileno(), socket.AF_INET, socket.SOCK_STREAM) as shared:
        assert shared.proto == 0 and not shared.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        _no_delay(Transport(shared))  # type: ignore[arg-type]
        assert shared.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
