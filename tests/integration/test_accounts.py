"""Accounts for people, identity in every event, and the operator audit log (on SQLite and
PostgreSQL): who may make and change whom, passwords, disabling, the actor text events carry,
and the operator streams in ``audit verify`` and the checkpoints."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from workflow.adapters.db.store import Database
from workflow.domain.errors import AlreadyExists, Forbidden, InvalidInput, NotFound
from workflow.domain.state import Actor
from workflow.service.accounts import (
    change_account,
    check_password,
    create_account,
    list_accounts,
    principal_for,
    principal_of,
    set_enabled,
    set_password,
)
from workflow.service.audit import verify
from workflow.service.cases import perform_action
from workflow.service.directory import add_coordinator
from workflow.service.histories import operator_csv_lines, who_acted
from workflow.service.tokens import authenticate, create_token

from ..support import open_shanxi

NOW = __import__("datetime").datetime(2021, 6, 1, 1, 0, tzinfo=__import__("datetime").UTC)


@pytest.fixture
def world(db: Database):
    open_shanxi(db, NOW)
    admin = create_account(db, by=None, login="ops", name="运维", role="admin", now=NOW)
    return principal_of(admin, "cli")


def test_the_first_account_is_an_admin_made_by_the_setup_and_no_other_is_made_without_a_maker(db: Database) -> None:
    open_shanxi(db, NOW)
    with pytest.raises(Forbidden, match="first account must be an admin"):
        create_account(db, by=None, login="li", name="李", role="unit", unit_id=1, now=NOW)
    first = create_account(db, by=None, login="ops", name="运维", role="admin", now=NOW)
    assert first.created_by == "system:setup"
    with pytest.raises(Forbidden, match="--actor") as refused:
        create_account(db, by=None, login="ops2", name="运维二", role="admin", now=NOW)
    assert "注明创建人" in (refused.value.message_zh or "")


def test_a_coordinator_manages_the_accounts_of_their_subtree_only(db: Database, world) -> None:
    city = principal_of(create_account(db, by=world, login="wang.li", name="王丽", role="coordinator",
                                       jurisdiction_id="shanxi-taiyuan", now=NOW), "api")
    add = create_account(db, by=city, login="zhao", name="赵", role="auditor", jurisdiction_id="shanxi-taiyuan",
                         now=NOW)
    assert add.created_by == f"coordinator:wang.li;account={city.account_id};name=王丽;via=api"
    with pytest.raises(Forbidden, match="may not create"):  # a provincial unit is above the city
        create_account(db, by=city, login="li", name="李", role="unit", unit_id=1, now=NOW)
    with pytest.raises(Forbidden):  # never an admin
        create_account(db, by=city, login="boss", name="老板", role="admin", now=NOW)
    with pytest.raises(Forbidden):  # nor a coordinator of their own jurisdiction
        create_account(db, by=city, login="wang2", name="王二", role="coordinator",
                       jurisdiction_id="shanxi-taiyuan", now=NOW)
    with pytest.raises(NotFound):  # an account outside the subtree does not exist for them
        change_account(db, world.account_id or 0, {"name": "改名"}, by=city, now=NOW)
    assert {a.login for a in list_accounts(db, city)} == {"wang.li", "zhao"}


def test_logins_are_unique_and_names_unique_within_a_jurisdiction(db: Database, world) -> None:
    create_account(db, by=world, login="li1", name="李明", role="unit", unit_id=1, now=NOW)
    with pytest.raises(InvalidInput) as taken:
        create_account(db, by=world, login="li2", name="李明", role="unit", unit_id=2, now=NOW)  # same province
    assert taken.value.problems[0].where == "name" and "李明" in (taken.value.problems[0].zh or "")
    create_account(db, by=world, login="li3", name="李明", role="coordinator", jurisdiction_id="shanxi-taiyuan",
                   now=NOW)  # another jurisdiction: allowed
    with pytest.raises(InvalidInput, match="cannot create the account 'li1'"):
        create_account(db, by=world, login="li1", name="李明二", role="unit", unit_id=3, now=NOW)
    with pytest.raises(InvalidInput) as bad:
        create_account(db, by=world, login="Li Ming", name="x;via=api", role="nobody", email="not-mail", now=NOW)
    assert {p.where for p in bad.value.problems} == {"login", "name", "role", "email"}
    assert all(p.zh for p in bad.value.problems)


def test_passwords_are_argon2id_and_checked(db: Database, world) -> None:
    made = create_account(db, by=world, login="li", name="李", role="unit", unit_id=1, password="correct horse 1",
                          now=NOW)
    stored = db.accounts.get(made.id)
    assert stored is not None and stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
    assert "correct horse" not in json.dumps([e.to_dict() for e in db.operator.events()], ensure_ascii=False)
    assert check_password(db, "li", "correct horse 1") is not None
    assert check_password(db, "li", "wrong password") is None and check_password(db, "nobody", "x" * 12) is None
    with pytest.raises(InvalidInput, match="password"):
        set_password(db, made.id, "short", by=world, now=NOW)
    set_password(db, made.id, "a new password", by=principal_of(made, "console"), now=NOW)  # their own
    assert check_password(db, "li", "a new password") is not None
    assert db.operator.events("accounts")[-1].type == "PasswordSet"


def test_disabling_an_account_revokes_its_tokens_at_once(db: Database, world) -> None:
    li = create_account(db, by=world, login="li", name="李", role="unit", unit_id=1, now=NOW)
    token = create_token(db, account_id=li.id, by=world, now=NOW)
    who = authenticate(db, token.secret, NOW)
    assert who is not None and (who.account_id, who.account_name, str(who.actor)) == (
        li.id, "李", f"unit:1;account={li.id};name=李;via=api")
    with pytest.raises(InvalidInput, match="reason"):
        set_enabled(db, li.id, False, by=world, now=NOW)
    after, revoked = set_enabled(db, li.id, False, by=world, now=NOW, reason="调离")
    assert revoked == 1 and after.disabled_at is not None
    assert authenticate(db, token.secret, NOW) is None
    with pytest.raises(Forbidden, match="disabled"):
        principal_for(db, "li")
    set_enabled(db, li.id, True, by=world, now=NOW)
    assert authenticate(db, token.secret, NOW) is None  # the old token stays revoked
    assert [e.type for e in db.operator.events("accounts")][-3:] == ["AccountCreated", "AccountDisabled",
                                                                      "AccountEnabled"]
    assert [e.type for e in db.operator.events("tokens")] == ["TokenIssued", "TokenRevoked"]


def test_the_cli_actor_names_an_account_and_every_event_records_it(db: Database, world) -> None:
    li = create_account(db, by=world, login="li", name="李明", role="unit", unit_id=1, now=NOW)
    with pytest.raises(InvalidInput, match="names no account") as unknown:
        principal_for(db, "unit:1")
    assert "不是任何账号" in (unknown.value.message_zh or "")
    with pytest.raises(InvalidInput, match="is a unit account, not coordinator"):
        principal_for(db, "coordinator:li")
    actor = principal_for(db, "unit:li").actor
    assert actor == Actor("unit", "1", li.id, "李明", "cli")
    result = perform_action(db, 1, "self_assess", {"entries": {"1.1.1": "9"}}, actor, NOW + timedelta(hours=1))
    stored = result.event.actor
    assert stored == f"unit:1;account={li.id};name=李明;via=cli" and Actor.parse(stored) == actor
    assert who_acted(stored) == ("李明", str(li.id), "cli")
    assert who_acted("admin:demo") == ("admin:demo", "", "")  # an event from before accounts


def test_operator_streams_record_changes_and_audit_verify_checks_them(db: Database, world) -> None:
    add_coordinator(db, "shanxi", "王科长", "wang@example.gov.cn", actor=world.actor, now=NOW)
    streams = {e.stream_name for e in db.operator.events()}
    assert {"jurisdictions", "units", "rounds", "accounts", "coordinators"} <= streams
    added = db.operator.events("coordinators")[-1]
    assert added.type == "CoordinatorAdded" and added.actor == str(world.actor)
    csv_text = "".join(operator_csv_lines(db.operator.events("coordinators")))
    assert "新增联络员" in csv_text and "+08:00" in csv_text and "运维" in csv_text
    report = verify(db)
    assert report.ok and report.operator_events == len(db.operator.events()) and report.operator_streams >= 5
    # the database's owner rewrites who added the coordinator: the chain shows it
    if db.is_sqlite:
        _sql(db, "DROP TRIGGER operator_events_no_update")
    else:
        _sql(db, "ALTER TABLE operator_events DISABLE TRIGGER operator_events_append_only")
    try:
        _sql(db, f"UPDATE operator_events SET actor = 'admin:somebody' WHERE position = {added.position}")
        found = verify(db).findings
    finally:
        if not db.is_sqlite:
            _sql(db, "ALTER TABLE operator_events ENABLE TRIGGER operator_events_append_only")
    assert [(f.case_id, f.seq, f.kind) for f in found] == [("operator/coordinators", 1, "operator")]
    assert "altered" in found[0].what


def test_operator_events_are_append_only(db: Database, world) -> None:
    with pytest.raises(Exception, match="append-only"):
        _sql(db, "DELETE FROM operator_events")


def test_concurrent_appends_queue_on_the_stream_head(db: Database, world) -> None:
    """Two accounts made one after the other both chain to the stream (seq 2 follows seq 1)."""
    for n in range(3):
        create_account(db, by=world, login=f"u{n}", name=f"单位{n}", role="unit", unit_id=n + 1, now=NOW)
    events = db.operator.events("accounts")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))


def _sql(db: Database, statement: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement))


def test_a_duplicate_login_under_a_race_is_already_exists_not_a_server_error(db: Database, world) -> None:
    from dataclasses import replace

    made = create_account(db, by=world, login="li", name="李", role="unit", unit_id=1, now=NOW)
    with db.unit_of_work(core=True) as uow, pytest.raises(AlreadyExists):
        uow.accounts.add(replace(made, name="另一个李"))  # past the service's check: the database refuses
