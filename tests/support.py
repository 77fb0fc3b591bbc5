"""Test helpers: a small world of jurisdictions, units and a round, built through the services."""
from __future__ import annotations

from datetime import datetime
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


def unit_actor(unit_id: int) -> Actor:
    return Actor("unit", str(unit_id))


def write_units_csv(path: Path, rows: list[tuple[str, str, str]], encoding: str = "utf-8") -> Path:
    """rows: (name, jurisdiction, category)."""
    lines = ["name,jurisdiction,category"] + [",".join(r) for r in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def seed_jurisdictions(db: Database) -> None:
    import_jurisdictions(db, EXAMPLES / "jurisdictions.csv")


def open_shanxi(db: Database, now: datetime) -> OpenedRound:
    """Jurisdictions, the 35 Shanxi provincial units and the shanxi-2021 round."""
    seed_jurisdictions(db)
    import_units(db, EXAMPLES / "shanxi-2021-units.csv", now)
    return open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                      calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=now)


def open_hunan(db: Database, now: datetime, tmp_path: Path, units: int = 3, year: int = 2021) -> OpenedRound:
    seed_jurisdictions(db)
    csv = write_units_csv(tmp_path / "hunan-units.csv",
                          [(f"湖南测试单位{i}", "hunan-changsha" if i % 2 else "hunan", "行政机关")
                           for i in range(1, units + 1)])
    import_units(db, csv, now)
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
