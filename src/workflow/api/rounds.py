"""Rounds, coordinators' reports, spot checks (抽查) and filing batches (备案)."""
from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ..adapters.db.tables import Jurisdiction, Round
from ..clock import business_date
from .common import ApiError, Application, Caller, iso, num, require, scope_root, visible_round

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


CODE = r"^[a-z0-9][a-z0-9_-]*$"  # jurisdiction, rubric and calendar ids


class RoundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    province: str = Field(min_length=1, max_length=64, pattern=CODE)
    year: int = Field(ge=2000, le=2100)
    rubric: str = Field(min_length=1, max_length=64, pattern=CODE)
    calendar: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE,
                                 description="default: the calendar that serves the year (its notice, else the "
                                             "province's recurring calendar)")
    target_share: str | None = Field(default=None, pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$",
                                     description="e.g. \"0.5\"; default: the calendar's target for the year")


class RolloverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rubric: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE)
    calendar: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE)
    target_share: str | None = Field(default=None, pattern=r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$")


class SpotCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    share: str = Field(pattern=r"^(0(\.\d{1,2})?|1(\.0{1,2})?)$", description="share of certified cases, e.g. \"0.1\"")
    seed: int = Field(ge=0, le=2**63 - 1, description="the random seed, stated so the draw can be repeated")
    jurisdiction: str | None = Field(default=None, max_length=64, pattern=CODE,
                                     description="subtree; default the caller's")


class FilingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jurisdiction: str | None = Field(default=None, max_length=64, pattern=CODE,
                                     description="subtree; default the caller's")
    note: str | None = Field(default=None, max_length=2000)


def round_out(r: Any) -> dict[str, Any]:
    return {"id": r["id"], "province": r["province_id"], "year": r["year"], "rubric": r["rubric_id"],
            "calendar": r["calendar_id"], "target_share": num(r["target_share"]),
            "targets": r["targets"], "documents": r["documents"], "pass_mark": num(r["pass_mark"]),
            "max_total": num(r["max_total"]), "policy": r["policy"], "opened_at": iso(r["opened_at"]),
            "opened_by": r["opened_by"]}


def spot_out(s: Any) -> dict[str, Any]:
    return {"id": s["id"], "round_id": s["round_id"], "jurisdiction": s["jurisdiction_id"], "seed": s["seed"],
            "share": num(Decimal(s["share"])), "population": len(s["population"]), "drawn": s["drawn"],
            "drawn_at": iso(s["drawn_at"]), "drawn_by": s["drawn_by"]}


def filing_out(b: Any) -> dict[str, Any]:
    return {"id": b["id"], "round_id": b["round_id"], "jurisdiction": b["jurisdiction_id"], "cases": b["cases"],
            "totals": b["totals"], "filed_at": iso(b["filed_at"]), "filed_by": b["filed_by"]}


def _may_open(application: Any, who: Any, province: str) -> None:
    """An admin, or a coordinator of the province itself, opens its rounds."""
    from .common import jurisdiction_path

    require(who, "coordinator", "admin", doing="open rounds")
    if who.role == "coordinator" and jurisdiction_path(application, province) != who.jurisdiction_path:
        raise ApiError("forbidden", f"only a coordinator of the whole province {province} opens its rounds")


def register(api: FastAPI) -> None:
    @api.get("/api/v1/rounds", tags=["rounds"])
    def rounds(who: Caller, application: Application) -> list[dict[str, Any]]:
        """Rounds the caller takes part in."""
        with application.engine.connect() as conn:
            ids = conn.execute(select(Round.id).order_by(Round.province_id, Round.year)).scalars().all()
        out = []
        for round_id in ids:
            try:
                out.append(round_out(visible_round(application, round_id, who)))
            except ApiError:
                continue
        return out

    @api.post("/api/v1/rounds", tags=["rounds"], status_code=201)
    def open_round(body: RoundIn, who: Caller, application: Application) -> dict[str, Any]:
        """Open a round from a rubric and a calendar: a case for every unit of the province in
        one transaction (units certified in an earlier round are not registered again)."""
        from ..service.rounds import open_round as open_

        _may_open(application, who, body.province)
        opened = open_(application.db, application.rubrics, application.calendars, province_id=body.province,
                       year=body.year, rubric_id=body.rubric, calendar_id=body.calendar,
                       target_share=body.target_share, actor=who.actor, now=application.clock.now())
        return opened_out(application, who, opened)

    @api.get("/api/v1/rounds/{round_id}", tags=["rounds"])
    def get_round(round_id: str, who: Caller, application: Application) -> dict[str, Any]:
        return round_out(visible_round(application, round_id, who))

    @api.post("/api/v1/rounds/{round_id}/rollover", tags=["rounds"], status_code=201)
    def rollover(round_id: str, body: RolloverIn, who: Caller, application: Application) -> dict[str, Any]:
        """Open next year's round of the same province: the same rubric unless given; the calendar
        that serves next year (its notice, else the recurring calendar) and that calendar's target
        for the year, unless given; a province whose policy carries failed units over registers
        them again."""
        from ..service.rounds import roll_over

        r = visible_round(application, round_id, who)
        _may_open(application, who, r["province_id"])
        opened = roll_over(application.db, application.rubrics, application.calendars, round_id,
                           rubric_id=body.rubric, calendar_id=body.calendar, target_share=body.target_share,
                           actor=who.actor, now=application.clock.now())
        return opened_out(application, who, opened)

    def opened_out(application: Any, who: Any, opened: Any) -> dict[str, Any]:
        return {"round": round_out(visible_round(application, opened.round_id, who)),
                "registered": opened.registered, "carried_over": opened.carried_over,
                "already_certified": opened.already_certified, "warnings": list(opened.warnings)}

    # ------------------------------------------------------------ reports
    def _report_scope(application: Any, who: Any, round_id: str, jurisdiction: str | None) -> tuple[Any, str, str]:
        r = visible_round(application, round_id, who)
        require(who, "coordinator", "auditor", "admin", doing="read reports")
        jid, path = scope_root(application, who, jurisdiction, default=r["province_path"])
        return r, jid, path

    @api.get("/api/v1/rounds/{round_id}/progress", tags=["reports"])
    def progress(round_id: str, who: Caller, application: Application,
                 jurisdiction: str | None = Query(None, max_length=64)) -> dict[str, Any]:
        """Progress per jurisdiction of the subtree: cases by state, certified share against the
        round's target, overdue cases and misses per milestone."""
        from ..service.reports import progress as report

        _, _, path = _report_scope(application, who, round_id, jurisdiction)
        return report(application.db, round_id, path).to_dict()

    @api.get("/api/v1/rounds/{round_id}/progress.xlsx", tags=["reports"], response_class=Response,
             responses={200: {"content": {XLSX: {}}}})
    def progress_xlsx(round_id: str, who: Caller, application: Application,
                      jurisdiction: str | None = Query(None, max_length=64)) -> Response:
        from ..service.reports import progress as report, progress_xlsx as to_xlsx

        _, jid, path = _report_scope(application, who, round_id, jurisdiction)
        out = io.BytesIO()
        to_xlsx(report(application.db, round_id, path), out)
        return Response(out.getvalue(), media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="{round_id}-{jid}-progress.xlsx"'})

    @api.get("/api/v1/rounds/{round_id}/at-risk", tags=["reports"])
    def at_risk(round_id: str, who: Caller, application: Application,
                jurisdiction: str | None = Query(None, max_length=64),
                days: int = Query(3, ge=0, le=60, description="deadlines due within this many days")) -> dict[str, Any]:
        """Cases that still owe a deadline due within ``days`` (e.g. not submitted, 3 days before October 20)."""
        from ..service.reports import at_risk as risky

        _, _, path = _report_scope(application, who, round_id, jurisdiction)
        today = business_date(application.clock.now())
        rows = risky(application.db, application.calendars, round_id, path, today, days)
        return {"today": today.isoformat(), "within_days": days, "items": [
            {"milestone": a.milestone, "name": a.name, "due_on": a.due_on.isoformat(), "days_left": a.days_left,
             "case_id": a.case_id, "unit": {"id": a.unit_id, "name": a.unit_name},
             "jurisdiction": a.jurisdiction_id, "state": a.state} for a in rows]}

    # ------------------------------------------------------------ duties of jurisdictions
    @api.get("/api/v1/rounds/{round_id}/duties", tags=["duties"])
    def duties(round_id: str, who: Caller, application: Application,
               jurisdiction: str | None = Query(None, max_length=64)) -> dict[str, Any]:
        """What each jurisdiction of the subtree owes in the round (a city's report, a filing, the
        evaluation of its own units), by when, and whether it is done, owed or overdue."""
        from ..service.duties import duty_board

        _, _, path = _report_scope(application, who, round_id, jurisdiction)
        today = business_date(application.clock.now())
        return {"today": today.isoformat(), "items": [duty_out(d) for d in duty_board(
            application.db, application.calendars, round_id, path, today)]}

    @api.post("/api/v1/rounds/{round_id}/duties/{duty}", tags=["duties"], status_code=201,
              openapi_extra={"requestBody": {"required": False, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def record_duty(round_id: str, duty: str, request: Request, who: Caller, application: Application,
                          jurisdiction: str = Query(min_length=1, max_length=64, pattern=CODE),
                          filename: str | None = Query(None, min_length=1, max_length=200,
                                                       description="the attachment's name (the body is its bytes)"),
                          note: str | None = Query(None, max_length=2000)) -> dict[str, Any]:
        """Record a jurisdiction's duty done (its report, its filing), with the attachment it needs
        as the request body, or the round's filing batches or spot checks it lists."""
        from starlette.concurrency import run_in_threadpool

        from ..service.duties import record_duty as record
        from .cases import read_body

        visible_round(application, round_id, who)
        require(who, "coordinator", "admin", doing="record duties")
        scope_root(application, who, jurisdiction)
        data = await read_body(request, application.settings.evidence_max_bytes)
        if data and not filename:
            raise ApiError("invalid_input", "an attachment needs its file name (?filename=...)",
                           problems=[{"where": "filename", "what": "required with a body", "zh": "上传附件须提供文件名"}])
        files = [(filename, data)] if data and filename else []
        event = await run_in_threadpool(lambda: record(
            application.db, application.calendars, application.evidence, round_id, jurisdiction, duty,
            actor=who.actor, now=application.clock.now(), files=files, note=note))
        return event.to_dict()

    @api.get("/api/v1/rounds/{round_id}/duties/{jurisdiction}/history", tags=["duties", "audit"])
    def duty_history(round_id: str, jurisdiction: str, who: Caller, application: Application) -> list[dict[str, Any]]:
        """The hash-chained events of a jurisdiction's duties in the round."""
        from ..service.duties import duty_history as history

        visible_round(application, round_id, who)
        require(who, "coordinator", "auditor", "admin", doing="read duty histories")
        scope_root(application, who, jurisdiction)
        return [e.to_dict() for e in history(application.db, round_id, jurisdiction)]

    # ------------------------------------------------------------ spot checks
    @api.post("/api/v1/rounds/{round_id}/spot-checks", tags=["oversight"], status_code=201)
    def draw(round_id: str, body: SpotCheckIn, who: Caller, application: Application) -> dict[str, Any]:
        """Draw a reproducible sample of certified cases (seed and share stated); the draw is
        recorded, and each drawn case gets a SpotCheckDrawn event."""
        from ..service.oversight import spot_check

        visible_round(application, round_id, who)
        require(who, "coordinator", "admin", doing="draw spot checks")
        jid, _ = scope_root(application, who, body.jurisdiction, default=_province_path(application, round_id))
        s = spot_check(application.db, round_id, jid, share=body.share, seed=body.seed, actor=who.actor,
                       now=application.clock.now())
        return spot_out({"id": s.id, "round_id": s.round_id, "jurisdiction_id": s.jurisdiction_id, "seed": s.seed,
                         "share": s.share, "population": s.population, "drawn": s.drawn, "drawn_at": s.drawn_at,
                         "drawn_by": s.drawn_by})

    @api.get("/api/v1/rounds/{round_id}/spot-checks", tags=["oversight"])
    def spot_checks(round_id: str, who: Caller, application: Application) -> list[dict[str, Any]]:
        from ..service.oversight import list_spot_checks

        visible_round(application, round_id, who)
        require(who, "coordinator", "auditor", "admin", doing="read spot checks")
        return [spot_out(s) for s in list_spot_checks(application.db, round_id, who.jurisdiction_path)]

    # ------------------------------------------------------------ filing
    @api.post("/api/v1/rounds/{round_id}/filings", tags=["oversight"], status_code=201)
    def file_batch(round_id: str, body: FilingIn, who: Caller, application: Application) -> dict[str, Any]:
        """File every certified case of the round in the subtree with the national bureau, as one batch."""
        from ..service.oversight import file_round

        visible_round(application, round_id, who)
        require(who, "coordinator", "admin", doing="file cases")
        jid, _ = scope_root(application, who, body.jurisdiction, default=_province_path(application, round_id))
        return filing_out(file_round(application.db, round_id, jid, actor=who.actor, now=application.clock.now(),
                                     note=body.note))

    @api.get("/api/v1/rounds/{round_id}/filings", tags=["oversight"])
    def filings(round_id: str, who: Caller, application: Application) -> list[dict[str, Any]]:
        from ..service.oversight import list_filings

        visible_round(application, round_id, who)
        require(who, "coordinator", "auditor", "admin", doing="read filing batches")
        return [filing_out(b) for b in list_filings(application.db, round_id, who.jurisdiction_path)]

    def _visible_filing(application: Any, batch_id: str, who: Any) -> Any:
        from ..domain.errors import NotFound
        from ..service.oversight import get_filing

        require(who, "coordinator", "auditor", "admin", doing="read filing batches")
        try:
            batch = get_filing(application.db, batch_id)
        except NotFound:
            batch = None
        if batch is None or (who.jurisdiction_path is not None and not batch["path"].startswith(who.jurisdiction_path)):
            raise ApiError("not_found", f"filing batch {batch_id} does not exist", batch_id=batch_id)
        return batch

    @api.get("/api/v1/filings/{batch_id}.csv", tags=["oversight"], response_class=Response,
             responses={200: {"content": {"text/csv": {}}}})
    def filing_csv(batch_id: str, who: Caller, application: Application) -> Response:
        """The batch as CSV, for the national bureau."""
        from ..service.oversight import filing_csv as to_csv

        return Response(to_csv(_visible_filing(application, batch_id, who)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{batch_id}.csv"'})


    @api.get("/api/v1/filings/{batch_id}", tags=["oversight"])
    def filing(batch_id: str, who: Caller, application: Application) -> dict[str, Any]:
        return filing_out(_visible_filing(application, batch_id, who))

def duty_out(d: Any) -> dict[str, Any]:
    return {"jurisdiction": {"id": d.jurisdiction_id, "name": d.jurisdiction_name}, "duty": d.duty, "name": d.name,
            "owed_by": d.owed_by, "needs": d.needs, "due_on": d.due_on.isoformat(), "status": d.status,
            "done_at": iso(d.done_at), "done_by": d.done_by, "missed_on": iso(d.missed_on), "waiting": d.waiting}


def _province_path(application: Any, round_id: str) -> str:
    with application.engine.connect() as conn:
        return conn.execute(select(Jurisdiction.path).join(Round, Round.province_id == Jurisdiction.id)
                            .where(Round.id == round_id)).scalar_one()
