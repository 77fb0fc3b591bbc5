"""The console's pages for every role: home (a coordinator's progress, a unit's tasks, an
auditor's start), the case list, a case and its actions."""
from __future__ import annotations

import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from ..adapters.case_list_xlsx import case_list_xlsx
from ..bootstrap import App
from ..domain.access import Principal
from ..domain.dates import business_date
from ..domain.errors import DomainError, InvalidInput
from ..domain.guards import allowed_actions
from ..domain.lifecycle import ACTIONS, STATE_NAMES, STATES
from ..domain.units import UNIT_LEVELS
from ..metrics import TRANSITIONS
from ..service.cases import perform_action, read_case
from ..service.due import what_is_due
from ..service.evidence import list_documents, list_evidence
from ..service.ports import CaseRow, CaseScope, RoundRecord
from ..service.queries import count_cases, list_cases, list_notifications
from ..service.reports import at_risk as risky
from ..service.reports import at_risk_count, owed_ahead
from ..service.reports import progress as progress_of
from ..service.sheets import case_sheets
from .common import PageError, Signed, Viewer, app_of, back_to, check_csrf, log, page, redirect

router = APIRouter(include_in_schema=False)
CaseId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PAGE = 50  # cases a page of the list shows
DEADLINE_DAYS = 45  # home: the deadlines ahead within this many days, with how many still owe each
SOON_DAYS = 7  # home: the cases owing a deadline within this many days ...
SOON_SHOWN = 30  # ... of which the first are listed (the count says how many in all)
LIST_XLSX_MAX = 200_000
# What a coordinator may do from a case's page, each with the fields its form asks for.
FORMS: dict[str, tuple[str, ...]] = {
    "verify": ("entries", "note"), "recheck": ("entries", "note"), "certify": ("note",),
    "order_rectification": ("note",), "fail": ("note",), "return": ("reason",),
    "extend_rectification": ("reason", "days"), "withdraw": ("reason",), "close": ("reason",),
    "submit": ("note",), "request_recheck": ("note",), "revoke": ("reason", "decided_by", "evidence", "note"),
}


# ---------------------------------------------------------------- scope

def visible_rounds(application: App, who: Principal) -> list[RoundRecord]:
    """The rounds the person has something in, the latest first."""
    out = []
    for rnd in application.db.rounds.rounds():
        if who.role == "unit":
            if who.unit_id is not None and application.db.read.has_case_in(rnd.id, who.unit_id):
                out.append(rnd)
            continue
        mine = who.jurisdiction_path
        if mine is None or mine.startswith(rnd.province_path) or rnd.province_path.startswith(mine):
            out.append(rnd)
    return sorted(out, key=lambda r: (-r.year, r.province_id))


def the_round(application: App, who: Principal, round_id: str | None) -> RoundRecord | None:
    rounds = visible_rounds(application, who)
    if round_id:
        found = next((r for r in rounds if r.id == round_id), None)
        if found is None:
            raise PageError(404, f"round {round_id} does not exist", f"轮次 {round_id} 不存在")
        return found
    return rounds[0] if rounds else None


def seen_case(application: App, me: Viewer, case_id: int) -> CaseScope:
    """The case, or 404 when it does not exist or is outside the person's scope."""
    scope = application.db.read.case_scope(case_id)
    if scope is None or not me.who.sees(scope.unit_id, scope.path):
        raise PageError(404, f"case {case_id} does not exist", f"案件 {case_id} 不存在")
    return scope


def subtree(application: App, who: Principal, rnd: RoundRecord, jurisdiction: str | None) -> tuple[str, str, str]:
    """(id, path, name) of the jurisdiction a page is about: the one asked for (404 outside the
    scope), else the person's own (an admin: the round's province)."""
    if jurisdiction:
        found = application.db.directory.jurisdiction(jurisdiction)
        if found is None or not who.sees_path(found.path) or not found.path.startswith(rnd.province_path):
            raise PageError(404, f"jurisdiction {jurisdiction} does not exist", f"地区 {jurisdiction} 不存在")
        return found.id, found.path, found.name
    path = who.jurisdiction_path if who.jurisdiction_path and who.jurisdiction_path.startswith(
        rnd.province_path) else rnd.province_path
    jid = path.strip("/").rsplit("/", 1)[-1]
    found = application.db.directory.jurisdiction(jid)
    return jid, path, found.name if found else jid


# ---------------------------------------------------------------- home

@router.get("/")
def home(request: Request, me: Signed, round: str | None = Query(None, max_length=80),
         jurisdiction: str | None = Query(None, max_length=64)) -> HTMLResponse:
    application = app_of(request)
    if me.who.role == "unit":
        return unit_home(request, me, application)
    rnd = the_round(application, me.who, round)
    if rnd is None:
        return page(request, "home_empty.html")
    if me.who.role == "auditor" and jurisdiction is None and request.query_params.get("view") != "progress":
        return page(request, "home_auditor.html", rnd=rnd, rounds=visible_rounds(application, me.who))
    jid, path, name = subtree(application, me.who, rnd, jurisdiction)
    report = progress_of(application.db, rnd.id, path)
    root, children = report.rows[0], [r for r in report.rows if r.depth == 1]
    today = business_date(application.clock.now())
    deadlines = owed_ahead(application.db, application.calendars, rnd.id, path, today, DEADLINE_DAYS)
    soon = risky(application.db, application.calendars, rnd.id, path, today, SOON_DAYS, limit=SOON_SHOWN)
    risk_count = at_risk_count(application.db, application.calendars, rnd.id, path, today, SOON_DAYS)
    up = None if path == me.who.jurisdiction_path or path == rnd.province_path else \
        path.rstrip("/").rsplit("/", 2)[-2]
    return page(request, "home_coordinator.html", rnd=rnd, rounds=visible_rounds(application, me.who), root=root,
                children=children, levels=UNIT_LEVELS, jurisdiction=jid, name=name, deadlines=deadlines, soon=soon,
                risk_count=risk_count, soon_shown=SOON_SHOWN, deadline_days=DEADLINE_DAYS, up=up, report=report,
                target=report.target_share)


def unit_home(request: Request, me: Viewer, application: App) -> HTMLResponse:
    """我的任务: for each of the unit's open cases, what is due and by when, what is missing."""
    tasks = []
    for row in list_cases(application.db, unit_id=me.who.unit_id, limit=20):
        due = what_is_due(application.db, application.calendars, row.id, application.clock.now())
        found = read_case(application.db, row.id)
        tasks.append({"row": row, "due": due, "case": found.case,
                      "allowed": allowed_actions(found.case, found.ctx, application.clock.now(), actor=me.who.actor)})
    unit = application.db.directory.unit(me.who.unit_id or 0)
    return page(request, "home_unit.html", tasks=tasks, unit=unit)


# ---------------------------------------------------------------- the case list

class ListQuery:
    """The filters of the case list as the page's form sends them (empty fields: no filter)."""

    def __init__(self, request: Request, me: Viewer, application: App, rnd: RoundRecord | None) -> None:
        q = request.query_params
        self.round = rnd.id if rnd else None
        self.state = _choice(q.get("state"), STATES, "state", "状态")
        self.overdue = {"": None, "1": True, "0": False}.get(q.get("overdue", ""))
        self.level = _choice(q.get("level"), UNIT_LEVELS, "level", "级别")
        self.category = (q.get("category") or "")[:32] or None
        self.missed = (q.get("missed") or "")[:64] or None
        self.owes = _choice(q.get("owes"), [m for m, _ in owed_milestones(application, rnd)], "owes", "仍欠报的事项")
        self.owing = application.calendars.get(rnd.calendar_id).milestone(self.owes).owing \
            if self.owes and rnd is not None else None
        self.name = (q.get("name") or "").strip()[:50] or None
        self.sort = (q.get("sort") or "id")[:20]  # the service says which sorts there are
        self.jurisdiction = (q.get("jurisdiction") or "")[:64] or None
        self.page = _number(q.get("page"), 1, 10_000, "page", "页码")
        if self.jurisdiction and rnd is not None:
            subtree(application, me.who, rnd, self.jurisdiction)  # 404 outside the scope
        self.who = me.who

    def filters(self) -> dict[str, Any]:
        who = self.who
        return {"round_id": self.round, "state": self.state, "jurisdiction_id": self.jurisdiction,
                "overdue": self.overdue, "category": self.category, "level": self.level, "name": self.name,
                "missed": self.missed, "owing": self.owing, "unit_id": who.unit_id if who.role == "unit" else None,
                "within_path": who.jurisdiction_path}

    def rows(self, application: App, offset: int, limit: int) -> list[CaseRow]:
        return list_cases(application.db, limit=limit, sort=self.sort, offset=offset, **self.filters())

    def query_string(self, **change: Any) -> str:
        from urllib.parse import urlencode

        overdue = None if self.overdue is None else ("1" if self.overdue else "0")
        values = {"round": self.round, "state": self.state, "overdue": overdue,
                  "level": self.level, "category": self.category, "missed": self.missed, "owes": self.owes,
                  "name": self.name,
                  "sort": None if self.sort == "id" else self.sort, "jurisdiction": self.jurisdiction,
                  "page": None if self.page == 1 else self.page}
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})


def _choice(value: str | None, allowed: tuple[str, ...] | list[str], where: str, zh: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise PageError(422, f"{where}: unknown value {value[:40]!r}", f"{zh}：没有 {value[:40]!r} 这一项",
                        [{"where": where, "what": f"one of {', '.join(allowed)}", "zh": f"{zh}须为可选项之一"}])
    return value


def _number(value: str | None, low: int, high: int, where: str, zh: str) -> int:
    if not value:
        return low
    if not value.isdigit() or not low <= int(value) <= high:
        raise PageError(422, f"{where} must be a whole number from {low} to {high}",
                        f"{zh}须为 {low} 至 {high} 的整数", [{"where": where, "what": f"{low}-{high}"}])
    return int(value)


@router.get("/cases")
def cases(request: Request, me: Signed, round: str | None = Query(None, max_length=80)) -> HTMLResponse:
    application = app_of(request)
    rnd = the_round(application, me.who, round)
    query = ListQuery(request, me, application, rnd)
    rows = query.rows(application, (query.page - 1) * PAGE, PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    total = count_cases(application.db, **query.filters())
    categories = sorted({c for c in (getattr(r, "category", None) for r in rows) if c})
    milestones = _milestones(application, rnd)
    batchable = me.who.role in ("coordinator", "admin")
    return page(request, "cases.html", rnd=rnd, rounds=visible_rounds(application, me.who), rows=rows, q=query,
                more=more, total=total, categories=categories, milestones=milestones, batchable=batchable,
                owed=owed_milestones(application, rnd),
                states=STATES, levels=UNIT_LEVELS, pass_mark=_pass_mark(application, rnd))


def _milestones(application: App, rnd: RoundRecord | None) -> list[tuple[str, str]]:
    if rnd is None:
        return []
    calendar = application.calendars.get(rnd.calendar_id)
    return [(m.id, m.name) for m in calendar.milestones if not m.informational]


def owed_milestones(application: App, rnd: RoundRecord | None) -> list[tuple[str, str]]:
    """The round's milestones a case owes (the list's “仍欠报的事项” filter): not for
    information, not a jurisdiction's duty."""
    if rnd is None:
        return []
    calendar = application.calendars.get(rnd.calendar_id)
    return [(m.id, m.name) for m in calendar.milestones if not m.informational and not m.by_level]


def _pass_mark(application: App, rnd: RoundRecord | None) -> Decimal | None:
    if rnd is None:
        return None
    with application.db.reader() as uow:
        return uow.round_context(rnd.id).pass_mark


@router.get("/cases.xlsx")
def cases_xlsx(request: Request, me: Signed, round: str | None = Query(None, max_length=80)) -> Response:
    """Exactly the list on the page (every page of it), as a workbook."""
    application = app_of(request)
    rnd = the_round(application, me.who, round)
    query = ListQuery(request, me, application, rnd)

    def rows() -> Iterator[CaseRow]:
        seen, offset, after = 0, 0, 0
        while True:
            if query.sort == "id":
                chunk = list_cases(application.db, limit=1000, after_id=after, **query.filters())
            else:
                chunk = query.rows(application, offset, 1000)
            if not chunk:
                return
            seen += len(chunk)
            if seen > LIST_XLSX_MAX:
                raise PageError(422, f"more than {LIST_XLSX_MAX} cases match; narrow the filter",
                                f"符合条件的案件超过 {LIST_XLSX_MAX} 件，请缩小筛选范围")
            yield from chunk
            after, offset = chunk[-1].id, offset + len(chunk)

    out = io.BytesIO()
    case_list_xlsx(rows(), out, f"案件清单：{query.round or '全部轮次'}")
    from ..api.common import XLSX, attachment

    return Response(out.getvalue(), media_type=XLSX, headers=attachment(f"cases-{query.round or 'all'}.xlsx"))


@router.post("/cases/batch")
def batch(request: Request, me: Signed, csrf: Annotated[str, Form(max_length=100)] = "",
          action: Annotated[str, Form(max_length=40)] = "",
          case: Annotated[list[int] | None, Form()] = None, back: Annotated[str, Form(max_length=2000)] = "/cases"
          ) -> HTMLResponse:
    """One action on each selected case, each on its own (one refusal does not stop the rest):
    a page with each case's result."""
    check_csrf(me, csrf)
    application = app_of(request)
    if action not in ("certify", "order_rectification", "fail") or me.who.role not in ("coordinator", "admin"):
        raise PageError(403, f"{action!r} cannot be taken on a selection", f"不能对所选案件批量执行“{action}”")
    chosen = list(dict.fromkeys(case or []))[:500]
    if not chosen:
        raise PageError(422, "no case selected", "未选择任何案件", [{"where": "case", "what": "select cases"}])
    results: list[tuple[int, str | None, bool, str, str]] = []
    for case_id in chosen:
        scope = application.db.read.case_scope(case_id)
        if scope is None or not me.who.sees(scope.unit_id, scope.path):
            results.append((case_id, None, False, "案件不存在", "no such case"))
            continue
        try:
            found = read_case(application.db, case_id)
            done = perform_action(application.db, case_id, action, {}, me.who.actor, application.clock.now(),
                                  expected_version=found.case.version)
            TRANSITIONS.labels(action, "ok").inc()
            now_zh = STATE_NAMES.get(done.case.state, done.case.state)
            results.append((case_id, scope.unit_name, True, f"现为“{now_zh}”", ""))
        except DomainError as exc:
            TRANSITIONS.labels(action, exc.code).inc()
            results.append((case_id, scope.unit_name, False, exc.message_zh or exc.message, exc.message))
    return page(request, "batch.html", action=action, results=results, back=back_to(back, "/cases"),
                ok=sum(1 for r in results if r[2]))


# ---------------------------------------------------------------- one case

@router.get("/cases/{case_id}")
def case_page(request: Request, me: Signed, case_id: CaseId) -> HTMLResponse:
    return case_view(request, me, case_id)


def case_view(request: Request, me: Viewer, case_id: int, status: int = 200,
              refused: dict[str, Any] | None = None) -> HTMLResponse:
    """The case's page; ``refused``: an action's form sent back (its action, the values as typed,
    the problems), open, with each problem, nothing written."""
    application = app_of(request)
    scope = seen_case(application, me, case_id)
    now = application.clock.now()
    found = read_case(application.db, case_id, events=True)
    c, ctx = found.case, found.ctx
    allowed_all = [] if me.who.read_only else allowed_actions(c, ctx, now, actor=me.who.actor)
    allowed = [a for a in allowed_all if a in FORMS]
    sheets = case_sheets(application.db, case_id)
    due = what_is_due(application.db, application.calendars, case_id, now)
    unit = application.db.directory.unit(c.unit_id)
    mails = list_notifications(application.db, case_id=case_id, limit=50)
    return page(request, "case.html", status=status, c=c, ctx=ctx, scope=scope, unit=unit,
                events=list(reversed(found.events)),
                allowed=allowed, allowed_all=allowed_all, forms=FORMS, sheets=sheets, rubric=ctx.rubric, due=due,
                evidence=list_evidence(application.db, case_id), documents=list_documents(application.db, case_id),
                mails=mails, refused=refused or {})


def _entries(form: Any, rubric: Any) -> dict[str, Any]:
    """The sheet's fields (``e_<code>``: points, or a number of occurrences) as the action's input;
    empty fields are left out (the domain says which are missing)."""
    out: dict[str, Any] = {}
    for criterion in rubric.criteria():
        raw = str(form.get(f"e_{criterion.code}", "") or "").strip()[:20]
        if raw:
            out[criterion.code] = {"count": raw} if criterion.per_occurrence else raw
    return out


@router.post("/cases/{case_id}/act/{action}")
async def act(request: Request, me: Signed, case_id: CaseId,
              action: Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]) -> Response:
    """Take an action from the case's page; its form carries the version the person saw."""
    application = app_of(request)
    form = await request.form(max_files=0, max_fields=600, max_part_size=64 * 1024)
    check_csrf(me, str(form.get("csrf", "")))
    scope = seen_case(application, me, case_id)
    if action not in FORMS or action not in ACTIONS or me.who.read_only or not me.who.actor.may(action):
        raise PageError(403, f"a {me.who.role} may not {action} here", "无权执行此操作")
    version = str(form.get("version", ""))
    if not version.isdigit():
        raise PageError(422, "the form has no version", "表单缺少案件版本号", [{"where": "version", "what": "missing"}])
    data: dict[str, Any] = {}
    with application.db.reader() as uow:
        rubric = uow.round_context(scope.round_id).rubric
    for field in FORMS[action]:
        if field == "entries":
            data["entries"] = _entries(form, rubric)
        else:
            value = str(form.get(field, "") or "").strip()
            if value:
                data[field] = value
    try:
        await run_in_threadpool(perform_action, application.db, case_id, action, data, me.who.actor,
                                application.clock.now(), expected_version=int(version))
    except DomainError as exc:
        TRANSITIONS.labels(action, exc.code).inc()
        log.warning("action refused", action=action, reason=exc.code, case_id=case_id)
        if not isinstance(exc, InvalidInput):
            raise
        typed = {k.removeprefix("e_"): str(v)[:500] for k, v in form.items() if isinstance(v, str)}
        return await run_in_threadpool(case_view, request, me, case_id, 422, {
            "action": action, "typed": typed, "problems": exc.problems,
            "message": exc.message_zh or exc.message})
    TRANSITIONS.labels(action, "ok").inc()
    log.info("action taken", action=action, case_id=case_id)
    return redirect(f"/cases/{case_id}?done={action}")


@router.get("/cases/{case_id}/sheets.xlsx")
def sheets_xlsx(request: Request, me: Signed, case_id: CaseId) -> Response:
    """The case's score sheets as the workbook the API gives (self, verified, recheck)."""
    from ..api.common import XLSX, attachment
    from ..files import score_sheet_xlsx

    application = app_of(request)
    seen_case(application, me, case_id)
    return Response(score_sheet_xlsx(case_sheets(application.db, case_id)), media_type=XLSX,
                    headers=attachment(f"case-{case_id}-sheet.xlsx"))


@router.get("/cases/{case_id}/history.csv")
def history_csv(request: Request, me: Signed, case_id: CaseId) -> Response:
    from ..api.common import attachment
    from ..service.histories import events_csv

    application = app_of(request)
    seen_case(application, me, case_id)
    return Response(events_csv(read_case(application.db, case_id, events=True).events),
                    media_type="text/csv; charset=utf-8", headers=attachment(f"case-{case_id}.csv"))
