"""日程与通知: a coordinator's (or an auditor's) view of a round's calendar and its oversight —
the milestones and the jurisdictions' duties in date order with who still owes each in the
subtree, the reminders due out, the spot-check draws and filing batches, and the mails of the
subtree that failed (a coordinator sends one again)."""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from notifications.robots import KIND_NAMES

from ..domain.dates import business_date
from ..domain.units import JURISDICTION_LEVEL_NAMES
from ..service.channels import AUDIENCES, add_channel, disable_channel, list_channels, masked
from ..service.due import round_timeline, upcoming_reminders
from ..service.duties import duty_board
from ..service.histories import who_acted
from ..service.outbox_admin import STATUS_NAMES, failed_mails, resend
from ..service.oversight import list_filings, list_spot_checks
from ..service.reports import milestone_names, owed_ahead
from ..service.reports import progress as progress_of
from ..service.spot_outcomes import (
    CONSEQUENCES,
    DECIDERS,
    OUTCOMES,
    list_outcomes,
    record_national_results,
    record_spot_check_outcomes,
)
from .common import PageError, Signed, Viewer, app_of, check_csrf, log, page, redirect
from .pages import subtree, the_round, visible_rounds

router = APIRouter(include_in_schema=False)
READERS = ("coordinator", "auditor", "admin")
REMINDER_DAYS = 30  # the reminders listed: those due out within this many days
MAIL_PAGE = 50  # failed mails a page lists
TO_ZH = {"unit": "创建单位联系人", "coordinators": "协调人员", "parent": "上级协调人员"}
DUTY_STATUS_ZH = {"done": "已完成", "done_late": "逾期后完成", "owed": "待完成", "overdue": "已逾期",
                  "clear": "无待办案件"}


def _reader(me: Viewer) -> None:
    """The page is a coordinator's, an auditor's or an admin's: a unit is refused (403, as the API)."""
    if me.who.role not in READERS:
        raise PageError(403, f"a {me.who.role} does not read the round's calendar and oversight",
                        "创建单位无权查看本页（日程与通知仅供协调人员、审计人员和管理员查看）")


def _owed_by_zh(owed_by: str, informational: bool) -> str:
    if informational:
        return "仅供知悉（无人需报送）"
    if owed_by == "unit":
        return "各创建单位"
    if owed_by == "bureau":
        return "评价机关（机关事务管理局）"
    if owed_by == "province":
        return "省级（省机关事务管理局）"
    return f"各{JURISDICTION_LEVEL_NAMES.get(owed_by, owed_by)}级地区"


def _to_zh(to: tuple[str, ...] | list[str]) -> str:
    return "、".join(TO_ZH.get(t, t) for t in to) or "—"


@router.get("/calendar")
def calendar_page(request: Request, me: Signed, round: str | None = Query(None, max_length=80),
                  jurisdiction: str | None = Query(None, max_length=64),
                  mail_page: int = Query(1, ge=1, le=10_000), resent: int | None = Query(None, ge=1),
                  again: int | None = Query(None, ge=0, le=1),
                  recorded: int | None = Query(None, ge=1, le=2**31 - 1),
                  channel: str | None = Query(None, max_length=20)) -> HTMLResponse:
    _reader(me)
    application = app_of(request)
    db, calendars = application.db, application.calendars
    rnd = the_round(application, me.who, round)
    if rnd is None:
        return page(request, "calendar.html", rnd=None, rounds=[])
    jid, path, name = subtree(application, me.who, rnd, jurisdiction)
    today = business_date(application.clock.now())
    calendar, dated = round_timeline(db, calendars, rnd.id)
    last_due = max((d.due_on for d in dated), default=today)
    # cases still owing each milestone still to come (as the home page and GET …/at-risk count them)
    owing_cases = {o.milestone: o.cases for o in owed_ahead(db, calendars, rnd.id, path, today,
                                                             max((last_due - today).days, 0))}
    missed = progress_of(db, rnd.id, path).rows[0].missed  # recorded misses of the milestones passed
    board = duty_board(db, calendars, rnd.id, path, today)
    by_duty: dict[str, list[Any]] = {}
    for row in board:
        by_duty.setdefault(row.duty, []).append(row)
    timeline = []
    for d in dated:
        m = calendar.milestone(d.id)
        duties = by_duty.get(d.id, [])
        timeline.append({
            "d": d, "days_left": (d.due_on - today).days, "past": d.due_on < today,
            "who": _owed_by_zh(m.owed_by, m.informational), "informational": m.informational,
            "duty": m.by_level or m.by_bureau,
            "cases_owing": None if m.informational or m.by_level or d.due_on < today else owing_cases.get(d.id, 0),
            "missed": None if m.informational or m.by_level or d.due_on >= today else missed.get(d.id, 0),
            "jurisdictions_owing": [r for r in duties if r.status in ("owed", "overdue")],
            "jurisdictions_done": sum(1 for r in duties if r.status in ("done", "done_late")),
            "jurisdictions": len(duties),
            "reminders": [{"on": r.on, "days_before": r.days_before, "to": _to_zh(r.to), "past": r.on < today}
                          for r in d.reminders],
        })
    upcoming = upcoming_reminders(db, calendars, rnd.id, path, today, REMINDER_DAYS, sample=5)
    mails = failed_mails(db, me.who, rnd.id, path)
    first = (mail_page - 1) * MAIL_PAGE
    shown = mails.mails[first:first + MAIL_PAGE]
    names = milestone_names(db, calendars, rnd.id)
    places = {j.id: j.path for j in db.directory.jurisdictions(path)}
    channels = [c for c in list_channels(db, me.who) if c.jurisdiction_id in places]
    return page(request, "calendar.html", rnd=rnd, rounds=visible_rounds(application, me.who), jurisdiction=jid,
                name=name, today=today, calendar=calendar, title=calendar.title_for(rnd.year), timeline=timeline,
                rectification_days=rnd.policy.get("rectification_days"), board=board, duty_status=DUTY_STATUS_ZH,
                upcoming=upcoming, reminder_days=REMINDER_DAYS, to_zh=_to_zh, **_spot_checks(db, rnd, path),
                mails=mails, shown=shown, mail_page=mail_page, mail_first=first,
                mail_pages=max(1, -(-len(mails.mails) // MAIL_PAGE)), mail_limit=MAIL_PAGE, names=names,
                status_zh=STATUS_NAMES, who_acted=who_acted, channels=channels, masked=masked,
                audiences=AUDIENCES, channel_kinds=KIND_NAMES,
                can_resend=me.who.role in ("coordinator", "admin"), resent=resent, again=again, recorded=recorded,
                channel_done=CHANNEL_DONE.get(channel or ""))


CheckPath = Annotated[str, Path(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
# Longer than the service allows (2,000 and 200 characters), so that it says what is wrong in both
# languages; beyond these the form itself is refused.
FindingsForm = Annotated[str, Form(max_length=4000)]
EvidenceForm = Annotated[str, Form(max_length=1000)]


def _recorder(me: Viewer) -> None:
    if me.who.role not in ("coordinator", "admin"):
        raise PageError(403, f"a {me.who.role} does not record spot checks' outcomes",
                        "只有协调人员和管理员可以记录抽查结果")


def _entry(case_id: int, outcome: str, findings: str, evidence: str) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"case_id": case_id, "outcome": outcome}
    entry.update({k: v for k, v in (("findings", findings), ("evidence", evidence)) if v.strip()})
    return [entry]


def _back(round_id: str, jurisdiction: str, anchor: str, **more: str) -> Response:
    query = urlencode({**{k: v for k, v in {"round": round_id, "jurisdiction": jurisdiction}.items()
                          if v and _plain(v)}, **more})
    return redirect(f"/calendar?{query}#{anchor}")


@router.post("/spot-checks/{check_id}/outcome")
def spot_check_outcome(request: Request, me: Signed, check_id: CheckPath,
                       case_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
                       outcome: Annotated[str, Form(max_length=20)] = "", findings: FindingsForm = "",
                       evidence: EvidenceForm = "", csrf: Annotated[str, Form(max_length=100)] = "",
                       round: Annotated[str, Form(max_length=80)] = "",
                       jurisdiction: Annotated[str, Form(max_length=64)] = "") -> Response:
    """What the spot check found for one drawn case (service/spot_outcomes: problems lead where
    the round's policy says)."""
    check_csrf(me, csrf)
    _recorder(me)
    application = app_of(request)
    rnd = the_round(application, me.who, round or None)
    check = next((s for s in list_spot_checks(application.db, rnd.id, me.who.jurisdiction_path)
                  if s.id == check_id), None) if rnd is not None else None
    if rnd is None or check is None:
        raise PageError(404, f"no spot check {check_id}", f"没有抽查 {check_id}")
    [done] = record_spot_check_outcomes(application.db, rnd.id, check.id, _entry(case_id, outcome, findings, evidence),
                                        actor=me.who.actor, now=application.clock.now())
    log.info("spot check outcome recorded", check=check.id, case_id=case_id, consequence=done.consequence)
    return _back(rnd.id, jurisdiction, "spot-checks", recorded=str(case_id))


@router.post("/filings/{batch_id}/national-result")
def national_result(request: Request, me: Signed, batch_id: CheckPath,
                    case_id: Annotated[int, Form(ge=1, le=2**31 - 1)],
                    outcome: Annotated[str, Form(max_length=20)] = "", findings: FindingsForm = "",
                    evidence: EvidenceForm = "", document: EvidenceForm = "",
                    csrf: Annotated[str, Form(max_length=100)] = "",
                    jurisdiction: Annotated[str, Form(max_length=64)] = "") -> Response:
    """The national bureau's result for one case of a filing batch (problems revoke the title)."""
    check_csrf(me, csrf)
    _recorder(me)
    application = app_of(request)
    path = me.who.jurisdiction_path
    batch = next((b for r in visible_rounds(application, me.who) for b in list_filings(application.db, r.id, path)
                  if b.id == batch_id), None)
    if batch is None:
        raise PageError(404, f"no filing batch {batch_id}", f"没有备案批次 {batch_id}")
    [done] = record_national_results(application.db, batch.id, _entry(case_id, outcome, findings, evidence),
                                     document=document, actor=me.who.actor, now=application.clock.now())
    log.info("national result recorded", batch=batch.id, case_id=case_id, consequence=done.consequence)
    return _back(batch.round_id, jurisdiction, "filings", recorded=str(case_id))


def _spot_checks(db: Any, rnd: Any, path: str) -> dict[str, Any]:
    """The spot checks and filing batches of the subtree, with what each found per case."""
    checks = list_spot_checks(db, rnd.id, path)
    drawn_ids = sorted({c for s in checks for c in s.drawn})
    return {"checks": checks, "filings": list_filings(db, rnd.id, path),
            "drawn": {c.case_id: c for c in db.read.cases_by_id(drawn_ids)} if drawn_ids else {},
            "outcomes": {(o.check_id, o.case_id): o for o in list_outcomes(db, rnd.id)},
            "outcome_zh": OUTCOMES, "consequence_zh": CONSEQUENCES, "decider_zh": DECIDERS,
            "spot_policy": (rnd.policy or {}).get("spot_check")}


CHANNEL_DONE = {"added": "已添加推送渠道。", "disabled": "已停用推送渠道。"}


@router.post("/channels")
def add_channel_form(request: Request, me: Signed, csrf: Annotated[str, Form(max_length=100)] = "",
                     round: Annotated[str, Form(max_length=80)] = "", name: Annotated[str, Form(max_length=400)] = "",
                     kind: Annotated[str, Form(max_length=40)] = "", audience: Annotated[str, Form(max_length=40)] = "",
                     jurisdiction: Annotated[str, Form(max_length=64)] = "",
                     unit: Annotated[str, Form(max_length=12)] = "", url: Annotated[str, Form(max_length=2000)] = "",
                     secret: Annotated[str, Form(max_length=400)] = "") -> Response:
    """Add a group robot or webhook (service/channels: every problem of the input at once)."""
    check_csrf(me, csrf)
    application = app_of(request)
    unit_id = int(unit) if unit.strip().isdigit() else None
    if unit.strip() and unit_id is None:
        raise PageError(422, "the unit must be a number", "单位编号须为数字", [{"where": "unit", "what": "not a number",
                                                                               "zh": "单位编号须为数字"}])
    add_channel(application.db, me.who, application.clock.now(), jurisdiction_id=jurisdiction.strip() or None,
                kind=kind, url=url, audience=audience, name=name, secret=secret or None, unit_id=unit_id,
                any_host=application.settings.channels_any_host)
    return _back(round, jurisdiction, "channels", channel="added")


@router.post("/channels/{channel_id}/disable")
def disable_channel_form(request: Request, me: Signed, channel_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                         csrf: Annotated[str, Form(max_length=100)] = "",
                         round: Annotated[str, Form(max_length=80)] = "",
                         jurisdiction: Annotated[str, Form(max_length=64)] = "") -> Response:
    check_csrf(me, csrf)
    application = app_of(request)
    disable_channel(application.db, me.who, channel_id, application.clock.now())
    return _back(round, jurisdiction, "channels", channel="disabled")


@router.post("/outbox/{row_id}/resend")
def resend_mail(request: Request, me: Signed, row_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                csrf: Annotated[str, Form(max_length=100)] = "",
                round: Annotated[str, Form(max_length=80)] = "",
                jurisdiction: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Send a failed mail again: a new outbox entry the dispatcher delivers (service/outbox_admin:
    a coordinator a mail of their subtree, an admin any; 404 outside the subtree, 403 an auditor)."""
    check_csrf(me, csrf)
    application = app_of(request)
    done = resend(application.db, row_id, me.who, application.clock.now())
    log.info("mail sent again", row=row_id, key=done.dedupe_key, created=done.created)
    back = {"round": round or done.original.round_id, "jurisdiction": jurisdiction}
    query = urlencode({**{k: v for k, v in back.items() if v and _plain(v)}, "resent": row_id,
                       "again": 0 if done.created else 1})
    return redirect(f"/calendar?{query}#outbox")


def _plain(value: str) -> bool:
    """A round or jurisdiction code as it may go back into a link (nothing else is echoed)."""
    return all(ch.isalnum() or ch in "-_" for ch in value)

