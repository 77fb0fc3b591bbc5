"""Browser tests: Playwright driving the distribution's Chromium (``/usr/bin/chromium``, Debian's
package; Playwright's own browser builds are never downloaded) against a real ``workflow serve``.

Fixtures: ``browser`` (one Chromium per test module), ``console`` (a server on a fresh SQLite
database with ``workflow demo`` loaded, one per test module and worker) and ``page`` (a new
context per test, zh-CN, Asia/Shanghai, 1366×768, that lets no request leave the host).
Helpers: ``sign_in(page, base, login, password)`` and ``shot(page, name)``.

Without Chromium or the ``playwright`` package every test here is skipped, saying what to install.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from ..serving import WORKFLOW, start_serve, stop

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the [test] extras not installed
    sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request, Route

HERE = Path(__file__).parent
REPO = HERE.parents[1]
CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
LOG_TAIL = 4000

if sync_playwright is None:
    SKIP_REASON = "playwright not importable: .venv/bin/pip install -e '.[test]' (no `playwright install`: the tests use the system's Chromium)"
elif not os.path.exists(CHROMIUM):
    SKIP_REASON = f"Chromium not found at {CHROMIUM}: apt-get install -y chromium fonts-noto-cjk (.ci/run does this)"
else:
    SKIP_REASON = ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's collection hook sees every item of the run: mark only those in this folder.
    if not SKIP_REASON:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless; one per test module. Not per session: while Playwright's sync API is
    started it marks an asyncio loop as running in this thread, so a test of another folder that
    xdist runs next in the same worker would fail in ``asyncio.run()``. Stopping it at the end of
    the module clears the loop (a test below checks)."""
    assert sync_playwright is not None
    p = sync_playwright().start()
    try:
        # --no-sandbox: the tests run as root, where Chromium refuses its sandbox.
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()
    finally:
        p.stop()


@dataclass
class Console:
    base: str  # e.g. http://127.0.0.1:PORT
    env: dict[str, str]  # the server's environment: run the CLI against the same database with it
    tmp: Path  # the database, evidence/ and mail/
    log: Path  # the server's log
    proc: subprocess.Popen[Any]
    started_in: float  # seconds for `workflow demo` and `workflow serve` up to /healthz

    def log_tail(self, size: int = LOG_TAIL) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def console() -> Iterator[Console]:
    """`workflow serve` on a fresh SQLite database with `workflow demo` loaded (demo creates the
    schema itself); the mail goes to a maildir, never SMTP."""
    tmp = Path(tempfile.mkdtemp(prefix="workflow-browser-"))
    env = dict(os.environ)
    env.pop("WORKFLOW_SMTP_HOST", None)
    env.update(WORKFLOW_DATABASE_URL=f"sqlite:///{tmp}/workflow.db", WORKFLOW_EVIDENCE_DIR=str(tmp / "evidence"),
               WORKFLOW_MAILDIR=str(tmp / "mail"))
    log = tmp / "serve.log"
    started = time.monotonic()
    try:
        try:
            subprocess.run([WORKFLOW, "demo"], env=env, cwd=tmp, check=True, capture_output=True, timeout=300)
        except subprocess.CalledProcessError as e:
            pytest.fail(f"workflow demo failed ({e.returncode}):\n{e.stdout.decode()[-LOG_TAIL:]}\n{e.stderr.decode()[-LOG_TAIL:]}")
        proc, base = start_serve(env, log, cwd=tmp)  # fails the test with the log's tail if serve does not answer
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    server = Console(base=base, env=env, tmp=tmp, log=log, proc=proc, started_in=time.monotonic() - started)
    try:
        yield server
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used ``console`` reports the tail of the server's log."""
    report = yield
    server = getattr(item, "funcargs", {}).get("console")
    if report.failed and isinstance(server, Console):
        report.sections.append(("workflow serve log (tail)", server.log_tail()))
    return report


@contextmanager
def _guarded_page(browser: Browser, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (1366×768, zh-CN, Asia/Shanghai) whose requests to any host but
    127.0.0.1/localhost are aborted and listed in ``page.blocked_urls``; fails on leaving if that
    list is not empty. ``service_workers="block"``: a service worker's requests would bypass the route."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai", service_workers="block", **options)
    blocked: list[str] = []

    def guard(route: Route, request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "about", "blob") or url.hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(request.url)
            route.abort()

    context.route("**/*", guard)
    pg = context.new_page()
    pg.blocked_urls = blocked  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
    assert not blocked, f"requests left the host: {', '.join(blocked)}"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A guarded page (``_guarded_page``); console errors and uncaught exceptions are collected
    in ``page.js_errors`` (not asserted)."""
    with _guarded_page(browser) as pg:
        js_errors: list[str] = []
        pg.on("console", lambda msg: js_errors.append(f"console: {msg.text}") if msg.type == "error" else None)
        pg.on("pageerror", lambda exc: js_errors.append(f"pageerror: {exc}"))
        pg.js_errors = js_errors  # type: ignore[attr-defined]
        yield pg


def sign_in(page: Page, base: str, login: str, password: str) -> None:
    """The console's sign-in form, submitted; returns once the next page has loaded."""
    page.goto(f"{base}/signin")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")


def shot(page: Page, name: str) -> None:
    """With WORKFLOW_SCREENSHOTS set: a full-page PNG at docs/console/<name>.png; otherwise nothing."""
    if not os.environ.get("WORKFLOW_SCREENSHOTS"):
        return
    out = REPO / "docs" / "console"
    out.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)


# ---------------------------------------------------------------- appended: a page without JavaScript

@pytest.fixture
def page_without_js(browser: Browser) -> Iterator[Page]:
    """Like ``page`` (no request may leave the host), in a context with JavaScript disabled: what
    a page shows, and how its forms work, without the console's scripts."""
    with _guarded_page(browser, java_script_enabled=False) as pg:
        yield pg
