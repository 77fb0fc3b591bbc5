"""API tokens in SQL (the ``TokenStore`` port)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ...service.ports import TokenRecord
from .tables import accounts, api_tokens, jurisdictions, units
from .writes import insert_new

_UnitPlace = jurisdictions.alias("unit_place")
_COLUMNS = (api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.unit_id, api_tokens.c.jurisdiction_id,
            api_tokens.c.created_at, api_tokens.c.created_by, api_tokens.c.expires_at, api_tokens.c.revoked_at,
            jurisdictions.c.path,
            _UnitPlace.c.path, api_tokens.c.revoked_by, api_tokens.c.account_id, accounts.c.login, accounts.c.name,
            accounts.c.disabled_at.is_not(None))


class SqlTokens:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"add", "revoke"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self) -> Any:
        # one query: the token, its jurisdiction's path, and (a unit token) where its unit sits
        return (select(*_COLUMNS).outerjoin(jurisdictions, jurisdictions.c.id == api_tokens.c.jurisdiction_id)
                .outerjoin(units, units.c.id == api_tokens.c.unit_id)
                .outerjoin(_UnitPlace, _UnitPlace.c.id == units.c.jurisdiction_id)
                .outerjoin(accounts, accounts.c.id == api_tokens.c.account_id))

    def by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self.conn.execute(self._select().where(api_tokens.c.token_hash == token_hash)).first()
        return None if row is None else TokenRecord(*row)

    def all(self) -> list[TokenRecord]:
        return [TokenRecord(*row) for row in self.conn.execute(self._select().order_by(api_tokens.c.id))]

    def add(self, *, name: str, role: str, unit_id: int | None, jurisdiction_id: str | None, token_hash: str,
            created_at: datetime, created_by: str, expires_at: datetime | None, account_id: int | None = None) -> int:
        return int(insert_new(self.conn, insert(api_tokens).values(
            name=name, role=role, unit_id=unit_id, jurisdiction_id=jurisdiction_id, token_hash=token_hash,
            created_at=created_at, created_by=created_by, expires_at=expires_at, account_id=account_id)
            .returning(api_tokens.c.id),
            "a token with this secret already exists", "已有相同密钥的令牌"))

    def revoke(self, token_id: int, now: datetime, by: str) -> bool:
        done = self.conn.execute(update(api_tokens).where(api_tokens.c.id == token_id,
                                                          api_tokens.c.revoked_at.is_(None))
                                 .values(revoked_at=now, revoked_by=by))
        return bool(done.rowcount)
