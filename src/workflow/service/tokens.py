"""API tokens: made once (the secret is shown once and stored as its SHA-256), revocable,
optionally expiring."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update

from ..adapters.db.store import Database
from ..adapters.db.tables import ApiToken, Jurisdiction, Unit
from ..clock import require_aware
from ..domain.access import ROLES, Principal
from ..domain.errors import NotFound, ProblemList

PREFIX = "wf_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    id: int
    secret: str  # shown once, never stored


def create_token(db: Database, *, name: str, role: str, unit_id: int | None = None,
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
    with db.write_connection() as conn:
        if role == "unit":
            if unit_id is None or conn.execute(select(Unit.id).where(Unit.id == unit_id)).first() is None:
                problems.add("scope", f"a unit token needs an existing unit id; got {unit_id!r}")
            if jurisdiction_id is not None:
                problems.add("scope", "a unit token is scoped to its unit only")
        elif role in ("coordinator", "auditor"):
            if jurisdiction_id is None or conn.execute(
                    select(Jurisdiction.id).where(Jurisdiction.id == jurisdiction_id)).first() is None:
                problems.add("scope", f"a {role} token needs an existing jurisdiction; got {jurisdiction_id!r}")
            if unit_id is not None:
                problems.add("scope", f"a {role} token is scoped to a jurisdiction, not a unit")
        elif role == "admin" and (unit_id is not None or jurisdiction_id is not None):
            problems.add("scope", "an admin token has no scope")
        problems.raise_if_any("cannot create the token")
        secret = PREFIX + secrets.token_urlsafe(32)
        token_id = conn.execute(insert(ApiToken).values(
            name=name.strip(), role=role, unit_id=unit_id, jurisdiction_id=jurisdiction_id,
            token_hash=_hash(secret), created_at=now, created_by=created_by, expires_at=expires_at,
        ).returning(ApiToken.id)).scalar_one()
    return NewToken(token_id, secret)


def revoke_token(db: Database, token_id: int, now: datetime) -> None:
    with db.write_connection() as conn:
        done = conn.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                            .values(revoked_at=now)).rowcount
    if not done:
        raise NotFound(f"no active token {token_id}")


def authenticate(db: Database, secret: str, now: datetime) -> Principal | None:
    """The principal of a valid token; None for an unknown, revoked or expired one."""
    if not secret.startswith(PREFIX):
        return None
    with db.engine.connect() as conn:
        row = conn.execute(select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.unit_id,
                                  ApiToken.expires_at, ApiToken.revoked_at, Jurisdiction.path)
                           .outerjoin(Jurisdiction, Jurisdiction.id == ApiToken.jurisdiction_id)
                           .where(ApiToken.token_hash == _hash(secret))).first()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return Principal(row.id, row.name, row.role, row.unit_id, row.path)


def list_tokens(db: Database) -> list:
    with db.engine.connect() as conn:
        return conn.execute(select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.unit_id,
                                   ApiToken.jurisdiction_id, ApiToken.created_at, ApiToken.expires_at,
                                   ApiToken.revoked_at).order_by(ApiToken.id)).all()
