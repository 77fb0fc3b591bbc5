"""Cases: lists, one case, actions, history, sheets, evidence, notifications."""
from __future__ import annotations

import difflib
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..adapters.case_list_xlsx import case_list_xlsx
from ..bootstrap import App
from ..domain.access import Principal
from ..domain.case import allowed_actions
from ..domain.dates import business_date
from ..domain.duties import waiting_on
from ..domain.errors import DomainError
from ..domain.events import Event
from ..domain.lifecycle import ACTIONS
from ..domain.rubric import SheetScore
from ..files import score_sheet_xlsx
from ..metrics import TRANSITIONS
from ..service.cases import by_name_only, perform_action, read_case
from ..service.due import what_is_due
from ..service.evidence import (
    EvidenceQuota,
    archive_chunks,
    attach_bytes,
    attach_document_bytes,
    list_documents,
    list_evidence,
    named_by_content,
)
from ..service.histories import events_csv, events_jsonl
from ..service.ports import CaseRow, CaseScope
from ..service.queries import (
    CASE_SORTS,
    MILESTONE_MAX,
    NAME_MAX,
    OFFSET_MAX,
    list_cases,
    list_notifications,
    round_calendar,
)
from ..service.sheets import case_sheets
from .common import (
    ROLE_ZH,
    XLSX,
    ApiError,
    Application,
    Caller,
    SeenCase,
    attachment,
    binary_body,
    log,
    round_or_404,
    scope_root,
    uploaded_files,
    writer,
)
from .schemas import (
    ActionOut,
    CaseItem,
    CaseOut,
    CasePage,
    DocumentAttached,
    DocumentFile,
    DocumentOut,
    DueOut,
    EventOut,
    EvidenceAttached,
    EvidenceOut,
    MissingOut,
    NotificationOut,
    OwedOut,
    ReminderOut,
    RequiredDocument,
    SheetOut,
    SheetsOut,
    StoredFile,
    UnitRef,
    WaitingOn,
    iso,
    num,
)

router = APIRouter(prefix="/api/v1")
# An action's name as the lifecycle spells them (an unknown one of this shape is 404: decision 28).
ActionName = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-z_]+$",
                                 description="an action, e.g. submit (GET /api/v1/actions lists them)")]
Sha256 = Annotated[str, Path(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$",
                             description="the file's sha256 (64 lowercase hex digits)")]


class ActionRequest(BaseModel):
    """An action on a case: its input, and the version of the case the client saw."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"version": 2, "data": {"entries": {"1.1.1": "2", "5.1.1": {"count": 1}}}},
        {"version": 4, "data": {"note": "材料齐全"}}]})
    version: int = Field(ge=1, description="the case version the client saw; 409 if it changed")
    data: dict[str, Any] = Field(default_factory=dict, description="the action's input (see GET /api/v1/actions)")


def event_out(e: Event) -> EventOut:
    # built from the stored event as it is (typed by the domain): not validated again field by
    # field (``model_construct``), which was the largest part of a history's serialisation
    return EventOut.model_construct(**e.to_dict())


def quota(application: App) -> EvidenceQuota:
    """The evidence quota of a case, from the settings."""
    return EvidenceQuota(application.settings.evidence_quota_bytes, application.settings.evidence_quota_files)


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """The filters and the order of a case list, checked against the caller's scope."""

    who: Principal
    round: str | None
    state: str | None
    jurisdiction: str | None
    overdue: bool | None
    category: str | None
    level: str | None
    name: str | None = None
    missed: str | None = None
    sort: str = "id"

    def page(self, application: App, after: int, limit: int, offset: int = 0) -> list[CaseRow]:
        who = self.who
        return list_cases(application.db, round_id=self.round, state=self.state, jurisdiction_id=self.jurisdiction,
                          after_id=after, limit=limit, overdue=self.overdue, category=self.category,
                          level=self.level, unit_id=who.unit_id if who.role == "unit" else None,
                          within_path=who.jurisdiction_path, name=self.name, missed=self.missed, sort=self.sort,
                          offset=offset)


CaseSort = Literal["id", "-id", "unit", "-unit", "self_total", "-self_total", "verified_total", "-verified_total",
                   "updated", "-updated", "state", "-state"]
assert get_args(CaseSort) == CASE_SORTS  # one list of sorts: the service's


async def case_query(who: Caller, application: Application, round: str | None = Query(None, max_length=80),
               state: str | None = Query(None, max_length=40), jurisdiction: str | None = Query(None, max_length=64),
               overdue: bool | None = None, category: str | None = Query(None, max_length=32),
               level: str | None = Query(None, max_length=32),
               name: str | None = Query(None, max_length=NAME_MAX, description=(
                   f"a part of the unit's name (at most {NAME_MAX} characters), taken literally (% and _ are "
                   "no wildcards), A-Z as a-z")),
               missed: str | None = Query(None, max_length=MILESTONE_MAX, pattern=r"^\w*$", description=(
                   "only the cases that missed this milestone (e.g. self_assessment), overdue still or not")),
               sort: CaseSort = Query("id", description=(
                   "the order: a key, or \"-\" and the key for descending; the id breaks ties; cases without "
                   "a total come last either way; state is the lifecycle's order. sort=id pages with the "
                   "cursor ``after``, any other sort with ``offset``"))) -> CaseQuery:
    if jurisdiction is not None:  # a jurisdiction outside the caller's scope does not exist for them
        scope_root(application, who, jurisdiction)
    if round is not None:  # an unknown round is an error, not an empty page
        round_or_404(application, round, who)
    return CaseQuery(who, round, state, jurisdiction, overdue, category, level, name, missed, sort)


Cases = Annotated[CaseQuery, Depends(case_query)]
LIST_XLSX_MAX = 200_000  # a workbook of more is refused (narrow the filter), never cut silently
XLSX_SORTED_PAGE = 5000  # rows read at a time for a workbook in another order than the id's


class CaseListPage(CasePage):
    """A page of the case list: ``next`` is the cursor of the id order's next page; another sort
    pages by offset (``next_offset``)."""

    next_offset: int | None = Field(None, description=(
        "with a sort other than id: the ``offset`` of the next page (null on the last, and with sort=id, "
        "whose next page is ``after=next``)"))


@router.get("/cases.xlsx", tags=["cases"], response_class=Response, responses={200: {"content": {XLSX: {}}}})
def cases_xlsx(query: Cases, application: Application) -> Response:
    """Exactly the list ``GET /cases`` gives for these filters, in its order, as a workbook a
    clerk can file and print (Chinese headers, state names beside their codes, Beijing time)."""
    def pages() -> Iterator[list[CaseRow]]:
        if query.sort == "id":  # by cursor
            after = 0
            while page := query.page(application, after, 1000):
                yield page
                after = page[-1].id
        else:  # by offset, in larger pages (each one sorts the matching cases again; a case whose
            # key changes meanwhile may move across a page's edge, as in any offset paging)
            offset = 0
            while page := query.page(application, 0, XLSX_SORTED_PAGE, offset):
                yield page
                offset += len(page)
                if offset > LIST_XLSX_MAX:
                    break

    def rows() -> Iterator[CaseRow]:
        seen = 0
        for page in pages():
            seen += len(page)
            if seen > LIST_XLSX_MAX:
                raise ApiError("invalid_input", f"more than {LIST_XLSX_MAX} cases match; narrow the filter",
                               problems=[{"where": "query", "what": f"more than {LIST_XLSX_MAX} cases",
                                          "zh": f"符合条件的案件超过 {LIST_XLSX_MAX} 件，请缩小筛选范围"}])
            yield from page
    out = io.BytesIO()
    title = f"案件清单：{query.round or '全部轮次'}" + (f"，{query.jurisdiction}" if query.jurisdiction else "")
    case_list_xlsx(rows(), out, title)
    return Response(out.getvalue(), media_type=XLSX, headers=attachment(f"cases-{query.round or 'all'}.xlsx"))


@router.get("/cases", tags=["cases"])
def cases(query: Cases, application: Application,
          after: int = Query(0, ge=0, le=2**31 - 1, description="cursor (sort=id only): cases with an id above this"),
          limit: int = Query(100, ge=1, le=1000),
          offset: int = Query(0, ge=0, le=OFFSET_MAX, description=(
              "cases skipped before the page: how a sort other than id pages (``next_offset``)"))) -> CaseListPage:
    """Cases the caller may see, filtered, in pages. In id order (``sort=id``, the default) ``next``
    is the cursor (``after``) of the next page; in any other order ``next`` is null and
    ``next_offset`` is the ``offset`` of the next page."""
    rows = query.page(application, after, limit, offset)
    full = len(rows) == limit
    # rows typed by the read model, not validated again (``model_construct``): 100 validated
    # items were most of a page's cost in the web layer
    return CaseListPage(items=[CaseItem.model_construct(
        id=r.id, round_id=r.round_id, unit=UnitRef.model_construct(id=r.unit_id, name=r.unit_name),
        jurisdiction=r.jurisdiction_id,
        category=r.category, state=r.state, version=r.version, self_total=num(r.self_total),
        verified_total=num(r.verified_total), recheck_total=num(r.recheck_total),
        rectification_due=iso(r.rectification_due)) for r in rows],
        next=rows[-1].id if full and query.sort == "id" else None,
        next_offset=offset + len(rows) if full and query.sort != "id" else None)


@router.get("/cases/{case_id}", tags=["cases"])
def get_case(case: SeenCase, who: Caller, application: Application) -> CaseOut:
    """A case: state, version, scores, and what this caller may do next."""
    now = application.clock.now()
    found = read_case(application.db, case.id)
    c, ctx = found.case, found.ctx
    calendar, year = round_calendar(application.db, application.calendars, c.round_id)
    attached = {d for d, _, _ in c.documents}
    return CaseOut(
        id=c.id, round_id=c.round_id, unit=UnitRef(id=c.unit_id, name=case.unit_name), state=c.state,
        version=c.version, overdue=c.overdue, missed=[m for m, _ in c.missed],
        waiting_on=[WaitingOn(**{**w, "due_on": w["due_on"].isoformat()})
                    for w in waiting_on(calendar, year, c.state, business_date(now))],
        contact_form=c.contact_form,
        documents=[RequiredDocument(id=d.id, name=d.name, attached=d.id in attached) for d in ctx.documents],
        self_total=num(c.self_total), verified_total=num(c.verified_total), recheck_total=num(c.recheck_total),
        passed=c.passed, rectification_due=iso(c.rectification_due), held_title=c.held_title,
        carried_over_from=c.carried_over_from, evidence_count=len(c.evidence),
        allowed_actions=[] if who.read_only else allowed_actions(c, ctx, now, actor=who.actor))


@router.get("/cases/{case_id}/due", tags=["cases"])
def due(case: SeenCase, application: Application) -> DueOut:
    """What the case still owes and by when (each milestone the unit owes, the rectification
    deadline), the reminders still to come and who receives them, what stands between it and
    submission, and what it waits for from its bureau."""
    d = what_is_due(application.db, application.calendars, case.id, application.clock.now())
    return DueOut(case_id=d.case_id, state=d.state, today=d.today.isoformat(), unit_emails=d.unit_emails,
                  owed=[OwedOut(id=o.id, name=o.name, due_on=o.due_on.isoformat(), days_left=o.days_left,
                                what_to_do=o.what_to_do, escalate=list(o.escalate),
                                reminders=[ReminderOut(on=r.on.isoformat(), days_before=r.days_before, to=list(r.to))
                                           for r in o.reminders]) for o in d.owed],
                  missing=[MissingOut(**m) for m in d.missing],
                  waiting_on=[WaitingOn(**{**w, "due_on": w["due_on"].isoformat()}) for w in d.waiting_on])


def _history(application: App, case: CaseScope) -> list[Event]:
    return read_case(application.db, case.id, events=True).events


@router.get("/cases/{case_id}/history", tags=["audit"])
def case_history(case: SeenCase, application: Application) -> list[EventOut]:
    """Every event of the case, with actor, time and hash."""
    return [event_out(e) for e in _history(application, case)]


@router.get("/cases/{case_id}/history.jsonl", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def case_history_jsonl(case: SeenCase, application: Application) -> StreamingResponse:
    """The case's events as JSON lines."""
    return StreamingResponse(events_jsonl(_history(application, case)), media_type="application/x-ndjson",
                             headers=attachment(f"case-{case.id}.jsonl"))


@router.get("/cases/{case_id}/history.csv", tags=["audit"], response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def case_history_csv(case: SeenCase, application: Application) -> Response:
    """The case's events as CSV (UTF-8 with BOM)."""
    return Response(events_csv(_history(application, case)), media_type="text/csv; charset=utf-8",
                    headers=attachment(f"case-{case.id}.csv"))


def _may_act(who: Principal, action: str) -> None:
    """404 for an action that does not exist; 403 for one the caller's role may not take."""
    if action not in ACTIONS:
        TRANSITIONS.labels("unknown", "not_found").inc()
        near = difflib.get_close_matches(action, sorted(ACTIONS), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(near)}? " if near else ""
        zh_hint = f"是否要找 {'、'.join(near)}？" if near else ""
        raise ApiError("not_found", f"there is no action {action!r}; {hint}the actions: {', '.join(sorted(ACTIONS))}",
                       zh=f"没有名为 {action} 的操作；{zh_hint}", action=action, did_you_mean=near)
    if ACTIONS[action].bookkeeping and not who.read_only:
        TRANSITIONS.labels(action, "forbidden").inc()
        by_name_only(action)  # 403 naming the resource that records it (a filing batch, a spot check)
    if who.read_only or not who.actor.may(action) or ACTIONS[action].bookkeeping:
        TRANSITIONS.labels(action, "forbidden").inc()
        log.warning("action refused", action=action, reason="role", role=who.role)
        raise ApiError("forbidden", f"a {who.role} may not {action}",
                       zh=f"{ROLE_ZH.get(who.role, who.role)}无权执行“{action}”", action=action)
    if action in ("attach_evidence", "attach_document"):  # by uploading the bytes, never by naming a hash
        TRANSITIONS.labels(action, "forbidden").inc()
        where = "evidence" if action == "attach_evidence" else "documents"
        raise ApiError("forbidden", f"attach a file by uploading it: POST /api/v1/cases/{{id}}/{where}",
                       action=action)


@router.post("/cases/{case_id}/actions/{action}", tags=["cases"])
def act(case: SeenCase, action: ActionName, body: ActionRequest, who: Caller, application: Application,
        idempotency_key: Annotated[str | None, Header(min_length=8, max_length=120, description=(
            "retrying with the same key answers with the recorded result instead of acting twice"))] = None,
        ) -> ActionOut:
    """Take an action; ``version`` is the version the client saw (409 if it changed). A client
    that may retry (after a timeout) sends an ``Idempotency-Key``."""
    _may_act(who, action)
    try:
        result = perform_action(application.db, case.id, action, body.data, who.actor, application.clock.now(),
                                expected_version=body.version,
                                idempotency_key=f"api:{who.token_id}:{idempotency_key}" if idempotency_key else None)
    except DomainError as exc:
        TRANSITIONS.labels(action, exc.code).inc()
        log.warning("action refused", action=action, reason=exc.code, detail=exc.message)
        raise
    TRANSITIONS.labels(action, "ok").inc()
    log.info("action taken", action=action, state=result.case.state, version=result.case.version)
    return ActionOut(id=case.id, state=result.case.state, version=result.case.version,
                     allowed_actions=allowed_actions(result.case, result.ctx, result.now, actor=who.actor),
                     event=event_out(result.event))


# ------------------------------------------------------------ sheets

def sheet_out(score: SheetScore | None) -> SheetOut | None:
    if score is None:
        return None
    return SheetOut(total=format(score.total, "f"), complete=score.complete,
                    criteria={code: format(points, "f") for code, points in score.criteria.items()},
                    missing=list(score.missing))


@router.get("/cases/{case_id}/sheets", tags=["sheets"])
def sheets(case: SeenCase, application: Application) -> SheetsOut:
    """The latest self-assessment, verification and recheck sheets, scored against the round's rubric."""
    s = case_sheets(application.db, case.id)
    return SheetsOut(rubric=s.rubric.id, unit=s.unit_name, self=sheet_out(s.self), verified=sheet_out(s.verified),
                     recheck=sheet_out(s.recheck))


@router.get("/cases/{case_id}/sheets.xlsx", tags=["sheets"], response_class=Response,
            responses={200: {"content": {XLSX: {}}}})
def sheets_xlsx(case: SeenCase, application: Application) -> Response:
    """The score sheet in the province's printed layout, self and verified side by side."""
    return Response(score_sheet_xlsx(case_sheets(application.db, case.id)), media_type=XLSX,
                    headers=attachment(f"case-{case.id}-sheet.xlsx"))


# ------------------------------------------------------------ evidence

@router.get("/cases/{case_id}/evidence", tags=["evidence"])
def evidence(case: SeenCase, application: Application) -> list[EvidenceOut]:
    """The case's evidence files in rubric order."""
    return [EvidenceOut(criterion=i.criterion, item=i.item_name, sha256=i.sha256, filename=i.filename, size=i.size,
                        type=i.type, attached_by=i.attached_by, attached_at=i.attached_at.isoformat())
            for i in list_evidence(application.db, case.id)]


@router.post("/cases/{case_id}/evidence", tags=["evidence"], status_code=201,
             openapi_extra=binary_body(several=True))
async def upload_evidence(case: SeenCase, request: Request,
                          who: Annotated[Principal, Depends(writer("attach evidence"))], application: Application,
                          criterion: str = Query(min_length=1, max_length=32),
                          filename: str | None = Query(None, min_length=1, max_length=200)) -> EvidenceAttached:
    """Upload evidence and attach it to a criterion of the unit's case: one file as the request
    body (named by ``filename``), or several as ``multipart/form-data`` (as a browser's form
    sends them; each named as it was picked). All are attached or none; the answer describes
    the last and lists every one under ``files``."""
    if not who.actor.may("attach_evidence"):
        raise ApiError("forbidden", f"a {who.role} may not attach evidence", action="attach_evidence")
    st = application.settings
    files = await uploaded_files(request, filename, max_file_bytes=st.evidence_max_bytes,
                                 max_files=st.upload_max_files)
    results = await run_in_threadpool(lambda: attach_bytes(
        application.db, application.evidence, case.id, criterion, files, who.actor,
        application.clock.now(), quota=quota(application)))
    p = results[-1].event.payload
    return EvidenceAttached(case_id=case.id, version=results[-1].case.version, criterion=p["criterion"],
                            sha256=p["sha256"], filename=p["filename"], size=p["size"], type=p["type"],
                            files=[_stored(r.event.payload) for r in results])


@router.get("/cases/{case_id}/documents", tags=["evidence"])
def documents(case: SeenCase, application: Application) -> list[DocumentOut]:
    """The documents the round asks for (自评报告, 自评打分表 ...) and the files on each."""
    ctx = read_case(application.db, case.id).ctx
    files = list_documents(application.db, case.id)
    return [DocumentOut(id=d.id, name=d.name, note=d.note, files=[
        DocumentFile(sha256=f.sha256, filename=f.filename, size=f.size, type=f.type, attached_by=f.attached_by,
                     attached_at=f.attached_at.isoformat()) for f in files if f.document == d.id])
        for d in ctx.documents]


@router.post("/cases/{case_id}/documents", tags=["evidence"], status_code=201,
             openapi_extra=binary_body(several=True))
async def upload_document(case: SeenCase, request: Request,
                          who: Annotated[Principal, Depends(writer("attach documents"))], application: Application,
                          document: str = Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$"),
                          filename: str | None = Query(None, min_length=1, max_length=200)) -> DocumentAttached:
    """Upload a document the round asks for (``document`` is its id, e.g. ``self_report`` for
    自评报告): one file as the request body (named by ``filename``), or several as
    ``multipart/form-data``; all are attached or none."""
    if not who.actor.may("attach_document"):
        raise ApiError("forbidden", f"a {who.role} may not attach documents", action="attach_document")
    st = application.settings
    files = await uploaded_files(request, filename, max_file_bytes=st.evidence_max_bytes,
                                 max_files=st.upload_max_files)
    results = await run_in_threadpool(lambda: attach_document_bytes(
        application.db, application.evidence, case.id, document, files, who.actor,
        application.clock.now(), quota=quota(application)))
    p = results[-1].event.payload
    return DocumentAttached(case_id=case.id, version=results[-1].case.version, document=p["document"],
                            sha256=p["sha256"], filename=p["filename"], size=p["size"], type=p["type"],
                            files=[_stored(r.event.payload) for r in results])


def _stored(p: Mapping[str, Any]) -> StoredFile:
    return StoredFile(sha256=p["sha256"], filename=p["filename"], size=p["size"], type=p["type"])


@router.get("/cases/{case_id}/evidence.zip", tags=["evidence"], response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}}}})
def evidence_zip(case: SeenCase, application: Application) -> StreamingResponse:
    """All the case's evidence as one ZIP, in rubric order, sent as it is written (the
    archive is never whole in the server's memory). A missing file is a 404 before anything
    is sent; a file found damaged on the way cuts the download short (the ZIP is unreadable)."""
    chunks = archive_chunks(application.db, application.evidence, case.id)  # checked here, in the thread pool
    return StreamingResponse(chunks, media_type="application/zip",  # a sync iterator: read in the thread pool
                             headers=attachment(f"case-{case.id}-evidence.zip"))


@router.get("/cases/{case_id}/evidence/{sha256}", tags=["evidence"], response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def evidence_file(case: SeenCase, sha256: Sha256, application: Application) -> StreamingResponse:
    """One evidence file of the case (only files attached to this case are served), sent as
    it is read; a damaged file is cut short before its last bytes."""
    item = next((i for i in list_evidence(application.db, case.id) if i.sha256 == sha256), None)
    if item is None:
        raise ApiError("not_found", f"case {case.id} has no evidence file {sha256}",
                       zh=f"案件 {case.id} 没有该佐证材料（{sha256[:12]}…）", case_id=case.id)
    size = application.evidence.size(item.sha256)  # a missing file: 404 before anything is sent
    return StreamingResponse(application.evidence.chunks(item.sha256), media_type="application/octet-stream",
                             headers={**attachment(named_by_content(item)), "Content-Length": str(size)})


# ------------------------------------------------------------ notifications

@router.get("/cases/{case_id}/notifications", tags=["notifications"])
def notifications(case: SeenCase, application: Application) -> list[NotificationOut]:
    """Mails about the case and their delivery state."""
    return [NotificationOut(id=r.id, kind=r.kind, milestone=r.milestone, tier=r.tier, due_on=r.due_on.isoformat(),
                            status=r.status, attempts=r.attempts, created_at=r.created_at.isoformat(),
                            sent_at=iso(r.sent_at), last_error=r.last_error,
                            recipients=json.loads(r.recipients) if r.recipients else None)
            for r in list_notifications(application.db, case_id=case.id, limit=1000)]
