"""Migrations: up from nothing, down to nothing and up again; data written under 0001 survives 0002."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text

from workflow.adapters.db.engine import make_engine
from workflow.adapters.db.migrate import current_revision, downgrade, head_revision, upgrade
from workflow.adapters.db.store import Database

from ..conftest import PG_SKIP_REASON, PG_URL, pg_schema_url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/m.db"
        return
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    schema = f"wf_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield pg_schema_url(schema)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_up_down_up(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    assert {"jurisdictions", "units", "rounds", "cases", "events"} <= set(inspect(engine).get_table_names())
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert "events" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    engine.dispose()


def test_a_round_opened_before_sheets_gets_its_rubric_snapshot(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jurisdictions VALUES ('shanxi', '山西省', 'province', NULL, '/shanxi/')"))
        conn.execute(text(
            "INSERT INTO rounds (id, province_id, year, rubric_id, calendar_id, target_share, pass_mark, max_total, "
            "policy, opened_at, opened_by) VALUES ('shanxi-2021', 'shanxi', 2021, 'shanxi-2020', 'shanxi-2021', "
            "'0.5', '80', '100', :policy, :at, 'admin:x')"),
            {"policy": '{"on_fail": "rectification", "rectification_days": 20, "carry_over": false}',
             "at": "2021-06-01 00:00:00+00:00"})
    upgrade(engine)
    with Database(engine).unit_of_work() as uow:
        ctx = uow.round_context("shanxi-2021")
    assert ctx.rubric.id == "shanxi-2020" and len(ctx.rubric.criteria()) == 42
    engine.dispose()


def test_tokens_made_before_accounts_get_an_account_each(empty_url: str) -> None:
    """0008: every token gets an account of its own (its name, role and scope; as old as the
    token), and still authenticates as the same principal, now with its account."""
    from datetime import UTC, datetime

    from workflow.service.tokens import _hash, authenticate

    engine = make_engine(empty_url)
    upgrade(engine, "0007")
    made = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jurisdictions VALUES ('shanxi', '山西省', 'province', NULL, '/shanxi/')"))
        for name, role, jurisdiction, secret in (("王科长", "coordinator", "shanxi", "wf_a"),
                                                  ("王科长", "auditor", "shanxi", "wf_b"), ("运维", "admin", None, "wf_c")):
            conn.execute(text(
                "INSERT INTO api_tokens (name, role, jurisdiction_id, token_hash, created_at, created_by) "
                "VALUES (:n, :r, :j, :h, :at, 'admin:x')"), {"n": name, "r": role, "j": jurisdiction,
                                                            "h": _hash(secret), "at": made})
    upgrade(engine)
    db = Database(engine)
    accounts = db.accounts.all()
    assert [(a.login, a.name, a.role, a.created_by, a.created_at) for a in accounts] == [
        ("token-1", "王科长", "coordinator", "system:migration-0008", made),
        ("token-2", "王科长 (2)", "auditor", "system:migration-0008", made),  # the name is taken in shanxi
        ("token-3", "运维", "admin", "system:migration-0008", made)]
    who = authenticate(db, "wf_a", made)
    assert who is not None and (who.account_id, who.name, who.jurisdiction_path) == (accounts[0].id, "token-1",
                                                                                    "/shanxi/")
    assert str(who.actor) == f"coordinator:token-1;account={accounts[0].id};name=王科长;via=api"
    engine.dispose()
