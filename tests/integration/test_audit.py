"""Tampering with the stored log or a case row is found and named (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError

from workflow.adapters.db.store import Database
from workflow.service.audit import verify
from workflow.service.cases import perform_action

from ..support import COORDINATOR, RUBRICS, attach_documents, fake_sha, open_shanxi, sheet_for, sheet_with, unit_actor

NOW = datetime(2021, 10, 12, 2, 0, tzinfo=UTC)
RUBRIC = RUBRICS.get("shanxi-2020")


def _history(db: Database) -> None:
    open_shanxi(db, NOW)
    for case_id in (3, 4):
        unit = unit_actor(case_id)
        perform_action(db, case_id, "self_assess", {"entries": sheet_with(RUBRIC, {"1.1.1": "9"})}, unit, NOW)
        perform_action(db, case_id, "attach_evidence", {"criterion": "1.1.1", "sha256": fake_sha("x"),
                                                        "filename": "指标.pdf", "size": 10, "type": "pdf"}, unit, NOW)
        attach_documents(db, case_id, unit, NOW)
        perform_action(db, case_id, "submit", {}, unit, NOW)
        perform_action(db, case_id, "verify", {"entries": sheet_for(RUBRIC, "79.5")}, COORDINATOR, NOW)


@pytest.fixture
def unguarded(db: Database):
    """Drops the append-only triggers (as someone with the database's owner rights could),
    and puts them back afterwards (the PostgreSQL schema is shared by the session)."""

    def drop() -> None:
        if db.is_sqlite:
            _sql(db, "DROP TRIGGER events_no_update")
            _sql(db, "DROP TRIGGER events_no_delete")
        else:
            _sql(db, "DROP TRIGGER events_append_only ON events")

    yield drop
    if not db.is_sqlite:
        _sql(db, "DROP TRIGGER IF EXISTS events_append_only ON events")
        _sql(db, "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                 "FOR EACH ROW EXECUTE FUNCTION events_append_only()")


def _sql(db: Database, statement: str) -> None:
    with db.engine.begin() as conn:
        conn.exec_driver_sql(statement)


def test_untouched_history_verifies(db: Database) -> None:
    _history(db)
    report = verify(db)
    assert report.ok and report.cases == 35 and report.events == 35 + 2 * 6  # 2 documents each


@pytest.mark.parametrize("statement", [
    "UPDATE events SET payload = '{\"total\":\"95\",\"pass_mark\":\"80\",\"passed\":true}' WHERE case_id = 3 AND seq = 5",
    "DELETE FROM events WHERE case_id = 3 AND seq = 2",
])
def test_the_database_refuses_to_change_events(db: Database, statement: str) -> None:
    _history(db)
    with pytest.raises(DBAPIError, match="append-only"):
        _sql(db, statement)
    assert verify(db).ok


def test_an_altered_event_is_named(db: Database, unguarded) -> None:
    _history(db)
    unguarded()
    _sql(db, "UPDATE events SET payload = '{\"pass_mark\":\"80\",\"passed\":true,\"total\":\"95\"}' "
             "WHERE case_id = 3 AND seq = 5")
    report = verify(db)
    assert not report.ok
    assert (report.findings[0].case_id, report.findings[0].seq) == (3, 5)
    assert "altered" in report.findings[0].what


def test_an_altered_event_with_a_recomputed_hash_breaks_the_next_link(db: Database, unguarded) -> None:
    """Rewriting one event and its own hash still leaves the next event pointing at the old hash."""
    _history(db)
    unguarded()
    with db.unit_of_work() as uow:
        event = uow.events(3)[2]
    from workflow.domain.events import new_event

    forged = new_event(3, 3, event.type, "unit:999", event.occurred_at, dict(event.payload), event.prev_hash)
    _sql(db, f"UPDATE events SET actor = 'unit:999', hash = '{forged.hash}' WHERE case_id = 3 AND seq = 3")
    report = verify(db)
    assert [(f.case_id, f.seq) for f in report.findings] == [(3, 4)]
    assert "previous-hash link" in report.findings[0].what


def test_a_deleted_event_is_named(db: Database, unguarded) -> None:
    _history(db)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 2")
    report = verify(db)
    assert [(f.case_id, f.seq) for f in report.findings] == [(4, 3)]
    assert "#2 is missing" in report.findings[0].what


def test_a_deleted_last_event_shows_in_the_case_row(db: Database, unguarded) -> None:
    _history(db)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 4 AND seq = 7")
    report = verify(db)
    assert [(f.case_id, f.seq) for f in report.findings] == [(4, None)]
    assert "version is 7, replay gives 6" in report.findings[0].what


def test_an_altered_case_row_is_named(db: Database) -> None:
    _history(db)
    _sql(db, "UPDATE cases SET state = 'certified' WHERE id = 3")
    report = verify(db)
    assert [(f.case_id, f.seq) for f in report.findings if f.kind == "case"] == [(3, None)]
    assert "state is 'certified', replay gives 'verified'" in report.findings[0].what
    # the counts the progress report reads were moved by no transition: the recount disagrees
    counted = sorted(f.what for f in report.findings if f.kind == "counts")
    assert any(", certified: kept 0, recounted 1" in what for what in counted), counted
    assert any(", verified: kept " in what for what in counted), counted


def test_a_case_without_events_is_named(db: Database, unguarded) -> None:
    _history(db)
    unguarded()
    _sql(db, "DELETE FROM events WHERE case_id = 5")
    report = verify(db)
    assert [(f.case_id, f.seq, f.what) for f in report.findings] == [(5, None, "case row has no events")]
