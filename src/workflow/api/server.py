"""Serving the API with uvicorn, with a deadline for a client's headers.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but, once a client has
sent one byte of a request, waits for the rest of its headers for ever: a few hundred
clients trickling a header a minute hold every connection the server has (slowloris). Here
a connection must deliver a request's complete headers within ``header_timeout`` seconds of
opening (or of the previous response); otherwise it is answered 408 and closed. Trickling
bytes does not reset the deadline. The body's pace is bounded in ``api/guard.py``.

The protocol is uvicorn's h11 implementation (the one uvicorn picks when httptools is not
installed) with the deadline added around its connection callbacks.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

log = structlog.get_logger("workflow.api")
_TIMEOUT_BODY = "请求头传输超时 / the request headers came too slowly\n".encode()
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(_TIMEOUT_BODY)) + _TIMEOUT_BODY


def _no_delay(transport: asyncio.Transport) -> None:
    """Send each response at once (TCP_NODELAY). asyncio sets it only on sockets whose ``proto``
    reads IPPROTO_TCP; a worker of ``serve --workers`` gets the listening socket from its parent
    with ``proto`` 0, and without it every response waited ~40 ms for the client's delayed ACK."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose headers do not arrive in time."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _no_delay(transport)
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            assert self._deadline is not None
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the request is the app's now
            self._disarm()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # answered before the client finished its body (a route that reads none, e.g.
            # /metrics with a body trickling in): close rather than wait for the rest
            self.transport.close()
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request's headers have the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.warning("slow client closed", client=str(self.client), waited_s=self.header_timeout)
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


class WorkerProtocol(HeaderDeadlineProtocol):
    """The protocol of ``serve --workers`` (named by import string in each worker process; the
    worker sets its deadline from the settings before it serves)."""


def protocol(header_timeout: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with this deadline (uvicorn makes one instance per connection)."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout": header_timeout})


def run(app: Any, *, host: str, port: int, header_timeout: float, keep_alive: float) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, http=protocol(header_timeout),
                timeout_keep_alive=max(1, round(keep_alive)))


def run_workers(factory: str, *, workers: int, host: str, port: int, keep_alive: float) -> None:
    """``workers`` processes on one socket, each calling ``factory`` (an import string) for its
    app; uvicorn's supervisor restarts a worker that dies."""
    import uvicorn

    uvicorn.run(factory, factory=True, workers=workers, host=host, port=port, log_config=None, access_log=False,
                http=f"{__name__}:WorkerProtocol", timeout_keep_alive=max(1, round(keep_alive)))
