"""People's accounts in SQL (the ``AccountStore`` port)."""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from ...service.ports import AccountRecord
from .tables import accounts, jurisdictions, units
from .writes import insert_new

_UnitPlace = jurisdictions.alias("account_unit_place")
_FIELDS = ("login", "name", "role", "unit_id", "jurisdiction_id", "email", "phone", "password_hash", "created_at",
           "created_by", "home", "disabled_at", "disabled_by")


def _record(row: Any) -> AccountRecord:
    return AccountRecord(row.id, row.login, row.name, row.role, row.unit_id, row.jurisdiction_id, row.email,
                         row.phone, row.password_hash, row.created_at, row.created_by, row.home, row.disabled_at,
                         row.disabled_by, row.scope_path if row.scope_path is not None else row.unit_place)


class SqlAccounts:
    # Writes: refused outside a unit of work (a write must commit with the rest, or not at all).
    WRITES: frozenset[str] = frozenset({"add", "save"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _select(self) -> Any:
        return (select(accounts, jurisdictions.c.path.label("scope_path"), _UnitPlace.c.path.label("unit_place"))
                .outerjoin(jurisdictions, jurisdictions.c.id == accounts.c.jurisdiction_id)
                .outerjoin(units, units.c.id == accounts.c.unit_id)
                .outerjoin(_UnitPlace, _UnitPlace.c.id == units.c.jurisdiction_id))

    def get(self, account_id: int) -> AccountRecord | None:
        row = self.conn.execute(self._select().where(accounts.c.id == account_id)).first()
        return None if row is None else _record(row)

    def by_login(self, login: str) -> AccountRecord | None:
        row = self.conn.execute(self._select().where(accounts.c.login == login)).first()
        return None if row is None else _record(row)

    def by_name(self, home: str, name: str) -> AccountRecord | None:
        row = self.conn.execute(self._select().where(accounts.c.home == home, accounts.c.name == name)).first()
        return None if row is None else _record(row)

    def all(self, within_path: str | None = None) -> list[AccountRecord]:
        query = self._select().order_by(accounts.c.id)
        if within_path is not None:
            query = query.where(or_(jurisdictions.c.path.startswith(within_path, autoescape=True),
                                    _UnitPlace.c.path.startswith(within_path, autoescape=True)))
        return [_record(row) for row in self.conn.execute(query)]

    def add(self, account: AccountRecord) -> int:
        values = {k: v for k, v in asdict(account).items() if k in _FIELDS}
        return int(insert_new(self.conn, insert(accounts).values(**values).returning(accounts.c.id),
                              f"an account with the login {account.login!r} or the name {account.name!r} "
                              "already exists there",
                              f"{account.home or '系统'} 内已有登录名为 {account.login!r} "
                              f"或名为 {account.name!r} 的账号",
                              login=account.login))

    def save(self, account: AccountRecord) -> None:
        values = {k: v for k, v in asdict(account).items() if k in _FIELDS}
        insert_new(self.conn, update(accounts).where(accounts.c.id == account.id).values(**values),
                   f"another account already has the name {account.name!r} there",
                   f"{account.home or '系统'} 内已有名为 {account.name!r} 的其他账号", login=account.login)
