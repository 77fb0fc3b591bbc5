"""``workflow simulate``: a whole round on a simulated clock, in a fresh database.

A scenario (YAML) names the round, the units and dated actions. Each simulated day runs
as the service would: at 09:00 Asia/Shanghai the sweep and the dispatcher, at 10:00 the
day's actions — through the same services as production (no shortcut writes). A refused
action does not stop the rehearsal: it is shown in the timeline and counted.

This module sits outside the services (like the CLI and the API): it reads the scenario's
files and drives the services through their ports.
"""
from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .adapters.data_files import LineDict, read_yaml
from .adapters.rosters import read_file, read_units
from .clock import BUSINESS_TZ, ManualClock
from .domain.case import Actor
from .domain.errors import ActionRefused, AlreadyExists, DomainError, InvalidInput, Problem
from .domain.rubric import Rubric, complete_sheet
from .domain.units import unit_row_as_dict
from .files import import_jurisdictions, import_units
from .service.cases import by_name_only, perform_action, read_case
from .service.deadlines import sweep
from .service.directory import add_coordinator, create_unit, give_contact_form
from .service.dispatch import dispatch
from .service.duties import record_duty
from .service.evidence import EvidenceQuota, attach_bytes, attach_document_bytes
from .service.oversight import file_round, spot_check
from .service.ports import Storage, TimelineRow
from .service.rounds import open_round, roll_over
from .service.spot_outcomes import record_national_results, record_spot_check_outcomes

UNIT_ACTIONS = ("self_assess", "submit", "request_recheck", "contacts", "confirm_contact")
CASE_ACTIONS = ("self_assess", "submit", "request_recheck", "verify", "certify", "order_rectification", "fail",
                "recheck", "withdraw", "close", "return", "extend_rectification", "revoke")
# what a spot check found for a unit's case (of the round's latest draw), and the national
# bureau's result for it (of the latest filing batch)
OUTCOME_ACTIONS = ("spot_check_outcome", "national_result")
ROUND_ACTIONS = ("spot_check", "file", "open_round", "duty")
SHEET_ACTIONS = ("self_assess", "verify", "recheck")
ALL_DO = (*dict.fromkeys((*CASE_ACTIONS, "contacts", "confirm_contact")), *OUTCOME_ACTIONS, *ROUND_ACTIONS)
_KNOWN = {"title", "round", "start", "end", "jurisdictions", "units", "coordinators", "channels", "actions"}
_CHANNEL_KEYS = {"jurisdiction", "kind", "audience", "name"}
_CHANNEL_OPTIONAL = {"url", "secret", "unit"}
_ROUND_KEYS = {"province", "year", "rubric"}
_ROUND_OPTIONAL = {"calendar", "target_share"}
_ACTION_KEYS = {"date", "do", "unit", "units", "except", "total", "entries", "evidence", "documents", "note", "reason",
                "days", "by", "share", "seed", "jurisdiction", "contact", "year", "rubric", "calendar", "target_share",
                "duty", "file", "decided_by", "outcome", "findings", "document"}


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
    channels: list[dict[str, Any]] = field(default_factory=list)


def _date(value: Any, where: str, problems: list[Problem]) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(Problem(where, f"must be a date YYYY-MM-DD, got {value!r}"))
        return None


def _file(base: Path, value: Any, where: str, problems: list[Problem]) -> Path | None:
    from .config import REPO_ROOT

    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(where, f"must be a file path, got {value!r}"))
        return None
    for root in (base, REPO_ROOT):
        candidate = (root / value).resolve()
        if candidate.is_file():
            return candidate
    problems.append(Problem(where, f"no such file {value!r} (looked beside the scenario and in the checkout)"))
    return None


Where = Callable[..., str]  # (node, key) → "file:line key"


def _units(data: LineDict, base: Path, at: Where, problems: list[Problem]
           ) -> tuple[Path | None, list[dict[str, Any]], list[str]]:
    """The roster file or the inline units, and every unit's name (unique in a scenario)."""
    roster: Path | None = None
    inline: list[dict[str, Any]] = []
    names: list[str] = []
    units = data.get("units")
    if isinstance(units, str):
        roster = _file(base, units, at(data, "units"), problems)
        if roster is not None:
            try:
                names = [unit_row_as_dict(r.values)["name"] for r in read_units(read_file(roster), str(roster)).rows]
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
    return roster, inline, names


def _coordinators(data: LineDict, at: Where, problems: list[Problem]) -> list[dict[str, Any]]:
    coordinators = []
    for i, c in enumerate(data.get("coordinators") or []):
        if not isinstance(c, dict) or set(c) != {"jurisdiction", "name", "email"}:
            problems.append(Problem(at(c if isinstance(c, dict) else data, f"coordinators[{i}]"),
                                    "a coordinator is {jurisdiction, name, email}"))
            continue
        coordinators.append(dict(c))
    return coordinators


def _channels(data: LineDict, at: Where, known: set[str], problems: list[Problem]) -> list[dict[str, Any]]:
    """Robot channels: {jurisdiction, kind, audience, name} and optionally url, secret, unit (a
    unit's name). Without a url, a placeholder of the platform's (a rehearsal posts nothing: the
    messages are written to a folder)."""
    out = []
    for i, c in enumerate(data.get("channels") or []):
        if not isinstance(c, dict) or not set(c) >= _CHANNEL_KEYS or set(c) - _CHANNEL_KEYS - _CHANNEL_OPTIONAL:
            problems.append(Problem(at(c if isinstance(c, dict) else data, f"channels[{i}]"),
                                    "a channel is {jurisdiction, kind, audience, name} and may give url, secret, "
                                    "unit"))
            continue
        if c.get("unit") is not None and str(c["unit"]) not in known:
            problems.append(Problem(at(c, f"channels[{i}].unit"), f"unknown unit {c['unit']!r}"))
            continue
        out.append(dict(c))
    return out


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario; every problem is reported with its line, before anything runs."""
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
    if not isinstance(rnd, dict) or not set(rnd) >= _ROUND_KEYS or set(rnd) - _ROUND_KEYS - _ROUND_OPTIONAL:
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
    jurisdictions = _file(path.parent, data.get("jurisdictions", "examples/jurisdictions.csv"),
                          at(data, "jurisdictions"), problems)
    roster, inline, names = _units(data, path.parent, at, problems)
    known = set(names)
    coordinators = _coordinators(data, at, problems)
    channels = _channels(data, at, known, problems)
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
                    tuple(names), coordinators, steps, channels)


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
    if do in ("withdraw", "close", "return", "extend_rectification", "revoke") and not a.get("reason"):
        problems.append(Problem(f"{where}.reason", f"{do} needs a reason"))
    if do in OUTCOME_ACTIONS and a.get("outcome") not in ("passed", "problems"):
        problems.append(Problem(f"{where}.outcome", f"{do} needs outcome: passed or problems"))
    if do in OUTCOME_ACTIONS and a.get("outcome") == "problems" and not a.get("findings"):
        problems.append(Problem(f"{where}.findings", f"{do} with problems needs findings"))
    if do == "national_result" and not a.get("document"):
        problems.append(Problem(f"{where}.document", "national_result needs the document (the bureau's notice)"))
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
    robot_messages: int = 0  # channel deliveries sent (group robots, webhooks)
    resumed_after: date | None = None  # the last day a killed run had finished

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]


def _pdf(label: str) -> bytes:
    return (b"%PDF-1.4\n% " + label.encode() + b"\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=BUSINESS_TZ)


def refusal(exc: DomainError) -> str:
    """The domain's whole answer: its message and every problem it lists (a refused sheet names
    each criterion, its value and the values allowed)."""
    problems = getattr(exc, "problems", ())
    return exc.message + "".join(f"; {p.where}: {p.what}" for p in problems)


class _Run:
    """One run of a scenario on an application (its database empty, or holding a killed run of
    the same scenario to resume; its clock a ManualClock)."""

    ADMIN = Actor("admin", "simulation", channel="simulation")

    def __init__(self, scenario: Scenario, application: Any, transport: Any, robots: Any = None) -> None:
        self.scenario, self.app, self.transport, self.robots = scenario, application, transport, robots
        self.db: Storage = application.db
        self.clock: ManualClock = application.clock
        self.digest = hashlib.sha256(scenario.path.read_bytes()).hexdigest()
        self.unit_ids: dict[str, int] = {}
        self.result = SimulationResult(self.db.describe(), [], 0)

    # -- setting up (idempotent: a run killed half-way through it does it again)
    def start(self) -> None:
        self.db.prepare()
        with self.db.unit_of_work(core=True) as uow:
            started, day_done = uow.simulations.progress(self.digest)
            if not started:
                if uow.directory.jurisdictions():
                    raise DomainError(f"the database at {self.db.describe()} is not empty (and holds no run of this "
                                      "scenario to resume); a simulation runs in a fresh database")
                uow.simulations.start(self.digest, str(self.scenario.path))
            uow.commit()
        self.result.resumed_after = day_done
        self.clock.set(_at(self.scenario.start, 8))
        self._directory(self.clock.now())
        self._first_round(self.clock.now())
        if started:
            # The killed run's dispatcher may have claimed mails it never recorded: hand them back
            # (a mail it did deliver is not stored twice: the Maildir is idempotent by Message-ID).
            with self.db.unit_of_work(core=True) as uow:
                uow.outbox.release_claims()
                uow.commit()

    def _directory(self, now: datetime) -> None:
        s = self.scenario
        import_jurisdictions(self.db, s.jurisdictions, actor=self.ADMIN, now=now)
        if s.roster is not None and not self.db.directory.units():  # all the roster or none of it
            import_units(self.db, s.roster, now, actor=self.ADMIN)
        for u in s.inline_units:
            try:
                create_unit(self.db, u, now, actor=self.ADMIN)
            except AlreadyExists:
                pass
        for c in s.coordinators:
            try:
                add_coordinator(self.db, c["jurisdiction"], c["name"], c["email"], actor=self.ADMIN, now=now)
            except AlreadyExists:
                pass
        self.unit_ids = {u.name: u.id for u in self.db.directory.units()}
        self._channels(now)

    def _channels(self, now: datetime) -> None:
        """The scenario's robot channels (by name: a resumed run adds none twice)."""
        from .domain.access import Principal
        from .service.channels import add_channel

        have = {c.name for c in self.db.channels.channels()}
        admin = Principal(0, "simulation", "admin", channel="simulation")
        placeholder = {"wecom": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=simulation",
                       "dingtalk": "https://oapi.dingtalk.com/robot/send?access_token=simulation",
                       "webhook": "https://bureau.example/hook"}
        for c in self.scenario.channels:
            if c["name"] in have:
                continue
            unit = self.unit_ids.get(str(c["unit"])) if c.get("unit") is not None else None
            add_channel(self.db, admin, now, jurisdiction_id=None if unit else str(c["jurisdiction"]),
                        kind=str(c["kind"]), url=str(c.get("url") or placeholder.get(str(c["kind"]), "")),
                        audience=str(c["audience"]), name=str(c["name"]),
                        secret=str(c["secret"]) if c.get("secret") else None, unit_id=unit,
                        any_host=True)  # a rehearsal posts nothing

    def _first_round(self, now: datetime) -> None:
        r = self.scenario.round
        target = str(r["target_share"]) if r.get("target_share") is not None else None
        try:
            open_round(self.db, self.app.rubrics, self.app.calendars, province_id=r["province"], year=int(r["year"]),
                       rubric_id=r["rubric"], calendar_id=r.get("calendar"), target_share=target, actor=self.ADMIN,
                       now=now)
        except AlreadyExists:
            pass
        rounds = sorted((x for x in self.db.rounds.rounds() if x.province_id == r["province"]
                         and x.year >= int(r["year"])), key=lambda x: x.year)
        self.result.round_ids = [x.id for x in rounds] or [f"{r['province']}-{int(r['year'])}"]

    # -- the days
    def days(self, on_day: Callable[[date], None] | None) -> None:
        settings = self.app.dispatch_settings()
        resumed = self.result.resumed_after
        day = self.scenario.start if resumed is None else resumed + timedelta(days=1)
        by_day: dict[date, list[Step]] = {}
        for step in self.scenario.steps:
            by_day.setdefault(step.on, []).append(step)
        while day <= self.scenario.end:
            self.clock.set(_at(day, 9))
            sweep(self.db, self.app.calendars, self.clock.now())
            for _ in range(100):  # every batch due this morning
                report = asyncio.run(dispatch(self.db, self.app.calendars, self.transport, self.clock.now(),
                                              settings, self.robots))
                if report.claimed == 0:
                    break
            self.clock.set(_at(day, 10))
            for step in by_day.get(day, ()):
                self.perform(step, day)
            with self.db.unit_of_work(core=True) as uow:
                uow.simulations.finish_day(self.digest, day)
                uow.commit()
            self.result.days += 1
            if on_day is not None:
                on_day(day)
            day += timedelta(days=1)
        counts = self.db.outbox.count_by_status(mail_only=True)
        self.result.mails_sent, self.result.mails_failed = counts.get("sent", 0), counts.get("failed", 0)
        every = self.db.outbox.count_by_status()
        self.result.robot_messages = every.get("sent", 0) - self.result.mails_sent

    def _key(self, step: Step, unit_id: int | None = None) -> str:
        return f"simulate:{self.digest[:16]}:{step.line}:{unit_id or '-'}"

    def _outcome(self, day: date, step: Step, what: str, ok: bool) -> None:
        self.result.outcomes.append(Outcome(day, step.line, what, ok))

    def perform(self, step: Step, day: date) -> None:
        if step.do in ROUND_ACTIONS:
            self._round_step(step, day)
            return
        chosen = list(self.scenario.unit_names) if step.units == "all" else list(step.units or ())
        for name in (n for n in chosen if n not in step.excluded):
            self._unit_step(step, day, name)

    # -- a round's acts (a spot check, a filing, a duty, the next round)
    def _round_step(self, step: Step, day: date) -> None:
        now = self.clock.now()
        coordinator = Actor("coordinator", str(step.params.get("by") or "simulation"), channel="simulation")
        try:
            self._outcome(day, step, self._round_act(step, coordinator, now), True)
        except AlreadyExists as exc:  # opened before a restart: nothing to do again
            self._outcome(day, step, exc.message, True)
        except ActionRefused as exc:
            done_before = step.do == "duty" and "already recorded done" in exc.message  # before a restart
            self._outcome(day, step, exc.message if done_before else f"{step.do} refused: {refusal(exc)}",
                          done_before)
        except DomainError as exc:
            self._outcome(day, step, f"{step.do} refused: {refusal(exc)}", False)

    def _round_act(self, step: Step, coordinator: Actor, now: datetime) -> str:
        p, round_id = step.params, self.result.round_ids[-1]
        where = p.get("jurisdiction") or self.scenario.round["province"]
        if step.do == "spot_check":
            s = spot_check(self.db, round_id, where, share=str(p["share"]), seed=p["seed"], actor=coordinator,
                           now=now, idempotency_key=self._key(step))
            return f"spot check {s.id}: drew {s.drawn}"
        if step.do == "file":
            b = file_round(self.db, round_id, where, actor=coordinator, now=now, note=p.get("note"),
                           idempotency_key=self._key(step))
            return f"filing batch {b.id}: {len(b.cases)} cases"
        if step.do == "duty":
            name = p.get("file")
            files = [(str(name), _pdf(f"{p['jurisdiction']} {p['duty']}"))] if name else []
            e = record_duty(self.db, self.app.calendars, self.app.evidence, round_id, str(p["jurisdiction"]),
                            str(p["duty"]), actor=coordinator, now=now, files=files, note=p.get("note"))
            return f"{p['jurisdiction']}: {p['duty']} recorded done (#{e.seq})"
        target = p.get("target_share")
        o = roll_over(self.db, self.app.rubrics, self.app.calendars, round_id, rubric_id=p.get("rubric"),
                      calendar_id=p.get("calendar"), target_share=str(target) if target is not None else None,
                      actor=self.ADMIN, now=now)
        if o.round_id not in self.result.round_ids:
            self.result.round_ids.append(o.round_id)
        return f"round {o.round_id} opened: {o.registered} cases, {o.carried_over} carried over"

    # -- a unit's acts on its case
    def _unit_step(self, step: Step, day: date, name: str) -> None:
        unit_id = self.unit_ids[name]
        key = self._key(step, unit_id)
        earlier = self.db.simulations.refusal(key)
        if earlier is not None:  # refused before the run was killed: the same answer
            self._outcome(day, step, f"{name}: {step.do} refused: {earlier}", False)
            return
        try:
            self._unit_act(step, name, unit_id, key)
        except DomainError as exc:
            self._outcome(day, step, f"{name}: {step.do} refused: {refusal(exc)}", False)
            # A resumed day must refuse it again, not try it after the day's later steps.
            with self.db.unit_of_work(core=True) as uow:
                uow.simulations.remember_refusal(key, refusal(exc), self.clock.now())
                uow.commit()

    def _contact_form_given_today(self, unit_id: int, now: datetime) -> bool:
        """Whether the unit's latest case recorded a contact form on this simulated day (the form
        has no idempotency key: a day resumed after a kill must not give it twice)."""
        cases = self.db.read.unit_case_ids(unit_id)
        if not cases:
            return False
        events = read_case(self.db, cases[-1], events=True).events
        today = now.astimezone(BUSINESS_TZ).date()
        return any(e.type == "ContactFormGiven" and e.occurred_at.astimezone(BUSINESS_TZ).date() == today
                   for e in events)

    def _unit_act(self, step: Step, name: str, unit_id: int, key: str) -> None:
        now, unit = self.clock.now(), Actor("unit", str(unit_id), channel="simulation")
        if step.do in ("contacts", "confirm_contact"):
            contact = dict(step.params.get("contact") or {"name": "联络员", "phone": "0351-0000000",
                                                           "email": f"unit{unit_id}@example.gov.cn"})
            if self._contact_form_given_today(unit_id, now):  # a resumed day: given before the kill
                return
            give_contact_form(self.db, unit_id, [contact] if step.do == "contacts" else None, unit, now)
            return
        cases = self.db.read.unit_case_ids(unit_id)
        if not cases:
            raise DomainError(f"{name} has no case")
        case_id = cases[-1]  # the latest round's
        if step.do in OUTCOME_ACTIONS:
            self._outcome_act(step, name, case_id, key, now)
            return
        actor = unit if step.do in UNIT_ACTIONS else Actor("coordinator", str(step.params.get("by") or "simulation"),
                                                           channel="simulation")
        passed = ("note", "reason", "days", "decided_by", "evidence") if step.do == "revoke" else \
            ("note", "reason", "days")  # (evidence: elsewhere whether self_assess attaches files)
        data: dict[str, Any] = {k: step.params[k] for k in passed if k in step.params}
        if step.do in SHEET_ACTIONS:
            data["entries"] = self._sheet(step, read_case(self.db, case_id).ctx.rubric)
        if step.do == "submit" and step.params.get("documents", True):
            self._attach_documents(case_id, unit, now)
        by_name_only(step.do)
        perform_action(self.db, case_id, step.do, data, actor, now, idempotency_key=key)
        if step.do == "self_assess" and step.params.get("evidence", True):
            self._attach_evidence(case_id, unit, now)

    def _outcome_act(self, step: Step, name: str, case_id: int, key: str, now: datetime) -> None:
        """What the round's latest spot check (or the national bureau, for the latest filing
        batch) found for the unit's case."""
        p, round_id = step.params, self.result.round_ids[-1]
        coordinator = Actor("coordinator", str(p.get("by") or "simulation"), channel="simulation")
        entry = {"case_id": case_id, "outcome": p["outcome"],
                 **{k: str(p[k]) for k in ("findings", "evidence") if p.get(k)}}
        if step.do == "national_result":
            batches = self.db.oversight.filings(round_id)
            if not batches:
                raise DomainError(f"{name}: round {round_id} has no filing batch")
            record_national_results(self.db, batches[-1].id, [entry], document=p["document"], actor=coordinator,
                                    now=now, idempotency_key=key)
        else:
            checks = self.db.oversight.spot_checks(round_id)
            if not checks:
                raise DomainError(f"{name}: round {round_id} has no spot check")
            record_spot_check_outcomes(self.db, round_id, checks[-1].id, [entry], actor=coordinator, now=now,
                                       idempotency_key=key)

    @staticmethod
    def _sheet(step: Step, rubric: Rubric) -> dict[str, Any]:
        if "entries" in step.params:  # points, or {count: N} for a number of occurrences
            return {str(k): dict(v) if isinstance(v, dict) else str(v)
                    for k, v in dict(step.params["entries"]).items()}
        return complete_sheet(rubric, step.params["total"])

    def _quota(self) -> EvidenceQuota:
        """A case's evidence quota, as the served system sets it."""
        return EvidenceQuota(self.app.settings.evidence_quota_bytes, self.app.settings.evidence_quota_files)

    def _attach_evidence(self, case_id: int, unit: Actor, now: datetime) -> None:
        """A file for every criterion the sheet gives points, as a unit would attach them."""
        case = read_case(self.db, case_id).case
        have = {c for c, _, _ in case.evidence}
        for code, points in (case.self_entries or {}).items():  # the sheet in points
            if Decimal(points) > 0 and code not in have:
                attach_bytes(self.db, self.app.evidence, case_id, code,
                             [(f"{code} 佐证材料.pdf", _pdf(f"{case_id} {code}"))], unit, now, quota=self._quota())

    def _attach_documents(self, case_id: int, unit: Actor, now: datetime) -> None:
        """The documents the round asks for (自评报告 ...), as a unit would attach them before submitting."""
        found = read_case(self.db, case_id)
        case, documents = found.case, found.ctx.documents
        have = {d for d, _, _ in case.documents}
        for d in documents:
            if d.id not in have and case.state in ("registered", "self_assessed"):
                attach_document_bytes(self.db, self.app.evidence, case_id, d.id,
                                      [(f"{d.name}.pdf", _pdf(f"{case_id} {d.id}"))], unit, now,
                                      quota=self._quota())


def run(scenario: Scenario, application: Any, transport: Any, *,
        on_day: Callable[[date], None] | None = None, robots: Any = None) -> SimulationResult:
    """Run the scenario on ``application`` (its database must be empty; its clock a ManualClock);
    ``robots``: where the channels' messages go (``notifications.robots.RobotFolder`` in a rehearsal)."""
    simulation = _Run(scenario, application, transport, robots)
    simulation.start()
    simulation.days(on_day)
    return simulation.result


def timeline(application: Any, round_ids: list[str]) -> list[TimelineRow]:
    """Every event of the rounds' cases and duty streams, and every mail sent, in time order."""
    db: Storage = application.db
    return db.read.timeline(round_ids)
