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
from ..service.channels import AUDIENCES, list_channels, masked
from ..service.due import round_timeline, upcoming_reminders
from ..service.duties import duty_board
from ..service.histories import who_acted
from ..service.outbox_admin import STATUS_NAMES, failed_mails, resend
from ..service.oversight import list_filings, list_spot_checks
from ..service.reports import milestone_names, owed_ahead
from ..service.reports import progress as progress_of
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
                  again: int | None = Query(None, ge=0, le=1)) -> HTMLResponse:
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
    checks = list_spot_checks(db, rnd.id, path)
    filings = list_filings(db, rnd.id, path)
    drawn_ids = sorted({c for s in checks for c in s.drawn})
    drawn = {c.case_id: c for c in db.read.cases_by_id(drawn_ids)} if drawn_ids else {}
    mails = failed_mails(db, me.who, rnd.id, path)
    first = (mail_page - 1) * MAIL_PAGE
    shown = mails.mails[first:first + MAIL_PAGE]
    names = milestone_names(db, calendars, rnd.id)
    places = {j.id: j.path for j in db.directory.jurisdictions(path)}
    channels = [c for c in list_channels(db, me.who) if c.jurisdiction_id in places]
    return page(request, "calendar.html", rnd=rnd, rounds=visible_rounds(application, me.who), jurisdiction=jid,
                name=name, today=today, calendar=calendar, title=calendar.title_for(rnd.year), timeline=timeline,
                rectification_days=rnd.policy.get("rectification_days"), board=board, duty_status=DUTY_STATUS_ZH,
                upcoming=upcoming, reminder_days=REMINDER_DAYS, to_zh=_to_zh, checks=checks, drawn=drawn,
                filings=filings, mails=mails, shown=shown, mail_page=mail_page, mail_first=first,
                mail_pages=max(1, -(-len(mails.mails) // MAIL_PAGE)), mail_limit=MAIL_PAGE, names=names,
                status_zh=STATUS_NAMES, who_acted=who_acted, channels=channels, masked=masked,
                audiences=AUDIENCES, channel_kinds=KIND_NAMES,
                can_resend=me.who.role in ("coordinator", "admin"), resent=resent, again=again)


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

