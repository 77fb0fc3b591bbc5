"""The printed score sheet (附件3) coming back: a unit's or coordinator's filled-in workbook,
uploaded and recorded as the case's self-assessment or verification."""
from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from ..adapters.rosters import SheetLimits
from ..adapters.score_sheet_upload import read_score_sheet
from ..domain.access import Principal
from ..domain.case import allowed_actions
from ..domain.errors import DomainError, InvalidInput, Problem
from ..domain.text import filename_problem
from ..metrics import TRANSITIONS
from ..service.sheet_upload import KINDS, record_sheet_upload
from .cases import event_out
from .common import ROLE_ZH, XLSX, ApiError, Application, SeenCase, binary_body, log, uploaded_files, writer
from .schemas import ActionOut

router = APIRouter(prefix="/api/v1")


@router.post("/cases/{case_id}/score-sheet.xlsx", tags=["sheets"], openapi_extra=binary_body(True, XLSX, several=True))
async def upload_score_sheet(
        case: SeenCase, request: Request, who: Annotated[Principal, Depends(writer("upload a score sheet"))],
        application: Application,
        kind: Literal["self", "verify"] | None = Query(
            None, description="self: the 自评得分 column, recorded as the unit's self-assessment; verify: the 核查得分 "
                              "column, recorded as the coordinator's verification (default: by the caller's role)"),
        filename: str | None = Query(None, min_length=1, max_length=200)) -> ActionOut:
    """Upload the case's score sheet (``GET /cases/{id}/sheets.xlsx``, or ``workflow cases sheet ID --xlsx``)
    filled in: the workbook as the request body, or one file as ``multipart/form-data``. Each
    criterion's points are read from its row (found by its code, 编号) and recorded as the action
    would record them; every problem is named by row and criterion and nothing is recorded. A
    sheet of another case is refused. Bounded like a roster (``roster_max_bytes``, ``sheet_max_*``)."""
    chosen = kind or ("verify" if who.role == "coordinator" else "self")
    action = KINDS[chosen]
    if not who.actor.may(action):
        raise ApiError("forbidden", f"a {who.role} may not {action} (upload a {chosen} sheet)",
                       zh=f"{ROLE_ZH.get(who.role, who.role)}无权上传此类评分表", action=action)
    limits = SheetLimits.from_settings(application.settings)
    multipart = request.headers.get("content-type", "").lower().startswith("multipart/form-data")
    files = await uploaded_files(request, filename if multipart else filename or "score-sheet.xlsx",
                                 max_file_bytes=limits.max_bytes, max_files=1)
    if len(files) != 1:
        raise ApiError("invalid_input", f"one score sheet per upload; this one has {len(files)} files",
                       problems=[{"where": "body", "what": f"{len(files)} files", "zh": "每次只能上传一份评分表"}])
    (name, data), = files
    name = name or "score-sheet.xlsx"  # a form's file part may come without a name
    bad_name = filename_problem(name)
    if bad_name is not None:  # the name is shown escaped: it may hide its own letters
        raise InvalidInput("score sheet refused: its file name; nothing recorded",
                           [Problem("filename", f"{name!r}: {bad_name[0]}", f"{name!r}：{bad_name[1]}")],
                           "评分表文件名不符合要求，未登记")
    try:
        result = await run_in_threadpool(partial(
            record_sheet_upload, application.db, case.id, data, who.actor, application.clock.now(), kind=chosen,
            read=partial(read_score_sheet, limits=limits), source=name))
    except DomainError as exc:
        TRANSITIONS.labels(action, exc.code).inc()
        log.warning("score sheet refused", action=action, reason=exc.code, detail=exc.message)
        raise
    TRANSITIONS.labels(action, "ok").inc()
    log.info("score sheet recorded", action=action, state=result.case.state, version=result.case.version)
    return ActionOut(id=case.id, state=result.case.state, version=result.case.version,
                     allowed_actions=allowed_actions(result.case, result.ctx, result.now, actor=who.actor),
                     event=event_out(result.event))
