"""Requests against a real `workflow serve`: bodies bounded as they stream, authentication
before a body is read, slow clients cut off, the server's memory measured.

Raw sockets, so that the test controls exactly what the client has sent when the server
answers: an answer that arrives while the body has not been sent proves the body was not
waited for.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from workflow.demo import ADMIN_LOGIN

from ..serving import WORKFLOW, cli_account, start_serve, stop

BODY_LIMIT = 64 * 1024


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([WORKFLOW, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("served")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLOW_") and k != "COLUMNS"}
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp}/w.db", WORKFLOW_MAILDIR=str(tmp / "mail"),
               WORKFLOW_EVIDENCE_DIR=str(tmp / "ev"), COLUMNS="200", WORKFLOW_REQUEST_MAX_BYTES=str(BODY_LIMIT),
               WORKFLOW_HEADER_TIMEOUT_SECONDS="1", WORKFLOW_BODY_TIMEOUT_SECONDS="1",
               WORKFLOW_SWEEP_INTERVAL_MINUTES="600", WORKFLOW_DISPATCH_INTERVAL_SECONDS="3600")
    _run(env, "demo", "--example-only")
    secret = cli_account(env, "wang", "王科长", "coordinator", "--jurisdiction", "shanxi", actor=ADMIN_LOGIN,
                         token=True)  # made by the demo's admin
    proc, base = start_serve(env, tmp / "serve.log", "--name", "security")
    host, port = base.removeprefix("http://").split(":")
    yield proc, (host, int(port)), secret
    stop(proc)


def _connect(address: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(address, timeout=20)
    return s


def _answer(s: socket.socket) -> bytes:
    """Everything the server sends until it closes or the head and the body's first part arrive."""
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        got += chunk
        if b"\r\n\r\n" in got and len(got) > got.index(b"\r\n\r\n") + 4:
            break
    return got


def _status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def _head(path: str, secret: str | None, length: int | None, chunked: bool = False) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    if secret is not None:
        lines.append(f"Authorization: Bearer {secret}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _peak_kb(proc: subprocess.Popen) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_without_a_token_a_body_is_not_read(server) -> None:
    """Only the head is sent (it announces 100 MB); the 401 arrives without the body."""
    _proc, address, _ = server
    for secret in (None, "wf_not-a-token"):
        with _connect(address) as s:
            s.sendall(_head("/api/v1/cases/1/actions/withdraw", secret, 100_000_000))
            answer = _answer(s)
        assert _status(answer) == 401
        assert b'"code":"unauthorized"' in answer and "令牌".encode() in answer


def test_a_declared_length_over_the_limit_is_refused_before_reading(server) -> None:
    _proc, address, secret = server
    with _connect(address) as s:
        s.sendall(_head("/api/v1/cases/1/actions/withdraw", secret, BODY_LIMIT + 1))
        answer = _answer(s)
    assert _status(answer) == 413 and f'"limit":{BODY_LIMIT}'.encode() in answer


def test_a_chunked_body_is_cut_off_at_the_limit_in_bounded_memory(server) -> None:
    """200 MB sent chunked (no length announced) to an action: refused once the limit is
    passed; the server's peak memory grows by far less than what was sent."""
    proc, address, secret = server
    before = _peak_kb(proc)
    chunk = b"x" * 65536
    sent = 0
    refused_at = None
    with _connect(address) as s:
        s.sendall(_head("/api/v1/cases/1/actions/withdraw", secret, None, chunked=True))
        try:
            while sent < 200 * 1024 * 1024:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            refused_at = sent
        answer = _answer(s)
    grown_mb = (_peak_kb(proc) - before) / 1024
    print(f"\nchunked body: {sent / 2**20:.0f} MB offered, cut off after {((refused_at or sent) / 2**20):.1f} MB; "
          f"server peak grew {grown_mb:.1f} MB")
    assert _status(answer) == 413
    assert refused_at is not None, "the server read the whole 200 MB instead of refusing at the limit"
    assert grown_mb < 50


def test_a_stalled_body_is_answered_408(server) -> None:
    _proc, address, secret = server
    with _connect(address) as s:
        s.sendall(_head("/api/v1/cases/1/actions/withdraw", secret, 100) + b'{"version": 1,')
        answer = _answer(s)  # the rest never comes
    assert _status(answer) == 408 and b'"code":"request_timeout"' in answer


def test_headers_trickling_in_are_cut_off(server) -> None:
    """A client sends a header byte every 0.2 s (slowloris): the connection is answered 408
    and closed although bytes keep coming; a normal request on a new connection is served."""
    _proc, address, secret = server
    head = _head("/api/v1/cases", secret, 0) + b"X-Padding: " + b"a" * 400
    with _connect(address) as s:
        closed = False
        for byte in head:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)  # the client's pace, not a measurement
            s.setblocking(False)
            try:
                s.recv(65536)  # the 408, or the end of the connection
                closed = True
                break
            except BlockingIOError:
                pass
            finally:
                s.setblocking(True)
        assert closed, "the server waited for the whole trickled head (80 s)"
    with _connect(address) as s:
        s.sendall(f"GET /api/v1/cases HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {secret}\r\n\r\n".encode())
        assert _status(_answer(s)) == 200


def test_every_answer_says_nosniff_and_api_answers_are_not_cached(server) -> None:
    _proc, address, secret = server
    with _connect(address) as s:
        s.sendall(f"GET /api/v1/cases/1 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {secret}\r\n\r\n".encode())
        answer = _answer(s).lower()
    assert b"x-content-type-options: nosniff" in answer and b"cache-control: no-store" in answer
    assert b"x-frame-options: deny" in answer


def test_a_body_nobody_reads_does_not_keep_the_connection(server) -> None:
    """A body trickled to a route that reads none (outside /api/): the server answers, then
    closes the connection instead of waiting for the rest."""
    _proc, address, _ = server
    with _connect(address) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\nx")
        answer = _answer(s)
        assert _status(answer) == 200
        closed = False
        for _ in range(40):  # 8 s of trickling at most
            try:
                s.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.2)
            try:
                if s.recv(65536) == b"":
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
            except TimeoutError:
                pass
        assert closed, "the connection stayed open while a body nobody reads trickled in"
