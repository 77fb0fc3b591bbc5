"""Jurisdictions and units: lists, one at a time, the contact form, roster imports."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..adapters.db.tables import Jurisdiction, Unit
from .cases import events_csv, events_jsonl
from .common import ApiError, Application, Caller, UnitId, iso, require, visible_unit


class JurisdictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="code, e.g. shanxi-taiyuan")
    name: str = Field(min_length=1, max_length=200)
    level: str = Field(description="province, city or county (省/市/县)")
    parent: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=50)
    position: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=254)


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    jurisdiction: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    level: str | None = Field(default=None, description="provincial, city or county; defaults from the jurisdiction")
    category: str = Field(min_length=1, max_length=32)
    contacts: list[Contact] = Field(default_factory=list, max_length=20)


class UnitChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    category: str | None = Field(default=None, min_length=1, max_length=32)
    contacts: list[Contact] | None = Field(default=None, max_length=20)
    certified_year: int | None = Field(default=None, ge=2000, le=2100,
                                       description="certified (建成节约型机关) before the system kept the rounds: "
                                                   "the year; it counts towards progress from then on")
    certified_note: str | None = Field(default=None, max_length=200, description="where it is written")


class ContactForm(BaseModel):
    """The contact form (附件2, due June 5): who at the unit handles the round."""

    model_config = ConfigDict(extra="forbid")
    contacts: list[Contact] = Field(min_length=1, max_length=20)


def unit_out(u: Any) -> dict[str, Any]:
    return {"id": u["id"], "name": u["name"], "jurisdiction": u["jurisdiction_id"], "level": u["level"],
            "category": u["category"], "contacts": u["contacts"], "certified_year": u["certified_year"],
            "certified_note": u["certified_note"], "updated_at": iso(u["updated_at"])}


def _unit_row(unit: Unit) -> dict[str, Any]:
    return {"id": unit.id, "name": unit.name, "jurisdiction_id": unit.jurisdiction_id, "level": unit.level,
            "category": unit.category, "contacts": unit.contacts, "certified_year": unit.certified_year,
            "certified_note": unit.certified_note, "updated_at": unit.updated_at}


def register(api: FastAPI) -> None:
    @api.get("/api/v1/jurisdictions", tags=["directory"])
    def jurisdictions(who: Caller, application: Application) -> list[dict[str, Any]]:
        """The jurisdictions the caller may see (a unit: its own)."""
        q = select(Jurisdiction.id, Jurisdiction.name, Jurisdiction.level, Jurisdiction.parent_id,
                   Jurisdiction.path).order_by(Jurisdiction.path)
        if who.jurisdiction_path is not None:
            q = q.where(Jurisdiction.path.startswith(who.jurisdiction_path, autoescape=True))
        elif who.role == "unit":
            q = q.where(Jurisdiction.id == select(Unit.jurisdiction_id).where(Unit.id == who.unit_id).scalar_subquery())
        with application.engine.connect() as conn:
            return [{"id": j.id, "name": j.name, "level": j.level, "parent": j.parent_id, "path": j.path}
                    for j in conn.execute(q)]

    @api.post("/api/v1/jurisdictions", tags=["directory"], status_code=201)
    def add_jurisdiction(body: JurisdictionIn, who: Caller, application: Application) -> dict[str, Any]:
        """Add a jurisdiction (a coordinator: under their own)."""
        from ..service.directory import create_jurisdiction

        require(who, "coordinator", "admin", doing="add jurisdictions")
        j = create_jurisdiction(application.db, body.model_dump(), within_path=who.jurisdiction_path)
        return {"id": j.id, "name": j.name, "level": j.level, "parent": j.parent_id, "path": j.path}

    @api.get("/api/v1/units", tags=["directory"])
    def units(who: Caller, application: Application, jurisdiction: str | None = None,
              after: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(200, ge=1, le=1000)) -> dict[str, Any]:
        """Units the caller may see, in id order, in pages."""
        from .common import scope_root

        q = (select(Unit.__table__).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
             .where(Unit.id > after).order_by(Unit.id).limit(limit))
        if who.role == "unit":
            q = q.where(Unit.id == who.unit_id)
        elif jurisdiction is not None or who.jurisdiction_path is not None:
            _, path = scope_root(application, who, jurisdiction)
            q = q.where(Jurisdiction.path.startswith(path, autoescape=True))
        with application.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return {"items": [unit_out(r) for r in rows], "next": rows[-1]["id"] if len(rows) == limit else None}

    @api.post("/api/v1/units", tags=["directory"], status_code=201)
    def add_unit(body: UnitIn, who: Caller, application: Application) -> dict[str, Any]:
        """Add a unit (the same checks as a roster row)."""
        from ..service.directory import create_unit

        require(who, "coordinator", "admin", doing="add units")
        unit = create_unit(application.db, body.model_dump(exclude_none=True), application.clock.now(),
                           within_path=who.jurisdiction_path)
        return unit_out(_unit_row(unit))

    @api.post("/api/v1/units/import", tags=["directory"],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "text/csv": {"schema": {"type": "string"}},
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                      {"schema": {"type": "string", "format": "binary"}}}}})
    async def import_units(request: Request, who: Caller, application: Application,
                           update: bool = Query(False, description="replace category and contacts of existing units"),
                           filename: str = Query("roster", max_length=200)) -> dict[str, Any]:
        """Import a roster (.csv in UTF-8 or GBK as Excel writes it, or .xlsx): every row is
        checked, every problem is reported with its row, and nothing is imported when any row is bad."""
        from starlette.concurrency import run_in_threadpool

        from ..service.directory import import_units_data

        require(who, "coordinator", "admin", doing="import units")
        limit = 10 * 1024 * 1024
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError("too_large", f"{declared} bytes; a roster may be at most 10 MiB", limit=limit)
        body = bytearray()
        async for chunk in request.stream():  # stop reading as soon as it is too large
            body.extend(chunk)
            if len(body) > limit:
                raise ApiError("too_large", "more than 10 MiB; a roster may be at most 10 MiB", limit=limit)
        data = bytes(body)
        result = await run_in_threadpool(import_units_data, application.db, data, filename, application.clock.now(),
                                         update=update, within_path=who.jurisdiction_path)
        return {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}

    @api.get("/api/v1/units/{unit_id}", tags=["directory"])
    def get_unit(unit_id: UnitId, who: Caller, application: Application) -> dict[str, Any]:
        return unit_out(visible_unit(application, unit_id, who))

    @api.patch("/api/v1/units/{unit_id}", tags=["directory"])
    def change_unit(unit_id: UnitId, body: UnitChange, who: Caller, application: Application) -> dict[str, Any]:
        """Change a unit's name, category or contacts."""
        from ..service.directory import update_unit

        visible_unit(application, unit_id, who)
        require(who, "coordinator", "admin", doing="change units")
        unit = update_unit(application.db, unit_id, body.model_dump(exclude_unset=True), application.clock.now())
        return unit_out(_unit_row(unit))

    @api.put("/api/v1/units/{unit_id}/contacts", tags=["directory"])
    def contact_form(unit_id: UnitId, body: ContactForm, who: Caller, application: Application) -> dict[str, Any]:
        """The contact form (附件2): the unit's contact people, given for its open rounds (each open
        case records the form)."""
        from ..service.directory import give_contact_form

        visible_unit(application, unit_id, who)
        require(who, "unit", "coordinator", "admin", doing="fill in the contact form")
        done = give_contact_form(application.db, unit_id, body.model_dump()["contacts"], who.actor,
                                 application.clock.now())
        return {**unit_out(visible_unit(application, unit_id, who)), "recorded_on_cases": done.cases}

    @api.post("/api/v1/units/{unit_id}/contacts/confirm", tags=["directory"])
    def confirm_contacts(unit_id: UnitId, who: Caller, application: Application) -> dict[str, Any]:
        """Confirm the contacts on file (from an earlier round or a roster) as this round's
        contact form (附件2)."""
        from ..service.directory import give_contact_form

        visible_unit(application, unit_id, who)
        require(who, "unit", "coordinator", "admin", doing="confirm the contact form")
        done = give_contact_form(application.db, unit_id, None, who.actor, application.clock.now())
        return {**unit_out(visible_unit(application, unit_id, who)), "recorded_on_cases": done.cases}

    def _history(application: Any, unit_id: UnitId, who: Any) -> list[Any]:
        from ..service.queries import unit_history

        visible_unit(application, unit_id, who)
        return unit_history(application.db, unit_id)[1]

    @api.get("/api/v1/units/{unit_id}/history", tags=["audit"])
    def unit_history(unit_id: UnitId, who: Caller, application: Application) -> list[dict[str, Any]]:
        """Every event of every case of a unit, all years."""
        return [e.to_dict() for e in _history(application, unit_id, who)]

    @api.get("/api/v1/units/{unit_id}/history.jsonl", tags=["audit"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def unit_history_jsonl(unit_id: UnitId, who: Caller, application: Application) -> StreamingResponse:
        return StreamingResponse(events_jsonl(_history(application, unit_id, who)), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="unit-{unit_id}.jsonl"'})

    @api.get("/api/v1/units/{unit_id}/history.csv", tags=["audit"], response_class=Response,
             responses={200: {"content": {"text/csv": {}}}})
    def unit_history_csv(unit_id: UnitId, who: Caller, application: Application) -> Response:
        return Response(events_csv(_history(application, unit_id, who)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="unit-{unit_id}.csv"'})
