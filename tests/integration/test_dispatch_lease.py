"""A dispatcher whose lease ran out does not overwrite the one that took its rows over."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select

from notifications.testing import InMemoryTransport
from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Outbox
from workflow.clock import BUSINESS_TZ
from workflow.service.deadlines import sweep
from workflow.service.dispatch import DispatchSettings, _claim, _record, dispatch

from ..support import CALENDARS, OPERATOR, OPERATOR_NOW, open_shanxi

SEPT_30 = datetime(2021, 9, 30, 9, 0, tzinfo=BUSINESS_TZ)


def test_an_expired_lease_loses_its_rows(db: Database) -> None:
    open_shanxi(db, SEPT_30 - timedelta(days=120))
    from workflow.service.directory import add_coordinator

    add_coordinator(db, "shanxi", "王科长", "wang@bureau.example", actor=OPERATOR, now=OPERATOR_NOW)
    assert sweep(db, CALENDARS, SEPT_30).reminders == 35
    settings = DispatchSettings(batch=5)
    slow = _claim(db, SEPT_30, settings)  # dispatcher A claims five rows and stalls
    assert len(slow) == 5
    later = SEPT_30 + settings.lease + timedelta(minutes=1)
    transport = InMemoryTransport()
    report = asyncio.run(dispatch(db, CALENDARS, transport, later, settings))  # B takes them over
    assert report.claimed == 5 and sorted(r.id for r in slow) == sorted(
        row.id for row in _rows(db) if row.claimed_until is None and row.status != "pending")
    from workflow.service.dispatch import DispatchReport

    late = DispatchReport()
    _record(db, slow, [(r.id, {"status": "sent", "sent_at": SEPT_30, "claimed_until": None}) for r in slow],
            SEPT_30, late)
    assert len(late.errors) == 5 and all("another dispatcher took it" in e for e in late.errors)
    by_id = {row.id: row for row in _rows(db)}
    assert all(by_id[r.id].sent_at == later for r in slow if by_id[r.id].status == "sent")


def _rows(db: Database):
    with db.engine.connect() as conn:
        return conn.execute(select(Outbox.__table__).order_by(Outbox.id)).all()
