"""The unit's self-assessment sheet (自评打分表, 附件3 of the Shanxi notice) in the console: the
form laid out as the notice lays it out, beside each criterion its evidence (佐证材料) and an
upload control, the round's required documents (自评报告, 自评打分表 ...) with theirs, what is
still missing before submission, and the submission.

Who may use the forms is what the domain says (``allowed_actions`` for the person): the case's
unit, and admins. A coordinator or an auditor of the case's area sees the page read-only (no
forms; their POSTs are refused, 403); anyone else gets 404, as for the case itself.

Uploads go through the same service as the API's (``attach_bytes``, ``attach_document_bytes``:
all files of one upload or none, within the case's quota), bounded as the API bounds them
(``uploaded_files``; the request guard bounds the body).
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..adapters.evidence_store import ALLOWED_TYPES
from ..api.cases import Sha256, quota
from ..api.common import STATUS, ApiError, attachment, uploaded_files
from ..domain.errors import ConflictError, DomainError, InvalidInput, Problem
from ..domain.guards import allowed_actions
from ..domain.rubric import Rubric
from ..metrics import TRANSITIONS
from ..service.cases import perform_action, read_case
from ..service.due import what_is_due
from ..service.evidence import (
    DocumentItem,
    EvidenceItem,
    attach_bytes,
    attach_document_bytes,
    list_documents,
    list_evidence,
    named_by_content,
)
from ..service.sheets import case_sheets
from .common import PageError, Signed, Viewer, app_of, check_csrf, log, page, points, redirect
from .pages import CaseId, _entries, seen_case

router = APIRouter(include_in_schema=False)

# What a browser shows itself (a preview); anything else is always a download.
INLINE = ("png", "jpeg", "gif", "webp", "pdf")
# A preview is a file, not a page: it runs nothing, loads nothing but itself, is never framed
# elsewhere, and is not kept by caches.
INLINE_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; object-src 'self'; "
              "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
FIELD_MAX = 20  # characters of a typed entry kept (as pages._entries reads them)


# ---------------------------------------------------------------- the page

@router.get("/cases/{case_id}/sheet")
def sheet_page(request: Request, me: Signed, case_id: CaseId) -> HTMLResponse:
    q = request.query_params
    notice = None
    if q.get("saved") == "1":
        notice = "已保存自评表。"
    elif (q.get("uploaded") or "").isdigit():
        notice = f"已上传 {int(q['uploaded'])} 个文件。"
    elif q.get("removed") == "1":
        notice = "已删除该文件（删除记录保留在案件历史中）。"
    return _render(request, me, case_id, notice=notice)


def _render(request: Request, me: Viewer, case_id: int, *, status: int = 200, notice: str | None = None,
            typed: Mapping[str, str] | None = None, problems: Iterable[Problem] = (), message: str | None = None,
            upload: tuple[str, str] | None = None) -> HTMLResponse:
    """The sheet page: the case as it is now; ``typed`` the values the person sent (kept when
    their form is answered with its problems), ``upload`` the (kind, target) an upload's
    ``problems`` are about."""
    application = app_of(request)
    scope = seen_case(application, me, case_id)
    now = application.clock.now()
    found = read_case(application.db, case_id)
    c, ctx = found.case, found.ctx
    rubric: Rubric = ctx.rubric
    allowed = [] if me.who.read_only else allowed_actions(c, ctx, now, actor=me.who.actor)
    evidence: dict[str, list[Any]] = defaultdict(list)
    for e in list_evidence(application.db, case_id):
        evidence[e.criterion].append(e)
    documents: dict[str, list[Any]] = defaultdict(list)
    for d in list_documents(application.db, case_id):
        documents[d.document].append(d)
    problems = _each(problems, rubric)
    return page(request, "sheet.html", status=status, c=c, ctx=ctx, scope=scope, rubric=rubric,
                sheets=case_sheets(application.db, case_id), allowed=allowed,
                prefill=dict(typed) if typed is not None else _prefill(c.self_entries or {}, rubric),
                problems=problems, by_criterion=_by_criterion(problems, rubric), message=message, notice=notice,
                evidence=evidence, documents=documents, upload=upload, inline_types=INLINE,
                due=what_is_due(application.db, application.calendars, case_id, now))


def _prefill(entries: Mapping[str, Any], rubric: Rubric) -> dict[str, str]:
    """The saved sheet as its fields show it: points, or for a criterion scored per occurrence
    the number of occurrences those points stand for (the field takes a number of occurrences)."""
    out: dict[str, str] = {}
    for criterion in rubric.criteria():
        value = entries.get(criterion.code)
        if value is None:
            continue
        scored = Decimal(str(value))
        if criterion.per_occurrence and criterion.points:
            out[criterion.code] = str(int(scored // criterion.points))
        else:
            out[criterion.code] = points(scored)
    return out


def _pattern(rubric: Rubric) -> re.Pattern[str]:
    """``<code>：`` (or ``<code>:``) at the start of a text or after a ``；``/``;``: where the
    problem of ``entries`` names each malformed entry."""
    codes = sorted((c.code for c in rubric.criteria()), key=len, reverse=True)
    return re.compile(r"(?:^|[；;]\s*)(" + "|".join(re.escape(c) for c in codes) + r")\s*[：:]\s*")


def _parts(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = list(pattern.finditer(text))
    return [(m.group(1), text[m.end():found[i + 1].start() if i + 1 < len(found) else len(text)].strip())
            for i, m in enumerate(found)]


def _each(problems: Iterable[Problem], rubric: Rubric) -> list[Problem]:
    """The problems as the page lists them, each under the criterion it is about: a score the
    rubric refuses names its criterion (``where``); malformed entries are one problem of
    ``entries`` whose text says ``<code>：<what>`` for each (split here, one per criterion)."""
    pattern = _pattern(rubric)
    out: list[Problem] = []
    for p in problems:
        zh = _parts(p.zh or "", pattern) if p.where == "entries" else []
        if not zh:
            out.append(p)
            continue
        en = dict(_parts(p.what, pattern))
        out.extend(Problem(code, en.get(code, p.what), text) for code, text in zh)
    return out


def _by_criterion(problems: list[Problem], rubric: Rubric) -> dict[str, list[str]]:
    codes = {c.code for c in rubric.criteria()}
    out: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        if p.where in codes:
            out[p.where].append(p.zh or p.what)
    return dict(out)


# ---------------------------------------------------------------- saving the sheet

def _may(me: Viewer, action: str) -> None:
    """403 for a role that may not take the action (an auditor, a coordinator on a unit's sheet)."""
    if me.who.read_only or not me.who.actor.may(action):
        raise PageError(403, f"a {me.who.role} may not {action}", "无权执行此操作：自评表和材料由本单位填写、上传")


@router.post("/cases/{case_id}/sheet")
async def save_sheet(request: Request, me: Signed, case_id: CaseId) -> Response:
    """Record the sheet as far as it is filled in (a partial sheet is kept; empty fields change
    nothing); refused entries come back on the form, as typed, each with its problem."""
    application = app_of(request)
    form = await request.form(max_files=0, max_fields=600, max_part_size=64 * 1024)
    check_csrf(me, str(form.get("csrf", "")))
    scope = seen_case(application, me, case_id)
    _may(me, "self_assess")
    version = str(form.get("version", ""))
    if not version.isdigit():
        raise PageError(422, "the form has no version", "表单缺少案件版本号", [{"where": "version", "what": "missing"}])
    with application.db.reader() as uow:
        rubric = uow.round_context(scope.round_id).rubric
    entries = _entries(form, rubric)
    typed = {c.code: str(form.get(f"e_{c.code}", "") or "").strip()[:FIELD_MAX] for c in rubric.criteria()}
    try:
        await run_in_threadpool(perform_action, application.db, case_id, "self_assess", {"entries": entries},
                                me.who.actor, application.clock.now(), expected_version=int(version))
    except InvalidInput as exc:
        TRANSITIONS.labels("self_assess", exc.code).inc()
        log.info("sheet refused", case_id=case_id, problems=len(exc.problems))
        return await run_in_threadpool(
            _render, request, me, case_id, status=422, typed=typed, problems=exc.problems,
            message="自评表未保存：有填写不符合评分标准的地方，请按下列提示修改后再保存（您填写的内容都已保留）。")
    except ConflictError as exc:  # changed meanwhile: the form again, as typed, on the case as it is now
        TRANSITIONS.labels("self_assess", exc.code).inc()
        return await run_in_threadpool(
            _render, request, me, case_id, status=409, typed=typed,
            message="自评表未保存：您打开本页后案件已被修改（例如上传了材料）。下面保留了您填写的分数，"
                    "请核对后再次保存。")
    except DomainError as exc:
        TRANSITIONS.labels("self_assess", exc.code).inc()
        raise
    TRANSITIONS.labels("self_assess", "ok").inc()
    log.info("sheet saved", case_id=case_id, entries=len(entries))
    return redirect(f"/cases/{case_id}/sheet?saved=1")


# ---------------------------------------------------------------- uploads

@router.post("/cases/{case_id}/evidence")
async def upload_evidence(request: Request, me: Signed, case_id: CaseId) -> Response:
    """One or more files (``files``) attached to a criterion (``criterion``): all or none."""
    return await _upload(request, me, case_id, "evidence")


@router.post("/cases/{case_id}/documents")
async def upload_document(request: Request, me: Signed, case_id: CaseId) -> Response:
    """One or more files (``files``) as a required document (``document``): all or none."""
    return await _upload(request, me, case_id, "document")


async def _upload(request: Request, me: Viewer, case_id: int, kind: str) -> Response:
    application = app_of(request)
    st = application.settings
    # the same bounds as uploaded_files reads them with (it reads this parsed form again)
    form = await request.form(max_files=st.upload_max_files, max_fields=st.upload_max_files + 10,
                              max_part_size=64 * 1024)
    check_csrf(me, str(form.get("csrf", "")))
    seen_case(application, me, case_id)
    field, action = ("criterion", "attach_evidence") if kind == "evidence" else ("document", "attach_document")
    _may(me, action)
    target = str(form.get(field, "") or "").strip()[:64]
    try:
        files = [(name, data) for name, data in await uploaded_files(
            request, None, max_file_bytes=st.evidence_max_bytes, max_files=st.upload_max_files) if name or data]
    except ApiError as exc:  # no file part at all (too large: answered as the API answers it)
        if exc.code != "invalid_input":
            raise
        files = []
    if not files:  # the form sent with no file chosen
        return await run_in_threadpool(
            _render, request, me, case_id, status=422, upload=(kind, target), message="未上传：请先选择文件。",
            problems=[Problem("files", "no file chosen", "请选择要上传的文件（可一次选择多个）")])
    attach: Callable[..., Any] = attach_bytes if kind == "evidence" else attach_document_bytes
    try:
        results = await run_in_threadpool(lambda: attach(
            application.db, application.evidence, case_id, target, files, me.who.actor, application.clock.now(),
            quota=quota(application)))
    except InvalidInput as exc:  # a file refused (type, size, name), or the quota: nothing was attached
        log.info("upload refused", case_id=case_id, kind=kind, reason=exc.code)
        return await run_in_threadpool(
            _render, request, me, case_id, status=STATUS.get(exc.code, 422), upload=(kind, target),
            problems=exc.problems, message="未上传任何文件：" + (exc.message_zh or exc.message))
    log.info("files attached", case_id=case_id, kind=kind, files=len(results))
    anchor = f"c-{target}" if kind == "evidence" else f"doc-{target}"
    return redirect(f"/cases/{case_id}/sheet?uploaded={len(results)}#{quote(anchor, safe='.-_')}")


# ---------------------------------------------------------------- removing a file

_REMOVE = re.compile(r"^(evidence|document)\|([A-Za-z0-9._-]{1,64})\|([0-9a-f]{64})$")


@router.post("/cases/{case_id}/files/remove")
def remove_file(request: Request, me: Signed, case_id: CaseId, csrf: Annotated[str, Form(max_length=100)] = "",
                remove: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Take a file off a criterion (``evidence|<criterion>|<sha256>``) or a required document
    (``document|<document>|<sha256>``): an event on the case (the file stays in the store and
    in the history)."""
    check_csrf(me, csrf)
    application = app_of(request)
    seen_case(application, me, case_id)
    found = _REMOVE.match(remove.strip())
    if found is None:
        raise PageError(422, "remove must be evidence|<criterion>|<sha256> or document|<document>|<sha256>",
                        "要删除的文件无法识别，请回到自评表页面重新操作",
                        [{"where": "remove", "what": "evidence|criterion|sha256 or document|id|sha256",
                          "zh": "格式应为 材料类别|编号|文件摘要"}])
    kind, target, sha256 = found.groups()
    action, field = ("remove_evidence", "criterion") if kind == "evidence" else ("remove_document", "document")
    _may(me, action)
    perform_action(application.db, case_id, action, {field: target, "sha256": sha256}, me.who.actor,
                   application.clock.now())
    log.info("file removed", case_id=case_id, kind=kind, target=target)
    anchor = f"c-{target}" if kind == "evidence" else f"doc-{target}"
    return redirect(f"/cases/{case_id}/sheet?removed=1#{quote(anchor, safe='.-_')}")


# ---------------------------------------------------------------- downloads and previews

@router.get("/cases/{case_id}/evidence/{sha256}")
def download(request: Request, me: Signed, case_id: CaseId, sha256: Sha256,
             inline: str | None = Query(None, max_length=1)) -> Response:
    """A file of the case (evidence or a required document; no other file), as a download; with
    ``?inline=1`` an image or a PDF is shown in the browser instead (a preview)."""
    application = app_of(request)
    seen_case(application, me, case_id)
    items: list[EvidenceItem | DocumentItem] = [*list_evidence(application.db, case_id),
                                                *list_documents(application.db, case_id)]
    item = next((i for i in items if i.sha256 == sha256), None)
    if item is None:
        raise PageError(404, f"case {case_id} has no file {sha256}", f"案件 {case_id} 没有该文件（{sha256[:12]}…）")
    size = application.evidence.size(item.sha256)  # a missing blob: 404 before anything is sent
    name = named_by_content(item)
    headers = {**attachment(name), "Content-Length": str(size), "Cache-Control": "private, no-store"}
    media = "application/octet-stream"
    if inline == "1" and item.type in INLINE:
        headers["Content-Disposition"] = headers["Content-Disposition"].replace("attachment", "inline", 1)
        headers["Content-Security-Policy"] = INLINE_CSP
        media = ALLOWED_TYPES[item.type]
    return StreamingResponse(application.evidence.chunks(item.sha256), media_type=media, headers=headers)
