"""``workflow simulate``: a whole round on a simulated clock, in a fresh database.

A scenario (YAML) names the round, the units and dated actions. Each simulated day runs
as the service would: at 09:00 Asia/Shanghai the sweep and the dispatcher, at 10:00 the
day's actions — through the same services as production (no shortcut writes). A refused
action does not stop the rehearsal: it is shown in the timeline and counted.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import insert, select, update

from ..adapters.data_files import LineDict, read_yaml
from ..clock import BUSINESS_TZ, ManualClock
from ..domain.case import Actor
from ..domain.errors import ActionRefused, DomainError, InvalidInput, Problem

UNIT_ACTIONS = ("self_assess", "submit", "request_recheck", "contacts", "confirm_contact")
CASE_ACTIONS = ("self_assess", "submit", "request_recheck", "verify", "certify", "order_rectification", "fail",
                "recheck", "withdraw", "close", "return", "extend_rectification")
ROUND_ACTIONS = ("spot_check", "file", "open_round", "duty")
SHEET_ACTIONS = ("self_assess", "verify", "recheck")
ALL_DO = (*dict.fromkeys((*CASE_ACTIONS, "contacts", "confirm_contact")), *ROUND_ACTIONS)
_KNOWN = {"title", "round", "start", "end", "jurisdictions", "units", "coordinators", "actions"}
_ROUND_KEYS = {"province", "year", "rubric"}
_ROUND_OPTIONAL = {"calendar", "target_share"}
_ACTION_KEYS = {"date", "do", "unit", "units", "except", "total", "entries", "evidence", "documents", "note", "reason",
                "days", "by", "share", "seed", "jurisdiction", "contact", "year", "rubric", "calendar", "target_share",
                "duty", "file"}


@dataclass(frozen=True)
class Step:
    line: int
    on: date
    do: str
    units: tuple[str, ...] | str | None  # names, "all", or None (a round-level act)
    excluded: tuple[str, ...]
    params: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    path: Path
    title: str
    round: dict[str, Any]
    start: date
    end: date
    jurisdictions: Path
    roster: Path | None
    inline_units: list[dict[str, Any]]
    unit_names: tuple[str, ...]
    coordinators: list[dict[str, Any]]
    steps: list[Step]


def _date(value: Any, where: str, problems: list[Problem]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem(where, f"must be a date YYYY-MM-DD, got {value!r}"))
        return None


def _file(base: Path, value: Any, where: str, problems: list[Problem]) -> Path | None:
    from ..config import REPO_ROOT

    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(where, f"must be a file path, got {value!r}"))
        return None
    for root in (base, REPO_ROOT):
        candidate = (root / value).resolve()
        if candidate.is_file():
            return candidate
    problems.append(Problem(where, f"no such file {value!r} (looked beside the scenario and in the checkout)"))
    return None


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario; every problem is reported with its line, before anything runs."""
    from ..adapters.rosters import read_units, unit_row_as_dict

    path = Path(path)
    data = read_yaml(path, lines=True)
    src = str(path)
    problems: list[Problem] = []
    if not isinstance(data, LineDict):
        raise InvalidInput(f"{src}: a scenario is a mapping", [Problem(f"{src}:1", "a scenario is a mapping")])

    def at(node: Any, key: str = "") -> str:
        line = getattr(node, "line", 0)
        return f"{src}:{line}" + (f" {key}" if key else "")

    for key in sorted(set(data) - _KNOWN):
        problems.append(Problem(at(data, key), f"unknown key (known: {', '.join(sorted(_KNOWN))})"))
    rnd = data.get("round")
    if not isinstance(rnd, dict) or not _ROUND_KEYS <= set(rnd) or set(rnd) - _ROUND_KEYS - _ROUND_OPTIONAL:
        problems.append(Problem(at(rnd if isinstance(rnd, dict) else data, "round"),
                                f"round needs {', '.join(sorted(_ROUND_KEYS))} (and may give "
                                f"{', '.join(sorted(_ROUND_OPTIONAL))}; without them the calendar that serves the "
                                "year and its target)"))
        rnd = {}
    start = _date(data.get("start"), at(data, "start"), problems)
    end = _date(data.get("end"), at(data, "end"), problems)
    if start and end and end < start:
        problems.append(Problem(at(data, "end"), f"{end} is before the start {start}"))
    if start and end and (end - start).days > 1100:
        problems.append(Problem(at(data, "end"), "a scenario covers at most three years"))
    base = path.parent
    jurisdictions = _file(base, data.get("jurisdictions", "examples/jurisdictions.csv"), at(data, "jurisdictions"),
                          problems)
    roster: Path | None = None
    inline: list[dict[str, Any]] = []
    names: list[str] = []
    units = data.get("units")
    if isinstance(units, str):
        roster = _file(base, units, at(data, "units"), problems)
        if roster is not None:
            try:
                names = [unit_row_as_dict(r)["name"] for r in read_units(roster.read_bytes(), str(roster)).rows]
            except InvalidInput as exc:
                problems.extend(exc.problems)
    elif isinstance(units, list) and units:
        for i, u in enumerate(units):
            if not isinstance(u, dict) or not u.get("name") or not u.get("jurisdiction"):
                problems.append(Problem(at(u if isinstance(u, dict) else data, f"units[{i}]"),
                                        "a unit needs name, jurisdiction and category"))
                continue
            inline.append(dict(u))
            names.append(str(u["name"]))
    else:
        problems.append(Problem(at(data, "units"), "units: a roster file (.csv/.xlsx) or a list of units"))
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(Problem(at(data, "units"), f"two units are named {name!r}: actions name units, so "
                                                       "names must be unique within a scenario"))
        seen.add(name)
    known = set(names)
    coordinators = []
    for i, c in enumerate(data.get("coordinators") or []):
        if not isinstance(c, dict) or set(c) != {"jurisdiction", "name", "email"}:
            problems.append(Problem(at(c if isinstance(c, dict) else data, f"coordinators[{i}]"),
                                    "a coordinator is {jurisdiction, name, email}"))
            continue
        coordinators.append(dict(c))
    steps: list[Step] = []
    actions = data.get("actions") or []
    if not isinstance(actions, list):
        problems.append(Problem(at(data, "actions"), "actions: a list"))
        actions = []
    for i, a in enumerate(actions):
        where = at(a if isinstance(a, dict) else data, f"actions[{i}]")
        step = _step(a, where, start, end, known, problems)
        if step is not None:
            steps.append(step)
    if problems:
        raise InvalidInput(f"{src}: {len(problems)} problem(s) in the scenario; nothing was run", problems)
    assert start and end and jurisdictions
    steps.sort(key=lambda s: s.on)  # stable: the file's order within a day
    return Scenario(path, str(data.get("title") or path.stem), dict(rnd), start, end, jurisdictions, roster, inline,
                    tuple(names), coordinators, steps)


def _sheet_total(value: Any, where: str, problems: list[Problem]) -> Decimal | None:
    try:
        total = Decimal(str(value))
    except InvalidOperation:
        total = None
    if isinstance(value, float) or total is None or not total.is_finite() or total < 0:
        problems.append(Problem(where, f"total must be a number written as text, e.g. \"85.5\"; got {value!r}"))
        return None
    return total


def _step(a: Any, where: str, start: date | None, end: date | None, known: set[str],
          problems: list[Problem]) -> Step | None:
    if not isinstance(a, dict):
        problems.append(Problem(where, "an action is a mapping with on, do and its parameters"))
        return None
    before = len(problems)
    line = getattr(a, "line", 0)
    for key in sorted(set(a) - _ACTION_KEYS, key=str):
        hint = "write date:, not on: (YAML reads a bare on as true)" if key is True else "unknown key"
        problems.append(Problem(f"{where}.{key}", hint))
    on = _date(a.get("date"), f"{where}.date", problems)
    if on and start and end and not start <= on <= end:
        problems.append(Problem(f"{where}.date", f"{on} is outside the scenario ({start} to {end})"))
    do = a.get("do")
    if do not in ALL_DO:
        problems.append(Problem(f"{where}.do", f"unknown action {do!r}; one of: {', '.join(ALL_DO)}"))
    units: tuple[str, ...] | str | None = None
    if "unit" in a and "units" in a:
        problems.append(Problem(where, "give unit or units, not both"))
    elif "unit" in a:
        units = (str(a["unit"]),)
    elif a.get("units") == "all":
        units = "all"
    elif isinstance(a.get("units"), list):
        units = tuple(str(u) for u in a["units"])
    elif "units" in a:
        problems.append(Problem(f"{where}.units", "a list of unit names, or all"))
    excluded = tuple(str(u) for u in (a.get("except") or ()))
    for name in (*(units if isinstance(units, tuple) else ()), *excluded):
        if name not in known:
            problems.append(Problem(where, f"unknown unit {name!r} (not in the scenario's units)"))
    if do in ROUND_ACTIONS and units is not None:
        problems.append(Problem(where, f"{do} is a round-level act: no unit"))
    if do in ALL_DO and do not in ROUND_ACTIONS and units is None:
        problems.append(Problem(where, f"{do} needs unit or units"))
    params = {k: v for k, v in a.items() if k not in ("date", "do", "unit", "units", "except")}
    if do in SHEET_ACTIONS:
        if ("total" in a) == ("entries" in a):
            problems.append(Problem(where, f"{do} needs total (a complete sheet scoring it) or entries"))
        elif "total" in a:
            params["total"] = _sheet_total(a["total"], f"{where}.total", problems)
    if do in ("withdraw", "close", "return", "extend_rectification") and not a.get("reason"):
        problems.append(Problem(f"{where}.reason", f"{do} needs a reason"))
    if do == "spot_check" and ("share" not in a or "seed" not in a):
        problems.append(Problem(where, "spot_check needs share and seed"))
    if do == "open_round" and "year" not in a:
        problems.append(Problem(where, "open_round needs year"))
    if do == "duty" and ("duty" not in a or "jurisdiction" not in a):
        problems.append(Problem(where, "duty needs duty (e.g. city_report) and jurisdiction (e.g. shanxi-taiyuan)"))
    if len(problems) > before or on is None:
        return None
    return Step(line, on, str(do), units, excluded, params)


# ---------------------------------------------------------------- running

@dataclass
class Outcome:
    day: date
    line: int
    what: str
    ok: bool


@dataclass
class SimulationResult:
    database_url: str
    round_ids: list[str]
    days: int
    outcomes: list[Outcome] = field(default_factory=list)
    mails_sent: int = 0
    mails_failed: int = 0
    resumed_after: date | None = None  # the last day a killed run had finished

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def _pdf(label: str) -> bytes:
    return (b"%PDF-1.4\n% " + label.encode() + b"\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")


def run(scenario: Scenario, application: Any, transport: Any, *,
        on_day: Callable[[date], None] | None = None) -> SimulationResult:
    """Run the scenario on ``application`` (its database must be empty; its clock a ManualClock)."""
    from ..adapters.db.migrate import upgrade
    from ..adapters.db.tables import Case, Jurisdiction, Outbox, Round, Unit
    from ..domain.rubric import Rubric
    from ..service.deadlines import sweep
    from ..service.dispatch import dispatch
    from ..service.directory import add_coordinator, create_unit, give_contact_form, import_jurisdictions, import_units
    from ..service.duties import record_duty
    from ..service.evidence import attach_bytes, attach_document_bytes
    from ..service.oversight import file_round, spot_check
    from ..service.rounds import open_round, roll_over

    from ..adapters.db.tables import SimulationProgress
    from ..domain.errors import AlreadyExists

    clock: ManualClock = application.clock
    db = application.db
    upgrade(application.engine)
    digest = hashlib.sha256(scenario.path.read_bytes()).hexdigest()
    with db.write_connection() as conn:
        progress_row = conn.execute(select(SimulationProgress.day_done, SimulationProgress.digest)
                                    .where(SimulationProgress.digest == digest)).first()
        if progress_row is None:
            if conn.execute(select(Jurisdiction.id).limit(1)).first() is not None:
                raise DomainError(f"the database at {application.engine.url.render_as_string(hide_password=True)} "
                                  "is not empty (and holds no run of this scenario to resume); a simulation runs in "
                                  "a fresh database")
            conn.execute(insert(SimulationProgress).values(digest=digest, scenario=str(scenario.path)[-500:]))
    resumed_after = progress_row.day_done if progress_row is not None else None

    def at(day: date, hour: int) -> datetime:
        return datetime(day.year, day.month, day.day, hour, tzinfo=BUSINESS_TZ)

    # Setting up is idempotent: a run killed half-way through it does it again.
    clock.set(at(scenario.start, 8))
    now = clock.now()
    import_jurisdictions(db, scenario.jurisdictions)
    with application.engine.connect() as conn:
        have_units = conn.execute(select(Unit.id).limit(1)).first() is not None
    if scenario.roster is not None and not have_units:  # one transaction: all the roster or none of it
        import_units(db, scenario.roster, now)
    for u in scenario.inline_units:
        try:
            create_unit(db, u, now)
        except AlreadyExists:
            pass
    for c in scenario.coordinators:
        try:
            add_coordinator(db, c["jurisdiction"], c["name"], c["email"])
        except AlreadyExists:
            pass
    r = scenario.round
    admin = Actor("admin", "simulation")
    first_round = f"{r['province']}-{int(r['year'])}"
    try:
        open_round(db, application.rubrics, application.calendars, province_id=r["province"], year=int(r["year"]),
                   rubric_id=r["rubric"], calendar_id=r.get("calendar"),
                   target_share=str(r["target_share"]) if r.get("target_share") is not None else None,
                   actor=admin, now=now)
    except AlreadyExists:
        pass
    with application.engine.connect() as conn:
        round_ids = list(conn.execute(select(Round.id).where(Round.province_id == r["province"],
                                                             Round.year >= int(r["year"])).order_by(Round.year))
                         .scalars())
        unit_ids = {name: uid for uid, name in conn.execute(select(Unit.id, Unit.name))}
    result = SimulationResult(application.engine.url.render_as_string(hide_password=True), round_ids or [first_round],
                              0, resumed_after=resumed_after)
    if progress_row is not None:
        # The killed run's dispatcher may have claimed mails it never recorded: hand them back
        # (a mail it did deliver is not stored twice: the Maildir is idempotent by Message-ID).
        with db.write_connection() as conn:
            conn.execute(update(Outbox).where(Outbox.status == "sending").values(status="pending",
                                                                                 claimed_until=None))

    def current_case(unit_id: int) -> int | None:
        with application.engine.connect() as conn:
            return conn.execute(select(Case.id).join(Round, Round.id == Case.round_id)
                                .where(Case.unit_id == unit_id).order_by(Round.year.desc()).limit(1)).scalar()

    def targets(step: Step) -> list[str]:
        chosen = list(scenario.unit_names) if step.units == "all" else list(step.units or ())
        return [n for n in chosen if n not in step.excluded]

    def sheet(step: Step, rubric: Rubric) -> dict[str, Any]:
        if "entries" in step.params:  # points, or {count: N} for a number of occurrences
            return {str(k): dict(v) if isinstance(v, dict) else str(v)
                    for k, v in dict(step.params["entries"]).items()}
        return complete_sheet(rubric, step.params["total"])

    def key(step: Step, unit_id: int | None = None, part: str = "") -> str:
        return f"simulate:{digest[:16]}:{step.line}:{unit_id or '-'}{part}"

    def record_duty_step(step: Step, round_id: str, coordinator: Actor, now: datetime, day: date) -> None:
        name = step.params.get("file")
        files = [(str(name), _pdf(f"{step.params['jurisdiction']} {step.params['duty']}"))] if name else []
        e = record_duty(db, application.calendars, application.evidence, round_id, str(step.params["jurisdiction"]),
                        str(step.params["duty"]), actor=coordinator, now=now, files=files,
                        note=step.params.get("note"))
        result.outcomes.append(Outcome(day, step.line, f"{step.params['jurisdiction']}: {step.params['duty']} "
                                                       f"recorded done (#{e.seq})", True))

    def perform(step: Step, day: date) -> None:
        from ..service.cases import perform_action

        now = clock.now()
        coordinator = Actor("coordinator", str(step.params.get("by") or "simulation"))
        if step.do in ROUND_ACTIONS:
            round_id = result.round_ids[-1]
            province = scenario.round["province"]
            try:
                if step.do == "spot_check":
                    s = spot_check(db, round_id, step.params.get("jurisdiction") or province,
                                   share=str(step.params["share"]), seed=step.params["seed"], actor=coordinator, now=now,
                                   idempotency_key=key(step))
                    result.outcomes.append(Outcome(day, step.line, f"spot check {s.id}: drew {s.drawn}", True))
                elif step.do == "file":
                    b = file_round(db, round_id, step.params.get("jurisdiction") or province, actor=coordinator,
                                   now=now, note=step.params.get("note"), idempotency_key=key(step))
                    result.outcomes.append(Outcome(day, step.line, f"filing batch {b['id']}: {len(b['cases'])} cases",
                                                   True))
                elif step.do == "duty":
                    record_duty_step(step, round_id, coordinator, now, day)
                else:
                    target = step.params.get("target_share")
                    o = roll_over(db, application.rubrics, application.calendars, round_id,
                                  rubric_id=step.params.get("rubric"), calendar_id=step.params.get("calendar"),
                                  target_share=str(target) if target is not None else None, actor=admin, now=now)
                    if o.round_id not in result.round_ids:
                        result.round_ids.append(o.round_id)
                    result.outcomes.append(Outcome(day, step.line, f"round {o.round_id} opened: {o.registered} cases, "
                                                   f"{o.carried_over} carried over", True))
            except AlreadyExists as exc:  # opened before a restart: nothing to do again
                result.outcomes.append(Outcome(day, step.line, exc.message, True))
            except ActionRefused as exc:
                if step.do == "duty" and "already recorded done" in exc.message:  # recorded before a restart
                    result.outcomes.append(Outcome(day, step.line, exc.message, True))
                else:
                    result.outcomes.append(Outcome(day, step.line, f"{step.do} refused: {refusal(exc)}", False))
            except DomainError as exc:
                result.outcomes.append(Outcome(day, step.line, f"{step.do} refused: {refusal(exc)}", False))
            return
        for name in targets(step):
            unit_id = unit_ids[name]
            unit = Actor("unit", str(unit_id))
            earlier = _refusal(db, key(step, unit_id))
            if earlier is not None:  # refused before the run was killed: the same answer
                result.outcomes.append(Outcome(day, step.line, f"{name}: {step.do} refused: {earlier}", False))
                continue
            try:
                if step.do in ("contacts", "confirm_contact"):
                    contact = dict(step.params.get("contact") or {"name": "联络员", "phone": "0351-0000000",
                                                                   "email": f"unit{unit_id}@example.gov.cn"})
                    give_contact_form(db, unit_id, [contact] if step.do == "contacts" else None, unit, now)
                    continue
                case_id = current_case(unit_id)
                if case_id is None:
                    raise DomainError(f"{name} has no case")
                actor = unit if step.do in UNIT_ACTIONS else coordinator
                data: dict[str, Any] = {k: step.params[k] for k in ("note", "reason", "days") if k in step.params}
                if step.do in SHEET_ACTIONS:
                    with db.reader() as uow:
                        rubric = uow.round_context(uow.get(case_id).round_id).rubric
                    data["entries"] = sheet(step, rubric)
                if step.do == "submit" and step.params.get("documents", True):
                    attach_documents(case_id, unit, now)
                perform_action(db, case_id, step.do, data, actor, now, idempotency_key=key(step, unit_id))
                if step.do == "self_assess" and step.params.get("evidence", True):
                    with db.reader() as uow:
                        case = uow.get(case_id)
                    have = {c for c, _, _ in case.evidence}
                    for code, points in (case.self_entries or {}).items():  # the sheet in points
                        if Decimal(points) > 0 and code not in have:
                            attach_bytes(db, application.evidence, case_id, code,
                                         [(f"{code} 佐证材料.pdf", _pdf(f"{case_id} {code}"))], unit, now)
            except DomainError as exc:
                result.outcomes.append(Outcome(day, step.line, f"{name}: {step.do} refused: {refusal(exc)}", False))
                # A resumed day must refuse it again, not try it after the day's later steps.
                _remember_refusal(db, key(step, unit_id), refusal(exc), now)

    def attach_documents(case_id: int, unit: Actor, now: datetime) -> None:
        """The documents the round asks for (自评报告 ...), as a unit would attach them before submitting."""
        with db.reader() as uow:
            case = uow.get(case_id)
            documents = uow.round_context(case.round_id).documents
        have = {d for d, _, _ in case.documents}
        for d in documents:
            if d.id not in have and case.state in ("registered", "self_assessed"):
                attach_document_bytes(db, application.evidence, case_id, d.id,
                                      [(f"{d.name}.pdf", _pdf(f"{case_id} {d.id}"))], unit, now)

    settings = application.dispatch_settings()
    day = scenario.start if resumed_after is None else resumed_after + timedelta(days=1)
    by_day: dict[date, list[Step]] = {}
    for step in scenario.steps:
        by_day.setdefault(step.on, []).append(step)
    while day <= scenario.end:
        clock.set(at(day, 9))
        sweep(db, application.calendars, clock.now())
        for _ in range(100):  # every batch due this morning
            report = asyncio.run(dispatch(db, application.calendars, transport, clock.now(), settings))
            if report.claimed == 0:
                break
        clock.set(at(day, 10))
        for step in by_day.get(day, ()):
            perform(step, day)
        with db.write_connection() as conn:
            conn.execute(update(SimulationProgress).where(SimulationProgress.digest == digest).values(day_done=day))
        result.days += 1
        if on_day is not None:
            on_day(day)
        day += timedelta(days=1)
    with application.engine.connect() as conn:
        result.mails_sent = conn.execute(select(Outbox.id).where(Outbox.status == "sent")).all().__len__()
        result.mails_failed = conn.execute(select(Outbox.id).where(Outbox.status == "failed")).all().__len__()
    return result


def refusal(exc: DomainError) -> str:
    """The domain's whole answer: its message and every problem it lists (a refused sheet names
    each criterion, its value and the values allowed)."""
    problems = getattr(exc, "problems", ())
    return exc.message + "".join(f"; {p.where}: {p.what}" for p in problems)


def _refusal(db: Any, key: str) -> str | None:
    from ..adapters.db.tables import IdempotencyKey

    with db.engine.connect() as conn:
        row = conn.execute(select(IdempotencyKey.what, IdempotencyKey.ref)
                           .where(IdempotencyKey.key == f"{key}:refused")).first()
    return None if row is None else str(row.ref)


def _remember_refusal(db: Any, key: str, why: str, now: datetime) -> None:
    from ..adapters.db.tables import IdempotencyKey

    with db.write_connection() as conn:
        conn.execute(insert(IdempotencyKey).values(key=f"{key}:refused", what="refused", ref=why if len(why) <= 100 else why[:99] + "…",
                                                   fingerprint="", created_at=now))


def complete_sheet(rubric: Any, total: Decimal) -> dict[str, str]:
    """A complete sheet (every criterion answered, in points) scoring exactly ``total``:
    per-occurrence criteria first (whole occurrences), then ordinary criteria up to their caps
    in rubric order."""
    left = Decimal(total)
    entries: dict[str, str] = {}
    for c in rubric.criteria():
        if c.per_occurrence:
            count = min(c.cap, left) // c.points
            entries[c.code] = format(count * c.points, "f")
            left -= count * c.points
    for c in rubric.criteria():
        if not c.per_occurrence:
            give = min(c.cap, left)
            give -= give % c.step
            entries[c.code] = format(give, "f")
            left -= give
    if left != 0:
        raise InvalidInput(f"no complete sheet of rubric {rubric.id} scores {total}",
                           [Problem("total", f"cannot be reached with rubric {rubric.id} (max {rubric.total})")])
    return {c.code: entries[c.code] for c in rubric.criteria()}


def timeline(application: Any, round_ids: list[str]) -> list[tuple[datetime, str, str, str]]:
    """(when, case, event, mail) rows: every event of the rounds' cases and every mail sent."""
    from ..adapters.db.tables import Case, DutyEvent, Event, Jurisdiction, Outbox, Unit

    rows: list[tuple[datetime, str, str, str]] = []
    with application.engine.connect() as conn:
        names = dict(conn.execute(select(Case.id, Unit.name).join(Unit, Unit.id == Case.unit_id)
                                  .where(Case.round_id.in_(round_ids))).all())
        for e in conn.execute(select(Event.case_id, Event.type, Event.actor, Event.occurred_at, Event.payload)
                              .where(Event.case_id.in_(list(names))).order_by(Event.occurred_at, Event.position)):
            detail = e.type
            payload = json.loads(e.payload)
            if e.type == "DeadlineMissed":
                detail += f" ({payload['milestone']})"
            elif "total" in payload:
                detail += f" ({payload['total']})"
            rows.append((e.occurred_at, f"#{e.case_id} {names[e.case_id]}", detail, ""))
        jurisdictions = dict(conn.execute(select(Jurisdiction.id, Jurisdiction.name)).all())
        for d in conn.execute(select(DutyEvent.jurisdiction_id, DutyEvent.type, DutyEvent.occurred_at, DutyEvent.payload)
                              .where(DutyEvent.round_id.in_(round_ids))
                              .order_by(DutyEvent.occurred_at, DutyEvent.position)):
            payload = json.loads(d.payload)
            detail = f"{d.type} ({payload['duty']}" + (f", {len(payload['cases'])} cases waiting"
                                                       if payload.get("cases") else "") + ")"
            rows.append((d.occurred_at, jurisdictions.get(d.jurisdiction_id, d.jurisdiction_id), detail, ""))
        for m in conn.execute(select(Outbox.case_id, Outbox.kind, Outbox.milestone, Outbox.sent_at, Outbox.recipients)
                              .where(Outbox.status == "sent", Outbox.round_id.in_(round_ids)).order_by(Outbox.sent_at)):
            who = ", ".join(json.loads(m.recipients)) if m.recipients else ""
            case = f"#{m.case_id} {names.get(m.case_id, '')}" if m.case_id else "coordinator"
            rows.append((m.sent_at, case, "", f"{m.kind} {m.milestone} → {who}"))
    return sorted(rows, key=lambda r: r[0])
