"""The console's sign-ins in SQL (the ``SignInStore`` port): sessions, failures, links."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

from ...service.ports import LinkRecord, SessionRecord
from .tables import account_links, console_sessions, sign_in_failures
from .writes import insert_new

_SESSION = (console_sessions.c.id, console_sessions.c.account_id, console_sessions.c.csrf,
            console_sessions.c.created_at, console_sessions.c.expires_at, console_sessions.c.ended_at)
_LINK = (account_links.c.id, account_links.c.account_id, account_links.c.purpose, account_links.c.created_at,
         account_links.c.created_by, account_links.c.expires_at, account_links.c.used_at)


class SqlSignIns:
    WRITES: frozenset[str] = frozenset({"add_session", "end_session", "end_sessions_of", "set_failures",
                                        "clear_failures", "add_link", "use_link"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add_session(self, *, account_id: int, secret_hash: str, csrf: str, created_at: datetime,
                    expires_at: datetime, address: str | None) -> int:
        return int(insert_new(self.conn, insert(console_sessions).values(
            account_id=account_id, secret_hash=secret_hash, csrf=csrf, created_at=created_at, expires_at=expires_at,
            address=address).returning(console_sessions.c.id),
            "a session with this secret already exists", "已有相同密钥的会话"))

    def session(self, secret_hash: str) -> SessionRecord | None:
        row = self.conn.execute(select(*_SESSION).where(console_sessions.c.secret_hash == secret_hash)).first()
        return None if row is None else SessionRecord(*row)

    def end_session(self, session_id: int, now: datetime) -> bool:
        done = self.conn.execute(update(console_sessions).where(console_sessions.c.id == session_id,
                                                                console_sessions.c.ended_at.is_(None))
                                 .values(ended_at=now))
        return bool(done.rowcount)

    def end_sessions_of(self, account_id: int, now: datetime) -> int:
        done = self.conn.execute(update(console_sessions).where(console_sessions.c.account_id == account_id,
                                                                console_sessions.c.ended_at.is_(None))
                                 .values(ended_at=now))
        return int(done.rowcount)

    def failures(self, login: str) -> tuple[int, datetime | None, datetime | None]:
        row = self.conn.execute(select(sign_in_failures.c.failures, sign_in_failures.c.first_at,
                                       sign_in_failures.c.locked_until)
                                .where(sign_in_failures.c.login == login)).first()
        return (0, None, None) if row is None else (int(row[0]), row[1], row[2])

    def set_failures(self, login: str, failures: int, first_at: datetime, locked_until: datetime | None) -> None:
        values = {"failures": failures, "first_at": first_at, "locked_until": locked_until}
        done = self.conn.execute(update(sign_in_failures).where(sign_in_failures.c.login == login).values(**values))
        if not done.rowcount:
            insert_new(self.conn, insert(sign_in_failures).values(login=login, **values),
                       "a concurrent failed sign-in was recorded for this login", "此登录名的失败登录已被同时记录")

    def clear_failures(self, login: str) -> None:
        self.conn.execute(delete(sign_in_failures).where(sign_in_failures.c.login == login))

    def add_link(self, *, account_id: int, purpose: str, secret_hash: str, created_at: datetime, created_by: str,
                 expires_at: datetime) -> int:
        return int(insert_new(self.conn, insert(account_links).values(
            account_id=account_id, purpose=purpose, secret_hash=secret_hash, created_at=created_at,
            created_by=created_by, expires_at=expires_at).returning(account_links.c.id),
            "a link with this secret already exists", "已有相同密钥的链接"))

    def link(self, secret_hash: str) -> LinkRecord | None:
        row = self.conn.execute(select(*_LINK).where(account_links.c.secret_hash == secret_hash)).first()
        return None if row is None else LinkRecord(*row)

    def use_link(self, link_id: int, now: datetime) -> bool:
        done = self.conn.execute(update(account_links).where(account_links.c.id == link_id,
                                                             account_links.c.used_at.is_(None)).values(used_at=now))
        return bool(done.rowcount)
