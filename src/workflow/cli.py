"""The ``workflow`` command."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from .bootstrap import App, build
from .clock import BUSINESS_TZ
from .domain.case import Actor
from .domain.errors import DomainError
from .domain.jsonnum import dumps_json

if TYPE_CHECKING:
    from .adapters.rubric_files import RubricCatalog
    from .domain.access import Principal

# No markup (names and messages are data, never Rich markup) and no wrapping of lines
# (an error stays one line in a pipe, a file or cron mail).
console = Console(markup=False, highlight=False, soft_wrap=True)
err = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)

app = typer.Typer(help="Case tracker for the yearly conservation-oriented agency (节约型机关) rounds.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
jur_app = typer.Typer(help="Jurisdictions (province → city → county).", no_args_is_help=True)
units_app = typer.Typer(help="Units (创建单位).", no_args_is_help=True)
rounds_app = typer.Typer(help="Yearly creation rounds.", no_args_is_help=True)
cases_app = typer.Typer(help="Cases: one per unit and round.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit the event log.", no_args_is_help=True)
rubrics_app = typer.Typer(help="Rubrics (评价标准) as loaded from the data files.", no_args_is_help=True)
evidence_app = typer.Typer(help="Evidence files (佐证材料) on a case, per criterion.", no_args_is_help=True)
coord_app = typer.Typer(help="Coordinators: bureau staff who run a jurisdiction and receive digests.",
                        no_args_is_help=True)
notif_app = typer.Typer(help="Notifications in the outbox and their delivery.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (bearer): made once, stored hashed, revocable.", no_args_is_help=True)
documents_app = typer.Typer(help="Documents a submission needs (自评报告, 自评打分表 ...), per case.",
                            no_args_is_help=True)
duties_app = typer.Typer(help="Duties of jurisdictions in a round: a city's report, filings, the evaluation.",
                         no_args_is_help=True)
calendars_app = typer.Typer(help="Calendars (dates, duties, documents, targets) as loaded from the data files.",
                            no_args_is_help=True)
spot_app = typer.Typer(help="Spot checks (抽查): reproducible draws of certified cases, recorded on each.",
                       no_args_is_help=True)
filings_app = typer.Typer(help="Filing batches (备案): certified cases filed with the national bureau, one batch "
                               "at a time (the only way a case is filed).", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts for people (账号): role, scope, contact, password; tokens belong to them.",
                           no_args_is_help=True)
channels_app = typer.Typer(help="Robot channels (企业微信/钉钉群机器人, a bureau's webhook) notifications also go to.",
                           no_args_is_help=True)
for sub, name in ((db_app, "db"), (jur_app, "jurisdictions"), (units_app, "units"), (rounds_app, "rounds"),
                  (cases_app, "cases"), (audit_app, "audit"), (rubrics_app, "rubrics"),
                  (evidence_app, "evidence"), (coord_app, "coordinators"), (notif_app, "notifications"),
                  (tokens_app, "tokens"), (documents_app, "documents"), (duties_app, "duties"),
                  (calendars_app, "calendars"), (spot_app, "spot-checks"), (filings_app, "filings"),
                  (accounts_app, "accounts"), (channels_app, "channels")):
    app.add_typer(sub, name=name)

ActorOption = typer.Option(..., "--actor", envvar="WORKFLOW_ACTOR",
                           help="the account acting: its login, or ROLE:LOGIN (e.g. wang.li, coordinator:wang.li); "
                                "recorded with its name and 'via cli' in every event; env WORKFLOW_ACTOR")
OPERATORS = ("admin", "coordinator")  # who changes the directory, rosters, rounds and accounts


def _principal(application: App, text: str, *roles: str) -> Principal:
    """The enabled account ``--actor`` names, acting through the CLI (of one of ``roles``, if given)."""
    from .domain.errors import Forbidden
    from .service.accounts import ROLE_ZH, principal_for

    who = principal_for(application.db, text, "cli")
    if roles and who.role not in roles:
        raise Forbidden(f"--actor {text!r} is a {who.role} account: this needs a {' or '.join(roles)} account",
                        f"--actor {text!r} 是{ROLE_ZH.get(who.role, who.role)}账号，此操作需要"
                        f"{'或'.join(ROLE_ZH.get(r, r) for r in roles)}账号")
    return who


def _actor(application: App, text: str, *roles: str) -> Actor:
    return _principal(application, text, *roles).actor


def _app(migrated: bool = True) -> App:
    application = build()
    if migrated:
        application.require_schema()
    return application


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# ------------------------------------------------------------------ db
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    from .adapters.db.migrate import current_revision, upgrade

    application = _app(migrated=False)
    upgrade(application.engine)
    console.print(f"database {application.engine.url.render_as_string(hide_password=True)} "
                  f"is at schema {current_revision(application.engine)}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema version of the database."""
    from .adapters.db.migrate import current_revision, head_revision

    application = _app(migrated=False)
    console.print(f"current: {current_revision(application.engine) or 'none'}; code needs: "
                  f"{head_revision(application.engine)}")


@db_app.command("recount")
def db_recount(repair: bool = typer.Option(False, "--repair", help="write the recount over the kept counts")) -> None:
    """Check the counts kept for the progress report against a recount of the case and unit
    rows (``audit verify`` does too); with --repair, replace them with the recount."""
    from .adapters.db import counts

    application = _app()
    with application.engine.connect() as conn:
        found = counts.differences(None, counts.OnConnection(conn).rows)
    for line in found[:50]:
        err.print(f"  {line}")
    if not found:
        console.print("progress counts agree with a recount of the rows / 进度统计与逐行重新统计一致")
        return
    if not repair:
        err.print(f"progress counts differ from a recount in {len(found)} place(s); run `workflow db recount "
                  f"--repair` to rewrite them / 进度统计有 {len(found)} 处与重新统计不一致，"
                  "可运行 `workflow db recount --repair` 重写")
        raise typer.Exit(1)
    case_rows, agency_rows = counts.repair(application.engine)
    console.print(f"progress counts rewritten from the rows: {case_rows} case count rows, {agency_rows} unit count "
                  f"rows / 已按逐行重新统计重写进度统计：案件 {case_rows} 行，单位 {agency_rows} 行")


# ------------------------------------------------------------------ jurisdictions
@jur_app.command("import")
def jurisdictions_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                         actor: str = ActorOption) -> None:
    """Import jurisdictions from CSV (id,name,level,parent); all rows or none."""
    from .files import import_jurisdictions

    application = _app()
    r = import_jurisdictions(application.db, file, actor=_actor(application, actor, "admin"),
                             now=application.clock.now())
    console.print(f"{file}: {r.created} created, {r.updated} updated, {r.unchanged} unchanged")


@jur_app.command("list")
def jurisdictions_list() -> None:
    """List jurisdictions as a tree."""
    from .service.queries import list_jurisdictions

    table = Table("id", "name", "level", "parent")
    for j in list_jurisdictions(_app().db):
        indent = "  " * (j.path.count("/") - 2)
        table.add_row(indent + j.id, j.name, j.level, _fmt(j.parent_id))
    console.print(table)


# ------------------------------------------------------------------ units
@units_app.command("import")
def units_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                 update: bool = typer.Option(False, "--update", help="replace existing units' category and contacts"),
                 actor: str = ActorOption) -> None:
    """Import units from CSV (UTF-8 or GBK) or .xlsx; every bad row is reported and nothing is written.
    A roster past the settings' bounds (roster_max_bytes, sheet_max_*) is refused unread."""
    from .adapters.rosters import SheetLimits, read_file
    from .files import import_units_data

    application = _app()
    who = _principal(application, actor, *OPERATORS)
    limits = SheetLimits.from_settings(application.settings)
    r = import_units_data(application.db, read_file(file, limits), str(file), application.clock.now(), update=update,
                          limits=limits, within_path=who.jurisdiction_path, actor=who.actor)
    console.print(f"{file}: {r.created} created, {r.updated} updated, {r.unchanged} unchanged")


@units_app.command("list")
def units_list(jurisdiction: str | None = typer.Option(None, help="only this jurisdiction's subtree")) -> None:
    """List units."""
    from .service.queries import list_units

    table = Table("id", "name", "jurisdiction", "level", "category", "contacts")
    for u in list_units(_app().db, jurisdiction):
        table.add_row(str(u.id), u.name, u.jurisdiction_id, u.level, u.category,
                      "; ".join(f"{c['name']} {c.get('email') or c.get('phone')}" for c in u.contacts) or "—")
    console.print(table)


@units_app.command("contact-form")
def units_contact_form(unit_id: int,
                       name: str = typer.Option(..., help="姓名"), position: str = typer.Option("", help="职务"),
                       phone: str = typer.Option("", help="联系方式 (phone)"),
                       email: str = typer.Option("", help="电子邮箱 (reminders go here)"),
                       actor: str = ActorOption) -> None:
    """Fill in the contact form (附件2) for the unit's open rounds: it replaces the contacts on file."""
    from .service.directory import give_contact_form

    application = _app()
    r = give_contact_form(application.db, unit_id, [{"name": name, "position": position, "phone": phone,
                                                      "email": email}], _actor(application, actor),
                          application.clock.now())
    cases = ", ".join(map(str, r.cases)) or "(none open)"
    console.print(f"unit {unit_id}: contact form given; recorded on cases {cases}")


@units_app.command("confirm-contact")
def units_confirm_contact(unit_id: int, actor: str = ActorOption) -> None:
    """Confirm the contacts on file (from an earlier round or a roster) as this round's contact form."""
    from .service.directory import give_contact_form

    application = _app()
    r = give_contact_form(application.db, unit_id, None, _actor(application, actor), application.clock.now())
    names = ", ".join(c["name"] for c in r.contacts)
    console.print(f"unit {unit_id}: contacts confirmed ({names}); recorded on cases {', '.join(map(str, r.cases))}")


@units_app.command("certified-before")
def units_certified_before(unit_id: int,
                           year: int | None = typer.Option(..., help="the year it was certified (建成节约型机关)"),
                           note: str = typer.Option("", help="where it is written, e.g. the list that named it"),
                           actor: str = ActorOption) -> None:
    """Record that a unit was certified before the system kept the province's rounds; it counts
    towards progress from that year and is not registered in later rounds."""
    from .service.directory import update_unit

    application = _app()
    u = update_unit(application.db, unit_id, {"certified_year": year, "certified_note": note or None},
                    application.clock.now(), actor=_actor(application, actor, *OPERATORS))
    console.print(f"unit {u.id} {u.name}: certified in {u.certified_year}" + (f" ({u.certified_note})"
                                                                             if u.certified_note else ""))


# ------------------------------------------------------------------ rounds
def _opened(r: Any) -> None:
    console.print(f"round {r.round_id} open (calendar {r.calendar_id}, target {_fmt(r.target_share)}): "
                  f"{r.registered} cases registered ({r.carried_over} carried over, {r.already_certified} units "
                  "already certified)")
    for line in r.warnings:
        err.print(f"WARNING: {line}")


@rounds_app.command("open")
def rounds_open(province: str = typer.Option(..., help="province jurisdiction id, e.g. shanxi"),
                year: int = typer.Option(..., help="round year"),
                rubric: str = typer.Option(..., help="rubric id, e.g. shanxi-2020"),
                calendar: str | None = typer.Option(None, help="calendar id, e.g. shanxi-2021 (default: the one "
                                                                  "that serves the year)"),
                target: str | None = typer.Option(None, help="target share certified, e.g. 0.5 (default: the "
                                                                "calendar's target for the year)"),
                actor: str = ActorOption) -> None:
    """Open a round: a case is registered for every in-scope unit of the province."""
    from .service.rounds import open_round

    application = _app()
    _opened(open_round(application.db, application.rubrics, application.calendars, province_id=province, year=year,
                       rubric_id=rubric, calendar_id=calendar, target_share=target, actor=_actor(application, actor),
                       now=application.clock.now()))


@rounds_app.command("history")
def rounds_history(round_id: str, out: Path = typer.Argument(..., dir_okay=False, help="a .jsonl or .csv file"),
                   jurisdiction: str | None = typer.Option(None, help="default: the province")) -> None:
    """Every event of the round's cases (in a subtree) to a file, written as it is read: JSON
    lines (the canonical form the hashes cover) or CSV (Beijing time, Chinese event names)."""
    from .domain.errors import InvalidInput, Problem
    from .service.histories import events_csv_lines, events_jsonl, round_events

    if out.suffix not in (".jsonl", ".csv"):
        raise InvalidInput("unknown export format", [Problem("OUT", f"{out.name}: name a .jsonl or .csv file",
                                                             "导出文件须为 .jsonl 或 .csv")])
    application = _app()
    cases, events = round_events(application.db, round_id, _jurisdiction_path(application, round_id, jurisdiction))
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.writelines(events_jsonl(events) if out.suffix == ".jsonl" else events_csv_lines(events))
    console.print(f"{out}: the history of {cases} cases of {round_id}")


@rounds_app.command("at-risk")
def rounds_at_risk(round_id: str, jurisdiction: str | None = typer.Option(None, help="default: the province"),
                   days: int = typer.Option(3, min=0, max=60, help="deadlines due within this many days")) -> None:
    """Cases that still owe a deadline due within DAYS (rectification deadlines included)."""
    from .clock import business_date
    from .service.reports import at_risk

    application = _app()
    today = business_date(application.clock.now())
    table = Table("due", "days left", "milestone", "case", "unit", "jurisdiction", "state",
                  title=f"{round_id}: due within {days} days of {today}")
    for a in at_risk(application.db, application.calendars, round_id,
                     _jurisdiction_path(application, round_id, jurisdiction), today, days):
        table.add_row(a.due_on.isoformat(), str(a.days_left), a.name, str(a.case_id), a.unit_name, a.jurisdiction_id,
                      a.state)
    console.print(table)


@rounds_app.command("reminders")
def rounds_reminders(round_id: str, jurisdiction: str | None = typer.Option(None, help="default: the province"),
                     days: int = typer.Option(14, min=0, max=120, help="reminders due out within this many days")
                     ) -> None:
    """The reminders due out in the next DAYS: the day, the milestone, to whom, how many cases."""
    from .clock import business_date
    from .service.due import RECIPIENTS, upcoming_reminders

    application = _app()
    today = business_date(application.clock.now())
    table = Table("day", "milestone", "due", "to", "cases", title=f"{round_id}: reminders from {today}, {days} days")
    for u in upcoming_reminders(application.db, application.calendars, round_id,
                                _jurisdiction_path(application, round_id, jurisdiction), today, days):
        table.add_row(u.on.isoformat(), u.name, u.due_on.isoformat(), "; ".join(RECIPIENTS.get(t, t) for t in u.to),
                      str(len(u.case_ids)))
    console.print(table)


@rounds_app.command("register")
def rounds_register(round_id: str, unit_id: int, actor: str = ActorOption) -> None:
    """Register a unit in a round already open (a unit added to the roster since it opened).
    Deadlines already past are not recorded as missed against it; `workflow cases due` shows
    what it still owes. To take a unit out of a round, withdraw its case."""
    from .service.rounds import register_unit

    application = _app()
    case = register_unit(application.db, round_id, unit_id, actor=_actor(application, actor, *OPERATORS),
                         now=application.clock.now())
    carried = f" (carried over from case {case.carried_over_from})" if case.carried_over_from else ""
    console.print(f"unit {unit_id} registered in {round_id}: case {case.id}{carried}")


@rounds_app.command("rollover")
def rounds_rollover(round_id: str,
                    rubric: str | None = typer.Option(None, help="default: the round's rubric"),
                    calendar: str | None = typer.Option(None, help="default: the calendar serving next year"),
                    target: str | None = typer.Option(None, help="default: that calendar's target for next year"),
                    actor: str = ActorOption) -> None:
    """Open next year's round of the round's province (failed units carried over where the policy says so)."""
    from .service.rounds import roll_over

    application = _app()
    _opened(roll_over(application.db, application.rubrics, application.calendars, round_id, rubric_id=rubric,
                      calendar_id=calendar, target_share=target, actor=_actor(application, actor),
                      now=application.clock.now()))


@rounds_app.command("list")
def rounds_list(as_json: bool = typer.Option(False, "--json", help="as JSON (for scripts)")) -> None:
    """List rounds."""
    from .service.queries import list_rounds

    if as_json:
        sys.stdout.write(dumps_json([{"id": r.id, "province": r.province_id, "year": r.year, "rubric": r.rubric_id,
                                      "calendar": r.calendar_id, "target_share": r.target_share,
                                      "pass_mark": r.pass_mark, "on_fail": r.policy["on_fail"]}
                                     for r in list_rounds(_app().db)], indent=2) + "\n")
        return
    table = Table("id", "province", "year", "rubric", "calendar", "target", "pass mark", "on fail")
    for r in list_rounds(_app().db):
        table.add_row(r.id, r.province_id, str(r.year), r.rubric_id, r.calendar_id, _fmt(r.target_share),
                      _fmt(r.pass_mark), r.policy["on_fail"])
    console.print(table)


@spot_app.command("draw")
def spot_checks_draw(round_id: str, jurisdiction: str = typer.Option(..., help="the subtree to draw from"),
                     share: str = typer.Option(..., help="the share of certified cases to draw, e.g. 0.1"),
                     seed: int = typer.Option(..., help="the seed: the same seed draws the same cases"),
                     actor: str = ActorOption) -> None:
    """Draw a spot check of a round's certified cases in a subtree (one transaction: the draw
    and a SpotCheckDrawn event on each drawn case)."""
    from .service.oversight import spot_check

    application = _app()
    s = spot_check(application.db, round_id, jurisdiction, share=share, seed=seed, actor=_actor(application, actor),
                   now=application.clock.now())
    console.print(f"spot check {s.id}: drew {len(s.drawn)} of {len(s.population)} certified cases "
                  f"(share {s.share}, seed {s.seed}): {', '.join(map(str, s.drawn))}")


@spot_app.command("list")
def spot_checks_list(round_id: str) -> None:
    """The spot checks of a round: who drew what, when (Beijing time)."""
    from .service.oversight import list_spot_checks

    table = Table("id", "jurisdiction", "share", "seed", "drawn", "of", "drawn at", "by", title=round_id)
    for s in list_spot_checks(_app().db, round_id):
        table.add_row(s.id, s.jurisdiction_id, _fmt(s.share), str(s.seed), ", ".join(map(str, s.drawn)),
                      str(len(s.population)), f"{s.drawn_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M}", s.drawn_by)
    console.print(table)


OutcomeOption = typer.Option(..., help="passed (the title stands) or problems (with --findings)")
FindingsOption = typer.Option(None, help="what was found wrong (needed for problems)")
EvidenceOption = typer.Option(None, help="the evidence: a document's number, a file's reference")


def _print_outcomes(records: list[Any]) -> None:
    from .service.spot_outcomes import CONSEQUENCES, OUTCOMES

    table = Table("check", "case", "outcome", "leads to", "due", "decided by", "findings", "evidence", "recorded")
    for r in records:
        table.add_row(r.check_id, str(r.case_id), f"{r.outcome} {OUTCOMES[r.outcome]}",
                      f"{r.consequence} {CONSEQUENCES[r.consequence]}", _fmt(r.due_on), r.decided_by,
                      r.findings or "", r.evidence or "",
                      f"{r.recorded_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M} {r.recorded_by}")
    console.print(table)


def _one_outcome(case_id: int, outcome: str, findings: str | None, evidence: str | None) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"case_id": case_id, "outcome": outcome}
    entry.update({k: v for k, v in (("findings", findings), ("evidence", evidence)) if v is not None})
    return [entry]


@spot_app.command("outcome")
def spot_checks_outcome(round_id: str, check: str, case_id: int, outcome: str = OutcomeOption,
                        findings: str | None = FindingsOption, evidence: str | None = EvidenceOption,
                        actor: str = ActorOption) -> None:
    """Record what a spot check found for one drawn case: passed, or problems (which lead where
    the round's policy says: rectification with the title held, or revocation)."""
    from .service.spot_outcomes import record_spot_check_outcomes

    application = _app()
    _print_outcomes(record_spot_check_outcomes(
        application.db, round_id, check, _one_outcome(case_id, outcome, findings, evidence),
        actor=_actor(application, actor, *OPERATORS), now=application.clock.now()))


@spot_app.command("outcomes")
def spot_checks_outcomes(round_id: str, check: str | None = typer.Argument(None, help="one check (default: all)")
                         ) -> None:
    """The outcomes recorded in a round (of one check, or of all, with the national bureau's results)."""
    from .service.spot_outcomes import list_outcomes

    _print_outcomes(list_outcomes(_app().db, round_id, check))


@filings_app.command("national-result")
def filings_national_result(batch_id: str, case_id: int, outcome: str = OutcomeOption,
                            document: str = typer.Option(..., help="the national bureau's notice of its results"),
                            findings: str | None = FindingsOption, evidence: str | None = EvidenceOption,
                            actor: str = ActorOption) -> None:
    """Record the national bureau's result (国管局 抽查评价) for one case of a filing batch:
    passed, or problems (the title is revoked, decided by the national bureau)."""
    from .service.spot_outcomes import record_national_results

    application = _app()
    _print_outcomes(record_national_results(
        application.db, batch_id, _one_outcome(case_id, outcome, findings, evidence), document=document,
        actor=_actor(application, actor, *OPERATORS), now=application.clock.now()))


@filings_app.command("create")
def filings_create(round_id: str, jurisdiction: str = typer.Option(..., help="the subtree whose cases are filed"),
                   note: str | None = typer.Option(None, help="e.g. 2021年度山西省节约型机关名单"),
                   actor: str = ActorOption) -> None:
    """File every certified case of a round in a subtree as one batch (each case moves to filed)."""
    from .service.oversight import file_round

    application = _app()
    b = file_round(application.db, round_id, jurisdiction, actor=_actor(application, actor, *OPERATORS),
                   now=application.clock.now(), note=note)
    console.print(f"filing batch {b.id}: {len(b.cases)} cases filed: {', '.join(str(c['case_id']) for c in b.cases)}")


@filings_app.command("list")
def filings_list(round_id: str) -> None:
    """The filing batches of a round."""
    from .service.oversight import list_filings

    table = Table("id", "jurisdiction", "cases", "filed at", "by", title=round_id)
    for b in list_filings(_app().db, round_id):
        table.add_row(b.id, b.jurisdiction_id, str(len(b.cases)),
                      f"{b.filed_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M}", b.filed_by)
    console.print(table)


@filings_app.command("export")
def filings_export(batch_id: str, out: Path = typer.Argument(..., dir_okay=False, help="the .csv to write")) -> None:
    """A filing batch as CSV (UTF-8 with BOM, as Excel opens it; formulas neutralised)."""
    from .service.oversight import filing_csv, get_filing

    batch = get_filing(_app().db, batch_id)
    out.write_text(filing_csv(batch), encoding="utf-8", newline="")
    console.print(f"{out}: filing batch {batch.id}, {len(batch.cases)} cases")


@rounds_app.command("progress")
def rounds_progress(round_id: str, jurisdiction: str | None = typer.Option(None, help="default: the province"),
                    xlsx: Path | None = typer.Option(None, "--xlsx", dir_okay=False, help="write the workbook"),
                    as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Progress against the target: the share of all agencies in scope certified to date, per
    jurisdiction and level (and the round's own pass rate beside it)."""
    from .files import progress_xlsx_bytes
    from .service.reports import LEVEL_NAMES, progress

    application = _app()
    report = progress(application.db, round_id, _jurisdiction_path(application, round_id, jurisdiction))
    if as_json:
        sys.stdout.write(dumps_json(report.to_dict(), indent=2) + "\n")
        return
    if xlsx is not None:
        from .service.reports import lagging_units, milestone_names

        path = _jurisdiction_path(application, round_id, jurisdiction)
        xlsx.write_bytes(progress_xlsx_bytes(report, lagging_units(application.db, application.calendars, round_id,
                                                                   path),
                                             milestone_names(application.db, application.calendars, round_id)))
        console.print(f"{xlsx}: progress of {round_id}")
        return
    table = Table("jurisdiction", "agencies", "certified to date", "share", "target", "met", "by level",
                  "round cases", "round pass rate", title=f"{round_id}: share of all agencies certified to date")
    for r in report.rows:
        met = r.target_met()
        levels = "; ".join(f"{LEVEL_NAMES.get(lv, lv)} {ls.certified}/{ls.agencies}" for lv, ls in r.by_level.items()
                           if ls.agencies)
        table.add_row("  " * r.depth + r.name, str(r.agencies), str(r.certified_to_date), _pct(r.certified_share),
                      _pct(r.target), "—" if met is None else ("yes" if met else "no"), levels, str(r.cases),
                      _pct(r.round_pass_rate))
    console.print(table)
    from .service.reports import SHARE_RULE

    console.print(SHARE_RULE["en"])


def _pct(value: Decimal | None) -> str:
    return "—" if value is None else f"{format(value * 100, '.2f')}%"


def _jurisdiction_path(application: App, round_id: str, jurisdiction: str | None) -> str:
    from .domain.errors import NotFound

    if jurisdiction is None:
        rnd = application.db.rounds.round(round_id)
        if rnd is None:
            raise NotFound(f"round {round_id!r} does not exist")
        return rnd.province_path
    found = application.db.directory.jurisdiction(jurisdiction)
    if found is None:
        raise NotFound(f"jurisdiction {jurisdiction!r} does not exist")
    return found.path


# ------------------------------------------------------------------ cases
@cases_app.command("list")
def cases_list(round_id: str | None = typer.Option(None, "--round"),
               state: str | None = typer.Option(None),
               jurisdiction: str | None = typer.Option(None, help="only this jurisdiction's subtree"),
               after: int = typer.Option(0, help="cursor: list cases with an id above this"),
               limit: int = typer.Option(100, min=1, max=10_000),
               xlsx: Path | None = typer.Option(None, "--xlsx", dir_okay=False,
                                                help="write every matching case (not one page) as a workbook")) -> None:
    """List cases with their state (--xlsx: all of them, as a workbook a clerk can print)."""
    from .service.queries import list_cases

    if xlsx is not None:
        from .adapters.case_list_xlsx import case_list_xlsx

        db = _app().db

        def every() -> Any:
            cursor = 0
            while page := list_cases(db, round_id=round_id, state=state, jurisdiction_id=jurisdiction,
                                     after_id=cursor, limit=1000):
                yield from page
                cursor = page[-1].id

        with open(xlsx, "wb") as out:
            n = case_list_xlsx(every(), out, f"案件清单：{round_id or '全部轮次'}")
        console.print(f"{xlsx}: {n} cases")
        return
    rows = list_cases(_app().db, round_id=round_id, state=state, jurisdiction_id=jurisdiction, after_id=after,
                      limit=limit)
    table = Table("id", "round", "unit", "jurisdiction", "state", "v", "self", "verified", "recheck", "due")
    for r in rows:
        table.add_row(str(r.id), r.round_id, r.unit_name, r.jurisdiction_id, r.state, str(r.version),
                      _fmt(r.self_total), _fmt(r.verified_total), _fmt(r.recheck_total), _fmt(r.rectification_due))
    console.print(table)
    if len(rows) == limit:
        console.print(f"more: --after {rows[-1].id}")


@cases_app.command("due")
def cases_due(case_id: int) -> None:
    """What the case still owes and by when, the reminders to come and to whom, what stands
    between it and submission, and what it waits for from its bureau (dates in Beijing time)."""
    from .service.due import RECIPIENTS, what_is_due

    application = _app()
    d = what_is_due(application.db, application.calendars, case_id, application.clock.now())
    console.print(f"case {d.case_id} ({d.state}), today {d.today:%Y-%m-%d}:")
    if not d.owed:
        console.print("  owes nothing dated now")
    for o in d.owed:
        when = f"{-o.days_left} days overdue" if o.days_left < 0 else f"{o.days_left} days left"
        console.print(f"  {o.name} ({o.id}): due {o.due_on:%Y-%m-%d}, {when}")
        for r in o.reminders:
            console.print(f"    reminder {r.on:%Y-%m-%d} ({r.days_before} days before) to "
                          + "; ".join(RECIPIENTS.get(t, t) for t in r.to))
    for m in d.missing[:10]:
        console.print(f"  missing before submission: {m['where']}: {m.get('zh') or m['what']}")
    if len(d.missing) > 10:
        console.print(f"  … and {len(d.missing) - 10} more missing before submission ({len(d.missing)} in all)")
    for w in d.waiting_on:
        console.print(f"  waits on the bureau: {w['name']} (due {w['due_on']:%Y-%m-%d})")
    if d.unit_emails == 0:
        console.print("  [yellow]the unit has no contact email: its reminders cannot be mailed[/yellow]")


@cases_app.command("show")
def cases_show(case_id: int, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a case: state, allowed actions and its full history."""
    from .service.queries import show_case

    application = _app()
    d = show_case(application.db, case_id, application.clock.now(), application.calendars)
    c = d.case
    if as_json:
        out = {"id": c.id, "round_id": c.round_id, "unit": {"id": c.unit_id, "name": d.unit.name},
               "state": c.state, "version": c.version, "allowed_actions": d.allowed,
               "self_total": c.self_total, "verified_total": c.verified_total,
               "recheck_total": c.recheck_total, "pass_mark": d.round.pass_mark, "passed": c.passed,
               "rectification_due": c.rectification_due.isoformat() if c.rectification_due else None,
               "carried_over_from": c.carried_over_from, "contact_form": c.contact_form,
               "documents": [{"id": doc.id, "name": doc.name, "attached": doc.id in {x for x, _, _ in c.documents}}
                             for doc in d.documents],
               "waiting_on": d.waiting_on, "events": [e.to_dict() for e in d.events]}
        sys.stdout.write(dumps_json(out, indent=2) + "\n")
        return
    console.print(f"case {c.id} · {d.unit.name} · round {c.round_id}", style="bold")
    console.print(f"state: {c.state} (version {c.version})"
                  + (f" · carried over from case {c.carried_over_from}" if c.carried_over_from else ""))
    console.print(f"self {_fmt(c.self_total)} · verified {_fmt(c.verified_total)} · recheck {_fmt(c.recheck_total)}"
                  + (f" · rectification due {c.rectification_due}" if c.rectification_due else ""))
    console.print(f"allowed next: {', '.join(d.allowed) or 'nothing (final state)'}")
    attached = {doc for doc, _, _ in c.documents}
    if d.documents:
        console.print("documents: " + "; ".join(f"{doc.name} {'✓' if doc.id in attached else '—'}"
                                                for doc in d.documents))
    console.print(f"contact form (附件2) this round: {'given' if c.contact_form else 'not yet'}")
    for w in d.waiting_on:
        console.print(f"waiting on the bureau: {w['name']} due {w['due_on']}"
                      + (f", {w['days_overdue']} days overdue (the bureau's, not the unit's)"
                         if w["days_overdue"] else ""))
    table = Table("#", "event", "actor", "occurred at (Asia/Shanghai)", "payload", "hash")
    for e in d.events:
        table.add_row(str(e.seq), e.type, e.actor, e.occurred_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
                      json.dumps(dict(e.payload), ensure_ascii=False), e.hash[:12])
    console.print(table)


def _read_entries(pairs: list[str], sheet: Path | None, counts: Sequence[str] = ()) -> dict[str, Any]:
    """Sheet entries from --sheet (CSV code,points or a JSON object of code → points or
    {"count": N}), --entry CODE=POINTS and --count CODE=N (a number of occurrences)."""
    from .adapters.rosters import decode
    from .domain.errors import InvalidInput, Problem

    entries: dict[str, str | dict[str, int]] = {}
    problems: list[Problem] = []
    if sheet is not None:
        text = decode(sheet.read_bytes(), str(sheet))
        if sheet.suffix.lower() == ".json":
            try:
                data = json.loads(text, parse_float=str, parse_int=str)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{sheet}: not JSON", [Problem(f"{sheet}:{exc.lineno}", exc.msg)]) from None
            if not isinstance(data, dict):
                raise InvalidInput(f"{sheet}: a JSON object of criterion code to value is needed", [])
            entries.update({str(k): v if isinstance(v, dict) else str(v) for k, v in data.items()})
        else:
            import csv
            import io

            for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
                cells = [c.strip() for c in row]
                if not any(cells) or (line == 1 and cells[0].lower() in ("code", "criterion", "序号", "编号")):
                    continue
                if len(cells) < 2 or not cells[0] or not cells[1]:
                    problems.append(Problem(f"{sheet}:{line}", "expected two cells: criterion code, value"))
                    continue
                if cells[0] in entries:
                    problems.append(Problem(f"{sheet}:{line}", f"criterion {cells[0]} given twice"))
                entries[cells[0]] = cells[1]
    for pair in pairs:
        code, sep, value = pair.partition("=")
        if not sep or not code.strip() or not value.strip():
            problems.append(Problem(f"--entry {pair}", "expected CODE=POINTS, e.g. 2.1.1=1",
                                    "应为 编号=分数，如 2.1.1=1"))
            continue
        entries[code.strip()] = value.strip()
    for pair in counts:
        code, sep, value = pair.partition("=")
        if not sep or not code.strip() or not value.strip().isdigit():
            problems.append(Problem(f"--count {pair}", "expected CODE=N (occurrences), e.g. 5.1.1=1",
                                    "应为 编号=次数，如 5.1.1=1"))
            continue
        if code.strip() in entries:
            problems.append(Problem(f"--count {pair}", f"{code.strip()} is given as points too",
                                    f"{code.strip()} 已按分数填写"))
            continue
        entries[code.strip()] = {"count": int(value.strip())}
    if problems:
        raise InvalidInput("bad sheet entries; nothing was written", problems)
    return entries


@cases_app.command("sheet")
def cases_sheet(case_id: int,
                xlsx: Path | None = typer.Option(None, "--xlsx", dir_okay=False,
                                                    help="write the score sheet (自评表) as .xlsx in the province's "
                                                         "printed layout")) -> None:
    """The case's score sheets side by side: self-assessment, verification, recheck."""
    from .files import write_score_sheet
    from .service.sheets import case_sheets

    application = _app()
    sheets = case_sheets(application.db, case_id)
    if xlsx is not None:
        write_score_sheet(sheets, xlsx)
        console.print(f"{xlsx}: score sheet of case {case_id} ({sheets.unit_name})")
        return
    table = Table("code", "criterion", "cap", "self", "verified", "recheck")
    for c in sheets.rubric.criteria():
        cells = [_fmt(s.criteria[c.code]) if s is not None and c.code not in s.missing else "—"
                 for s in (sheets.self, sheets.verified, sheets.recheck)]
        table.add_row(c.code, c.text[:40], _fmt(c.cap), *cells)
    table.add_row("", "total", _fmt(sheets.rubric.total),
                  *[_fmt(s.total) if s is not None else "—" for s in (sheets.self, sheets.verified, sheets.recheck)],
                  style="bold")
    console.print(f"case {case_id} · {sheets.unit_name} · rubric {sheets.rubric.id}", style="bold")
    console.print(table)


@cases_app.command("act")
def cases_act(case_id: int, action: str,
              actor: str = ActorOption,
              reason: str | None = typer.Option(None, help="why (return, withdraw, extend, close)"),
              entry: list[str] = typer.Option([], "--entry", help="a sheet entry CODE=POINTS as printed on the form, "
                                              "e.g. 2.1.1=1 or 5.1.1=2 (self_assess, verify, recheck); repeat"),
              count: list[str] = typer.Option([], "--count", help="a per-occurrence criterion as a number of "
                                              "occurrences CODE=N, e.g. 5.1.1=1 (one activity: 2 分)"),
              sheet: Path | None = typer.Option(None, "--sheet", exists=True, dir_okay=False,
                                                   help="a sheet file: CSV of code,value rows or a JSON object"),
              days: int | None = typer.Option(None, help="extend_rectification by this many days"),
              until: str | None = typer.Option(None, help="extend_rectification to this date (YYYY-MM-DD)"),
              note: str | None = typer.Option(None),
              expected_version: int | None = typer.Option(None, "--expected-version",
                                                             help="refuse if the case is no longer at this version")
              ) -> None:
    """Take an action on a case (submit, verify, certify, order_rectification, ...). Filing, spot-check
    draws and the contact form are not actions taken by name: they go through their own resource."""
    from .service.cases import by_name_only, perform_action

    by_name_only(action)
    entries = _read_entries(entry, sheet, count)
    data = {k: v for k, v in {"reason": reason, "entries": entries or None, "days": days, "until": until,
                               "note": note}.items() if v is not None}
    application = _app()
    r = perform_action(application.db, case_id, action, data, _actor(application, actor), application.clock.now(),
                       expected_version)
    console.print(f"case {case_id}: {r.event.type} → {r.case.state} (version {r.case.version}); "
                  f"allowed next: {', '.join(r.allowed) or 'nothing (final state)'}")
    for code, n in (r.event.payload.get("counts") or {}).items():
        console.print(f"  {code}: {n} occurrence(s) → {r.event.payload['entries'][code]} 分")
    if "total" in r.event.payload:
        console.print(f"  total {r.event.payload['total']} 分")


@cases_app.command("upload-sheet")
def cases_upload_sheet(case_id: int, file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                       actor: str = ActorOption,
                       kind: str | None = typer.Option(None, help="self: the 自评得分 column, as the unit's "
                                                       "self-assessment; verify: the 核查得分 column, as the "
                                                       "verification (default: by the actor's role)")
                       ) -> None:
    """Record the case's score sheet (附件3, `cases sheet ID --xlsx`) as filled in: each criterion's
    points from its row; every problem named by row and criterion, and nothing recorded."""
    from functools import partial

    from .adapters.rosters import SheetLimits, read_file
    from .adapters.score_sheet_upload import read_score_sheet
    from .service.sheet_upload import record_sheet_upload

    application = _app()
    limits = SheetLimits.from_settings(application.settings)
    who = _actor(application, actor)
    r = record_sheet_upload(application.db, case_id, read_file(file, limits), who, application.clock.now(),
                            kind=kind or ("verify" if who.kind == "coordinator" else "self"),
                            read=partial(read_score_sheet, limits=limits), source=file.name)
    console.print(f"{file}: case {case_id}: {r.event.type} → {r.case.state} (version {r.case.version}); "
                  f"total {r.event.payload['total']} 分")


# ------------------------------------------------------------------ audit
@audit_app.command("verify")
def audit_verify(checkpoints: bool = typer.Option(
                     False, "--checkpoints", help="also check the signed checkpoints (every one) and that every "
                     "chain still holds what they saw: finds a chain cut short or rewritten with new hashes"),
                 public_key: Path | None = typer.Option(
                     None, "--public-key", exists=True, dir_okay=False, readable=True,
                     help="the public key (PEM) to check signatures with (implies --checkpoints; default: the "
                     "public half of the checkpoint_key setting's key, or the .pub.pem beside it)"),
                 anchor: str | None = typer.Option(
                     None, "--anchor", help="SEQUENCE:MERKLE_ROOT of a checkpoint as the digest mail gave it "
                     "(implies --checkpoints): finds checkpoints deleted or replaced since")) -> None:
    """Check every case's hash chain, that each case row equals the replay of its events and that
    the filing batches agree with the events; with --checkpoints, against the signed checkpoints."""
    from .service.audit import verify

    application = _app()
    report = verify(application.db)
    anchored = None
    if checkpoints or public_key is not None or anchor is not None:
        from .domain.errors import ConfigError
        from .service.checkpoints import verify_checkpoints

        verifier = application.checkpoint_verifier(public_key)
        if verifier is None:
            raise ConfigError(f"no key to check checkpoints with: give --public-key FILE (no key at "
                              f"{application.settings.checkpoint_key})", "没有可用于验证检查点签名的公钥，请用 "
                              "--public-key 指定")
        anchored = verify_checkpoints(application.db, application.checkpoint_store(), verifier,
                                      anchor=_anchor(anchor) if anchor else None)
        report.findings.extend(anchored.findings)
    if report.ok:
        console.print(f"audit ok: {report.cases} cases, {report.events} events, {report.duty_streams} duty "
                      f"streams, {report.duty_events} duty events, {report.operator_events} operator events in "
                      f"{report.operator_streams} streams; every chain intact, every case and stream "
                      "equals its replay")
        if anchored is not None and anchored.latest is not None:
            latest = anchored.latest
            console.print(f"checkpoints ok: {anchored.checked} checked, signed by key {verifier.key_id()[:16]}…, "
                          f"in sequence; {anchored.chains} chains hold what they saw; latest #{latest.sequence} at "
                          f"{latest.created_at.astimezone(BUSINESS_TZ).isoformat(timespec='seconds')} (Beijing "
                          f"time), merkle root {latest.merkle_root}")
        return
    err.print(f"audit FAILED: {len(report.findings)} problem(s) in {report.cases} cases, "
              f"{report.events} events; first: {report.findings[0]}")
    for f in report.findings[:50]:
        err.print(f"  - {f}")
    raise typer.Exit(1)


def _anchor(text: str) -> tuple[int, str]:
    from .domain.errors import InvalidInput, Problem

    number, _, root = text.partition(":")
    if not number.isdigit() or len(root) != 64 or any(c not in "0123456789abcdefABCDEF" for c in root):
        raise InvalidInput("bad --anchor", [Problem("--anchor", f"SEQUENCE:MERKLE_ROOT (64 hex digits), got {text!r}",
                                                    "格式应为 序号:默克尔根（64位十六进制）")])
    return int(number), root.lower()


@audit_app.command("operator-events")
def audit_operator_events(stream: str | None = typer.Option(None, help="accounts, tokens, jurisdictions, units, "
                                                                       "coordinators or rounds (default: all)"),
                          fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
                          out: Path | None = typer.Option(None, "--out", help="write to this file (default: "
                                                                             "standard output)")) -> None:
    """The operator audit log (who changed accounts, tokens, the directory, coordinators and
    rounds), as JSON lines or CSV (Beijing time, Chinese names)."""
    from .domain.errors import InvalidInput
    from .domain.operator import STREAMS
    from .service.histories import operator_csv_lines, operator_jsonl

    if stream is not None and stream not in STREAMS:
        raise InvalidInput(f"unknown stream {stream!r} (one of {', '.join(STREAMS)})", [],
                           f"没有名为 {stream!r} 的操作日志（可选：{'、'.join(STREAMS)}）")
    if fmt not in ("jsonl", "csv"):
        raise InvalidInput(f"--format must be jsonl or csv, not {fmt!r}", [],
                           f"--format 须为 jsonl 或 csv，收到 {fmt!r}")
    events = _app().db.operator.events(stream)
    lines = operator_csv_lines(events) if fmt == "csv" else operator_jsonl(events)
    if out is None:
        for piece in lines:
            sys.stdout.write(piece)
        return
    with open(out, "w", encoding="utf-8", newline="") as fh:
        for piece in lines:
            fh.write(piece)
    console.print(f"{len(events)} operator events written to {out}")


@audit_app.command("keygen")
def audit_keygen(key: Path | None = typer.Option(None, "--key", dir_okay=False,
                                                 help="where to write the private key (default: the "
                                                 "checkpoint_key setting)"),
                 public_key: Path | None = typer.Option(None, "--public-key", dir_okay=False,
                                                        help="where to write the public key (default: beside "
                                                        "the private key, .pub.pem)")) -> None:
    """Make the Ed25519 key that signs checkpoints (private key: mode 0600, kept outside the
    database; never overwritten). Give the public key to the auditors."""
    from .adapters.checkpoint_files import generate_key
    from .config import Settings

    private = key or Settings().checkpoint_key
    written, verifier = generate_key(private, public_key)
    console.print(f"private key written to {private} (mode 0600): keep it outside the database and its backups")
    console.print(f"public key written to {written} (key id {verifier.key_id()}); give it to the auditors:")
    console.print(verifier.public_pem().rstrip("\n"))


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint now: the head of every case's and duty stream's chain."""
    from .service.checkpoints import write_checkpoint

    application = _app()
    store = application.checkpoint_store()
    done = write_checkpoint(application.db, store, application.checkpoint_signer(), application.clock.now())
    c = done.checkpoint
    console.print(f"checkpoint #{c.sequence} written to {Path(store.describe()) / done.name}: {c.counts['cases']} "
                  f"cases ({c.counts['case_events']} events), {c.counts['duty_streams']} duty streams "
                  f"({c.counts['duty_events']} events); merkle root {c.merkle_root}")


# ------------------------------------------------------------------ evidence
@evidence_app.command("attach")
def evidence_attach(case_id: int, criterion: str,
                    files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                    actor: str = ActorOption) -> None:
    """Attach files to a criterion of a case (stored once by content; type checked by content)."""
    from .files import attach_files
    from .service.evidence import EvidenceQuota

    application = _app()
    st = application.settings
    results = attach_files(application.db, application.evidence, case_id, criterion, files, _actor(application, actor),
                           application.clock.now(), max_bytes=st.evidence_max_bytes,
                           quota=EvidenceQuota(st.evidence_quota_bytes, st.evidence_quota_files))
    for r in results:
        p = r.event.payload
        console.print(f"case {case_id} {criterion}: {p['filename']} attached ({p['type']}, {p['size']} bytes, "
                      f"sha256 {p['sha256'][:12]}…)")


@evidence_app.command("remove")
def evidence_remove(case_id: int, criterion: str, sha256: str, actor: str = ActorOption) -> None:
    """Take a file off a criterion (the history keeps that it was there)."""
    from .service.cases import perform_action

    application = _app()
    perform_action(application.db, case_id, "remove_evidence", {"criterion": criterion, "sha256": sha256},
                   _actor(application, actor), application.clock.now())
    console.print(f"case {case_id} {criterion}: {sha256[:12]}… removed")


@evidence_app.command("list")
def evidence_list(case_id: int) -> None:
    """A case's evidence in rubric order."""
    from .service.evidence import list_evidence

    table = Table("criterion", "item", "file", "type", "bytes", "sha256", "attached")
    for e in list_evidence(_app().db, case_id):
        table.add_row(e.criterion, e.item_name, e.filename, e.type, str(e.size), e.sha256[:12],
                      f"{e.attached_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M} {e.attached_by}")
    console.print(table)


@evidence_app.command("export")
def evidence_export(case_id: int, out: Path = typer.Argument(..., dir_okay=False, help="the .zip to write")) -> None:
    """All of a case's evidence as one ZIP, ordered by rubric item number (as the notice asks)."""
    from .service.evidence import export_archive

    application = _app()
    n = export_archive(application.db, application.evidence, case_id, out)
    console.print(f"{out}: {n} files")


# ------------------------------------------------------------------ documents
@documents_app.command("attach")
def documents_attach(case_id: int, document: str = typer.Argument(..., help="the document's id, e.g. self_report"),
                     files: list[Path] = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                     actor: str = ActorOption) -> None:
    """Attach files as a document the round asks for (自评报告, 自评打分表 ...); type checked by content."""
    from .files import read_bounded
    from .service.evidence import EvidenceQuota, attach_document_bytes

    application = _app()
    st = application.settings
    results = attach_document_bytes(application.db, application.evidence, case_id, document,
                                    read_bounded(files, st.evidence_max_bytes), _actor(application, actor),
                                    application.clock.now(),
                                    quota=EvidenceQuota(st.evidence_quota_bytes, st.evidence_quota_files))
    for r in results:
        p = r.event.payload
        console.print(f"case {case_id} {document}: {p['filename']} attached ({p['type']}, {p['size']} bytes)")


@documents_app.command("list")
def documents_list(case_id: int) -> None:
    """The documents the case's round asks for, and the files on each."""
    from .service.cases import read_case
    from .service.evidence import DocumentItem, list_documents

    application = _app()
    ctx = read_case(application.db, case_id).ctx
    files = list_documents(application.db, case_id)
    table = Table("document", "name", "file", "type", "bytes", "attached")
    for d in ctx.documents:
        mine: list[DocumentItem | None] = [f for f in files if f.document == d.id] or [None]
        for f in mine:
            table.add_row(d.id, d.name, f.filename if f else "— missing", f.type if f else "",
                          str(f.size) if f else "",
                          f"{f.attached_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M} {f.attached_by}" if f else "")
    console.print(table)


# ------------------------------------------------------------------ duties of jurisdictions
@duties_app.command("list")
def duties_list(round_id: str = typer.Option(..., "--round"),
                jurisdiction: str | None = typer.Option(None, help="only this subtree (default: the province)")
                ) -> None:
    """Who owes what in the round (reports, filings, the evaluation), by when, and its status."""
    from .clock import business_date
    from .service.duties import duty_board

    application = _app()
    rows = duty_board(application.db, application.calendars, round_id,
                      _jurisdiction_path(application, round_id, jurisdiction),
                      business_date(application.clock.now()))
    table = Table("due", "duty", "jurisdiction", "status", "done", "waiting cases")
    for d in rows:
        done = f"{d.done_at.astimezone(BUSINESS_TZ):%Y-%m-%d} {d.done_by}" if d.done_at else "—"
        table.add_row(d.due_on.isoformat(), f"{d.duty} {d.name}", d.jurisdiction_name, d.status, done,
                      str(d.waiting) if d.owed_by == "bureau" else "")
    console.print(table)


@duties_app.command("done")
def duties_done(round_id: str, duty: str,
                jurisdiction: str = typer.Option(..., help="the jurisdiction that did it, e.g. shanxi-taiyuan"),
                file: Path | None = typer.Option(None, "--file", exists=True, dir_okay=False, readable=True,
                                                    help="the report or filing itself"),
                note: str | None = typer.Option(None), actor: str = ActorOption) -> None:
    """Record a jurisdiction's duty done (its report, its filing), with what it needs."""
    from .service.duties import record_duty

    application = _app()
    files = [(file.name, file.read_bytes())] if file is not None else []
    e = record_duty(application.db, application.calendars, application.evidence, round_id, jurisdiction, duty,
                    actor=_actor(application, actor), now=application.clock.now(), files=files, note=note)
    extra = e.payload.get("filing_batches") or e.payload.get("spot_checks") or \
        [a["filename"] for a in e.payload.get("attachments", [])]
    console.print(f"{jurisdiction} {duty}: recorded done (event #{e.seq}" + (", late" if e.payload["late"] else "")
                  + f"){': ' + ', '.join(extra) if extra else ''}")


@duties_app.command("history")
def duties_history(round_id: str, jurisdiction: str) -> None:
    """The hash-chained events of a jurisdiction's duties in the round."""
    from .service.duties import duty_history

    table = Table("#", "event", "actor", "occurred at (Asia/Shanghai)", "payload", "hash")
    for e in duty_history(_app().db, round_id, jurisdiction):
        table.add_row(str(e.seq), e.type, e.actor, e.occurred_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
                      json.dumps(dict(e.payload), ensure_ascii=False), e.hash[:12])
    console.print(table)


# ------------------------------------------------------------------ calendars
@calendars_app.command("list")
def calendars_list() -> None:
    """Calendars: province, the year served (or recurring), the one it extends."""
    table = Table("id", "province", "serves", "extends", "title")
    for c in _app(migrated=False).calendars.all():
        table.add_row(c.id, c.province, "every year" if c.recurring else str(c.year), _fmt(c.extends), c.title)
    console.print(table)


@calendars_app.command("show")
def calendars_show(calendar_id: str, year: int | None = typer.Option(None, help="the round year (default: the "
                                                                                   "calendar's, or this year)")
                   ) -> None:
    """A calendar's dates for a round year: who owes what, reminders, documents, targets; and a
    loud warning for a year without official holiday data."""
    from .adapters.workdays import WorkdayCalendar
    from .clock import business_date

    application = _app(migrated=False)
    c = application.calendars.get(calendar_id)
    year = year or c.year or business_date(application.clock.now()).year
    console.print(f"{c.title_for(year)} · {c.source or ''} · policy {c.policy.on_fail}", style="bold")
    table = Table("due", "milestone", "owed by", "owes / needs", "remind (days before)", "escalate")
    for m in sorted(c.milestones, key=lambda m: m.due_on(year)):
        owes = ("contact form" if m.owes_contact_form else ", ".join(sorted(m.owes_states))) if not m.by_level \
            else f"needs {m.needs}"
        table.add_row(m.due_on(year).isoformat(), f"{m.id} {m.name}",
                      "informational" if m.informational else m.owed_by, owes,
                      f"{', '.join(m.remind)} {list(m.tiers)}" if m.tiers else "—", ", ".join(m.escalate) or "—")
    console.print(table)
    if c.documents:
        console.print("documents a submission needs: " + "; ".join(f"{d.id} {d.name}" for d in c.documents))
    for t in c.targets_for(year):
        console.print(f"target {year}: {format((t.share * 100).normalize(), 'f')}%"
                      + (f" of {t.level} agencies" if t.level else "")
                      + (f" in {t.jurisdiction}" if t.jurisdiction else ""))
    if not c.targets_for(year):
        console.print(f"no target for {year} in this calendar: a round of {year} must be given one")
    for line in WorkdayCalendar(c.extra_holidays, c.extra_workdays).warnings({m.due_on(year).year
                                                                              for m in c.milestones}):
        err.print(f"WARNING: {line}")


# ------------------------------------------------------------------ coordinators
@coord_app.command("add")
def coordinators_add(jurisdiction: str, name: str, email: str, actor: str = ActorOption) -> None:
    """Add a coordinator of a jurisdiction (receives its reminders and digests)."""
    from .service.directory import add_coordinator

    application = _app()
    c = add_coordinator(application.db, jurisdiction, name, email, actor=_actor(application, actor, *OPERATORS),
                        now=application.clock.now())
    console.print(f"coordinator {c.id}: {c.name} <{c.email}> for {c.jurisdiction_id}")


@coord_app.command("list")
def coordinators_list() -> None:
    """List coordinators."""
    from .service.queries import list_coordinators

    table = Table("id", "jurisdiction", "name", "email", "active")
    for c in list_coordinators(_app().db):
        table.add_row(str(c.id), c.jurisdiction_id, c.name, c.email, "yes" if c.active else "no")
    console.print(table)


# ------------------------------------------------------------------ deadlines and mail
@app.command("sweep")
def sweep_cmd() -> None:
    """Compare every deadline with now and do what is due (reminders, misses, expiries). Idempotent."""
    from .service.deadlines import sweep

    application = _app()
    r = sweep(application.db, application.calendars, application.clock.now())
    console.print(f"sweep at {r.now.astimezone(BUSINESS_TZ).isoformat(timespec='minutes')}: "
                  f"{r.reminders} reminders, {r.coordinator_reminders} coordinator reminders, {r.missed} deadlines "
                  f"missed, {r.expired} rectifications expired, {r.unit_notices} notices to units, "
                  f"{r.digests} digests; duties: {r.duty_reminders} reminders, {r.duties_missed} missed, "
                  f"{r.duty_notices} notices")
    for line in r.skipped:
        err.print(f"skipped: {line}")
    for line in r.warnings:
        err.print(f"WARNING: {line}")


@app.command("dispatch")
def dispatch_cmd(max_batches: int = typer.Option(50, help="stop after this many batches")) -> None:
    """Deliver the pending notifications (SMTP if configured, else the maildir)."""
    import asyncio

    from .service.dispatch import dispatch

    application = _app()
    transport, settings = application.transport(), application.dispatch_settings()
    totals = {"sent": 0, "retrying": 0, "failed": 0, "cancelled": 0}
    for _ in range(max_batches):  # each batch at its own now: its lease starts when it is claimed
        r = asyncio.run(dispatch(application.db, application.calendars, transport, application.clock.now(),
                                 settings))
        for line in r.errors:
            err.print(f"warning: {line}")
        for key in totals:
            totals[key] += getattr(r, key)
        if r.claimed == 0:
            break
    where = application.settings.smtp_host or application.settings.maildir
    console.print(f"dispatch to {where}: " + ", ".join(f"{v} {k}" for k, v in totals.items()))


@notif_app.command("list")
def notifications_list(failed: bool = typer.Option(False, "--failed", help="only failed ones"),
                       case_id: int | None = typer.Option(None, "--case"),
                       status: str | None = typer.Option(None, help="pending, sending, sent, failed, cancelled"),
                       limit: int = typer.Option(200, min=1, max=10_000)) -> None:
    """Notifications with their delivery state."""
    from .service.queries import list_notifications

    rows = list_notifications(_app().db, status="failed" if failed else status, case_id=case_id, limit=limit)
    table = Table("id", "kind", "case", "milestone", "tier", "due", "status", "tries", "sent", "error")
    for n in rows:
        table.add_row(str(n.id), n.kind, _fmt(n.case_id), n.milestone, _fmt(n.tier), _fmt(n.due_on), n.status,
                      str(n.attempts), n.sent_at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M") if n.sent_at
                      else "—", (n.last_error or "")[:60])
    console.print(table)


@app.command("serve")
def serve(name: str | None = typer.Option(None, help="this process's name (shown as the scheduler holder)"),
          host: str = typer.Option("127.0.0.1", help="the HTTP API's address"),
          port: int = typer.Option(8000, min=1, max=65535, help="the HTTP API's port"),
          api: bool = typer.Option(True, help="serve the HTTP API (--no-api: the scheduler only)"),
          workers: int = typer.Option(1, min=1, max=32, help="API processes on the port (each also competes to "
                                                             "schedule; one is elected)")) -> None:
    """Run the system: the HTTP API, and the scheduler (sweep hourly and at 09:00
    Asia/Shanghai, dispatch every 30 s). Among several processes one is elected to
    schedule (PostgreSQL advisory lock; a lock file on SQLite); every process serves the API.
    A new SQLite database gets its schema on the first start; PostgreSQL, or an SQLite database
    at an older schema, is refused until `workflow db upgrade` has run."""
    import signal
    import threading

    from .logging import configure_logging
    from .serving import ENV_NAME, leader_loop, process_name

    application = _app(migrated=False)
    application.require_schema(create_new_sqlite=True)  # a new SQLite file: the schema; anything else: db upgrade
    configure_logging(application.settings.log_level)
    st = application.settings
    if workers > 1 and not api:
        raise typer.BadParameter("--workers serves the API in each worker; it cannot go with --no-api "
                                 "(--workers 与 --no-api 不能同时使用)")
    process = process_name(name)
    where = f"on {application.engine.url.render_as_string(hide_password=True)}; mail to {st.smtp_host or st.maildir}"
    if workers > 1:
        from .api.server import run_workers

        console.print(f"workflow serving with {workers} workers {where}; API on http://{host}:{port}/docs")
        application.engine.dispose()  # each worker opens its own connections
        os.environ[ENV_NAME] = name or ""
        run_workers("workflow.serving:worker_app", workers=workers, host=host, port=port,
                    keep_alive=st.keep_alive_seconds)
        return
    loop = leader_loop(application, process)
    console.print(f"workflow serving as {process} {where}" + (f"; API on http://{host}:{port}/docs" if api else ""))
    if not api:
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
        signal.signal(signal.SIGINT, lambda *_: loop.stop())
        loop.run()
        return
    from .api.app import create_app
    from .api.server import run

    scheduler = threading.Thread(target=loop.run, name="scheduler", daemon=True)
    scheduler.start()
    try:  # uvicorn handles SIGTERM/SIGINT; the scheduler stops with it
        run(create_app(application), host=host, port=port, header_timeout=st.header_timeout_seconds,
            keep_alive=st.keep_alive_seconds)
    finally:
        loop.stop()
        scheduler.join(timeout=30)


# ------------------------------------------------------------------ tokens
@tokens_app.command("create")
def tokens_create(account: str = typer.Option(..., help="the login of the account the token belongs to (its role "
                                                     "and scope are the account's)"),
                  expires: str | None = typer.Option(None, help="expiry, ISO time (Asia/Shanghai if no zone)"),
                  actor: str = ActorOption) -> None:
    """Make a token for an account; its secret is printed once and never stored."""
    from datetime import datetime

    from .domain.errors import InvalidInput, Problem
    from .service.tokens import create_token

    application = _app()
    expires_at = None
    if expires:
        try:
            expires_at = datetime.fromisoformat(expires)
        except ValueError:
            raise InvalidInput("bad --expires", [Problem("--expires", f"not an ISO time: {expires!r}")]) from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=BUSINESS_TZ)
    owner = application.db.accounts.by_login(account)
    if owner is None:
        raise InvalidInput(f"no account {account!r} (workflow accounts list)", [],
                           f"没有登录名为 {account!r} 的账号（见 workflow accounts list）")
    made = create_token(application.db, account_id=owner.id, by=_principal(application, actor),
                        expires_at=expires_at, now=application.clock.now())
    console.print(f"token {made.id} for {owner.name} ({owner.login}, {owner.role}); the secret (shown once):")
    sys.stdout.write(made.secret + "\n")


@tokens_app.command("list")
def tokens_list() -> None:
    """Tokens (never their secrets)."""
    from .service.tokens import list_tokens

    table = Table("id", "account", "name", "role", "scope", "created", "created by", "expires", "revoked",
                  "revoked by")
    for t in list_tokens(_app().db):
        table.add_row(str(t.id), _fmt(t.account_login), _fmt(t.account_name), t.role,
                      _fmt(t.unit_id if t.role == "unit" else t.jurisdiction_id),
                      f"{t.created_at:%Y-%m-%d}", t.created_by, _fmt(t.expires_at), _fmt(t.revoked_at),
                      _fmt(t.revoked_by))
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, actor: str = ActorOption) -> None:
    """Revoke a token at once; the revocation records who made it (--actor)."""
    from .service.tokens import revoke_token

    application = _app()
    by = _actor(application, actor, "admin")
    revoke_token(application.db, token_id, application.clock.now(), by=by)
    console.print(f"token {token_id} revoked by {by.label}")


# ------------------------------------------------------------------ accounts
def _password(prompted: bool) -> str | None:
    """A password read from the terminal twice (never from an option: it would stay in the
    shell's history), or from WORKFLOW_PASSWORD for scripts."""
    if not prompted:
        return None
    given = os.environ.get("WORKFLOW_PASSWORD")
    if given is not None:
        return given
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


def _account_row(table: Table, a: Any) -> None:
    scope = a.unit_id if a.role == "unit" else a.jurisdiction_id
    table.add_row(str(a.id), a.login, a.name, a.role, _fmt(scope), _fmt(a.email), _fmt(a.phone),
                  "yes" if a.password_hash else "no", "disabled" if a.disabled_at else "active", a.created_by)


@accounts_app.command("create")
def accounts_create(login: str = typer.Option(..., help="what they sign in with (a-z 0-9 . _ -)"),
                    name: str = typer.Option(..., help="display name (姓名), unique within the jurisdiction"),
                    role: str = typer.Option(..., help="unit, coordinator, auditor or admin"),
                    unit: int | None = typer.Option(None, help="a unit account's unit id"),
                    jurisdiction: str | None = typer.Option(None, help="a coordinator's or auditor's jurisdiction"),
                    email: str | None = typer.Option(None), phone: str | None = typer.Option(None),
                    password: bool = typer.Option(False, "--password", help="set a password (asked twice; or "
                                                                            "WORKFLOW_PASSWORD)"),
                    actor: str | None = typer.Option(None, "--actor", envvar="WORKFLOW_ACTOR",
                                                     help="the admin or coordinator making it (only the very first "
                                                          "account, an admin, is made without one)")) -> None:
    """Make an account; recorded on the operator stream 'accounts' with who made it."""
    from .service.accounts import create_account

    application = _app()
    by = _principal(application, actor, *OPERATORS) if actor else None
    a = create_account(application.db, by=by, login=login, name=name, role=role, unit_id=unit,
                       jurisdiction_id=jurisdiction, email=email, phone=phone, password=_password(password),
                       now=application.clock.now())
    console.print(f"account {a.id}: {a.login} ({a.name}, {a.role}) made by {a.created_by}")


@accounts_app.command("list")
def accounts_list(actor: str = ActorOption) -> None:
    """The accounts the actor may see (an admin: all; a coordinator or auditor: their subtree's)."""
    from .service.accounts import list_accounts

    application = _app()
    table = Table("id", "login", "name", "role", "scope", "email", "phone", "password", "state", "created by")
    for a in list_accounts(application.db, _principal(application, actor)):
        _account_row(table, a)
    console.print(table)


@accounts_app.command("change")
def accounts_change(account_id: int, name: str | None = typer.Option(None), email: str | None = typer.Option(None),
                    phone: str | None = typer.Option(None), actor: str = ActorOption) -> None:
    """Change an account's display name or contact (an empty value clears email or phone)."""
    from .service.accounts import change_account

    application = _app()
    changes = {k: v for k, v in (("name", name), ("email", email), ("phone", phone)) if v is not None}
    a = change_account(application.db, account_id, changes, by=_principal(application, actor, *OPERATORS),
                       now=application.clock.now())
    console.print(f"account {a.id}: {a.login} ({a.name}) {_fmt(a.email)} {_fmt(a.phone)}")


@accounts_app.command("disable")
def accounts_disable(account_id: int, reason: str = typer.Option(..., help="why (recorded)"),
                     actor: str = ActorOption) -> None:
    """Disable an account: it can no longer sign in or act, and its tokens are revoked at once."""
    from .service.accounts import set_enabled

    application = _app()
    a, revoked = set_enabled(application.db, account_id, False, by=_principal(application, actor, *OPERATORS),
                             now=application.clock.now(), reason=reason)
    console.print(f"account {a.id} ({a.login}) disabled; {revoked} token(s) revoked")


@accounts_app.command("enable")
def accounts_enable(account_id: int, actor: str = ActorOption) -> None:
    """Enable a disabled account again (its old tokens stay revoked)."""
    from .service.accounts import set_enabled

    application = _app()
    a, _ = set_enabled(application.db, account_id, True, by=_principal(application, actor, *OPERATORS),
                       now=application.clock.now())
    console.print(f"account {a.id} ({a.login}) enabled")


@accounts_app.command("password")
def accounts_password(account_id: int, actor: str = ActorOption) -> None:
    """Set an account's password (asked twice; or WORKFLOW_PASSWORD): by its person, the
    coordinator above them or an admin."""
    from .service.accounts import set_password

    application = _app()
    password = _password(True)
    assert password is not None
    set_password(application.db, account_id, password, by=_principal(application, actor),
                 now=application.clock.now())
    console.print(f"account {account_id}: password set")


@accounts_app.command("link")
def accounts_link(account_id: int,
                  purpose: str = typer.Option("invitation", help="invitation (first sign-in) or reset"),
                  actor: str = ActorOption) -> None:
    """Send a one-time link to set the account's password (an invitation, or a reset) to the
    account's email, and print it (to hand over when there is no address or the mail fails).
    The link points at WORKFLOW_CONSOLE_URL."""
    import asyncio

    from .domain.errors import ConfigError, InvalidInput
    from .service.sign_in import PURPOSES, issue_link
    from .web.common import zh_time
    from .web.mail import link_url, mail_link

    if purpose not in PURPOSES:
        raise InvalidInput(f"--purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}", [],
                           f"--purpose 须为 {'、'.join(PURPOSES)} 之一；收到 {purpose!r}")
    application = _app()
    if not application.settings.console_url:  # before a link is made that no address could carry
        raise ConfigError("WORKFLOW_CONSOLE_URL is not set: the address people open the console at is needed for "
                          "the link (e.g. https://jgswj.example.gov.cn)",
                          "未设置 WORKFLOW_CONSOLE_URL：生成链接需要控制台的访问地址")
    link = issue_link(application.db, account_id, purpose, by=_principal(application, actor, *OPERATORS),
                      now=application.clock.now(), policy=application.sign_in_policy())
    url = link_url(application, None, link)
    delivered, why = asyncio.run(mail_link(application, None, link))
    console.print(f"{PURPOSES[purpose]} link for {link.account.login}, valid until {zh_time(link.record.expires_at)} "
                  f"(Beijing time), once: {url}")
    console.print(f"mailed to {link.account.email}" if delivered else f"not mailed: {why}")


# ------------------------------------------------------------------ rubrics
def _rubrics() -> RubricCatalog:
    from .adapters.rubric_files import RubricCatalog
    from .config import Settings

    return RubricCatalog(Settings().rubrics_dir)


@rubrics_app.command("list")
def rubrics_list() -> None:
    """List the rubrics in the rubrics folder."""
    table = Table("id", "title", "province", "total", "pass mark", "criteria")
    for r in _rubrics().all():
        table.add_row(r.id, r.title, r.province, _fmt(r.total), _fmt(r.pass_mark), str(len(r.criteria())))
    console.print(table)


@rubrics_app.command("show")
def rubrics_show(rubric_id: str, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a rubric: every section, item and criterion with its points and caps."""
    rubric = _rubrics().get(rubric_id)
    if as_json:
        sys.stdout.write(dumps_json(rubric.to_json_dict(), indent=2) + "\n")
        return
    console.print(f"{rubric.title} ({rubric.id}) · total {_fmt(rubric.total)} · pass mark {_fmt(rubric.pass_mark)}",
                  style="bold")
    table = Table("code", "section / item / criterion", "points", "cap", "rule", show_lines=False)
    for section in rubric.sections:
        table.add_row(section.code, section.name, "", _fmt(section.max_points), "", style="bold")
        for item in section.items:
            table.add_row(item.code, "  " + item.name, "", _fmt(item.max_points), "")
            for c in item.criteria:
                rule = "per occurrence" if c.per_occurrence else ""
                if c.must_pass:
                    rule = (rule + ", must pass").lstrip(", ")
                table.add_row(c.code, "    " + c.text, _fmt(c.points), _fmt(c.cap), rule)
    console.print(table)


@rubrics_app.command("diff")
def rubrics_diff(a: str, b: str) -> None:
    """Sections, items and criteria that differ in points or text between two rubrics."""
    from .domain.rubric import diff_rubrics

    catalog = _rubrics()
    differences = diff_rubrics(catalog.get(a), catalog.get(b))
    if not differences:
        console.print(f"{a} and {b} are the same")
        return
    table = Table("code", "kind", "what", a, b)
    for d in differences:
        table.add_row(d.code, d.kind, d.what, _fmt(d.a), _fmt(d.b))
    console.print(table)
    console.print(f"{len(differences)} differences")


# ------------------------------------------------------------------ demo
@app.command("demo")
def demo(db: str | None = typer.Option(None, help="database URL (default: the configured one)"),
         example_only: bool = typer.Option(False, "--example-only",
                                           help="only the 2021 example: the 35 units and round shanxi-2021 open, "
                                                "nothing done (a blank round to practise on)")) -> None:
    """Load a Shanxi round that is live today: its calendar is Shanxi's with the dates moved so
    that today is in the evaluation month (the self-assessment deadline passed, the evaluation
    due in 10 days); units ahead and behind, contacts and coordinators. Then `workflow serve`
    sends today's reminders. The 2021 notice's example round is kept as a past round."""
    if db:
        os.environ["WORKFLOW_DATABASE_URL"] = db
    from .adapters.db.migrate import upgrade
    from .demo import run_demo, run_example

    application = _app(migrated=False)
    upgrade(application.engine)
    application.require_schema()
    where = application.engine.url.render_as_string(hide_password=True)
    if example_only:
        console.print(f"round shanxi-2021: {run_example(application)} cases in {where}")
        console.print("next: workflow cases list --round shanxi-2021 · workflow cases show 1 · "
                      "workflow rubrics show shanxi-2020 · workflow audit verify")
        return
    r, st = run_demo(application), application.settings
    for line in r.warnings:
        err.print(f"WARNING: {line}")
    states = ", ".join(f"{state} {n}" for state, n in r.by_state.items())
    console.print(f"round {r.round_id}: {sum(r.by_state.values())} cases ({states}) in {where}"
                  + ("" if r.created else " — loaded before, nothing changed"))
    console.print(f"calendar {r.calendar_id}: Shanxi's calendar moved so that {r.today} falls 10 days before the "
                  "end of the evaluation month:")
    for on, name in r.schedule:
        days = (on - r.today).days
        console.print(f"  {on}  {name}  ({f'in {days} days' if days >= 0 else f'{-days} days ago'})")
    console.print(f"round {r.example_round}: {r.example_cases} cases (the 2021 notice's example, a past round)")
    people = ", ".join(f"{login} ({name}, {role})" for login, name, role in r.accounts if role != "unit")
    clerks = [login for login, _, role in r.accounts if role == "unit"]
    console.print(f"accounts (--actor LOGIN): demo-admin (admin), {people}, and a clerk of each unit: "
                  f"{clerks[0] if clerks else ''} … {clerks[-1] if clerks else ''}")
    console.print("a token for the API: workflow tokens create --account coord-shanxi --actor demo-admin")
    from .demo import DEMO_PASSWORD

    console.print(f"the console (workflow serve, then http://127.0.0.1:8000/): sign in as coord-shanxi, "
                  f"audit-shanxi or unit01 … with the demo password {DEMO_PASSWORD}")
    console.print(f"next: workflow serve (its first sweep sends today's reminders to {st.smtp_host or st.maildir}) · "
                  f"workflow rounds at-risk {r.round_id} --days 14 · workflow rounds reminders {r.round_id} · "
                  f"workflow rounds progress {r.round_id} · workflow cases list --round {r.round_id}")


@app.command()
def simulate(scenario: Path = typer.Argument(..., help="the scenario file (YAML), e.g. examples/shanxi-2021.yaml"),
             db: str | None = typer.Option(None, help="database URL to keep (empty, or holding a killed run of "
                                                         "the same scenario, which resumes); default a temporary "
                                                         "SQLite file, removed at the end"),
             maildir: Path | None = typer.Option(None, help="where the mails go (default var/simulate/<name>/mail)"),
             smtp: str | None = typer.Option(None, help="HOST:PORT of an SMTP server to send the mails to instead"),
             events_out: Path | None = typer.Option(None, "--events-out", help="write every event as JSON lines"),
             timeline_rows: int = typer.Option(200, "--timeline-rows", help="rows of the timeline shown (0: none)"),
             ) -> None:
    """Rehearse a round on a simulated clock in a fresh database: every day the 09:00 sweep
    and dispatch, then the scenario's actions through the same services as production. Without
    --db the database and the evidence are temporary files, removed at the end (also after an
    error); with --db the evidence is kept beside the database."""
    import shutil

    from rich.progress import Progress

    from notifications.robots import RobotFolder

    from .simulate import load_scenario, run, timeline

    plan = load_scenario(scenario)  # every problem, with its line, before anything runs
    application, work = _simulation_app(plan, db, maildir, smtp)
    # the channels' messages: written beside the mails as the platforms would receive them, never posted
    robots = Path("var") / "simulate" / plan.path.stem / "robots" if maildir is None else maildir.parent / "robots"
    try:
        days = (plan.end - plan.start).days + 1
        with Progress(console=err, transient=True) as bar:
            task = bar.add_task(f"simulating {plan.title}", total=days)
            result = run(plan, application, application.transport(), on_day=lambda _d: bar.advance(task),
                         robots=RobotFolder(robots))
        if timeline_rows:
            _print_timeline(plan.title, timeline(application, result.round_ids), timeline_rows)
        for outcome in result.refused:
            err.print(f"{plan.path}:{outcome.line}: {outcome.day}: {outcome.what}")
        console.print(_simulation_summary(application, plan.title, f"/{plan.round['province']}/", result.round_ids))
        if result.resumed_after is not None:
            console.print(f"resumed a run that had finished {result.resumed_after}")
        console.print(f"mails sent {result.mails_sent}, failed {result.mails_failed}; actions refused "
                      f"{len(result.refused)}; {result.days} days simulated")
        if plan.channels:
            console.print(f"robot messages {result.robot_messages}: {robots} (as each platform would receive them)")
        st = application.settings
        console.print(f"mails: {f'{st.smtp_host}:{st.smtp_port}' if smtp else st.maildir} · database: "
                      + ("temporary, removed at the end (--db URL keeps it)" if work else
                         f"{result.database_url} · evidence: {st.evidence_dir}"))
        if events_out:
            with open(events_out, "w", encoding="utf-8") as fh:
                for event in application.db.all_events():
                    fh.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
            console.print(f"events: {events_out}")
    finally:
        application.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def _simulation_app(plan: Any, db: str | None, maildir: Path | None, smtp: str | None) -> tuple[App, Path | None]:
    """An application on a simulated clock, and its temporary folder (None: nothing temporary).
    Without ``db``: a temporary folder holding the SQLite file and the evidence, for the caller
    to remove. With ``db``: the evidence kept beside it (``<file's folder>/<stem>-evidence`` for
    SQLite; ``var/simulate/<scenario>/evidence`` for a server database)."""
    import tempfile

    from sqlalchemy.engine import make_url

    from .adapters.calendar_files import CalendarCatalog
    from .adapters.db.engine import make_engine
    from .adapters.db.store import Database
    from .clock import ManualClock
    from .config import Settings

    out_dir = Path("var") / "simulate" / Path(plan.path).stem
    overrides: dict[str, Any] = {"maildir": maildir or out_dir / "mail"}
    if smtp:
        host, _, port = smtp.rpartition(":")
        if not host or not port.isdigit():
            raise DomainError(f"--smtp must be HOST:PORT, got {smtp!r}")
        overrides.update(smtp_host=host, smtp_port=int(port))
    work = None
    if db is None:
        work = Path(tempfile.mkdtemp(prefix="workflow-simulate-"))
        overrides.update(database_url=f"sqlite:///{work / 'simulation.db'}", evidence_dir=work / "evidence")
    else:
        url = make_url(db)
        beside = Path(url.database or "simulation.db") if url.get_backend_name() == "sqlite" else None
        overrides.update(database_url=db, evidence_dir=beside.with_name(f"{beside.stem}-evidence") if beside
                         else out_dir / "evidence")
    try:
        settings = Settings(**overrides)
        engine = make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    except BaseException:
        if work is not None:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        raise
    return (App(settings=settings, engine=engine, db=Database(engine), clock=ManualClock(_eight_on(plan.start)),
                calendars=CalendarCatalog(settings.calendars_dir)), work)


def _print_timeline(title: str, rows: list[Any], shown: int) -> None:
    table = Table(title=f"{title}: timeline ({len(rows)} rows" + (f", first {shown} shown)" if len(rows) > shown
                                                                   else ")"))
    for column in ("date", "case", "event", "mail"):
        table.add_column(column)
    for row in rows[:shown]:
        table.add_row(row.at.astimezone(BUSINESS_TZ).date().isoformat(), row.who, row.event, row.mail)
    console.print(table)


def _simulation_summary(application: App, title: str, province_path: str, round_ids: list[str]) -> Table:
    """Per round: cases by final state, the share of all agencies certified against the target,
    the units' misses and the jurisdictions' duties."""
    from .service.duties import duty_summary
    from .service.reports import progress as progress_report

    summary = Table("round", "cases by final state", "certified share of all agencies / target",
                    "unit deadlines missed", "duties of jurisdictions", title=f"{title}: summary")
    today = application.clock.now().astimezone(BUSINESS_TZ).date()
    for round_id in round_ids:
        report = progress_report(application.db, round_id, province_path)
        province = report.rows[0]
        states = ", ".join(f"{k} {v}" for k, v in province.by_state.items() if v)
        share, met = province.certified_share, province.target_met()
        duties = duty_summary(application.db, application.calendars, round_id, province_path, today)
        summary.add_row(round_id, states,
                        f"{province.certified_to_date}/{province.agencies} = "
                        f"{format(share * 100, '.1f') if share is not None else '—'}% / "
                        f"{format((report.target_share * 100).normalize(), 'f')}%" + (" ✓" if met else ""),
                        ", ".join(f"{m} {n}" for m, n in sorted(province.missed.items())) or "none",
                        "; ".join(f"{duty}: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
                                  for duty, by in duties.items()) or "none")
    return summary


def _eight_on(day: Any) -> Any:
    from datetime import datetime

    return datetime(day.year, day.month, day.day, 8, tzinfo=BUSINESS_TZ)


def main() -> None:
    try:
        app()
    except DomainError as exc:
        err.print(f"error ({exc.code}): {exc.message}" + (f" / {exc.message_zh}" if exc.message_zh else ""))
        for p in getattr(exc, "problems", ()):
            err.print(f"  - {p.where}: {p.what}" + (f" / {p.zh}" if p.zh else ""))
        sys.exit(2)
    except Exception as exc:  # never a stack trace to a user
        if os.environ.get("WORKFLOW_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (set WORKFLOW_DEBUG=1 to see the trace)")
        sys.exit(70)


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------- channels

@channels_app.command("add")
def channels_add(kind: str = typer.Option(..., help="wecom | dingtalk | webhook"),
                 url: str = typer.Option(..., help="the robot's webhook address (it carries the key: keep it private)"),
                 audience: str = typer.Option(..., help="units (reaches units with no email) | coordinators | unit"),
                 name: str = typer.Option(..., help="what the group is called, e.g. 太原市创建工作群"),
                 jurisdiction: str | None = typer.Option(None, help="the jurisdiction's group (units, coordinators)"),
                 unit: int | None = typer.Option(None, help="the unit's own channel (audience unit)"),
                 secret: str | None = typer.Option(None, envvar="WORKFLOW_CHANNEL_SECRET",
                                                   help="DingTalk's SEC… or the webhook's HMAC key (or "
                                                        "WORKFLOW_CHANNEL_SECRET: kept off the shell's history)"),
                 actor: str = ActorOption) -> None:
    """Send notifications to a group robot too (decision 53: who gets what)."""
    from .service.channels import add_channel, masked

    application = _app()
    c = add_channel(application.db, _principal(application, actor, *OPERATORS), application.clock.now(),
                    jurisdiction_id=jurisdiction, kind=kind, url=url, audience=audience, name=name, secret=secret,
                    unit_id=unit, any_host=application.settings.channels_any_host)
    console.print(f"channel {c.id}: {c.name} ({c.kind}, {c.audience}) {masked(c.url)}")


@channels_app.command("list")
def channels_list(actor: str = ActorOption) -> None:
    """The channels of the actor's subtree (their addresses masked)."""
    from notifications.robots import KIND_NAMES

    from .service.channels import AUDIENCES, list_channels, masked

    application = _app()
    table = Table("id", "name", "kind", "audience", "jurisdiction", "unit", "address", "signed", "state")
    for c in list_channels(application.db, _principal(application, actor)):
        table.add_row(str(c.id), c.name, KIND_NAMES.get(c.kind, c.kind), AUDIENCES.get(c.audience, c.audience),
                      c.jurisdiction_id, _fmt(c.unit_id), masked(c.url), "yes" if c.secret else "no",
                      "disabled" if c.disabled_at else "enabled")
    console.print(table)


@channels_app.command("disable")
def channels_disable(channel_id: int, actor: str = ActorOption) -> None:
    """Stop sending to a channel (what is still waiting for it is cancelled)."""
    from .service.channels import disable_channel

    application = _app()
    c = disable_channel(application.db, _principal(application, actor, *OPERATORS), channel_id,
                        application.clock.now())
    console.print(f"channel {c.id} ({c.name}) disabled")
