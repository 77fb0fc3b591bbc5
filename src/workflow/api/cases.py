"""Cases: lists, one case, actions, history, sheets, evidence, notifications."""
from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Iterable

from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..domain.case import allowed_actions
from ..domain.lifecycle import ACTIONS
from ..metrics import TRANSITIONS
from .common import ApiError, Application, CaseId, Caller, iso, log, num, scope_root, visible_case


def _unit_path(application: Any, unit_id: int | None) -> str:
    from sqlalchemy import select

    from ..adapters.db.tables import Jurisdiction, Unit

    with application.engine.connect() as conn:
        return conn.execute(select(Jurisdiction.path).join(Unit, Unit.jurisdiction_id == Jurisdiction.id)
                            .where(Unit.id == unit_id)).scalar() or ""

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past ``limit`` bytes as it streams in."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError("too_large", f"{declared} bytes; the limit is {limit}", limit=limit)
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise ApiError("too_large", f"more than {limit} bytes; the limit is {limit}", limit=limit)
    return bytes(data)


class ActionRequest(BaseModel):
    """An action on a case: its input, and the version of the case the client saw."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, description="the case version the client saw; 409 if it changed")
    data: dict[str, Any] = Field(default_factory=dict)


def events_jsonl(events: Iterable[Any]) -> Iterable[str]:
    for e in events:
        yield json.dumps(e.to_dict(), ensure_ascii=False) + "\n"


CSV_FIELDS = ("case_id", "seq", "type", "actor", "occurred_at", "payload", "prev_hash", "hash")


def events_csv(events: Iterable[Any]) -> str:
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads the Chinese as UTF-8
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for e in events:
        d = e.to_dict()
        w.writerow([d["case_id"], d["seq"], d["type"], d["actor"], d["occurred_at"],
                    json.dumps(d["payload"], ensure_ascii=False, sort_keys=True), d["prev_hash"], d["hash"]])
    return out.getvalue()


def register(api: FastAPI) -> None:
    @api.get("/api/v1/cases", tags=["cases"])
    def cases(who: Caller, application: Application, round: str | None = None, state: str | None = None,
              jurisdiction: str | None = None, overdue: bool | None = None, category: str | None = None,
              level: str | None = None,
              after: int = Query(0, ge=0, le=2**31 - 1, description="cursor: cases with an id above this"),
              limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        """Cases the caller may see, filtered, in pages (``next`` is the cursor of the next page)."""
        from ..service.queries import list_cases

        if jurisdiction is not None:  # a jurisdiction outside the caller's scope does not exist for them
            _, path = scope_root(application, who, jurisdiction)
            if who.role == "unit" and not _unit_path(application, who.unit_id).startswith(path):
                raise ApiError("not_found", f"jurisdiction {jurisdiction!r} does not exist",
                               jurisdiction_id=jurisdiction)
        rows = list_cases(application.db, round_id=round, state=state, jurisdiction_id=jurisdiction, after_id=after,
                          limit=limit, overdue=overdue, category=category, level=level,
                          unit_id=who.unit_id if who.role == "unit" else None,
                          within_path=who.jurisdiction_path)
        items = [{"id": r.id, "round_id": r.round_id, "unit": {"id": r.unit_id, "name": r.unit_name},
                  "jurisdiction": r.jurisdiction_id, "category": r.category, "state": r.state,
                  "version": r.version, "self_total": num(r.self_total), "verified_total": num(r.verified_total),
                  "recheck_total": num(r.recheck_total), "rectification_due": iso(r.rectification_due)}
                 for r in rows]
        return {"items": items, "next": rows[-1].id if len(rows) == limit else None}

    @api.get("/api/v1/cases/{case_id}", tags=["cases"])
    def get_case(case_id: CaseId, who: Caller, application: Application) -> dict[str, Any]:
        """A case: state, version, scores, and what this caller may do next."""
        row = visible_case(application, case_id, who)
        from ..clock import business_date
        from ..domain.duties import waiting_on
        from ..service.queries import round_calendar

        now = application.clock.now()
        with application.db.reader() as uow:
            c = uow.get(case_id)
            ctx = uow.round_context(c.round_id)
        calendar, year = round_calendar(application.db, application.calendars, c.round_id)
        attached = {d for d, _, _ in c.documents}
        return {"id": c.id, "round_id": c.round_id, "unit": {"id": c.unit_id, "name": row.name},
                "state": c.state, "version": c.version, "overdue": c.overdue,
                "missed": [m for m, _ in c.missed],
                "waiting_on": [{**w, "due_on": iso(w["due_on"])} for w in
                               waiting_on(calendar, year, c.state, business_date(now))],
                "contact_form": c.contact_form,
                "documents": [{"id": d.id, "name": d.name, "attached": d.id in attached} for d in ctx.documents],
                "self_total": num(c.self_total), "verified_total": num(c.verified_total),
                "recheck_total": num(c.recheck_total), "passed": c.passed,
                "rectification_due": iso(c.rectification_due), "carried_over_from": c.carried_over_from,
                "evidence_count": len(c.evidence),
                "allowed_actions": [] if who.read_only else allowed_actions(c, ctx, now, actor=who.actor)}

    def _history(application: Any, case_id: CaseId, who: Any) -> list[Any]:
        visible_case(application, case_id, who)
        with application.db.reader() as uow:
            return uow.events(case_id)

    @api.get("/api/v1/cases/{case_id}/history", tags=["audit"])
    def case_history(case_id: CaseId, who: Caller, application: Application) -> list[dict[str, Any]]:
        """Every event of the case, with actor, time and hash."""
        return [e.to_dict() for e in _history(application, case_id, who)]

    @api.get("/api/v1/cases/{case_id}/history.jsonl", tags=["audit"], response_class=StreamingResponse,
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def case_history_jsonl(case_id: CaseId, who: Caller, application: Application) -> StreamingResponse:
        """The case's events as JSON lines."""
        return StreamingResponse(events_jsonl(_history(application, case_id, who)), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="case-{case_id}.jsonl"'})

    @api.get("/api/v1/cases/{case_id}/history.csv", tags=["audit"], response_class=Response,
             responses={200: {"content": {"text/csv": {}}}})
    def case_history_csv(case_id: CaseId, who: Caller, application: Application) -> Response:
        """The case's events as CSV (UTF-8 with BOM)."""
        return Response(events_csv(_history(application, case_id, who)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="case-{case_id}.csv"'})

    @api.post("/api/v1/cases/{case_id}/actions/{action}", tags=["cases"])
    def act(case_id: CaseId, action: str, body: ActionRequest, who: Caller, application: Application,
            idempotency_key: Annotated[str | None, Header(min_length=8, max_length=120, description=(
                "retrying with the same key answers with the recorded result instead of acting twice"))] = None,
            ) -> dict[str, Any]:
        """Take an action; ``version`` is the version the client saw (409 if it changed). A client
        that may retry (after a timeout) sends an ``Idempotency-Key``."""
        from ..domain.errors import DomainError
        from ..service.cases import perform_action

        visible_case(application, case_id, who)
        if who.read_only or (action in ACTIONS and (not who.actor.may(action) or ACTIONS[action].bookkeeping)):
            TRANSITIONS.labels(action if action in ACTIONS else "unknown", "forbidden").inc()
            log.warning("action refused", action=action, reason="role", role=who.role)
            raise ApiError("forbidden", f"a {who.role} may not {action}", action=action)
        if action in ("attach_evidence", "attach_document"):  # by uploading the bytes, never by naming a hash
            TRANSITIONS.labels(action, "forbidden").inc()
            where = "evidence" if action == "attach_evidence" else "documents"
            raise ApiError("forbidden", f"attach a file by uploading it: POST /api/v1/cases/{{id}}/{where}",
                           action=action)
        try:
            result = perform_action(application.db, case_id, action, body.data, who.actor, application.clock.now(),
                                    expected_version=body.version,
                                    idempotency_key=f"api:{who.token_id}:{idempotency_key}" if idempotency_key else None)
        except DomainError as exc:
            TRANSITIONS.labels(action if action in ACTIONS else "unknown", exc.code).inc()
            log.warning("action refused", action=action, reason=exc.code, detail=exc.message)
            raise
        TRANSITIONS.labels(action, "ok").inc()
        log.info("action taken", action=action, state=result.case.state, version=result.case.version)
        return {"id": case_id, "state": result.case.state, "version": result.case.version,
                "allowed_actions": allowed_actions(result.case, result.ctx, result.now, actor=who.actor),
                "event": result.event.to_dict()}

    # ------------------------------------------------------------ sheets
    @api.get("/api/v1/cases/{case_id}/sheets", tags=["sheets"])
    def sheets(case_id: CaseId, who: Caller, application: Application) -> dict[str, Any]:
        """The latest self-assessment, verification and recheck sheets, scored against the round's rubric."""
        from ..service.sheets import case_sheets

        visible_case(application, case_id, who)
        s = case_sheets(application.db, case_id)

        def sheet(score: Any) -> Any:
            if score is None:
                return None
            return {"total": num(score.total), "complete": score.complete,
                    "criteria": {code: num(points) for code, points in score.criteria.items()},
                    "missing": list(score.missing)}

        return {"rubric": s.rubric.id, "unit": s.unit_name, "self": sheet(s.self), "verified": sheet(s.verified),
                "recheck": sheet(s.recheck)}

    @api.get("/api/v1/cases/{case_id}/sheets.xlsx", tags=["sheets"], response_class=Response,
             responses={200: {"content": {XLSX: {}}}})
    def sheets_xlsx(case_id: CaseId, who: Caller, application: Application) -> Response:
        """The score sheet in the province's printed layout, self and verified side by side."""
        from ..adapters.score_sheet_xlsx import export_score_sheet, layout_for
        from ..service.sheets import case_sheets

        visible_case(application, case_id, who)
        s = case_sheets(application.db, case_id)
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "sheet.xlsx"
            export_score_sheet(s.rubric, unit_name=s.unit_name, layout=layout_for(s.rubric), self_score=s.self,
                               verified_score=s.verified, recheck_score=s.recheck, out=out)
            data = out.read_bytes()
        return Response(data, media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-sheet.xlsx"'})

    # ------------------------------------------------------------ evidence
    @api.get("/api/v1/cases/{case_id}/evidence", tags=["evidence"])
    def evidence(case_id: CaseId, who: Caller, application: Application) -> list[dict[str, Any]]:
        """The case's evidence files in rubric order."""
        from ..service.evidence import list_evidence

        visible_case(application, case_id, who)
        return [{"criterion": i.criterion, "item": i.item_name, "sha256": i.sha256, "filename": i.filename,
                 "size": i.size, "type": i.type, "attached_by": i.attached_by, "attached_at": iso(i.attached_at)}
                for i in list_evidence(application.db, case_id)]

    @api.post("/api/v1/cases/{case_id}/evidence", tags=["evidence"], status_code=201,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload_evidence(case_id: CaseId, request: Request, who: Caller, application: Application,
                              criterion: str = Query(min_length=1, max_length=32),
                              filename: str = Query(min_length=1, max_length=200)) -> dict[str, Any]:
        """Upload one evidence file (the request body) and attach it to a criterion of the unit's case."""
        from starlette.concurrency import run_in_threadpool

        from ..service.evidence import attach_bytes

        visible_case(application, case_id, who)
        if who.read_only or not who.actor.may("attach_evidence"):
            raise ApiError("forbidden", f"a {who.role} may not attach evidence", action="attach_evidence")
        data = await read_body(request, application.settings.evidence_max_bytes)
        results = await run_in_threadpool(attach_bytes, application.db, application.evidence, case_id, criterion,
                                          [(filename, data)], who.actor, application.clock.now())
        payload = results[-1].event.payload
        return {"case_id": case_id, "version": results[-1].case.version, "criterion": payload["criterion"],
                "sha256": payload["sha256"], "filename": payload["filename"], "size": payload["size"],
                "type": payload["type"]}

    @api.get("/api/v1/cases/{case_id}/documents", tags=["evidence"])
    def documents(case_id: CaseId, who: Caller, application: Application) -> list[dict[str, Any]]:
        """The documents the round asks for (自评报告, 自评打分表 ...) and the files on each."""
        from ..service.evidence import list_documents

        visible_case(application, case_id, who)
        with application.db.reader() as uow:
            ctx = uow.round_context(uow.get(case_id).round_id)
        files = list_documents(application.db, case_id)
        return [{"id": d.id, "name": d.name, "note": d.note, "files": [
            {"sha256": f.sha256, "filename": f.filename, "size": f.size, "type": f.type,
             "attached_by": f.attached_by, "attached_at": iso(f.attached_at)} for f in files if f.document == d.id]}
            for d in ctx.documents]

    @api.post("/api/v1/cases/{case_id}/documents", tags=["evidence"], status_code=201,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload_document(case_id: CaseId, request: Request, who: Caller, application: Application,
                              document: str = Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$"),
                              filename: str = Query(min_length=1, max_length=200)) -> dict[str, Any]:
        """Upload one file (the request body) as a document the round asks for (``document`` is
        its id, e.g. ``self_report`` for 自评报告)."""
        from starlette.concurrency import run_in_threadpool

        from ..service.evidence import attach_document_bytes

        visible_case(application, case_id, who)
        if who.read_only or not who.actor.may("attach_document"):
            raise ApiError("forbidden", f"a {who.role} may not attach documents", action="attach_document")
        data = await read_body(request, application.settings.evidence_max_bytes)
        results = await run_in_threadpool(attach_document_bytes, application.db, application.evidence, case_id,
                                          document, [(filename, data)], who.actor, application.clock.now())
        payload = results[-1].event.payload
        return {"case_id": case_id, "version": results[-1].case.version, "document": payload["document"],
                "sha256": payload["sha256"], "filename": payload["filename"], "size": payload["size"],
                "type": payload["type"]}

    @api.get("/api/v1/cases/{case_id}/evidence.zip", tags=["evidence"], response_class=Response,
             responses={200: {"content": {"application/zip": {}}}})
    def evidence_zip(case_id: CaseId, who: Caller, application: Application) -> Response:
        """All the case's evidence as one ZIP, in rubric order."""
        from ..service.evidence import export_archive

        visible_case(application, case_id, who)
        out = io.BytesIO()
        export_archive(application.db, application.evidence, case_id, out)
        return Response(out.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-evidence.zip"'})

    @api.get("/api/v1/cases/{case_id}/evidence/{sha256}", tags=["evidence"], response_class=Response,
             responses={200: {"content": {"application/octet-stream": {}}}})
    def evidence_file(case_id: CaseId, sha256: str, who: Caller, application: Application) -> Response:
        """One evidence file of the case (only files attached to this case are served)."""
        from urllib.parse import quote

        from ..service.evidence import list_evidence

        visible_case(application, case_id, who)
        item = next((i for i in list_evidence(application.db, case_id) if i.sha256 == sha256), None)
        if item is None:
            raise ApiError("not_found", f"case {case_id} has no evidence file {sha256}", case_id=case_id)
        data = application.evidence.open(item.sha256)
        return Response(data, media_type="application/octet-stream",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(item.filename)}"})

    # ------------------------------------------------------------ notifications
    @api.get("/api/v1/cases/{case_id}/notifications", tags=["notifications"])
    def notifications(case_id: CaseId, who: Caller, application: Application) -> list[dict[str, Any]]:
        """Mails about the case and their delivery state."""
        from ..service.queries import list_notifications

        visible_case(application, case_id, who)
        rows = list_notifications(application.db, case_id=case_id, limit=1000)
        return [{"id": r.id, "kind": r.kind, "milestone": r.milestone, "tier": r.tier, "due_on": iso(r.due_on),
                 "status": r.status, "attempts": r.attempts, "created_at": iso(r.created_at),
                 "sent_at": iso(r.sent_at), "last_error": r.last_error,
                 "recipients": json.loads(r.recipients) if r.recipients else None} for r in rows]
