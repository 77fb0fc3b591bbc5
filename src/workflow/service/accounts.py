"""Accounts for people: who they are (login, display name, contact), their role and scope, and
how they sign in (an argon2id hash of their password). Made, changed, disabled and their tokens
revoked by an admin, or by a coordinator for the people of their subtree; every change is an
event on the operator stream ``accounts`` naming who made it.

A person acts through an account: the API's tokens belong to one, the CLI's ``--actor`` names
one (``principal_for``), and every event they cause records the account, its display name at
that moment and the channel (``domain.state.Actor``)."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from notifications.addresses import check_address

from ..domain.access import ROLES, Principal
from ..domain.dates import require_aware
from ..domain.errors import Forbidden, InvalidInput, NotFound, ProblemList
from ..domain.lifecycle import ACTOR_NAMES
from ..domain.state import CHANNELS, NAME_FORBIDDEN, Actor
from .ports import AccountRecord, Storage

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,47}$")
MAX_NAME = 50  # a display name, in characters (it is written into every event the person causes)
MIN_PASSWORD, MAX_PASSWORD = 10, 128
ROLE_ZH = ACTOR_NAMES  # what a bureau calls each role (one table, the domain's)
CHANGEABLE = ("name", "email", "phone")
SETUP = Actor("system", "setup")  # who made the first admin account, when there was none

# argon2id with the library's defaults (RFC 9106's second recommended option)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _password_problems(password: str, problems: ProblemList) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problems.add("password", f"a password of {MIN_PASSWORD}-{MAX_PASSWORD} characters",
                     f"密码须为 {MIN_PASSWORD}-{MAX_PASSWORD} 个字符")


def _check_name(name: Any, problems: ProblemList) -> str:
    text = name.strip() if isinstance(name, str) else ""
    if not 1 <= len(text) <= MAX_NAME or any(ch in NAME_FORBIDDEN for ch in text):
        problems.add("name", f"a display name of 1-{MAX_NAME} characters without ; = or line breaks; got {name!r}",
                     f"显示名须为 1-{MAX_NAME} 个字符，且不含 ; = 或换行；收到 {name!r}")
    return text


def _check_contact(data: dict[str, Any], problems: ProblemList) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if "email" in data:
        email = data["email"]
        if email in (None, ""):
            out["email"] = None
        else:
            try:
                out["email"] = check_address(email)
            except ValueError as exc:
                problems.add("email", f"{email!r} is not an email address: {exc}",
                             f"{email!r} 不是有效的电子邮箱：{exc}")
    if "phone" in data:
        phone = data["phone"]
        if phone in (None, ""):
            out["phone"] = None
        elif not isinstance(phone, str) or not re.fullmatch(r"[0-9+\- ()]{5,40}", phone):
            problems.add("phone", f"a phone number of 5-40 digits, spaces, + - ( ); got {phone!r}",
                         f"电话号码须为 5-40 位数字、空格或 + - ( )；收到 {phone!r}")
        else:
            out["phone"] = phone
    return out


def manages(by: Principal, account: AccountRecord) -> bool:
    """Whether ``by`` may change ``account``: an admin any; a coordinator the accounts of their
    subtree (units, auditors, and coordinators of the jurisdictions below theirs), never an admin's."""
    if by.role == "admin":
        return True
    if by.role != "coordinator" or by.unresolved or account.role == "admin" or account.path is None:
        return False
    if by.account_id is not None and account.id == by.account_id:
        return False
    if account.role == "coordinator":
        return account.path != by.jurisdiction_path and account.path.startswith(by.jurisdiction_path or "")
    return account.path.startswith(by.jurisdiction_path or "")


def _refuse(by: Principal, what: str, zh: str) -> Forbidden:
    return Forbidden(f"{by.actor.label} ({by.role}) may not {what}: an admin, or the coordinator above the "
                     "account, may", f"{by.actor.label}（{ROLE_ZH.get(by.role, by.role)}）无权{zh}：只有管理员或该账号"
                     "上级辖区的协调人员可以")


def _record(db: Storage, stream_type: str, account: AccountRecord, by: Actor, now: datetime,
            uow: Any, **extra: Any) -> None:
    payload = {"account": account.id, "login": account.login, "name": account.name, "role": account.role,
               "unit_id": account.unit_id, "jurisdiction_id": account.jurisdiction_id, **extra}
    uow.operator.append("accounts", stream_type, str(by), now, payload)


def create_account(db: Storage, *, by: Principal | None, login: str, name: str, role: str,
                   unit_id: int | None = None, jurisdiction_id: str | None = None, email: str | None = None,
                   phone: str | None = None, password: str | None = None, now: datetime,
                   password_hash: str | None = None) -> AccountRecord:
    """A new account. ``by`` None only for the first admin, when there is no account at all.
    ``password_hash``: a password hashed before (the demo's one password for all its people,
    hashed once), instead of ``password``."""
    require_aware(now, "now")
    problems = ProblemList()
    if not isinstance(login, str) or not LOGIN.fullmatch(login):
        problems.add("login", f"2-48 of a-z 0-9 . _ - starting with a letter or digit; got {login!r}",
                     f"登录名须为 2-48 个小写字母、数字或 . _ -，以字母或数字开头；收到 {login!r}")
    display = _check_name(name, problems)
    if role not in ROLES:
        problems.add("role", f"must be one of {', '.join(ROLES)}; got {role!r}",
                     f"角色须为 {'、'.join(ROLES)} 之一；收到 {role!r}")
    contact = _check_contact({"email": email, "phone": phone}, problems)
    if password is not None:
        _password_problems(password, problems)
    with db.unit_of_work(core=True) as uow:
        home = _scope_problems(uow, role, unit_id, jurisdiction_id, problems)
        if not problems and uow.accounts.by_login(login) is not None:
            problems.add("login", f"the login {login!r} is taken", f"登录名 {login!r} 已被使用")
        if not problems and uow.accounts.by_name(home, display) is not None:
            problems.add("name", f"{display!r} already names an account in {home or 'the system'}",
                         f"{home or '系统'} 内已有名为 {display!r} 的账号")
        problems.raise_if_any(f"cannot create the account {login!r}", f"无法创建账号 {login!r}")
        draft = AccountRecord(0, login, display, role, unit_id, jurisdiction_id, contact.get("email"),
                              contact.get("phone"),
                              password_hash if password is None else hash_password(password), now, "", home)
        actor = _creator(uow, by, replace(draft, path=_scope_path(uow, draft)))
        account_id = uow.accounts.add(replace(draft, created_by=str(actor)))
        made: AccountRecord | None = uow.accounts.get(account_id)
        assert made is not None
        _record(db, "AccountCreated", made, actor, now, uow, email=made.email, phone=made.phone,
                password=password is not None or password_hash is not None)
        uow.commit()
    return made


def _creator(uow: Any, by: Principal | None, target: AccountRecord) -> Actor:
    """Who is making ``target``: ``by`` if they may; the setup, for the first account (an admin)."""
    if by is None:
        if uow.accounts.all():
            raise Forbidden("name who creates the account (--actor): only the first account, an admin, may "
                            "be made without one", "请用 --actor 注明创建人：只有第一个账号（管理员）可以不注明")
        if target.role != "admin":
            raise Forbidden("the first account must be an admin", "第一个账号必须是管理员")
        return SETUP
    if not manages(by, target):
        raise _refuse(by, f"create a {target.role} account there",
                      f"在此创建{ROLE_ZH.get(target.role, target.role)}账号")
    return by.actor


def _scope_problems(uow: Any, role: str, unit_id: int | None, jurisdiction_id: str | None,
                    problems: ProblemList) -> str:
    """Check the account's scope; the jurisdiction its name is unique within ("" for an admin)."""
    home = ""
    if role == "unit":
        unit = uow.directory.unit(unit_id) if unit_id is not None else None
        if unit is None:
            problems.add("unit", f"a unit account needs an existing unit id; got {unit_id!r}",
                         f"单位账号须指定已有的单位编号；收到 {unit_id!r}")
        else:
            home = unit.jurisdiction_id
        if jurisdiction_id is not None:
            problems.add("jurisdiction", "a unit account is scoped to its unit only",
                         "单位账号只限于本单位，不能指定辖区")
    elif role in ("coordinator", "auditor"):
        if jurisdiction_id is None or uow.directory.jurisdiction(jurisdiction_id) is None:
            problems.add("jurisdiction",
                         f"a {role} account needs an existing jurisdiction; got {jurisdiction_id!r}",
                         f"{ROLE_ZH[role]}账号须指定已有的辖区；收到 {jurisdiction_id!r}")
        else:
            home = jurisdiction_id
        if unit_id is not None:
            problems.add("unit", f"a {role} account is scoped to a jurisdiction, not a unit",
                         f"{ROLE_ZH[role]}账号的范围是辖区，不能指定单位")
    elif role == "admin" and (unit_id is not None or jurisdiction_id is not None):
        problems.add("scope", "an admin account has no scope", "管理员账号不限范围，不能指定单位或辖区")
    return home


def _scope_path(uow: Any, account: AccountRecord) -> str | None:
    if account.jurisdiction_id is not None:
        place = uow.directory.jurisdiction(account.jurisdiction_id)
        return None if place is None else str(place.path)
    if account.unit_id is not None:
        unit = uow.directory.unit(account.unit_id)
        return None if unit is None else str(unit.path)
    return None


def _managed(uow: Any, account_id: int, by: Principal, what: str, zh: str) -> AccountRecord:
    account: AccountRecord | None = uow.accounts.get(account_id)
    if account is None or not (by.role == "admin" or account.id == by.account_id or (
            by.role in ("coordinator", "auditor") and account.path is not None and by.sees_path(account.path))):
        raise NotFound(f"no account {account_id}", f"没有编号为 {account_id} 的账号")
    if not manages(by, account):
        raise _refuse(by, what, zh)
    return account


def change_account(db: Storage, account_id: int, changes: dict[str, Any], *, by: Principal,
                   now: datetime) -> AccountRecord:
    """Change an account's display name or contact (role and scope never change: make a new one)."""
    problems = ProblemList()
    unknown = sorted(set(changes) - set(CHANGEABLE))
    if unknown:
        problems.add(", ".join(unknown), f"cannot be changed (only {', '.join(CHANGEABLE)}; role and scope are "
                     "fixed: make a new account)",
                     f"不能修改（只能修改 {'、'.join(CHANGEABLE)}；角色与范围不可改，请新建账号）")
    name = _check_name(changes["name"], problems) if "name" in changes else None
    contact = _check_contact(changes, problems)
    problems.raise_if_any(f"cannot change account {account_id}", f"无法修改账号 {account_id}")
    with db.unit_of_work(core=True) as uow:
        account = _managed(uow, account_id, by, f"change account {account_id}", f"修改账号 {account_id}")
        after = replace(account, name=account.name if name is None else name,
                        email=contact.get("email", account.email), phone=contact.get("phone", account.phone))
        if name is not None and name != account.name and uow.accounts.by_name(account.home, name) is not None:
            taken = ProblemList()
            taken.add("name", f"{name!r} already names an account in {account.home or 'the system'}",
                      f"{account.home or '系统'} 内已有名为 {name!r} 的账号")
            taken.raise_if_any(f"cannot change account {account_id}", f"无法修改账号 {account_id}")
        changed = {k: getattr(after, k) for k in CHANGEABLE if getattr(after, k) != getattr(account, k)}
        if changed:
            uow.accounts.save(after)
            _record(db, "AccountChanged", after, by.actor, now, uow, changed=changed)
        uow.commit()
    return after


def set_enabled(db: Storage, account_id: int, enabled: bool, *, by: Principal, now: datetime,
                reason: str | None = None) -> tuple[AccountRecord, int]:
    """Disable an account (its tokens revoked at once, in the same transaction) or enable it again;
    (the account, how many tokens were revoked)."""
    if not enabled and (not reason or not reason.strip() or len(reason) > 500):
        raise InvalidInput("a reason of 1-500 characters is needed to disable an account", [],
                           "停用账号须说明理由（1-500 个字符）")
    what, zh = ("enable", "启用") if enabled else ("disable", "停用")
    with db.unit_of_work(core=True) as uow:
        account = _managed(uow, account_id, by, f"{what} account {account_id}", f"{zh}账号 {account_id}")
        revoked = 0
        if enabled and account.disabled_at is not None:
            after = replace(account, disabled_at=None, disabled_by=None)
            uow.accounts.save(after)
            _record(db, "AccountEnabled", after, by.actor, now, uow)
        elif not enabled and account.disabled_at is None:
            after = replace(account, disabled_at=now, disabled_by=str(by.actor))
            uow.accounts.save(after)
            uow.sign_ins.end_sessions_of(account.id, now)
            for token in uow.tokens.all():
                if token.account_id == account.id and token.revoked_at is None:
                    uow.tokens.revoke(token.id, now, str(by.actor))
                    uow.operator.append("tokens", "TokenRevoked", str(by.actor), now,
                                        {"token": token.id, "account": account.id, "why": "account disabled"})
                    revoked += 1
            _record(db, "AccountDisabled", after, by.actor, now, uow, reason=(reason or "").strip(),
                    tokens_revoked=revoked)
        else:
            after = account
        uow.commit()
    return after, revoked


def set_password(db: Storage, account_id: int, password: str, *, by: Principal, now: datetime) -> None:
    """Set an account's password (by the coordinator above them or an admin, or by themself)."""
    problems = ProblemList()
    _password_problems(password, problems)
    problems.raise_if_any(f"cannot set the password of account {account_id}", f"无法设置账号 {account_id} 的密码")
    with db.unit_of_work(core=True) as uow:
        account = uow.accounts.get(account_id)
        if account is None or account.id != by.account_id:
            account = _managed(uow, account_id, by, f"set the password of account {account_id}",
                               f"设置账号 {account_id} 的密码")
        uow.accounts.save(replace(account, password_hash=hash_password(password)))
        uow.sign_ins.end_sessions_of(account.id, now)  # signed in with the old one: signed out
        _record(db, "PasswordSet", account, by.actor, now, uow)  # never the password or its hash
        uow.commit()


def check_password(db: Storage, login: str, password: str) -> AccountRecord | None:
    """The enabled account with this login and password; None otherwise (same answer whether the
    login or the password is wrong)."""
    account = db.accounts.by_login(login) if isinstance(login, str) and len(login) <= 64 else None
    if account is None or account.disabled_at is not None or account.password_hash is None:
        _hasher.hash("x" * MIN_PASSWORD)  # as long as a real check: the answer's time does not tell
        return None
    try:
        _hasher.verify(account.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return account


def list_accounts(db: Storage, by: Principal) -> list[AccountRecord]:
    if by.role == "admin":
        return db.accounts.all()
    if by.role in ("coordinator", "auditor") and not by.unresolved:
        return db.accounts.all(by.jurisdiction_path)
    return [a for a in db.accounts.all() if a.id == by.account_id]


def get_account(db: Storage, account_id: int, by: Principal) -> AccountRecord:
    account = db.accounts.get(account_id)
    if account is None or not (by.role == "admin" or account.id == by.account_id
                               or (by.role in ("coordinator", "auditor") and account.path is not None
                                   and by.sees_path(account.path))):
        raise NotFound(f"no account {account_id}", f"没有编号为 {account_id} 的账号")
    return account


def principal_of(account: AccountRecord, channel: str, token_id: int = 0) -> Principal:
    """The principal an account acts as (through ``channel``)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    scope = account.path if account.role in ("coordinator", "auditor") else None
    return Principal(token_id, account.login, account.role, account.unit_id, scope,
                     account.path if account.role == "unit" else None, account.id, account.name, channel)


def principal_for(db: Storage, text: str, channel: str = "cli") -> Principal:
    """The principal ``--actor`` names: an enabled account's login, optionally as ``ROLE:LOGIN``."""
    given = (text or "").strip()
    role, sep, login = given.partition(":")
    if not sep:
        role, login = "", given
    account = db.accounts.by_login(login) if login and len(login) <= 64 else None
    if account is None:
        known = ", ".join(a.login for a in db.accounts.all()[:10]) or "none yet: workflow accounts create"
        raise InvalidInput(f"--actor {given!r} names no account (give an account's login; accounts: {known})", [],
                           f"--actor {given!r} 不是任何账号（请给出账号的登录名；现有账号：{known}）")
    if role and role != account.role:
        raise InvalidInput(f"--actor {given!r}: account {login!r} is a {account.role} account, not {role}", [],
                           f"--actor {given!r}：账号 {login!r} 是{ROLE_ZH.get(account.role, account.role)}账号，"
                           f"不是{ROLE_ZH.get(role, role)}")
    if account.disabled_at is not None:
        raise Forbidden(f"account {login!r} is disabled", f"账号 {login!r} 已停用")
    return principal_of(account, channel)
