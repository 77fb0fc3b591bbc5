"""What every request passes before the API reads it (pure ASGI, outermost but one).

- A request that carries a body is authenticated before a byte of the body is read: no
  token, no reading (401 at once). The principal is kept in the request's state, so the
  routes' ``Caller`` does not look the token up a second time.
- Every body has a size limit, enforced as it streams: ``Content-Length`` over the limit
  is refused before reading (413), and a body that grows past it (chunked, or lying about
  its length) is cut off at the limit (413). File uploads have their own, larger limits
  (evidence, documents, rosters); everything else ``request_max_bytes``.
- A body that stalls longer than ``body_timeout_seconds`` between chunks is answered 408.
  (A client slow to send its headers is closed by the server: see ``api/server.py``.)
- Every response says ``X-Content-Type-Options: nosniff`` and may not be framed; API
  answers are not stored by caches (they hold a bureau's data).
"""
from __future__ import annotations

import asyncio
import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..bootstrap import App
from ..service.tokens import authenticate
from ..web.common import is_console_path
from .common import error, log

_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer")]
_NO_STORE = (b"cache-control", b"no-store")


# The routes whose body is a file, and the setting that bounds it.
UPLOADS = ((re.compile(r"^/api/v1/cases/\d+/(evidence|documents)$"), ("evidence_max_bytes", "upload_max_bytes")),
           (re.compile(r"^/api/v1/rounds/[^/]+/duties/[^/]+$"), ("evidence_max_bytes",)),
           (re.compile(r"^/api/v1/cases/\d+/score-sheet\.xlsx$"), ("roster_max_bytes",)),
           (re.compile(r"^/api/v1/units/import$"), ("roster_max_bytes",)),
           # the console's upload forms
           (re.compile(r"^/cases/\d+/(evidence|documents)$"), ("evidence_max_bytes", "upload_max_bytes")),
           (re.compile(r"^/cases/\d+/score-sheet$"), ("roster_max_bytes",)))


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes, the limit for this request")
        self.limit = limit


class BodyStalled(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body stopped arriving for {seconds:g} s; send it again")


class Guard:
    def __init__(self, app: ASGIApp, application: App) -> None:
        self.app = app
        self.application = application

    def limit_for(self, path: str) -> int:
        for pattern, settings in UPLOADS:
            if pattern.match(path):  # one file as the body, or several (multipart): the larger bound
                return max(int(getattr(self.application.settings, s)) for s in settings)
        return self.application.settings.request_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api = path.startswith("/api/")
        headers = dict(scope.get("headers") or ())
        # HTTP/1.1: without a length or a transfer coding there is no body (RFC 9112 6.3)
        has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
        if not has_body:
            await self.app(scope, receive, send)
            return
        console = not api and is_console_path(path)
        if not (api or console):  # the operations endpoints and the docs read no body
            await self.app(scope, receive, send)
            return
        try:
            if api:
                known = await self._authenticated(scope, headers)
            else:  # the console: a session first, except on the pages one reaches before signing in
                known = path in ("/signin", "/forgot") or path.startswith("/link/") or \
                    self._signed_in(scope, headers)
        except database_errors() as exc:  # as the routes answer it
            await closing(database_unavailable(exc))(scope, receive, send)
            return
        if not known and api:
            await closing(error("unauthorized", "a valid bearer token is needed before a request body is read "
                                                "(workflow tokens create)"))(scope, receive, send)
            return
        if not known:  # a form sent after the session ended: nothing is read, the person signs in again
            await closing(RedirectResponse("/signin", status_code=303))(scope, receive, send)  # type: ignore[arg-type]
            return
        limit = self.limit_for(scope["path"])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            message = f"the request body is {declared} bytes; the limit for this request is {limit}"
            if console:
                from starlette.requests import Request

                from ..web.common import error_page

                page = error_page(Request(scope), 413, message,
                                  f"提交的内容有 {declared} 字节，超过了此处的上限 {limit} 字节")
                page.headers["Connection"] = "close"
                await page(scope, receive, send)
                return
            await closing(error("too_large", message, limit=limit))(scope, receive, send)
            return
        await self.app(scope, _bounded(receive, limit, self.application.settings.body_timeout_seconds), send)

    def _signed_in(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """The console: a live session cookie (kept for the page, which does not look it up again)."""
        from http.cookies import SimpleCookie

        from ..service.sign_in import session_of
        from ..web.common import SESSION_COOKIE, Viewer

        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed cookie header: no session
            return False
        morsel = jar.get(SESSION_COOKIE)
        found = session_of(self.application.db, morsel.value if morsel else "", self.application.clock.now())
        if found is None:
            return False
        scope.setdefault("state", {})["viewer"] = Viewer(*found)
        return True

    async def _authenticated(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        scheme, _, secret = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return False
        # one indexed query, on the loop: a hand-off to the thread pool costs more than it
        found = authenticate(self.application.db, secret.strip(), self.application.clock.now())
        if found is None:
            return False
        scope.setdefault("state", {})["principal"] = found
        return True


def database_errors() -> tuple[type[Exception], ...]:
    """The errors that mean "the database cannot be used now", from SQLAlchemy and from the
    drivers (the write path runs on the DB-API connection itself)."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    kinds: list[type[Exception]] = [OperationalError, sqlite3.OperationalError]
    try:
        import psycopg

        kinds.append(psycopg.OperationalError)
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    return tuple(kinds)


def database_unavailable(exc: Exception) -> JSONResponse:
    """503 for a database that is unreachable, or (SQLite) locked longer than the busy timeout:
    the transaction was rolled back, nothing was written. Host and driver text go to the log."""
    orig = getattr(exc, "orig", None) or exc
    log.error("database unavailable", error=f"{type(orig).__name__}: {orig}")
    why = "locked by another write" if "locked" in str(orig).lower() else "unavailable"
    response = error("database_unavailable", f"the database is {why}; nothing was changed, retry", status=503)
    response.headers["Retry-After"] = "5"
    return response


def closing(response: JSONResponse) -> JSONResponse:
    """A refusal that leaves the body unread: the connection is closed after it, so the
    server does not go on receiving (and discarding) what the client still sends."""
    response.headers["Connection"] = "close"
    return response


def security_headers(present: list[tuple[bytes, bytes]], path: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries (those it does not carry already): never sniffed,
    never framed, and (an API answer) never stored by a cache. Added by the outermost
    middleware, so that its own answers (a NUL in the path, an unexpected error) carry them."""
    names = {k.lower() for k, _ in present}
    extra = [h for h in _HEADERS if h[0] not in names]
    if path.startswith("/api/") and _NO_STORE[0] not in names:
        extra.append(_NO_STORE)
    return extra


def _bounded(receive: Receive, limit: int, timeout: float) -> Receive:
    """``receive``, refusing a body past ``limit`` bytes or pausing longer than ``timeout``."""
    seen = 0
    done = False

    async def receiving() -> Message:
        nonlocal seen, done
        if done:  # after the body: waiting for a disconnect is not bounded
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except TimeoutError:
            raise BodyStalled(timeout) from None
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
            done = not message.get("more_body", False)
        return message

    return receiving
