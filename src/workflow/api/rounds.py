"""Rounds, coordinators' reports, duties, spot checks (抽查) and filing batches (备案)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..domain.access import Principal
from ..domain.dates import business_date
from ..domain.errors import NotFound
from ..domain.text import filename_problem
from ..files import progress_xlsx_bytes
from ..service.due import round_timeline, upcoming_reminders
from ..service.duties import DutyRow, duty_board, duty_history, record_duty
from ..service.histories import events_csv_lines, events_jsonl, round_events
from ..service.oversight import file_round, filing_csv, get_filing, list_filings, list_spot_checks, spot_check
from ..service.ports import FilingRecord, OutcomeRecord, RoundRecord, SpotCheckRecord
from ..service.reports import at_risk as risky
from ..service.reports import lagging_units, milestone_names
from ..service.reports import progress as progress_of
from ..service.rounds import OpenedRound, open_round, register_unit, roll_over
from ..service.spot_outcomes import (
    CONSEQUENCES,
    OUTCOMES,
    list_outcomes,
    record_national_results,
    record_spot_check_outcomes,
)
from .common import (
    CODE,
    XLSX,
    ApiError,
    Application,
    BatchId,
    Caller,
    CheckId,
    DutyName,
    JurisdictionCode,
    SeenRound,
    attachment,
    binary_body,
    read_body,
    role_in,
    scope_root,
    visible_round,
)
from .schemas import (
    AtRiskItem,
    AtRiskOut,
    DatedOut,
    DocumentSpec,
    DutiesOut,
    DutyEventOut,
    DutyOut,
    FiledCase,
    FilingOut,
    FilingTotals,
    JurisdictionRef,
    OpenedOut,
    OutcomeOut,
    ProgressOut,
    RegisteredOut,
    ReminderOut,
    RoundOut,
    RubricOut,
    SpotCheckOut,
    TargetOut,
    TimelineOut,
    UnitRef,
    UpcomingOut,
    UpcomingPage,
    iso,
)

router = APIRouter(prefix="/api/v1")
SHARE = r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$"

Opening = Annotated[Principal, Depends(role_in("coordinator", "admin", doing="open rounds"))]
Reading = Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin", doing="read reports"))]


class RegisterIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"unit_id": 36}]})
    unit_id: int = Field(ge=1, le=2**31 - 1, description="a unit of the round's province added after it opened")


class RoundIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"province": "shanxi", "year": 2021, "rubric": "shanxi-2021", "target_share": "0.5"}]})
    province: str = Field(min_length=1, max_length=64, pattern=CODE)
    year: int = Field(ge=2000, le=2100)
    rubric: str = Field(min_length=1, max_length=64, pattern=CODE)
    calendar: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE,
                                 description="default: the calendar that serves the year (its notice, else the "
                                             "province's recurring calendar)")
    target_share: str | None = Field(default=None, pattern=SHARE,
                                     description="e.g. \"0.5\"; default: the calendar's target for the year")


class RolloverIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {"target_share": "0.7"}]})
    rubric: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE)
    calendar: str | None = Field(default=None, min_length=1, max_length=64, pattern=CODE)
    target_share: str | None = Field(default=None, pattern=SHARE)


class SpotCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"share": "0.1", "seed": 20211201}]})
    share: str = Field(pattern=r"^(0(\.\d{1,2})?|1(\.0{1,2})?)$", description="share of certified cases, e.g. \"0.1\"")
    seed: int = Field(ge=0, le=2**63 - 1, description="the random seed, stated so the draw can be repeated")
    jurisdiction: str | None = Field(default=None, max_length=64, pattern=CODE,
                                     description="subtree; default the caller's")


_OUTCOME_EXAMPLE: dict[str, Any] = {"outcomes": [
    {"case_id": 12, "outcome": "passed"},
    {"case_id": 15, "outcome": "problems", "findings": "能耗统计台账缺7月至9月数据",
     "evidence": "晋直管函〔2021〕60号"}]}


class OutcomesIn(BaseModel):
    """Checked by the service, every problem at once in both languages (not here, where a
    wrong entry would stop at the first)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_OUTCOME_EXAMPLE]})
    outcomes: list[Any] = Field(description="per case: case_id, outcome (passed | problems), findings (needed for "
                                            "problems), evidence (a document's number)")


class NationalResultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"document": "国管节能〔2022〕21号", "results": _OUTCOME_EXAMPLE["outcomes"]}]})
    document: str = Field(description="the national bureau's notice of its results (its number)")
    results: list[Any] = Field(description="per case of the batch: case_id, outcome (passed | problems: the title "
                                           "is revoked), findings, evidence (default: the document)")


class FilingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "2021年度第一批"}]})
    jurisdiction: str | None = Field(default=None, max_length=64, pattern=CODE,
                                     description="subtree; default the caller's")
    note: str | None = Field(default=None, max_length=2000)


def round_out(r: RoundRecord) -> RoundOut:
    return RoundOut(id=r.id, province=r.province_id, year=r.year, rubric=r.rubric_id, calendar=r.calendar_id,
                    target_share=format(r.target_share, "f"), targets=[TargetOut(**t) for t in r.targets],
                    documents=[DocumentSpec(**d) for d in r.documents], pass_mark=format(r.pass_mark, "f"),
                    max_total=format(r.max_total, "f"), policy=r.policy, opened_at=r.opened_at.isoformat(),
                    opened_by=r.opened_by)


def spot_out(s: SpotCheckRecord) -> SpotCheckOut:
    return SpotCheckOut(id=s.id, round_id=s.round_id, jurisdiction=s.jurisdiction_id, seed=s.seed,
                        share=format(s.share, "f"), population=len(s.population), drawn=s.drawn,
                        drawn_at=s.drawn_at.isoformat(), drawn_by=s.drawn_by)


def outcome_out(r: OutcomeRecord) -> OutcomeOut:
    return OutcomeOut(check=r.check_id, case_id=r.case_id, round_id=r.round_id, outcome=r.outcome,
                      outcome_zh=OUTCOMES[r.outcome], consequence=r.consequence,
                      consequence_zh=CONSEQUENCES[r.consequence], decided_by=r.decided_by, findings=r.findings,
                      evidence=r.evidence, due_on=iso(r.due_on), recorded_at=r.recorded_at.isoformat(),
                      recorded_by=r.recorded_by)


def filing_out(b: FilingRecord) -> FilingOut:
    return FilingOut(id=b.id, round_id=b.round_id, jurisdiction=b.jurisdiction_id,
                     cases=[FiledCase(**c) for c in b.cases], totals=FilingTotals(**b.totals),
                     filed_at=b.filed_at.isoformat(), filed_by=b.filed_by)


def duty_out(d: DutyRow) -> DutyOut:
    return DutyOut(jurisdiction=JurisdictionRef(id=d.jurisdiction_id, name=d.jurisdiction_name), duty=d.duty,
                   name=d.name, owed_by=d.owed_by, needs=d.needs, due_on=d.due_on.isoformat(), status=d.status,
                   done_at=iso(d.done_at), done_by=d.done_by, missed_on=iso(d.missed_on), waiting=d.waiting)


def _may_open(application: Application, who: Principal, province: str) -> None:
    """An admin, or a coordinator of the province itself, opens its rounds."""
    if who.role == "coordinator":
        found = application.db.directory.jurisdiction(province)
        if found is None or found.path != who.jurisdiction_path:
            raise ApiError("forbidden", f"only a coordinator of the whole province {province} opens its rounds")


def _opened(opened: OpenedRound, application: Application) -> OpenedOut:
    rnd = application.db.rounds.round(opened.round_id)
    assert rnd is not None
    return OpenedOut(round=round_out(rnd), registered=opened.registered, carried_over=opened.carried_over,
                     already_certified=opened.already_certified, warnings=list(opened.warnings))


@router.get("/rounds", tags=["rounds"])
def rounds(who: Caller, application: Application) -> list[RoundOut]:
    """Rounds the caller takes part in."""
    every = sorted(application.db.rounds.rounds(), key=lambda r: (r.province_id, r.year))
    return [round_out(r) for r in every if visible_round(application, r.id, who) is not None]


@router.post("/rounds", tags=["rounds"], status_code=201)
def open_new_round(body: RoundIn, who: Opening, application: Application) -> OpenedOut:
    """Open a round from a rubric and a calendar: a case for every unit of the province in
    one transaction (units certified in an earlier round are not registered again)."""
    _may_open(application, who, body.province)
    return _opened(open_round(application.db, application.rubrics, application.calendars, province_id=body.province,
                              year=body.year, rubric_id=body.rubric, calendar_id=body.calendar,
                              target_share=body.target_share, actor=who.actor, now=application.clock.now()),
                   application)


@router.get("/rounds/{round_id}", tags=["rounds"])
def get_round(rnd: SeenRound) -> RoundOut:
    return round_out(rnd)


@router.post("/rounds/{round_id}/rollover", tags=["rounds"], status_code=201)
def rollover(rnd: SeenRound, body: RolloverIn, who: Opening, application: Application) -> OpenedOut:
    """Open next year's round of the same province: the same rubric unless given; the calendar
    that serves next year (its notice, else the recurring calendar) and that calendar's target
    for the year, unless given; a province whose policy carries failed units over registers
    them again."""
    _may_open(application, who, rnd.province_id)
    return _opened(roll_over(application.db, application.rubrics, application.calendars, rnd.id,
                             rubric_id=body.rubric, calendar_id=body.calendar, target_share=body.target_share,
                             actor=who.actor, now=application.clock.now()), application)


# ------------------------------------------------------------ reports

def _subtree(application: Application, who: Principal, rnd: RoundRecord, jurisdiction: str | None) -> tuple[str, str]:
    return scope_root(application, who, jurisdiction, default=rnd.province_path)


@router.get("/rounds/{round_id}/progress", tags=["reports"])
def progress(rnd: SeenRound, who: Reading, application: Application,
             jurisdiction: str | None = Query(None, max_length=64)) -> ProgressOut:
    """Progress per jurisdiction of the subtree: the share of all agencies certified to date
    against the targets, per level, and the round's own cases by state, overdue and missed."""
    _, path = _subtree(application, who, rnd, jurisdiction)
    return ProgressOut(**progress_of(application.db, rnd.id, path).to_dict())


@router.get("/rounds/{round_id}/progress.xlsx", tags=["reports"], response_class=Response,
            responses={200: {"content": {XLSX: {}}}})
def progress_xlsx(rnd: SeenRound, who: Reading, application: Application,
                  jurisdiction: str | None = Query(None, max_length=64)) -> Response:
    jid, path = _subtree(application, who, rnd, jurisdiction)
    lagging = lagging_units(application.db, application.calendars, rnd.id, path)
    names = milestone_names(application.db, application.calendars, rnd.id)
    return Response(progress_xlsx_bytes(progress_of(application.db, rnd.id, path), lagging, names), media_type=XLSX,
                    headers=attachment(f"{rnd.id}-{jid}-progress.xlsx"))


@router.get("/rounds/{round_id}/at-risk", tags=["reports"])
def at_risk(rnd: SeenRound, who: Reading, application: Application,
            jurisdiction: str | None = Query(None, max_length=64),
            days: int = Query(3, ge=0, le=60, description="deadlines due within this many days")) -> AtRiskOut:
    """Cases that still owe a deadline due within ``days`` (e.g. not submitted, 3 days before October 20)."""
    _, path = _subtree(application, who, rnd, jurisdiction)
    today = business_date(application.clock.now())
    return AtRiskOut(today=today.isoformat(), within_days=days, items=[AtRiskItem(
        milestone=a.milestone, name=a.name, due_on=a.due_on.isoformat(), days_left=a.days_left, case_id=a.case_id,
        unit=UnitRef(id=a.unit_id, name=a.unit_name), jurisdiction=a.jurisdiction_id, state=a.state)
        for a in risky(application.db, application.calendars, rnd.id, path, today, days)])


@router.get("/rounds/{round_id}/reminders", tags=["reports"])
def reminders(rnd: SeenRound, who: Reading, application: Application,
              jurisdiction: str | None = Query(None, max_length=64),
              days: int = Query(14, ge=0, le=120, description="reminders due out within this many days")
              ) -> UpcomingPage:
    """The reminders due out in the next ``days`` for the subtree: which milestone, the day, to
    whom, and the cases owing it now (rectification deadlines included)."""
    _, path = _subtree(application, who, rnd, jurisdiction)
    today = business_date(application.clock.now())
    return UpcomingPage(today=today.isoformat(), within_days=days, items=[UpcomingOut(
        on=u.on.isoformat(), milestone=u.milestone, name=u.name, due_on=u.due_on.isoformat(),
        days_before=u.days_before, to=list(u.to), case_ids=list(u.case_ids))
        for u in upcoming_reminders(application.db, application.calendars, rnd.id, path, today, days)])


# ------------------------------------------------------------ duties of jurisdictions

@router.get("/rounds/{round_id}/duties", tags=["duties"])
def duties(rnd: SeenRound, who: Reading, application: Application,
           jurisdiction: str | None = Query(None, max_length=64)) -> DutiesOut:
    """What each jurisdiction of the subtree owes in the round (a city's report, a filing, the
    evaluation of its own units), by when, and whether it is done, owed or overdue."""
    _, path = _subtree(application, who, rnd, jurisdiction)
    today = business_date(application.clock.now())
    return DutiesOut(today=today.isoformat(),
                     items=[duty_out(d) for d in duty_board(application.db, application.calendars, rnd.id, path,
                                                            today)])


@router.post("/rounds/{round_id}/duties/{duty}", tags=["duties"], status_code=201,
             openapi_extra=binary_body(False))
async def record_duty_done(
        rnd: SeenRound, duty: DutyName, request: Request,
        who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="record duties"))],
        application: Application, jurisdiction: str = Query(min_length=1, max_length=64, pattern=CODE),
        filename: str | None = Query(None, min_length=1, max_length=200,
                                     description="the attachment's name (the body is its bytes)"),
        note: str | None = Query(None, max_length=2000)) -> DutyEventOut:
    """Record a jurisdiction's duty done (its report, its filing), with the attachment it needs
    as the request body, or the round's filing batches or spot checks it lists."""
    scope_root(application, who, jurisdiction)
    data = await read_body(request, application.settings.evidence_max_bytes)
    if data and not filename:
        raise ApiError("invalid_input", "an attachment needs its file name (?filename=...)",
                       problems=[{"where": "filename", "what": "required with a body", "zh": "上传附件须提供文件名"}])
    bad_name = filename_problem(filename) if data and filename else None
    if bad_name is not None:  # the evidence rule (service/evidence.py), for a duty's attachment
        raise ApiError("invalid_input", f"{filename!r}: {bad_name[0]}; nothing was recorded",
                       problems=[{"where": "filename", "what": f"{filename!r}: {bad_name[0]}",
                                  "zh": f"{filename!r}：{bad_name[1]}"}])
    files = [(filename, data)] if data and filename else []
    event = await run_in_threadpool(lambda: record_duty(
        application.db, application.calendars, application.evidence, rnd.id, jurisdiction, duty,
        actor=who.actor, now=application.clock.now(), files=files, note=note))
    return DutyEventOut(**event.to_dict())


@router.get("/rounds/{round_id}/duties/{jurisdiction}/history", tags=["duties", "audit"])
def duty_events(rnd: SeenRound, jurisdiction: JurisdictionCode,
                who: Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin",
                                                          doing="read duty histories"))],
                application: Application) -> list[DutyEventOut]:
    """The hash-chained events of a jurisdiction's duties in the round."""
    scope_root(application, who, jurisdiction)
    return [DutyEventOut(**e.to_dict()) for e in duty_history(application.db, rnd.id, jurisdiction)]


# ------------------------------------------------------------ spot checks and filing

@router.post("/rounds/{round_id}/spot-checks", tags=["oversight"], status_code=201)
def draw(rnd: SeenRound, body: SpotCheckIn,
         who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="draw spot checks"))],
         application: Application) -> SpotCheckOut:
    """Draw a reproducible sample of certified cases (seed and share stated); the draw is
    recorded, and each drawn case gets a SpotCheckDrawn event."""
    jid, _ = _subtree(application, who, rnd, body.jurisdiction)
    return spot_out(spot_check(application.db, rnd.id, jid, share=body.share, seed=body.seed, actor=who.actor,
                               now=application.clock.now()))


@router.get("/rounds/{round_id}/spot-checks", tags=["oversight"])
def spot_checks(rnd: SeenRound,
                who: Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin",
                                                          doing="read spot checks"))],
                application: Application) -> list[SpotCheckOut]:
    return [spot_out(s) for s in list_spot_checks(application.db, rnd.id, who.jurisdiction_path)]


def _seen_check(application: Application, rnd: RoundRecord, check_id: str, who: Principal) -> SpotCheckRecord:
    found = next((s for s in list_spot_checks(application.db, rnd.id, who.jurisdiction_path) if s.id == check_id),
                 None)
    if found is None:
        raise ApiError("not_found", f"round {rnd.id} has no spot check {check_id}",
                       zh=f"轮次 {rnd.id} 没有抽查 {check_id}", check=check_id)
    return found


@router.post("/rounds/{round_id}/spot-checks/{check_id}/outcomes", tags=["oversight"], status_code=201)
def record_outcomes(rnd: SeenRound, check_id: CheckId, body: OutcomesIn,
                    who: Annotated[Principal, Depends(role_in("coordinator", "admin",
                                                              doing="record spot checks' outcomes"))],
                    application: Application) -> list[OutcomeOut]:
    """Record what the spot check found for some of its drawn cases: passed (the title stands)
    or problems (with the findings): problems lead where the round's policy says, to a
    rectification with its last day (the title held until the recheck) or to revocation. All
    or nothing."""
    check = _seen_check(application, rnd, check_id, who)
    return [outcome_out(r) for r in record_spot_check_outcomes(
        application.db, rnd.id, check.id, body.outcomes, actor=who.actor, now=application.clock.now())]


@router.get("/rounds/{round_id}/spot-checks/{check_id}/outcomes", tags=["oversight"])
def outcomes(rnd: SeenRound, check_id: CheckId,
             who: Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin", doing="read spot checks"))],
             application: Application) -> list[OutcomeOut]:
    check = _seen_check(application, rnd, check_id, who)
    return [outcome_out(r) for r in list_outcomes(application.db, rnd.id, check.id)]


@router.post("/rounds/{round_id}/filings", tags=["oversight"], status_code=201)
def file_batch(rnd: SeenRound, body: FilingIn,
               who: Annotated[Principal, Depends(role_in("coordinator", "admin", doing="file cases"))],
               application: Application) -> FilingOut:
    """File every certified case of the round in the subtree with the national bureau, as one batch."""
    jid, _ = _subtree(application, who, rnd, body.jurisdiction)
    return filing_out(file_round(application.db, rnd.id, jid, actor=who.actor, now=application.clock.now(),
                                 note=body.note))


FilingReader = Annotated[Principal, Depends(role_in("coordinator", "auditor", "admin", doing="read filing batches"))]


@router.get("/rounds/{round_id}/filings", tags=["oversight"])
def filings(rnd: SeenRound, who: FilingReader, application: Application) -> list[FilingOut]:
    return [filing_out(b) for b in list_filings(application.db, rnd.id, who.jurisdiction_path)]


def _seen_filing(application: Application, batch_id: str, who: Principal) -> FilingRecord:
    try:
        batch = get_filing(application.db, batch_id)
    except NotFound:
        batch = None
    if batch is None or (who.jurisdiction_path is not None and not batch.path.startswith(who.jurisdiction_path)):
        raise ApiError("not_found", f"filing batch {batch_id} does not exist", zh=f"备案批次 {batch_id} 不存在",
                       batch_id=batch_id)
    return batch


@router.get("/filings/{batch_id}.csv", tags=["oversight"], response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def filing_as_csv(batch_id: BatchId, who: FilingReader, application: Application) -> Response:
    """The batch as CSV, for the national bureau."""
    return Response(filing_csv(_seen_filing(application, batch_id, who)), media_type="text/csv; charset=utf-8",
                    headers=attachment(f"{batch_id}.csv"))


@router.get("/filings/{batch_id}", tags=["oversight"])
def filing(batch_id: BatchId, who: FilingReader, application: Application) -> FilingOut:
    return filing_out(_seen_filing(application, batch_id, who))


@router.post("/filings/{batch_id}/national-results", tags=["oversight"], status_code=201)
def national_results(batch_id: BatchId, body: NationalResultsIn,
                     who: Annotated[Principal, Depends(role_in("coordinator", "admin",
                                                               doing="record the national bureau's results"))],
                     application: Application) -> list[OutcomeOut]:
    """Record the national bureau's results (国管局 抽查评价) for cases of this filing batch:
    passed, or problems (the title is revoked, decided by the national bureau). All or nothing."""
    batch = _seen_filing(application, batch_id, who)
    return [outcome_out(r) for r in record_national_results(
        application.db, batch.id, body.results, document=body.document, actor=who.actor,
        now=application.clock.now())]


@router.get("/filings/{batch_id}/national-results", tags=["oversight"])
def national_results_of(batch_id: BatchId, who: FilingReader, application: Application) -> list[OutcomeOut]:
    batch = _seen_filing(application, batch_id, who)
    return [outcome_out(r) for r in list_outcomes(application.db, batch.round_id, batch.id)]



Registering = Annotated[Principal, Depends(role_in("coordinator", "admin", doing="register units in a round"))]


@router.post("/rounds/{round_id}/cases", tags=["rounds"], status_code=201)
def register_late(rnd: SeenRound, body: RegisterIn, who: Registering, application: Application) -> RegisteredOut:
    """Register a unit in this round after it opened (a unit added to the roster since): a unit
    of the province in the caller's subtree, not certified already, one case per round.
    Deadlines already past are not recorded as missed against it; ``GET /cases/{id}/due`` shows
    what it still owes. To take a unit out of a round, withdraw its case."""
    case = register_unit(application.db, rnd.id, body.unit_id, actor=who.actor, now=application.clock.now(),
                         within_path=who.jurisdiction_path)
    return RegisteredOut(case_id=case.id, round_id=case.round_id, unit_id=case.unit_id, state=case.state,
                         version=case.version, carried_over_from=case.carried_over_from)


@router.get("/rounds/{round_id}/rubric", tags=["rounds"])
def round_rubric(rnd: SeenRound) -> RubricOut:
    """The rubric the round scores by (附件3: items, criteria, points, caps), as it was when the
    round opened."""
    return RubricOut(round_id=rnd.id, rubric=rnd.rubric_id, data=rnd.rubric_data)


@router.get("/rounds/{round_id}/calendar", tags=["rounds"])
def round_calendar_out(rnd: SeenRound, application: Application) -> TimelineOut:
    """The round's calendar dated for its year: each milestone's due date, who owes it, what to
    do, and the working day each reminder goes out and to whom."""
    calendar, dated = round_timeline(application.db, application.calendars, rnd.id)
    return TimelineOut(round_id=rnd.id, calendar=calendar.id, title=calendar.title_for(rnd.year),
                       rectification_days=rnd.policy.get("rectification_days"),
                       milestones=[DatedOut(id=d.id, name=d.name, due_on=d.due_on.isoformat(), owed_by=d.owed_by,
                                            owes=list(d.owes), what_to_do=d.what_to_do, escalate=list(d.escalate),
                                            reminders=[ReminderOut(on=r.on.isoformat(), days_before=r.days_before,
                                                                   to=list(r.to)) for r in d.reminders])
                                   for d in dated])


@router.get("/rounds/{round_id}/history.jsonl", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}})
def round_history_jsonl(rnd: SeenRound, who: Reading, application: Application,
                        jurisdiction: str | None = Query(None, max_length=64)) -> StreamingResponse:
    """Every event of the round's cases in the subtree as JSON lines (the canonical form the
    hashes are computed over), streamed as it is read."""
    jid, path = _subtree(application, who, rnd, jurisdiction)
    _, events = round_events(application.db, rnd.id, path)
    return StreamingResponse(events_jsonl(events), media_type="application/x-ndjson",
                             headers=attachment(f"{rnd.id}-{jid}-history.jsonl"))


@router.get("/rounds/{round_id}/history.csv", tags=["audit"], response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def round_history_csv(rnd: SeenRound, who: Reading, application: Application,
                      jurisdiction: str | None = Query(None, max_length=64)) -> StreamingResponse:
    """Every event of the round's cases in the subtree as CSV for a clerk (Beijing time, Chinese
    event names beside their codes), streamed as it is read."""
    jid, path = _subtree(application, who, rnd, jurisdiction)
    _, events = round_events(application.db, rnd.id, path)
    return StreamingResponse(events_csv_lines(events),
                             media_type="text/csv; charset=utf-8", headers=attachment(f"{rnd.id}-{jid}-history.csv"))
