"""The robot channels in SQL (the ``ChannelStore`` port)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ...service.ports import ChannelRecord
from .directory import within
from .tables import channels, jurisdictions

_COLUMNS = (channels.c.id, channels.c.jurisdiction_id, channels.c.unit_id, channels.c.audience, channels.c.kind,
            channels.c.url, channels.c.secret, channels.c.name, channels.c.created_at, channels.c.created_by,
            channels.c.disabled_at)


def _record(row: Any) -> ChannelRecord:
    return ChannelRecord(*row)


class SqlChannels:
    WRITES: frozenset[str] = frozenset({"add", "disable"})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, channel: ChannelRecord) -> int:
        # the jurisdiction and unit are checked by the service before (service/channels.py)
        return int(self.conn.execute(insert(channels).values(
            jurisdiction_id=channel.jurisdiction_id, unit_id=channel.unit_id, audience=channel.audience,
            kind=channel.kind, url=channel.url, secret=channel.secret, name=channel.name,
            created_at=channel.created_at, created_by=channel.created_by).returning(channels.c.id)).scalar_one())

    def get(self, channel_id: int) -> ChannelRecord | None:
        row = self.conn.execute(select(*_COLUMNS).where(channels.c.id == channel_id)).first()
        return None if row is None else _record(row)

    def channels(self, within_path: str | None = None) -> list[ChannelRecord]:
        rows = self.conn.execute(select(*_COLUMNS).join(jurisdictions, jurisdictions.c.id == channels.c.jurisdiction_id)
                                 .where(within(jurisdictions.c.path, within_path)).order_by(channels.c.id))
        return [_record(r) for r in rows]

    def disable(self, channel_id: int, now: datetime) -> bool:
        done = self.conn.execute(update(channels).where(channels.c.id == channel_id, channels.c.disabled_at.is_(None))
                                 .values(disabled_at=now))
        return bool(done.rowcount)
