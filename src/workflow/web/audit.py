"""审计: the check of the hash chains of the person's subtree and of the latest signed
checkpoint, and a unit's history across years and rounds (a page and a CSV)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..bootstrap import App
from ..domain.events import Event
from ..service.audit_runs import audit_view, request_check, scope_of
from ..service.histories import events_csv, who_acted
from ..service.ports import UnitRecord
from ..service.queries import unit_history
from .common import PageError, Signed, Viewer, app_of, check_csrf, log, page, redirect

router = APIRouter(include_in_schema=False)
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1)]
READERS = ("auditor", "coordinator", "admin")
KIND_ZH = {"case": "案件", "duties": "地区职责记录", "filing": "备案批次", "checkpoint": "签名检查点",
           "operator": "操作日志", "counts": "进度统计", "directory": "检查点目录"}
RUN_STATUS_ZH = {"queued": "排队等候", "running": "正在核验", "done": "已完成", "failed": "未能完成"}


def _reader(me: Viewer) -> None:
    if me.who.role not in READERS:
        raise PageError(403, f"a {me.who.role} does not run the audit check",
                        "创建单位无权进行审计核验（仅供审计人员、协调人员和管理员使用）")


@router.get("/audit")
def audit_page(request: Request, me: Signed) -> HTMLResponse:
    """The latest check of the hash chains that covers the person's scope (every chain, every
    case against the replay of its events, the latest signed checkpoint), the checks waiting or
    running, and a button to check now: a check runs in the background, never while the page
    waits (service/audit_runs)."""
    _reader(me)
    application = app_of(request)
    view = audit_view(application.db, me.who)
    latest_kept = None
    try:
        sequences = application.checkpoint_store().sequences()
        latest_kept = sequences[-1] if sequences else None
    except OSError as exc:  # the folder cannot be listed: the operator's to fix
        log.error("checkpoint folder unreadable", error=str(exc))
    return page(request, "audit.html", view=view, kind_zh=KIND_ZH, status_zh=RUN_STATUS_ZH,
                scope=view.scope or "/", latest_kept=latest_kept, refresh=view.waiting is not None)


@router.post("/audit/run")
def audit_run(request: Request, me: Signed, background: BackgroundTasks,
              csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Ask for a check of the person's scope now: queued (or the one already waiting), run after
    the response; the page shows it waiting, then its result."""
    check_csrf(me, csrf)
    _reader(me)
    application = app_of(request)
    run, new = request_check(application.db, scope_of(me.who), me.who.name, application.clock.now())
    background.add_task(application.run_audit_checks)  # after the response, in a worker thread
    return redirect(f"/audit?run={run.id}&new={int(new)}#chains")


@router.get("/audit/unit")
def audit_unit(request: Request, me: Signed, unit: str = Query("", max_length=12)) -> Response:
    """The form of the audit page that opens a unit's history (by its number)."""
    _reader(me)
    value = unit.strip()
    if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
        raise PageError(422, "the unit number must be a whole number", "单位编号须为正整数",
                        [{"where": "unit", "what": "a unit number, e.g. 12", "zh": "请填写单位编号，例如 12"}])
    return redirect(f"/units/{int(value)}/history")


# ---------------------------------------------------------------- a unit's history

def _seen_unit(application: App, me: Viewer, unit_id: int) -> UnitRecord:
    """The unit, or 404 when it does not exist or is outside the person's scope (a unit: itself)."""
    unit = application.db.directory.unit(unit_id)
    if unit is None or not me.who.sees(unit.id, unit.path):
        raise PageError(404, f"unit {unit_id} does not exist", f"单位 {unit_id} 不存在")
    return unit


def _history(application: App, unit: UnitRecord) -> list[Event]:
    return unit_history(application.db, unit.id)[1]


@router.get("/units/{unit_id}/history")
def unit_history_page(request: Request, me: Signed, unit_id: UnitId,
                      round: str | None = Query(None, max_length=80)) -> HTMLResponse:
    """The unit's history across years and rounds: who, when, what, the case and the round,
    each event's hash and place in its chain; filtered by a round."""
    application = app_of(request)
    unit = _seen_unit(application, me, unit_id)
    events = _history(application, unit)
    db = application.db
    scopes = {cid: db.read.case_scope(cid) for cid in sorted({e.case_id for e in events})}
    round_of = {cid: s.round_id for cid, s in scopes.items() if s is not None}
    rounds = {r.id: r for r in db.rounds.rounds() if r.id in set(round_of.values())}
    if round and round not in rounds:
        raise PageError(404, f"unit {unit_id} has no case in round {round}", f"该单位在轮次 {round} 中没有案件")
    shown = [e for e in events if not round or round_of.get(e.case_id) == round]
    shown.sort(key=lambda e: (e.occurred_at, e.case_id, e.seq), reverse=True)
    return page(request, "unit_history.html", unit=unit, events=shown, total=len(events), round_of=round_of,
                rounds=sorted(rounds.values(), key=lambda r: (-r.year, r.id)), chosen=round or "",
                who_acted=who_acted)


@router.get("/units/{unit_id}/history.csv")
def unit_history_csv(request: Request, me: Signed, unit_id: UnitId) -> Response:
    """Every event of every case of the unit, all years, as the API's CSV."""
    from ..api.common import attachment

    application = app_of(request)
    unit = _seen_unit(application, me, unit_id)
    return Response(events_csv(_history(application, unit)), media_type="text/csv; charset=utf-8",
                    headers=attachment(f"unit-{unit.id}.csv"))
