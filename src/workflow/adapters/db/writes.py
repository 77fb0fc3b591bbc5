"""How the SQL stores write a row that must be new, and refuse one that points at nothing:
the same errors on SQLite and PostgreSQL, and a unit of work that stays usable after one."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import IntegrityError

from ...domain.errors import AlreadyExists, NotFound

# What the rows a write refers to are called in Chinese (the memory store names them alike).
NAMES_ZH = {"round": "轮次", "jurisdiction": "地区", "province": "省", "unit": "单位", "case": "案件",
            "coordinator": "协调人员", "account": "账号"}


def insert_new(conn: Connection, statement: Any, exists: str, exists_zh: str | None = None, **details: Any) -> Any:
    """Run an insert in a savepoint (so a refusal leaves the transaction usable on PostgreSQL)
    and return the value it returns, if any; a unique key already taken is ``AlreadyExists``
    (``exists_zh``: its message in Chinese; without it, the English one is quoted in a Chinese one)."""
    try:
        with conn.begin_nested():
            result = conn.execute(statement)
            return result.scalar_one() if result.returns_rows else None
    except IntegrityError as exc:  # taken meanwhile (the referenced rows were checked before)
        raise AlreadyExists(exists, exists_zh or f"已存在，未保存（{exists}）", **details) from exc


def require(conn: Connection, table: Table, key: Any, what: str) -> None:
    """``NotFound`` unless ``table`` has a row with this id (checked before a write refers to it)."""
    if conn.execute(select(table.c.id).where(table.c.id == key)).first() is None:
        raise NotFound(f"{what} {key!r} does not exist", f"{NAMES_ZH.get(what, what)} {key!r} 不存在")
