"""Signing in to the console: password sign-in with a lockout after repeated failures, sessions
(the cookie's secret is shown to the browser once and stored as its SHA-256, with the CSRF
token its forms carry), sign-out, and one-time links to set a password (an invitation for a
person's first sign-in, a reset when it is forgotten or asked for by the coordinator above).

Every sign-in, failure, lockout, sign-out, link made and link used is an event on the operator
stream ``sign_ins`` (never the password, the secret or its hash). A failed sign-in reads the
same whether the login exists or not, and takes as long.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ..domain.access import Principal
from ..domain.dates import BUSINESS_TZ, require_aware
from ..domain.errors import DomainError, Forbidden, NotFound, ProblemList
from ..domain.state import Actor
from .accounts import _password_problems, check_password, hash_password, manages, principal_of
from .ports import AccountRecord, LinkRecord, SessionRecord, Storage

PURPOSES = {"invitation": "邀请", "reset": "重置密码"}
SYSTEM = Actor("system", "console")  # who records what a person not yet signed in did


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    """How long a session lasts, when a login is locked, and how long a link works (settings)."""

    session_hours: float = 8.0
    max_failures: int = 5  # failures within ``failure_window_minutes`` that lock the login
    failure_window_minutes: float = 15.0
    lock_minutes: float = 15.0
    invitation_days: float = 7.0
    reset_hours: float = 24.0


class SignInRefused(DomainError):
    """Wrong login or password (the same answer for both), or a locked login."""

    code = "sign_in_refused"


class LinkInvalid(DomainError):
    """A link that is unknown, used, expired, or of a disabled account."""

    code = "link_invalid"


@dataclass(frozen=True, slots=True)
class SignedIn:
    secret: str  # the cookie's value: shown to the browser once, never stored
    session: SessionRecord
    account: AccountRecord


@dataclass(frozen=True, slots=True)
class Link:
    secret: str  # goes into the mailed URL only
    record: LinkRecord
    account: AccountRecord


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _clean_login(login: Any) -> str:
    return login.strip().lower()[:64] if isinstance(login, str) else ""


def _record(uow: Any, type_: str, actor: Actor | str, now: datetime, **payload: Any) -> None:
    uow.operator.append("sign_ins", type_, str(actor), now, payload)


def sign_in(db: Storage, login: str, password: str, now: datetime, policy: SignInPolicy,
            address: str | None = None) -> SignedIn:
    """A new session for the enabled account with this login and password; ``SignInRefused``
    otherwise, and while the login is locked (even with the right password)."""
    require_aware(now, "now")
    who = _clean_login(login)
    count, first_at, locked_until = db.sign_ins.failures(who) if who else (0, None, None)
    if locked_until is not None and locked_until > now:
        with db.unit_of_work(core=True) as uow:
            _record(uow, "SignInFailed", SYSTEM, now, login=who, reason="locked", address=address)
            uow.commit()
        raise _locked(locked_until)
    account = check_password(db, who, password if isinstance(password, str) else "")
    if account is None:
        with db.unit_of_work(core=True) as uow:
            count, first_at, _ = uow.sign_ins.failures(who)
            if first_at is None or now - first_at > timedelta(minutes=policy.failure_window_minutes):
                count, first_at = 0, now
            count += 1
            lock = now + timedelta(minutes=policy.lock_minutes) if count >= policy.max_failures else None
            if who:
                uow.sign_ins.set_failures(who, count, first_at, lock)
            _record(uow, "SignInFailed", SYSTEM, now, login=who, reason="credentials", failures=count,
                    address=address)
            if lock is not None:
                _record(uow, "SignInLocked", SYSTEM, now, login=who, until=lock, failures=count)
            uow.commit()
        if lock is not None:
            raise _locked(lock)
        raise SignInRefused("wrong login or password", "登录名或密码不正确")
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    expires = now + timedelta(hours=policy.session_hours)
    with db.unit_of_work(core=True) as uow:
        uow.sign_ins.clear_failures(who)
        session_id = uow.sign_ins.add_session(account_id=account.id, secret_hash=_hash(secret), csrf=csrf,
                                              created_at=now, expires_at=expires, address=address)
        _record(uow, "SignedIn", principal_of(account, "console").actor, now, account=account.id,
                login=account.login, session=session_id, address=address)
        uow.commit()
    return SignedIn(secret, SessionRecord(session_id, account.id, csrf, now, expires), account)


def _locked(until: datetime) -> SignInRefused:
    local = until.astimezone(BUSINESS_TZ)
    return SignInRefused(f"too many failed sign-ins: this login is locked until {local:%H:%M} Beijing time",
                         f"登录失败次数过多，此登录名已锁定至北京时间 {local:%H:%M}", locked_until=until)


def session_of(db: Storage, secret: str, now: datetime) -> tuple[Principal, SessionRecord] | None:
    """The principal of a live session (None: unknown, ended, expired, or the account disabled)."""
    if not secret or len(secret) > 100:
        return None
    session = db.sign_ins.session(_hash(secret))
    if session is None or session.ended_at is not None or session.expires_at <= now:
        return None
    account = db.accounts.get(session.account_id)
    if account is None or account.disabled_at is not None:
        return None
    return principal_of(account, "console"), session


def sign_out(db: Storage, session: SessionRecord, by: Principal, now: datetime) -> None:
    with db.unit_of_work(core=True) as uow:
        if uow.sign_ins.end_session(session.id, now):
            _record(uow, "SignedOut", by.actor, now, account=session.account_id, session=session.id)
        uow.commit()


# ---------------------------------------------------------------- one-time links

def issue_link(db: Storage, account_id: int, purpose: str, *, by: Principal | None, now: datetime,
               policy: SignInPolicy) -> Link:
    """A one-time link for an account: by the one who manages it (``manages``), or by nobody
    (``by`` None: a person asking for a reset of their own password on the sign-in page)."""
    require_aware(now, "now")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    lasts = timedelta(days=policy.invitation_days) if purpose == "invitation" else timedelta(hours=policy.reset_hours)
    secret = secrets.token_urlsafe(32)
    with db.unit_of_work(core=True) as uow:
        account = uow.accounts.get(account_id)
        if account is None or account.disabled_at is not None:
            raise NotFound(f"no enabled account {account_id}", f"没有编号为 {account_id} 的启用账号")
        if by is not None and not manages(by, account):
            raise Forbidden(f"{by.actor.label} may not send a sign-in link to account {account.login!r}: an admin, "
                            "or the coordinator above the account, may",
                            f"{by.actor.label} 无权向账号 {account.login!r} 发送登录链接：只有管理员或该账号上级辖区的"
                            "协调人员可以")
        actor = SYSTEM if by is None else by.actor
        link_id = uow.sign_ins.add_link(account_id=account.id, purpose=purpose, secret_hash=_hash(secret),
                                        created_at=now, created_by=str(actor), expires_at=now + lasts)
        _record(uow, "LinkIssued", actor, now, account=account.id, login=account.login, purpose=purpose,
                link=link_id, expires_at=now + lasts)
        uow.commit()
    return Link(secret, LinkRecord(link_id, account.id, purpose, now, str(actor), now + lasts), account)


def reset_for_login(db: Storage, login: str, now: datetime, policy: SignInPolicy) -> Link | None:
    """A reset link for the enabled account with this login and an email address to mail it
    to; None otherwise (the page says the same either way)."""
    account = db.accounts.by_login(_clean_login(login))
    if account is None or account.disabled_at is not None or not account.email:
        return None
    return issue_link(db, account.id, "reset", by=None, now=now, policy=policy)


def open_link(db: Storage, secret: str, now: datetime) -> tuple[LinkRecord, AccountRecord]:
    """The link and its account, if it can still be used (``LinkInvalid`` saying why not)."""
    link = db.sign_ins.link(_hash(secret)) if secret and len(secret) <= 100 else None
    if link is None:
        raise LinkInvalid("this link is not valid: ask the coordinator above you for a new one",
                          "此链接无效：请向上级协调人员索取新的链接")
    if link.used_at is not None:
        raise LinkInvalid("this link has been used already: a link works once; sign in, or ask for a new one",
                          "此链接已使用过（每个链接只能使用一次）：请直接登录，或索取新的链接")
    if link.expires_at <= now:
        raise LinkInvalid("this link has expired: ask the coordinator above you for a new one",
                          "此链接已过期：请向上级协调人员索取新的链接")
    account = db.accounts.get(link.account_id)
    if account is None or account.disabled_at is not None:
        raise LinkInvalid("the account of this link is disabled", "此链接对应的账号已停用")
    return link, account


def use_link(db: Storage, secret: str, password: str, repeated: str, now: datetime) -> AccountRecord:
    """Set the account's password through a link: once; every session of the account ends, the
    lockout of its login is lifted."""
    link, account = open_link(db, secret, now)
    problems = ProblemList()
    _password_problems(password, problems)
    if password != repeated:
        problems.add("password2", "the two passwords differ", "两次输入的密码不一致")
    problems.raise_if_any("cannot set the password", "无法设置密码")
    hashed = hash_password(password)
    with db.unit_of_work(core=True) as uow:
        if not uow.sign_ins.use_link(link.id, now):
            raise LinkInvalid("this link has been used already", "此链接已使用过")
        uow.accounts.save(replace(account, password_hash=hashed))
        uow.sign_ins.end_sessions_of(account.id, now)
        uow.sign_ins.clear_failures(account.login)
        actor = principal_of(account, "console").actor
        _record(uow, "LinkUsed", actor, now, account=account.id, login=account.login, purpose=link.purpose,
                link=link.id)
        uow.operator.append("accounts", "PasswordSet", str(actor), now,
                            {"account": account.id, "login": account.login, "by_link": link.purpose})
        uow.commit()
    return account


def change_own_password(db: Storage, by: Principal, current: str, password: str, repeated: str,
                        now: datetime) -> None:
    """A signed-in person changes their password (the current one first); every session of the
    account ends, this one too: they sign in again with the new password."""
    account = db.accounts.get(by.account_id or 0)
    problems = ProblemList()
    if account is None or check_password(db, account.login, current) is None:
        problems.add("current", "the current password is not right", "当前密码不正确")
    _password_problems(password, problems)
    if password != repeated:
        problems.add("password2", "the two passwords differ", "两次输入的密码不一致")
    problems.raise_if_any("cannot change the password", "无法修改密码")
    assert account is not None
    with db.unit_of_work(core=True) as uow:
        uow.accounts.save(replace(account, password_hash=hash_password(password)))
        uow.sign_ins.end_sessions_of(account.id, now)
        uow.operator.append("accounts", "PasswordSet", str(by.actor), now,
                            {"account": account.id, "login": account.login, "by": "self"})
        uow.commit()
