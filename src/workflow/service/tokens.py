"""API tokens: made once (the secret is shown once and stored as its SHA-256), revocable,
optionally expiring."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..domain.access import ROLES, Principal
from ..domain.dates import require_aware
from ..domain.errors import InvalidInput, NotFound, Problem, ProblemList
from .ports import Storage, TokenRecord

PREFIX = "wf_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    secret: str  # shown once, never stored


def create_token(db: Storage, *, name: str, role: str, unit_id: int | None = None,
                 jurisdiction_id: str | None = None, expires_at: datetime | None = None, created_by: str,
                 now: datetime) -> NewToken:
    require_aware(now, "now")
    problems = ProblemList()
    if role not in ROLES:
        problems.add("role", f"must be one of {', '.join(ROLES)}; got {role!r}")
    if not name or not name.strip() or len(name) > 200:
        problems.add("name", "a name of 1-200 characters (it is the actor in the history)")
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
        problems.add("expires", "must be a time in the future, with its time zone")
    with db.unit_of_work(core=True) as uow:
        if role == "unit":
            if unit_id is None or uow.directory.unit(unit_id) is None:
                problems.add("scope", f"a unit token needs an existing unit id; got {unit_id!r}")
            if jurisdiction_id is not None:
                problems.add("scope", "a unit token is scoped to its unit only")
        elif role in ("coordinator", "auditor"):
            if jurisdiction_id is None or uow.directory.jurisdiction(jurisdiction_id) is None:
                problems.add("scope", f"a {role} token needs an existing jurisdiction; got {jurisdiction_id!r}")
            if unit_id is not None:
                problems.add("scope", f"a {role} token is scoped to a jurisdiction, not a unit")
        elif role == "admin" and (unit_id is not None or jurisdiction_id is not None):
            problems.add("scope", "an admin token has no scope")
        problems.raise_if_any("cannot create the token")
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = uow.tokens.add(name=name.strip(), role=role, unit_id=unit_id, jurisdiction_id=jurisdiction_id,
                                  token_hash=_hash(secret), created_at=now, created_by=created_by,
                                  expires_at=expires_at)
        uow.commit()
    return NewToken(token_id, secret)


def revoke_token(db: Storage, token_id: int, now: datetime, *, by: str) -> None:
    """Revoke a token at once, recording who revoked it (an actor, e.g. ``admin:王科长``)."""
    if not by or not by.strip() or len(by) > 200:
        raise InvalidInput("who revokes the token must be named",
                           [Problem("revoked_by", "an actor of 1-200 characters", "需注明撤销人")], "需注明撤销人")
    with db.unit_of_work(core=True) as uow:
        done = uow.tokens.revoke(token_id, now, by.strip())
        uow.commit()
    if not done:
        raise NotFound(f"no active token {token_id}")


def authenticate(db: Storage, secret: str, now: datetime) -> Principal | None:
    """The principal of a valid token; None for an unknown, revoked or expired one."""
    if not secret.startswith(PREFIX):
        return None
    token = db.tokens.by_hash(_hash(secret))
    if token is None or token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    # a coordinator's or auditor's jurisdiction that cannot be resolved gives a principal that sees nothing
    return Principal(token.id, token.name, token.role, token.unit_id, token.path, token.unit_path)


def list_tokens(db: Storage) -> list[TokenRecord]:
    return db.tokens.all()
