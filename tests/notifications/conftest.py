"""Fixtures: a real aiosmtpd server on 127.0.0.1 (port picked first, stopped after)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.notifications.helpers import RecordingHandler, SmtpServer, authenticator, free_port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = RecordingHandler()
    # AUTH is offered without TLS (a local test server) but not required.
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    try:
        yield SmtpServer(controller.hostname, controller.port, handler)
    finally:
        controller.stop()
