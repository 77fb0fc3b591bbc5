"""Jurisdictions and units: lists, one at a time, the contact form, roster imports."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..adapters.rosters import SheetLimits
from ..domain.access import Principal
from ..domain.errors import InvalidInput, Problem
from ..domain.events import Event
from ..domain.text import filename_problem
from ..files import import_units_data
from ..service.directory import create_jurisdiction, create_unit, give_contact_form, update_unit
from ..service.histories import events_csv, events_jsonl
from ..service.ports import JurisdictionRecord, UnitRecord
from ..service.queries import unit_history as history_of
from .cases import event_out
from .common import CODE, XLSX, Application, Caller, SeenUnit, attachment, read_body, role_in, scope_root
from .schemas import ContactFormOut, ContactOut, EventOut, ImportOut, JurisdictionOut, UnitOut, UnitPage

router = APIRouter(prefix="/api/v1")


class JurisdictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"id": "shanxi-taiyuan", "name": "太原市", "level": "city", "parent": "shanxi"}]})
    id: str = Field(min_length=1, max_length=64, description="code, e.g. shanxi-taiyuan")
    name: str = Field(min_length=1, max_length=200)
    level: str = Field(description="province, city or county (省/市/县)")
    parent: str | None = Field(default=None, max_length=64, pattern=CODE)


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=50)
    position: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40)
    email: str = Field(default="", max_length=254)


class UnitIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "太原市机关事务管理局", "jurisdiction": "shanxi-taiyuan", "category": "党政机关",
         "contacts": [{"name": "王敏", "position": "办公室主任", "phone": "0351-1234567",
                       "email": "wang@example.gov.cn"}]}]})
    name: str = Field(min_length=1, max_length=200)
    jurisdiction: str = Field(min_length=1, max_length=64, pattern=CODE)
    level: str | None = Field(default=None, description="provincial, city or county; defaults from the jurisdiction")
    category: str = Field(min_length=1, max_length=32)
    contacts: list[Contact] = Field(default_factory=list, max_length=20)


class UnitChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"certified_year": 2019, "certified_note": "晋机管发〔2019〕12号"}]})
    name: str | None = Field(default=None, min_length=1, max_length=200)
    category: str | None = Field(default=None, min_length=1, max_length=32)
    contacts: list[Contact] | None = Field(default=None, max_length=20)
    certified_year: int | None = Field(default=None, ge=2000, le=2100,
                                       description="certified (建成节约型机关) before the system kept the rounds: "
                                                   "the year; it counts towards progress from then on")
    certified_note: str | None = Field(default=None, max_length=200, description="where it is written")


class ContactForm(BaseModel):
    """The contact form (附件2, due June 5): who at the unit handles the round."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"contacts": [{"name": "王敏", "position": "办公室主任", "phone": "0351-1234567"}]}]})
    contacts: list[Contact] = Field(min_length=1, max_length=20)


def jurisdiction_out(j: JurisdictionRecord) -> JurisdictionOut:
    return JurisdictionOut(id=j.id, name=j.name, level=j.level, parent=j.parent_id, path=j.path)


def unit_out(u: UnitRecord) -> UnitOut:
    return UnitOut(id=u.id, name=u.name, jurisdiction=u.jurisdiction_id, level=u.level, category=u.category,
                   contacts=[ContactOut(**c) for c in u.contacts], certified_year=u.certified_year,
                   certified_note=u.certified_note, updated_at=u.updated_at.isoformat())


@router.get("/jurisdictions", tags=["directory"])
def jurisdictions(who: Caller, application: Application) -> list[JurisdictionOut]:
    """The jurisdictions the caller may see (a unit: its own)."""
    found = application.db.directory.jurisdictions(who.jurisdiction_path)
    if who.role == "unit":
        found = [j for j in found if j.path == who.unit_path]
    return [jurisdiction_out(j) for j in found]


@router.post("/jurisdictions", tags=["directory"], status_code=201)
def add_jurisdiction(body: JurisdictionIn,
                     who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="add jurisdictions"))],
                     application: Application) -> JurisdictionOut:
    """Add a jurisdiction (a coordinator: under their own)."""
    return jurisdiction_out(create_jurisdiction(application.db, body.model_dump(), within_path=who.jurisdiction_path,
                                                actor=who.actor, now=application.clock.now()))


@router.get("/units", tags=["directory"])
def units(who: Caller, application: Application, jurisdiction: str | None = Query(None, max_length=64),
          after: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(200, ge=1, le=1000)) -> UnitPage:
    """Units the caller may see, in id order, in pages."""
    if who.role == "unit":
        own = application.db.directory.unit(who.unit_id or 0)
        rows = [own] if own is not None and own.id > after else []
    else:
        path = scope_root(application, who, jurisdiction)[1] \
            if jurisdiction is not None or who.jurisdiction_path is not None else None
        rows = application.db.directory.units(path, after_id=after, limit=limit)
    return UnitPage(items=[unit_out(u) for u in rows], next=rows[-1].id if len(rows) == limit else None)


@router.post("/units", tags=["directory"], status_code=201)
def add_unit(body: UnitIn, who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="add units"))],
             application: Application) -> UnitOut:
    """Add a unit (the same checks as a roster row)."""
    return unit_out(create_unit(application.db, body.model_dump(exclude_none=True), application.clock.now(),
                                within_path=who.jurisdiction_path, actor=who.actor))


@router.post("/units/import", tags=["directory"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}},
                 XLSX: {"schema": {"type": "string", "format": "binary"}}}}})
async def import_units(request: Request,
                       who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="import units"))],
                       application: Application,
                       update: bool = Query(False, description="replace category and contacts of existing units"),
                       filename: str = Query("roster", max_length=200)) -> ImportOut:
    """Import a roster (.csv in UTF-8 or GBK as Excel writes it, or .xlsx): every row is
    checked, every problem is reported with its row, and nothing is imported when any row is bad.
    A roster may be at most ``roster_max_bytes`` (20 MiB unless set), and its sheet at most
    ``sheet_max_rows`` rows, ``sheet_max_columns`` columns, ``sheet_max_cells`` cells and
    ``sheet_max_merged`` merged ranges (an .xlsx unpacking to at most ``sheet_max_uncompressed_bytes``):
    a roster past any of them is refused whole, the limit named, before its rows are read."""
    bad_name = filename_problem(filename)
    if bad_name is not None:  # the name is shown escaped: it may hide its own letters
        raise InvalidInput("roster refused: its file name; nothing imported",
                           [Problem("query.filename", f"{filename!r}: {bad_name[0]}", f"{filename!r}：{bad_name[1]}")],
                           "名单文件名不符合要求，未导入")
    limits = SheetLimits.from_settings(application.settings)
    data = await read_body(request, limits.max_bytes)
    result = await run_in_threadpool(import_units_data, application.db, data, filename, application.clock.now(),
                                     update=update, within_path=who.jurisdiction_path, limits=limits,
                                     actor=who.actor)
    return ImportOut(created=result.created, updated=result.updated, unchanged=result.unchanged)


@router.get("/units/{unit_id}", tags=["directory"])
def get_unit(unit: SeenUnit) -> UnitOut:
    return unit_out(unit)


@router.patch("/units/{unit_id}", tags=["directory"])
def change_unit(unit: SeenUnit, body: UnitChange,
                who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="change units"))],
                application: Application) -> UnitOut:
    """Change a unit's name, category, contacts, or the year it was certified before the system."""
    return unit_out(update_unit(application.db, unit.id, body.model_dump(exclude_unset=True), application.clock.now(),
                                actor=who.actor))


@router.put("/units/{unit_id}/contacts", tags=["directory"])
def contact_form(unit: SeenUnit, body: ContactForm,
                 who: Annotated[Principal, Depends(role_in("unit", "coordinator", "admin",
                                                           doing="fill in the contact form"))],
                 application: Application) -> ContactFormOut:
    """The contact form (附件2): the unit's contact people, given for its open rounds (each open
    case records the form)."""
    done = give_contact_form(application.db, unit.id, body.model_dump()["contacts"], who.actor,
                             application.clock.now())
    return ContactFormOut(**unit_out(done.unit).model_dump(), recorded_on_cases=done.cases)


@router.post("/units/{unit_id}/contacts/confirm", tags=["directory"])
def confirm_contacts(unit: SeenUnit,
                     who: Annotated[Principal, Depends(role_in("unit", "coordinator", "admin",
                                                               doing="confirm the contact form"))],
                     application: Application) -> ContactFormOut:
    """Confirm the contacts on file (from an earlier round or a roster) as this round's
    contact form (附件2)."""
    done = give_contact_form(application.db, unit.id, None, who.actor, application.clock.now())
    return ContactFormOut(**unit_out(done.unit).model_dump(), recorded_on_cases=done.cases)


def _history(application: Application, unit: UnitRecord) -> list[Event]:
    return history_of(application.db, unit.id)[1]


@router.get("/units/{unit_id}/history", tags=["audit"])
def unit_history(unit: SeenUnit, application: Application) -> list[EventOut]:
    """Every event of every case of a unit, all years."""
    return [event_out(e) for e in _history(application, unit)]


@router.get("/units/{unit_id}/history.jsonl", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def unit_history_jsonl(unit: SeenUnit, application: Application) -> StreamingResponse:
    return StreamingResponse(events_jsonl(_history(application, unit)), media_type="application/x-ndjson",
                             headers=attachment(f"unit-{unit.id}.jsonl"))


@router.get("/units/{unit_id}/history.csv", tags=["audit"], response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def unit_history_csv(unit: SeenUnit, application: Application) -> Response:
    return Response(events_csv(_history(application, unit)), media_type="text/csv; charset=utf-8",
                    headers=attachment(f"unit-{unit.id}.csv"))

