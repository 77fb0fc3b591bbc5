"""Opening rounds: every in-scope unit gets a case, carry-over by policy, bad requests refused."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from workflow.adapters.db.store import Database
from workflow.adapters.db.tables import Case, Round
from workflow.domain.errors import AlreadyExists, InvalidInput, NotFound
from workflow.service.audit import verify
from workflow.service.cases import perform_action, read_case
from workflow.service.rounds import open_round

from ..support import (
    ADMIN,
    CALENDARS,
    COORDINATOR,
    OPERATOR,
    RUBRICS,
    attach_documents,
    open_hunan,
    open_shanxi,
    ready_to_submit,
    seed_jurisdictions,
    sheet_for,
    unit_actor,
)

NOW = datetime(2021, 6, 1, 1, 0, tzinfo=UTC)


def _count(db: Database, model) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def _walk(db: Database, case_id: int, unit_id: int, verified: str, tail: list[str]) -> str:
    unit = unit_actor(unit_id)
    with db.unit_of_work() as uow:
        rubric = uow.round_context(uow.get(case_id).round_id).rubric
    ready_to_submit(db, case_id, unit_id, "90", NOW, rubric)
    attach_documents(db, case_id, unit, NOW)
    perform_action(db, case_id, "submit", {}, unit, NOW)
    r = perform_action(db, case_id, "verify", {"entries": sheet_for(rubric, verified)}, COORDINATOR, NOW)
    for action in tail:
        r = perform_action(db, case_id, action, {}, COORDINATOR, NOW)
    return r.case.state


def test_opening_shanxi_registers_the_35_units_with_the_round_rules(db: Database) -> None:
    opened = open_shanxi(db, NOW)
    assert (opened.round_id, opened.registered, opened.carried_over) == ("shanxi-2021", 35, 0)
    with db.engine.connect() as conn:
        rnd = conn.execute(select(Round.__table__)).mappings().one()
        states = conn.execute(select(Case.state, func.count()).group_by(Case.state)).all()
    assert (rnd["pass_mark"], rnd["max_total"]) == (Decimal(80), Decimal(100))
    assert rnd["policy"] == {"on_fail": "rectification", "rectification_days": 20, "carry_over": False,
                             "spot_check": {"on_problems": "rectification", "rectification_days": 20}}
    assert states == [("registered", 35)]
    assert verify(db).ok


def test_hunan_failed_units_are_carried_into_the_next_round(db: Database, tmp_path) -> None:
    opened = open_hunan(db, NOW, tmp_path, units=3, year=2021)
    assert opened.registered == 3
    assert _walk(db, 1, 1, "79.5", ["fail"]) == "not_certified"
    assert _walk(db, 2, 2, "80", ["certify"]) == "certified"
    # unit 3 does nothing in 2021 and is closed at the end of the round
    perform_action(db, 3, "close", {"reason": "round ended"}, COORDINATOR, NOW)
    nxt = open_round(db, RUBRICS, CALENDARS, province_id="hunan", year=2022, rubric_id="hunan-2020",
                     calendar_id="hunan", target_share="0.7", actor=ADMIN, now=NOW)
    assert (nxt.registered, nxt.carried_over, nxt.already_certified) == (2, 2, 1)
    with db.engine.connect() as conn:
        rows = conn.execute(select(Case.unit_id, Case.carried_over_from)
                            .where(Case.round_id == "hunan-2022").order_by(Case.unit_id)).all()
    assert [tuple(r) for r in rows] == [(1, 1), (3, 3)]
    with db.unit_of_work() as uow:
        first = uow.events(uow.find("hunan-2022", 1).id)[0]
    assert first.payload["carried_over_from"] == 1
    assert verify(db).ok


def test_shanxi_does_not_mark_carry_over_but_skips_certified_units(db: Database) -> None:
    open_shanxi(db, NOW)
    _walk(db, 1, 1, "95", ["certify"])
    _walk(db, 2, 2, "70", ["order_rectification"])
    with pytest.raises(InvalidInput, match="serves 2021"):
        open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2022, rubric_id="shanxi-2020",
                   calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=NOW)


def test_a_round_opens_once(db: Database) -> None:
    open_shanxi(db, NOW)
    before = (_count(db, Case), _count(db, Round))
    with pytest.raises(AlreadyExists, match="shanxi-2021"):
        open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                   calendar_id="shanxi-2021", target_share="0.5", actor=ADMIN, now=NOW)
    assert (_count(db, Case), _count(db, Round)) == before


def test_bad_round_requests_list_every_problem_and_write_nothing(db: Database) -> None:
    seed_jurisdictions(db)
    with pytest.raises(InvalidInput) as err:
        open_round(db, RUBRICS, CALENDARS, province_id="shanxi-taiyuan", year=2021, rubric_id="hunan-2020",
                   calendar_id="nope", target_share="1.5", actor=ADMIN, now=NOW)
    where = sorted(p.where for p in err.value.problems)
    assert where == ["calendar", "province", "rubric", "target_share"]
    assert "is a city, not a province" in str(err.value)
    assert _count(db, Round) == 0


@pytest.mark.parametrize("share", ["0", "-0.1", "abc", "NaN", 0.5])
def test_target_share_must_be_a_decimal_share(db: Database, share) -> None:
    seed_jurisdictions(db)
    with pytest.raises(InvalidInput, match="target_share"):
        open_round(db, RUBRICS, CALENDARS, province_id="shanxi", year=2021, rubric_id="shanxi-2020",
                   calendar_id="shanxi-2021", target_share=share, actor=ADMIN, now=NOW)


def test_a_unit_added_after_the_round_opened_is_registered_late(db: Database, tmp_path) -> None:
    """A unit added to the roster in August gets its case; the contact form of June 5 it never
    had a chance at is not recorded as missed against it (that miss was swept in June), while
    the self-assessment of October 20 is owed and, once missed, recorded as for everyone."""
    from workflow.files import import_units
    from workflow.service.deadlines import sweep
    from workflow.service.due import what_is_due
    from workflow.service.rounds import register_unit

    from ..support import CALENDARS, write_units_csv

    june = datetime(2021, 5, 20, 2, tzinfo=UTC)
    open_shanxi(db, june)
    sweep(db, CALENDARS, datetime(2021, 6, 7, 2, tzinfo=UTC))  # the contact-form misses of the 35
    august = datetime(2021, 8, 2, 2, tzinfo=UTC)
    import_units(db, write_units_csv(tmp_path / "new.csv", [("省新设机构", "shanxi", "行政机关")]), august, actor=OPERATOR)
    late_unit = max(u.id for u in db.directory.units("/"))
    case = register_unit(db, "shanxi-2021", late_unit, actor=ADMIN, now=august)
    assert case.state == "registered" and case.round_id == "shanxi-2021"
    with pytest.raises(AlreadyExists):
        register_unit(db, "shanxi-2021", late_unit, actor=ADMIN, now=august)
    with pytest.raises(NotFound):  # a coordinator of 太原 cannot register a provincial unit
        register_unit(db, "shanxi-2021", 2, actor=ADMIN, now=august, within_path="/shanxi/shanxi-taiyuan/")
    sweep(db, CALENDARS, datetime(2021, 8, 3, 2, tzinfo=UTC))
    assert read_case(db, case.id).case.missed == ()  # June's miss is not its own
    owed = {o.id for o in what_is_due(db, CALENDARS, case.id, august).owed}
    assert {"contact_form", "self_assessment"} <= owed  # still to give, but not held against it
    sweep(db, CALENDARS, datetime(2021, 10, 21, 2, tzinfo=UTC))
    assert "self_assessment" in [m for m, _ in read_case(db, case.id).case.missed]
    assert verify(db).ok



def test_a_certified_unit_or_one_of_another_province_is_not_registered(db: Database, tmp_path) -> None:
    from workflow.domain.errors import ActionRefused
    from workflow.files import import_units_data
    from workflow.service.rounds import register_unit

    now = datetime(2021, 5, 20, 2, tzinfo=UTC)
    open_shanxi(db, now)
    open_hunan(db, now, tmp_path)
    roster = "name,jurisdiction,category,certified_year\n省节能示范机构,shanxi,行政机关,2020\n".encode()
    import_units_data(db, roster, "certified.csv", now, actor=OPERATOR)
    units = {u.name: u for u in db.directory.units("/")}
    with pytest.raises(ActionRefused, match="already certified"):
        register_unit(db, "shanxi-2021", units["省节能示范机构"].id, actor=ADMIN, now=now)
    hunan_unit = next(u for u in units.values() if u.path.startswith("/hunan/"))
    with pytest.raises(InvalidInput, match="not a unit of shanxi"):
        register_unit(db, "shanxi-2021", hunan_unit.id, actor=ADMIN, now=now)
    with pytest.raises(NotFound):
        register_unit(db, "shanxi-2099", hunan_unit.id, actor=ADMIN, now=now)
