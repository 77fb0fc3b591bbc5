"""``workflow serve``: the scheduler's election beside the HTTP API, in one process or several.

Every serving process runs the same two things: the API, and a ``LeaderLoop`` that keeps
trying to become the one scheduler (a PostgreSQL advisory lock, a lock file on SQLite); the
elected one sweeps and dispatches. With ``--workers N`` uvicorn's supervisor starts N worker
processes on one listening socket (and restarts one that dies); each builds its application
from the environment (``worker_app``), as a single ``serve`` does, so N workers are N
ordinary ``serve`` processes that share a port: one of them schedules.
"""
from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from .bootstrap import App, build

ENV_NAME = "WORKFLOW_SERVE_NAME"  # the name the workers' scheduler holder is shown by (`serve --name`)


def process_name(name: str | None, worker: bool = False) -> str:
    """The name the scheduler's holder is shown by: ``--name`` as given (a worker's with its pid
    after it, as workers share the name), else host:pid."""
    if name and not worker:
        return name
    return f"{name or socket.gethostname()}:{os.getpid()}"


def scheduled_jobs(application: App) -> tuple[Callable[[], None], Callable[[], None]]:
    """The sweep and the dispatcher as the scheduler runs them: timed, and logged."""
    import structlog

    from .metrics import DISPATCH_SECONDS, SWEEP_SECONDS
    from .service.deadlines import sweep
    from .service.dispatch import dispatch

    log = structlog.get_logger("workflow.serve")
    transport, settings = application.transport(), application.dispatch_settings()

    @SWEEP_SECONDS.time()
    def run_sweep() -> None:
        r = sweep(application.db, application.calendars, application.clock.now())
        log.info("sweep", reminders=r.reminders, coordinator_reminders=r.coordinator_reminders, missed=r.missed,
                 expired=r.expired, notices=r.unit_notices, digests=r.digests)
        for line in r.skipped:
            log.error("sweep skipped a round", reason=line)

    @DISPATCH_SECONDS.time()
    def run_dispatch() -> None:
        r = asyncio.run(dispatch(application.db, application.calendars, transport, application.clock.now(),
                                 settings))
        if r.claimed:
            log.info("dispatch", sent=r.sent, retrying=r.retrying, failed=r.failed, cancelled=r.cancelled)
        for line in r.errors:
            log.error("dispatch", problem=line)

    return run_sweep, run_dispatch


def leader_loop(application: App, process: str) -> Any:
    """The loop that competes for the scheduler and, while elected, sweeps (at once, then
    hourly and at 09:00), dispatches and writes checkpoints."""
    from .adapters.scheduler import LeaderLock, LeaderLoop, build_scheduler

    st = application.settings
    run_sweep, run_dispatch = scheduled_jobs(application)
    checkpoint_job = application.checkpoint_job()  # signed checkpoints of the audit chain (skipped without a key)

    def nightly_audit() -> None:  # every chain checked, kept for the console's audit page; never raises
        import structlog

        try:
            application.nightly_audit()
        except Exception as exc:
            structlog.get_logger("workflow.serve").error("nightly audit check failed", error=str(exc))

    def on_lead() -> None:  # the elected process catches up, then anchors the chains at once
        run_sweep()
        checkpoint_job()

    return LeaderLoop(LeaderLock(application.engine, process),
                      lambda: build_scheduler(run_sweep, run_dispatch, sweep_minutes=st.sweep_interval_minutes,
                                              dispatch_seconds=st.dispatch_interval_seconds,
                                              checkpoint=checkpoint_job,
                                              checkpoint_minutes=st.checkpoint_interval_minutes,
                                              audit=nightly_audit),
                      on_lead=on_lead)


def worker_app() -> Any:
    """The API of one worker of ``serve --workers N`` (uvicorn calls this in each worker
    process): the application from the environment, and this process's scheduler loop,
    started and stopped with the app."""
    from fastapi import FastAPI

    from .api.app import create_app
    from .api.server import WorkerProtocol
    from .logging import configure_logging

    application = build()
    configure_logging(application.settings.log_level)
    WorkerProtocol.header_timeout = application.settings.header_timeout_seconds
    loop = leader_loop(application, process_name(os.environ.get(ENV_NAME), worker=True))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=loop.run, name="scheduler", daemon=True)
        thread.start()
        try:
            yield
        finally:
            loop.stop()
            await asyncio.to_thread(thread.join, 30)

    return create_app(application, lifespan=lifespan)
