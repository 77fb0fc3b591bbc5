"""Functions run in other processes by the concurrency tests (importable by spawn)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def fire_action(url: str, case_id: int, action: str, data: dict[str, Any], actor: str, expected_version: int,
                barrier: Any, results: Any) -> None:
    from workflow.adapters.db.engine import make_engine
    from workflow.adapters.db.store import Database
    from workflow.domain.case import Actor
    from workflow.domain.errors import DomainError
    from workflow.service.cases import perform_action

    engine = make_engine(url)
    db = Database(engine)
    with engine.connect():
        pass  # connect before the barrier so all processes start writing together
    barrier.wait(timeout=60)
    try:
        r = perform_action(db, case_id, action, data, Actor.parse(actor), datetime.now(UTC),
                           expected_version)
        results.put(("ok", action, r.case.version))
    except DomainError as exc:
        results.put((exc.code, action, str(exc)))
    except Exception as exc:  # reported, so the test shows what went wrong
        results.put(("error", action, f"{type(exc).__name__}: {exc}"))
    finally:
        engine.dispose()
