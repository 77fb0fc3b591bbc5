"""API tokens: made once (the secret is shown once and stored as its SHA-256), revocable,
optionally expiring."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..domain.access import Principal
from ..domain.dates import require_aware
from ..domain.errors import Forbidden, InvalidInput, NotFound, Problem
from ..domain.state import Actor
from .accounts import manages
from .ports import Storage, TokenRecord

PREFIX = "wf_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    secret: str  # shown once, never stored


def create_token(db: Storage, *, account_id: int, by: Principal, now: datetime,
                 expires_at: datetime | None = None) -> NewToken:
    """A new token for an account (its role and scope are the account's): by the account's own
    person, the coordinator above it or an admin; recorded on the operator stream ``tokens``."""
    require_aware(now, "now")
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        raise InvalidInput("cannot create the token", [Problem("expires", "must be a time in the future, with its "
                                                               "time zone", "须为将来的时间，并带时区")],
                           "无法发放令牌")
    with db.unit_of_work(core=True) as uow:
        account = uow.accounts.get(account_id)
        if account is None or account.disabled_at is not None:
            raise NotFound(f"no enabled account {account_id}", f"没有编号为 {account_id} 的启用账号")
        if account.id != by.account_id and by.role != "admin" and not (
                account.path is not None and by.sees_path(account.path)):
            raise NotFound(f"no enabled account {account_id}", f"没有编号为 {account_id} 的启用账号")
        if account.id != by.account_id and not manages(by, account):
            raise Forbidden(f"{by.actor.label} may not issue tokens for account {account.login!r}: the account's "
                            "own person, the coordinator above it or an admin may",
                            f"{by.actor.label} 无权为账号 {account.login!r} 发放令牌："
                            "只有本人、上级协调人员或管理员可以")
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = uow.tokens.add(name=account.login, role=account.role, unit_id=account.unit_id,
                                  jurisdiction_id=account.jurisdiction_id, token_hash=_hash(secret), created_at=now,
                                  created_by=str(by.actor), expires_at=expires_at, account_id=account.id)
        uow.operator.append("tokens", "TokenIssued", str(by.actor), now,
                            {"token": token_id, "account": account.id, "login": account.login,
                             "expires_at": expires_at})
        uow.commit()
    return NewToken(token_id, secret)


def revoke_token(db: Storage, token_id: int, now: datetime, *, by: Actor) -> None:
    """Revoke a token at once, recording who revoked it."""
    with db.unit_of_work(core=True) as uow:
        done = uow.tokens.revoke(token_id, now, str(by))
        if done:
            uow.operator.append("tokens", "TokenRevoked", str(by), now, {"token": token_id})
        uow.commit()
    if not done:
        raise NotFound(f"no active token {token_id}", f"没有编号为 {token_id} 的有效令牌")


def authenticate(db: Storage, secret: str, now: datetime) -> Principal | None:
    """The principal of a valid token; None for an unknown, revoked or expired one, or one whose
    account is disabled."""
    if not secret.startswith(PREFIX):
        return None
    token = db.tokens.by_hash(_hash(secret))
    if token is None or token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if token.account_disabled:
        return None
    # a coordinator's or auditor's jurisdiction that cannot be resolved gives a principal that sees nothing
    return Principal(token.id, token.account_login or token.name, token.role, token.unit_id, token.path,
                     token.unit_path, token.account_id, token.account_name)


def list_tokens(db: Storage) -> list[TokenRecord]:
    return db.tokens.all()
