"""Why ``browser`` is module-scoped: Playwright's sync API marks an asyncio loop as running in its
thread while it is started, and ``asyncio.run()`` (the dispatcher, the simulator) refuses to run
then. Another folder's test that xdist runs after a browser module in the same worker must find
no loop. This module uses no ``browser`` fixture, so none is started when it runs."""
from __future__ import annotations

import asyncio

from .conftest import sync_playwright


async def _one() -> int:
    return 1


def test_asyncio_run_works_again_once_playwright_has_stopped() -> None:
    assert sync_playwright is not None
    p = sync_playwright().start()
    try:
        assert asyncio._get_running_loop() is not None  # the reason for the module scope
    finally:
        p.stop()
    assert asyncio._get_running_loop() is None
    assert asyncio.run(_one()) == 1
