"""The ``workflow`` command."""
from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from .bootstrap import App, build
from .clock import BUSINESS_TZ
from .domain.case import Actor
from .domain.errors import DomainError
from .domain.jsonnum import dumps_json

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
for sub, name in ((db_app, "db"), (jur_app, "jurisdictions"), (units_app, "units"), (rounds_app, "rounds"),
                  (cases_app, "cases"), (audit_app, "audit")):
    app.add_typer(sub, name=name)

ActorOption = typer.Option(..., "--actor", envvar="WORKFLOW_ACTOR",
                           help="who acts, KIND:ID (e.g. coordinator:wang, unit:12, admin:ops); env WORKFLOW_ACTOR")


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


# ------------------------------------------------------------------ jurisdictions
@jur_app.command("import")
def jurisdictions_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Import jurisdictions from CSV (id,name,level,parent); all rows or none."""
    from .service.directory import import_jurisdictions

    r = import_jurisdictions(_app().db, file)
    console.print(f"{file}: {r.created} created, {r.updated} updated, {r.unchanged} unchanged")


@jur_app.command("list")
def jurisdictions_list() -> None:
    """List jurisdictions as a tree."""
    from .service.queries import list_jurisdictions

    table = Table("id", "name", "level", "parent")
    for j in list_jurisdictions(_app().db):
        indent = "  " * (j.Jurisdiction.path.count("/") - 2)
        table.add_row(indent + j.Jurisdiction.id, j.Jurisdiction.name, j.Jurisdiction.level,
                      _fmt(j.Jurisdiction.parent_id))
    console.print(table)


# ------------------------------------------------------------------ units
@units_app.command("import")
def units_import(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
                 update: bool = typer.Option(False, "--update", help="replace existing units' category and contacts")
                 ) -> None:
    """Import units from CSV (UTF-8 or GBK); every bad row is reported and nothing is written."""
    from .service.directory import import_units

    application = _app()
    r = import_units(application.db, file, application.clock.now(), update=update)
    console.print(f"{file}: {r.created} created, {r.updated} updated, {r.unchanged} unchanged")


@units_app.command("list")
def units_list(jurisdiction: Optional[str] = typer.Option(None, help="only this jurisdiction's subtree")) -> None:
    """List units."""
    from .service.queries import list_units

    table = Table("id", "name", "jurisdiction", "level", "category", "contacts")
    for u in list_units(_app().db, jurisdiction):
        table.add_row(str(u.id), u.name, u.jurisdiction_id, u.level, u.category,
                      "; ".join(f"{c['name']} {c.get('email') or c.get('phone')}" for c in u.contacts) or "—")
    console.print(table)


# ------------------------------------------------------------------ rounds
@rounds_app.command("open")
def rounds_open(province: str = typer.Option(..., help="province jurisdiction id, e.g. shanxi"),
                year: int = typer.Option(..., help="round year"),
                rubric: str = typer.Option(..., help="rubric id, e.g. shanxi-2020"),
                calendar: str = typer.Option(..., help="calendar id, e.g. shanxi-2021"),
                target: str = typer.Option(..., help="target share certified, e.g. 0.5"),
                actor: str = ActorOption) -> None:
    """Open a round: a case is registered for every in-scope unit of the province."""
    from .service.rounds import open_round

    application = _app()
    r = open_round(application.db, application.rubrics, application.calendars, province_id=province, year=year,
                   rubric_id=rubric, calendar_id=calendar, target_share=target, actor=Actor.parse(actor),
                   now=application.clock.now())
    console.print(f"round {r.round_id} open: {r.registered} cases registered "
                  f"({r.carried_over} carried over, {r.already_certified} units already certified)")


@rounds_app.command("list")
def rounds_list() -> None:
    """List rounds."""
    from .service.queries import list_rounds

    table = Table("id", "province", "year", "rubric", "calendar", "target", "pass mark", "on fail")
    for (r,) in list_rounds(_app().db):
        table.add_row(r.id, r.province_id, str(r.year), r.rubric_id, r.calendar_id, _fmt(r.target_share),
                      _fmt(r.pass_mark), r.policy["on_fail"])
    console.print(table)


# ------------------------------------------------------------------ cases
@cases_app.command("list")
def cases_list(round_id: Optional[str] = typer.Option(None, "--round"),
               state: Optional[str] = typer.Option(None),
               jurisdiction: Optional[str] = typer.Option(None, help="only this jurisdiction's subtree"),
               after: int = typer.Option(0, help="cursor: list cases with an id above this"),
               limit: int = typer.Option(100, min=1, max=10_000)) -> None:
    """List cases with their state."""
    from .service.queries import list_cases

    rows = list_cases(_app().db, round_id=round_id, state=state, jurisdiction_id=jurisdiction, after_id=after,
                      limit=limit)
    table = Table("id", "round", "unit", "jurisdiction", "state", "v", "self", "verified", "recheck", "due")
    for r in rows:
        table.add_row(str(r.id), r.round_id, r.unit_name, r.jurisdiction_id, r.state, str(r.version),
                      _fmt(r.self_total), _fmt(r.verified_total), _fmt(r.recheck_total), _fmt(r.rectification_due))
    console.print(table)
    if len(rows) == limit:
        console.print(f"more: --after {rows[-1].id}")


@cases_app.command("show")
def cases_show(case_id: int, as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Show a case: state, allowed actions and its full history."""
    from .service.queries import show_case

    application = _app()
    d = show_case(application.db, case_id, application.clock.now())
    c = d.case
    if as_json:
        out = {"id": c.id, "round_id": c.round_id, "unit": {"id": c.unit_id, "name": d.unit['name']},
               "state": c.state, "version": c.version, "allowed_actions": d.allowed,
               "self_total": c.self_total, "verified_total": c.verified_total,
               "recheck_total": c.recheck_total, "pass_mark": d.round["pass_mark"], "passed": c.passed,
               "rectification_due": c.rectification_due.isoformat() if c.rectification_due else None,
               "carried_over_from": c.carried_over_from, "events": [e.to_dict() for e in d.events]}
        sys.stdout.write(dumps_json(out, indent=2) + "\n")
        return
    console.print(f"case {c.id} · {d.unit['name']} · round {c.round_id}", style="bold")
    console.print(f"state: {c.state} (version {c.version})"
                  + (f" · carried over from case {c.carried_over_from}" if c.carried_over_from else ""))
    console.print(f"self {_fmt(c.self_total)} · verified {_fmt(c.verified_total)} · recheck {_fmt(c.recheck_total)}"
                  + (f" · rectification due {c.rectification_due}" if c.rectification_due else ""))
    console.print(f"allowed next: {', '.join(d.allowed) or 'nothing (final state)'}")
    table = Table("#", "event", "actor", "occurred at (Asia/Shanghai)", "payload", "hash")
    for e in d.events:
        table.add_row(str(e.seq), e.type, e.actor, e.occurred_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
                      json.dumps(dict(e.payload), ensure_ascii=False), e.hash[:12])
    console.print(table)


@cases_app.command("act")
def cases_act(case_id: int, action: str,
              actor: str = ActorOption,
              reason: Optional[str] = typer.Option(None, help="why (return, withdraw, extend, close)"),
              total: Optional[str] = typer.Option(None, help="score, e.g. 85.5 (self_assess, verify, recheck)"),
              days: Optional[int] = typer.Option(None, help="extend_rectification by this many days"),
              until: Optional[str] = typer.Option(None, help="extend_rectification to this date (YYYY-MM-DD)"),
              note: Optional[str] = typer.Option(None),
              batch: Optional[str] = typer.Option(None, help="filing batch (file)"),
              expected_version: Optional[int] = typer.Option(None, "--expected-version",
                                                             help="refuse if the case is no longer at this version")
              ) -> None:
    """Take an action on a case (submit, verify, certify, order_rectification, ...)."""
    from .service.cases import perform_action

    data = {k: v for k, v in {"reason": reason, "total": total, "days": days, "until": until, "note": note,
                               "batch": batch}.items() if v is not None}
    application = _app()
    r = perform_action(application.db, case_id, action, data, Actor.parse(actor), application.clock.now(),
                       expected_version)
    console.print(f"case {case_id}: {r.event.type} → {r.case.state} (version {r.case.version}); "
                  f"allowed next: {', '.join(r.allowed) or 'nothing (final state)'}")


# ------------------------------------------------------------------ audit
@audit_app.command("verify")
def audit_verify() -> None:
    """Check every case's hash chain and that each case row equals the replay of its events."""
    from .service.audit import verify

    report = verify(_app().db)
    if report.ok:
        console.print(f"audit ok: {report.cases} cases, {report.events} events; every chain intact, "
                      "every case equals its replay")
        return
    err.print(f"audit FAILED: {len(report.findings)} problem(s) in {report.cases} cases, "
              f"{report.events} events; first: {report.findings[0]}")
    for f in report.findings[:50]:
        err.print(f"  - {f}")
    raise typer.Exit(1)


# ------------------------------------------------------------------ demo
@app.command("demo")
def demo(db: Optional[str] = typer.Option(None, help="database URL (default: the configured one)")) -> None:
    """Set up the Shanxi 2021 example (jurisdictions, the 35 provincial units, the round) and list it."""
    if db:
        os.environ["WORKFLOW_DATABASE_URL"] = db
    from .adapters.db.migrate import upgrade
    from .config import REPO_ROOT
    from .service.directory import import_jurisdictions, import_units
    from .service.queries import list_cases
    from .service.rounds import open_round

    application = _app(migrated=False)
    upgrade(application.engine)
    application.require_schema()
    now = application.clock.now()
    examples = REPO_ROOT / "examples"
    import_jurisdictions(application.db, examples / "jurisdictions.csv")
    import_units(application.db, examples / "shanxi-2021-units.csv", now, update=True)
    from .adapters.db.tables import Round
    from sqlalchemy import select

    with application.engine.connect() as conn:
        exists = conn.execute(select(Round.id).where(Round.id == "shanxi-2021")).first() is not None
    if not exists:
        open_round(application.db, application.rubrics, application.calendars, province_id="shanxi", year=2021,
                   rubric_id="shanxi-2020", calendar_id="shanxi-2021", target_share="0.5",
                   actor=Actor("admin", "demo"), now=now)
    rows = list_cases(application.db, round_id="shanxi-2021", limit=1000)
    console.print(f"round shanxi-2021: {len(rows)} cases in "
                  f"{application.engine.url.render_as_string(hide_password=True)}")
    console.print("next: workflow cases list --round shanxi-2021 · workflow cases show 1 · "
                  "workflow cases act 1 self_assess --total 86 --actor unit:1 · workflow audit verify")


def main() -> None:
    try:
        app()
    except DomainError as exc:
        err.print(f"error ({exc.code}): {exc}")
        sys.exit(2)
    except Exception as exc:  # never a stack trace to a user
        if os.environ.get("WORKFLOW_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (set WORKFLOW_DEBUG=1 to see the trace)")
        sys.exit(70)


if __name__ == "__main__":
    main()
