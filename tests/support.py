"""Test helpers: a small world of jurisdictions, units and a round, built through the services."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from workflow.adapters.calendar_files import CalendarCatalog
from workflow.adapters.db.store import Database
from workflow.adapters.rubric_files import RubricCatalog
from workflow.config import REPO_ROOT
from workflow.domain.case import Actor
from workflow.files import import_jurisdictions, import_units
from workflow.service.rounds import OpenedRound, open_round

EXAMPLES = REPO_ROOT / "examples"
RUBRICS = RubricCatalog(REPO_ROOT / "rubrics")
CALENDARS = CalendarCatalog(REPO_ROOT / "calendars")
ADMIN = Actor("admin", "test")
COORDINATOR = Actor("coordinator", "wang")
SYSTEM = Actor("system", "sweep")
# Who changes the directory in a test (recorded on the operator streams), and when.
OPERATOR = Actor("admin", "tests", channel="cli")
OPERATOR_NOW = datetime(2021, 3, 1, 9, 0, tzinfo=UTC)


def unit_actor(unit_id: int) -> Actor:
    return Actor("unit", str(unit_id))


def write_units_csv(path: Path, rows: list[tuple[str, str, str]], encoding: str = "utf-8") -> Path:
    """rows: (name, jurisdiction, category)."""
    lines = ["name,jurisdiction,category"] + [",".join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def seed_jurisdictions(db: Database) -> None:
    import_jurisdictions(db, EXAMPLES / "jurisdictions.csv", actor=OPERATOR, now=OPERATOR_NOW)


def open_shanxi(db: Database, now: datetime) -> OpenedRound:
    """Jurisdictions, the 35 Shanxi provincial units and the shanxi-2021 round."""
    seed_jurisdictions(db)
    import_units(db, EXAMPLES / "shanxi-2021-units.csv", now, actor=OPERATOR)
    return open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                      calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=now)


def open_hunan(db: Database, now: datetime, tmp_path: Path, units: int = 3, year: int = 2021) -> OpenedRound:
    seed_jurisdictions(db)
    csv = write_units_csv(tmp_path / "hunan-units.csv",
                          [(f"湖南测试单位{i}", "hunan-changsha" if i % 2 else "hunan", "行政机关")
                           for i in range(1, units + 1)])
    import_units(db, csv, now, actor=OPERATOR)
    return open_round(db, RUBRICS, CALENDARS, province_id="hunan", year=year, rubric_id="hunan-2020",
                      calendar_id="hunan", target_share="0.5", actor=ADMIN, now=now)


# ---------------------------------------------------------------- sheets
def sheet_for(rubric, total) -> dict[str, str]:
    """A complete sheet (every criterion answered) that scores exactly ``total`` — the one
    ``workflow simulate`` fills in (per-occurrence counts first, then caps in rubric order)."""
    from decimal import Decimal

    from workflow.simulate import complete_sheet

    return complete_sheet(rubric, Decimal(str(total)))


def fake_sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def ready_to_submit(store, case_id: int, unit_id: int, total, now, rubric=None) -> None:
    """Self-assess a complete sheet scoring ``total``, attach the documents the round asks for
    and evidence to every criterion scored above zero (the blobs themselves are not needed by
    the lifecycle)."""
    from workflow.service.cases import perform_action

    rubric = rubric or RUBRICS.get("shanxi-2020")
    unit = unit_actor(unit_id)
    entries = sheet_for(rubric, total)
    perform_action(store, case_id, "self_assess", {"entries": entries}, unit, now)
    attach_documents(store, case_id, unit_id, now)
    for code, value in entries.items():
        if value != "0":
            perform_action(store, case_id, "attach_evidence",
                           {"criterion": code, "sha256": fake_sha(f"{case_id}-{code}"), "filename": f"{code}.pdf",
                            "size": 1000, "type": "pdf"}, unit, now)


def sheet_with(rubric, overrides: dict[str, str]) -> dict[str, str]:
    """A complete sheet: zero everywhere but ``overrides``."""
    return {c.code: overrides.get(c.code, "0") for c in rubric.criteria()}


def attach_documents(store, case_id: int, unit, now) -> None:
    """Attach a file for every document the case's round asks for (自评报告 ...) not attached yet;
    ``unit`` is the unit's id or its Actor."""
    from workflow.service.cases import perform_action

    actor = unit if isinstance(unit, Actor) else unit_actor(unit)
    with store.unit_of_work() as uow:
        case = uow.get(case_id)
        documents = uow.round_context(case.round_id).documents
    have = {d for d, _, _ in case.documents}
    for d in documents:
        if d.id not in have:
            perform_action(store, case_id, "attach_document",
                           {"document": d.id, "sha256": fake_sha(f"{case_id}-{d.id}"), "filename": f"{d.name}.pdf",
                            "size": 1000, "type": "pdf"}, actor, now)


def test_admin(db, now: datetime):
    """The principal of the tests' admin account (made on first use: the first account needs no maker)."""
    from workflow.service.accounts import create_account, principal_of

    account = db.accounts.by_login("tests-admin")
    if account is None:
        first = not db.accounts.all()
        by = None if first else principal_of(db.accounts.all()[0], "cli")
        account = create_account(db, by=by, login="tests-admin", name="测试管理员", role="admin", now=now)
    return principal_of(account, "cli")


def account_for(db, role: str, now: datetime, *, name: str | None = None, unit_id: int | None = None,
                jurisdiction_id: str | None = None, login: str | None = None):
    """A new account of this role and scope, made by the tests' admin."""
    from workflow.domain.errors import InvalidInput
    from workflow.service.accounts import create_account

    admin = test_admin(db, now)
    n = len(db.accounts.all()) + 1
    try:
        return create_account(db, by=admin, login=login or f"{role}-{n}", name=name or f"{role} {n}", role=role,
                              unit_id=unit_id, jurisdiction_id=jurisdiction_id, now=now)
    except InvalidInput:  # the name is taken there: the same person's second account
        return create_account(db, by=admin, login=login or f"{role}-{n}", name=f"{name} {n}", role=role,
                              unit_id=unit_id, jurisdiction_id=jurisdiction_id, now=now)


def token_for(db, role: str, now: datetime, *, name: str | None = None, unit_id: int | None = None,
              jurisdiction_id: str | None = None, expires_at: datetime | None = None):
    """A new account of this role and scope and a token for it (``.secret``, ``.id``)."""
    from workflow.service.tokens import create_token

    account = account_for(db, role, now, name=name, unit_id=unit_id, jurisdiction_id=jurisdiction_id)
    return create_token(db, account_id=account.id, by=test_admin(db, now), now=now, expires_at=expires_at)
