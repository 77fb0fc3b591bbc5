"""Signing in to the console (``service/sign_in.py`` over the ``SignInStore`` port): the same
answers from the memory store, SQLite and PostgreSQL — sessions, the lockout, sign-out, the
one-time links, and the record each leaves on the operator stream ``sign_ins``."""
from __future__ import annotations

from datetime import timedelta

import pytest

from workflow.domain.errors import Forbidden, InvalidInput
from workflow.service.accounts import create_account, principal_of, set_enabled, set_password
from workflow.service.ports import Storage
from workflow.service.sign_in import (
    LinkInvalid,
    SignInPolicy,
    SignInRefused,
    change_own_password,
    issue_link,
    open_link,
    reset_for_login,
    session_of,
    sign_in,
    sign_out,
    use_link,
)

from .worlds import NOW, directory

POLICY = SignInPolicy(session_hours=8, max_failures=3, failure_window_minutes=15, lock_minutes=15,
                      invitation_days=7, reset_hours=24)
PASSWORD = "correct-horse-1"


@pytest.fixture
def people(storage: Storage):
    world = directory(storage)
    admin = create_account(storage, by=None, login="ops", name="运维", role="admin", password=PASSWORD, now=NOW)
    boss = principal_of(admin, "cli")
    city = create_account(storage, by=boss, login="wang", name="王", role="coordinator",
                          jurisdiction_id="shanxi-taiyuan", email="wang@example.org", password=PASSWORD, now=NOW)
    clerk = create_account(storage, by=boss, login="li", name="李", role="unit", unit_id=world.unit("太原丙"),
                           email="li@example.org", now=NOW)
    other = create_account(storage, by=boss, login="zhao", name="赵", role="coordinator",
                           jurisdiction_id="shanxi-datong", password=PASSWORD, now=NOW)
    return {"admin": admin, "city": city, "clerk": clerk, "other": other, "boss": boss}


def _types(storage: Storage) -> list[str]:
    return [e.type for e in storage.operator.events("sign_ins")]


def test_a_right_password_opens_a_session_the_cookie_secret_finds(storage: Storage, people) -> None:
    done = sign_in(storage, " Wang ", PASSWORD, NOW, POLICY, address="10.0.0.7")
    found = session_of(storage, done.secret, NOW + timedelta(hours=1))
    assert found is not None
    who, session = found
    assert (who.role, who.account_id, who.channel, who.jurisdiction_path) == (
        "coordinator", people["city"].id, "console", "/shanxi/shanxi-taiyuan/")
    assert session.csrf and session.csrf != done.secret and session.expires_at == NOW + timedelta(hours=8)
    assert session_of(storage, done.secret, NOW + timedelta(hours=8)) is None  # expired
    assert session_of(storage, "not-a-secret", NOW) is None
    events = storage.operator.events("sign_ins")
    assert [e.type for e in events] == ["SignedIn"]
    assert events[0].payload["address"] == "10.0.0.7" and done.secret not in events[0].payload_text


def test_a_wrong_password_and_an_unknown_login_are_refused_alike_and_recorded(storage: Storage, people) -> None:
    with pytest.raises(SignInRefused) as wrong:
        sign_in(storage, "wang", "wrong-password", NOW, POLICY)
    with pytest.raises(SignInRefused) as unknown:
        sign_in(storage, "nobody", PASSWORD, NOW, POLICY)
    assert (wrong.value.message, wrong.value.message_zh) == (unknown.value.message, unknown.value.message_zh)
    assert _types(storage) == ["SignInFailed", "SignInFailed"]
    with pytest.raises(SignInRefused):  # an account without a password (not yet invited in)
        sign_in(storage, "li", "", NOW, POLICY)


def test_repeated_failures_lock_the_login_even_for_the_right_password_until_the_lock_ends(
        storage: Storage, people) -> None:
    for i in range(POLICY.max_failures - 1):
        with pytest.raises(SignInRefused) as refused:
            sign_in(storage, "wang", "wrong-password", NOW + timedelta(minutes=i), POLICY)
        assert "locked" not in refused.value.message
    with pytest.raises(SignInRefused) as locked:
        sign_in(storage, "wang", "wrong-password", NOW + timedelta(minutes=3), POLICY)
    assert "locked until" in locked.value.message and "锁定" in (locked.value.message_zh or "")
    with pytest.raises(SignInRefused, match="locked"):
        sign_in(storage, "wang", PASSWORD, NOW + timedelta(minutes=10), POLICY)
    assert "SignInLocked" in _types(storage)
    # the lock ends 15 minutes after it began; a right password then clears the count
    done = sign_in(storage, "wang", PASSWORD, NOW + timedelta(minutes=19), POLICY)
    assert done.account.login == "wang" and storage.sign_ins.failures("wang") == (0, None, None)


def test_failures_outside_the_window_do_not_add_up(storage: Storage, people) -> None:
    for hours in range(5):  # one failure an hour: never three within 15 minutes
        with pytest.raises(SignInRefused, match="wrong login"):
            sign_in(storage, "wang", "wrong-password", NOW + timedelta(hours=hours), POLICY)
    assert sign_in(storage, "wang", PASSWORD, NOW + timedelta(hours=5), POLICY).account.login == "wang"


def test_sign_out_ends_only_that_session(storage: Storage, people) -> None:
    first = sign_in(storage, "wang", PASSWORD, NOW, POLICY)
    second = sign_in(storage, "wang", PASSWORD, NOW, POLICY)
    found = session_of(storage, first.secret, NOW)
    assert found is not None
    sign_out(storage, found[1], found[0], NOW)
    assert session_of(storage, first.secret, NOW) is None and session_of(storage, second.secret, NOW) is not None
    assert _types(storage)[-1] == "SignedOut"


def test_a_new_password_or_a_disabled_account_ends_every_session(storage: Storage, people) -> None:
    done = sign_in(storage, "wang", PASSWORD, NOW, POLICY)
    set_password(storage, people["city"].id, "another-password-2", by=people["boss"], now=NOW)
    assert session_of(storage, done.secret, NOW) is None
    again = sign_in(storage, "wang", "another-password-2", NOW, POLICY)
    set_enabled(storage, people["city"].id, False, by=people["boss"], now=NOW, reason="离职")
    assert session_of(storage, again.secret, NOW) is None
    with pytest.raises(SignInRefused):
        sign_in(storage, "wang", "another-password-2", NOW, POLICY)


def test_an_invitation_sets_the_first_password_once(storage: Storage, people) -> None:
    link = issue_link(storage, people["clerk"].id, "invitation", by=principal_of(people["city"], "console"),
                      now=NOW, policy=POLICY)
    assert link.record.expires_at == NOW + timedelta(days=7) and link.account.login == "li"
    opened, account = open_link(storage, link.secret, NOW + timedelta(days=1))
    assert (opened.purpose, account.login) == ("invitation", "li")
    with pytest.raises(InvalidInput) as bad:
        use_link(storage, link.secret, "short", "short", NOW)
    assert [p.where for p in bad.value.problems] == ["password"]
    with pytest.raises(InvalidInput) as differ:
        use_link(storage, link.secret, "a-long-password-1", "a-long-password-2", NOW)
    assert [p.where for p in differ.value.problems] == ["password2"]
    use_link(storage, link.secret, "a-long-password-1", "a-long-password-1", NOW + timedelta(days=1))
    assert sign_in(storage, "li", "a-long-password-1", NOW + timedelta(days=1), POLICY).account.login == "li"
    with pytest.raises(LinkInvalid, match="used already"):
        use_link(storage, link.secret, "a-third-password", "a-third-password", NOW + timedelta(days=1))
    assert "LinkIssued" in _types(storage) and "LinkUsed" in _types(storage)
    assert [e.type for e in storage.operator.events("accounts")][-1] == "PasswordSet"


def test_a_link_expires_and_an_unknown_one_says_so(storage: Storage, people) -> None:
    link = issue_link(storage, people["clerk"].id, "reset", by=people["boss"], now=NOW, policy=POLICY)
    with pytest.raises(LinkInvalid, match="expired"):
        open_link(storage, link.secret, NOW + timedelta(hours=24))
    with pytest.raises(LinkInvalid, match="not valid"):
        open_link(storage, "x" * 43, NOW)


def test_only_the_coordinator_above_or_an_admin_may_send_a_link(storage: Storage, people) -> None:
    with pytest.raises(Forbidden):  # Datong's coordinator for a Taiyuan clerk
        issue_link(storage, people["clerk"].id, "reset", by=principal_of(people["other"], "console"), now=NOW,
                   policy=POLICY)
    with pytest.raises(Forbidden):  # a coordinator for their own account (they change it themselves)
        issue_link(storage, people["city"].id, "reset", by=principal_of(people["city"], "console"), now=NOW,
                   policy=POLICY)


def test_a_forgotten_password_mails_a_reset_only_to_an_account_with_an_address(storage: Storage, people) -> None:
    assert reset_for_login(storage, "nobody", NOW, POLICY) is None
    assert reset_for_login(storage, "zhao", NOW, POLICY) is None  # no email on the account
    link = reset_for_login(storage, "WANG", NOW, POLICY)
    assert link is not None and link.record.purpose == "reset" and link.account.login == "wang"


def test_changing_ones_own_password_needs_the_current_one_and_ends_every_session(storage: Storage, people) -> None:
    done = sign_in(storage, "wang", PASSWORD, NOW, POLICY)
    who = session_of(storage, done.secret, NOW)
    assert who is not None
    with pytest.raises(InvalidInput) as bad:
        change_own_password(storage, who[0], "wrong-current", "new-password-99", "new-password-99", NOW)
    assert [p.where for p in bad.value.problems] == ["current"]
    change_own_password(storage, who[0], PASSWORD, "new-password-99", "new-password-99", NOW)
    assert session_of(storage, done.secret, NOW) is None
    assert sign_in(storage, "wang", "new-password-99", NOW, POLICY).account.login == "wang"
