"""API tokens in SQL (the ``TokenStore`` port)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.orm import aliased

from ...service.ports import TokenRecord
from .tables import ApiToken, Jurisdiction, Unit

_UnitPlace = aliased(Jurisdiction)
_COLUMNS = (ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.unit_id, ApiToken.jurisdiction_id,
            ApiToken.created_at, ApiToken.created_by, ApiToken.expires_at, ApiToken.revoked_at, Jurisdiction.path,
            _UnitPlace.path)


class SqlTokens:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self) -> Any:
        # one query: the token, its jurisdiction's path, and (a unit token) where its unit sits
        return (select(*_COLUMNS).outerjoin(Jurisdiction, Jurisdiction.id == ApiToken.jurisdiction_id)
                .outerjoin(Unit, Unit.id == ApiToken.unit_id).outerjoin(_UnitPlace, _UnitPlace.id == Unit.jurisdiction_id))

    def by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self.conn.execute(self._select().where(ApiToken.token_hash == token_hash)).first()
        return None if row is None else TokenRecord(*row)

    def all(self) -> list[TokenRecord]:
        return [TokenRecord(*row) for row in self.conn.execute(self._select().order_by(ApiToken.id))]

    def add(self, *, name: str, role: str, unit_id: int | None, jurisdiction_id: str | None, token_hash: str,
            created_at: datetime, created_by: str, expires_at: datetime | None) -> int:
        return int(self.conn.execute(insert(ApiToken).values(
            name=name, role=role, unit_id=unit_id, jurisdiction_id=jurisdiction_id, token_hash=token_hash,
            created_at=created_at, created_by=created_by, expires_at=expires_at).returning(ApiToken.id)).scalar_one())

    def revoke(self, token_id: int, now: datetime) -> bool:
        done = self.conn.execute(update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                                 .values(revoked_at=now))
        return bool(done.rowcount)
