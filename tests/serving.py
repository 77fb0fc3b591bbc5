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


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``workflow ARGS`` through ``workflow.cli.main`` in this process, as the installed script
    would run it (~1.5 s cheaper: no interpreter start, no imports): ``env`` replaces the
    environment and ``cwd`` the folder for the call, ``sys.argv`` and the output streams are
    swapped (a terminal width is read from COLUMNS, as the process would), the exit code kept."""
    import contextlib
    import io
    import os

    from rich.console import Console

    from workflow import cli

    out, errors = io.StringIO(), io.StringIO()
    saved = (dict(os.environ), sys.argv, os.getcwd(), cli.console, cli.err)
    code = 0
    try:
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = ["workflow", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(errors):
            cli.console = Console(file=out, markup=False, highlight=False, soft_wrap=True)
            cli.err = Console(file=errors, markup=False, highlight=False, soft_wrap=True)
            try:
                cli.main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        environ, sys.argv, folder, cli.console, cli.err = saved
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(folder)
    return subprocess.CompletedProcess(["workflow", *args], code, out.getvalue(), errors.getvalue())


def cli_account(env: dict[str, str], login: str, name: str, role: str, *scope: str, actor: str | None = "ops",
                token: bool = False, cwd: Path | None = None) -> str:
    """An account made through the CLI as an operator makes it: ``workflow accounts create`` by
    ``actor`` (None: the very first account, an admin, which nobody names); ``scope`` e.g.
    ``"--unit", "1"`` or ``"--jurisdiction", "shanxi"``. With ``token``, then a token for it
    (``workflow tokens create --account``, by ``actor`` or the account itself): its secret;
    otherwise the command's output."""
    def run(*args: str) -> str:
        done = run_cli(list(args), env, cwd or Path.cwd())
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    made = run("accounts", "create", "--login", login, "--name", name, "--role", role, *scope,
               *(("--actor", actor) if actor else ()))
    if not token:
        return made
    return run("tokens", "create", "--account", login, "--actor", actor or login).strip().splitlines()[-1]
