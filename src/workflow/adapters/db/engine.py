"""Engines for SQLite (the embedded default) and PostgreSQL.

SQLite: WAL, ``synchronous=FULL`` (a committed transition survives a power cut),
foreign keys on, a busy timeout, and transactions begun explicitly so that a write
unit of work can take the write lock up front (``BEGIN IMMEDIATE``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ...domain.errors import ConfigError

SQLITE_BEGIN_OPTION = "sqlite_begin"


def make_engine(url: str, *, busy_timeout_ms: int = 10_000, echo: bool = False,
                pool_size: int | None = None, max_overflow: int | None = None, **kwargs: Any) -> Engine:
    """An engine with our settings. ``pool_size``/``max_overflow`` apply to PostgreSQL only (SQLite's
    connections are cheap files; its default pool is kept)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ConfigError(f"SQLite needs a database file (sqlite:///path/to/file.db), got {url!r}: "
                              "an in-memory database is not shared between connections",
                              f"SQLite 需要一个数据库文件（sqlite:///path/to/file.db），收到 {url!r}："
                              "内存数据库无法在连接间共享")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, echo=echo, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if pool_size is not None:
        kwargs.setdefault("pool_size", pool_size)
    if max_overflow is not None:
        kwargs.setdefault("max_overflow", max_overflow)
    return create_engine(parsed, echo=echo, **kwargs)


def prepare_sqlite_connection(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    """The settings every SQLite connection of ours has, pooled or not."""
    # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED).
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = FULL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    engine.sqlite_busy_timeout_ms = busy_timeout_ms  # type: ignore[attr-defined]  # read by Database

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        prepare_sqlite_connection(dbapi_connection, busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN"))

