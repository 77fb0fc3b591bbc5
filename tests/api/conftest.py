"""The API test client: the Shanxi 2021 round (cases 1–35, provincial units of 附件1) and
case 36 of a unit of 太原 (a city), on SQLite and PostgreSQL; ``client.token(role, ...)``
makes a bearer header."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.checkpoint_files import generate_key
from workflow.bootstrap import App
from workflow.clock import ManualClock
from workflow.config import REPO_ROOT, Settings

from ..support import ADMIN, OPERATOR, open_shanxi, token_for, write_units_csv

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)


@pytest.fixture
def client(db, db_url, tmp_path):
    from workflow.api.app import create_app

    clock = ManualClock(NOW)
    settings = Settings(database_url=db_url, evidence_dir=tmp_path / "evidence", maildir=tmp_path / "mail",
                        evidence_max_bytes=1024 * 1024, checkpoint_dir=tmp_path / "checkpoints",
                        checkpoint_key=tmp_path / "keys" / "checkpoint-ed25519.pem")
    generate_key(settings.checkpoint_key)  # the audit chain's checkpoints are signed (never in the working tree)
    application = App(settings=settings, engine=db.engine, db=db, clock=clock,
                      calendars=CalendarCatalog(REPO_ROOT / "calendars"))
    open_shanxi(db, NOW)
    # case 36: a unit of 太原 (city), to test subtrees
    from workflow.files import import_units
    from workflow.service.cases import register_case

    import_units(db, write_units_csv(tmp_path / "ty.csv", [("太原市财政局", "shanxi-taiyuan",
                                                                          "行政机关")]), NOW, actor=OPERATOR)
    register_case(db, "shanxi-2021", 36, ADMIN, NOW)

    def token(role: str, **scope) -> dict[str, str]:
        made = token_for(db, name=f"{role}-x", role=role, now=NOW, **scope)
        return {"Authorization": f"Bearer {made.secret}"}

    c = TestClient(create_app(application))
    c.token = token  # type: ignore[attr-defined]
    c.clock = clock  # type: ignore[attr-defined]
    return c


@pytest.fixture
def plain_tracebacks():
    """structlog's default console renderer draws a 500's traceback with rich, ~2 s each;
    plain text is enough for tests that provoke them (restored afterwards)."""
    import structlog

    before = structlog.get_config()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, structlog.processors.format_exc_info,
                                    structlog.processors.KeyValueRenderer(key_order=["event"])])
    yield
    structlog.configure(**before)
