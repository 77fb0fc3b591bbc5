"""审计: the check of the hash chains of the person's subtree and of the latest signed
checkpoint, and a unit's history across years and rounds (a page and a CSV)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from ..bootstrap import App
from ..domain.errors import DomainError
from ..domain.events import Event
from ..service.audit import verify
from ..service.checkpoints import latest_checkpoint, verify_checkpoints
from ..service.histories import events_csv, who_acted
from ..service.ports import UnitRecord
from ..service.queries import unit_history
from .common import PageError, Signed, Viewer, app_of, log, page, redirect

router = APIRouter(include_in_schema=False)
UnitId = Annotated[int, Path(ge=1, le=2**31 - 1)]
READERS = ("auditor", "coordinator", "admin")
KIND_ZH = {"case": "案件", "duties": "地区职责记录", "filing": "备案批次", "checkpoint": "签名检查点",
           "operator": "操作日志", "counts": "进度统计", "directory": "检查点目录"}


def _reader(me: Viewer) -> None:
    if me.who.role not in READERS:
        raise PageError(403, f"a {me.who.role} does not run the audit check",
                        "创建单位无权进行审计核验（仅供审计人员、协调人员和管理员使用）")


def _checkpoint(application: App, me: Viewer) -> dict[str, Any]:
    """The latest signed checkpoint, whether its signature holds, and whether the chains of the
    person's scope still hold what it saw (as GET /api/v1/audit/verify and …/checkpoints/latest)."""
    scope = me.who.jurisdiction_path
    store = application.checkpoint_store()
    if not store.sequences():
        return {"present": False}
    try:
        verifier = application.checkpoint_verifier()
        key_problem = None
    except DomainError as exc:  # an unusable key file: the operator's to fix (logged), not the audit's end
        log.error("checkpoint key unusable", error=exc.message)
        verifier, key_problem = None, exc.message_zh or exc.message
    try:
        opened = latest_checkpoint(store, verifier)
    except DomainError as exc:  # the latest file is damaged: that is a finding, shown as such
        return {"present": True, "damaged": exc.message_zh or exc.message, "damaged_en": exc.message}
    out: dict[str, Any] = {"present": True, "opened": opened, "key_problem": key_problem, "checked": None}
    if verifier is not None:
        out["checked"] = verify_checkpoints(application.db.within(scope), store, verifier, scoped=scope is not None,
                                            latest_only=True)
    return out


@router.get("/audit")
def audit_page(request: Request, me: Signed) -> HTMLResponse:
    """Verify every hash chain of the person's scope (cases, duty streams, operator log), each
    case against the replay of its events, and the latest signed checkpoint."""
    _reader(me)
    application = app_of(request)
    scope = me.who.jurisdiction_path
    report = verify(application.db.within(scope), scoped=scope is not None)
    checkpoint = _checkpoint(application, me)
    checked = checkpoint.get("checked")
    ok = report.ok and not checkpoint.get("damaged") and (checked is None or checked.ok)
    log.info("audit check", ok=ok, findings=len(report.findings))
    return page(request, "audit.html", report=report, checkpoint=checkpoint, ok=ok, kind_zh=KIND_ZH,
                scope=scope or "/")


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
