"""MaildirTransport writes files any mail client can open."""
from __future__ import annotations

import asyncio
import mailbox
from pathlib import Path

from notifications import MaildirTransport, Transport
from tests.notifications.helpers import NOW, message, parse


def test_writes_readable_messages_into_new(tmp_path: Path) -> None:
    box_path = tmp_path / "outbox"
    transport = MaildirTransport(box_path)
    assert isinstance(transport, Transport)
    batch = [(message(n), NOW) for n in range(3)]

    results = asyncio.run(transport.send_many(batch))

    assert [r.ok for r in results] == [True] * 3
    assert [r.message_id for r in results] == [m.message_id for m, _ in batch]
    assert sorted(p.name for p in box_path.iterdir()) == ["cur", "new", "tmp"]
    assert list((box_path / "tmp").iterdir()) == []
    files = sorted((box_path / "new").iterdir())
    assert len(files) == 3
    parsed = {parse(f.read_bytes())["Message-ID"]: parse(f.read_bytes()) for f in files}
    assert set(parsed) == {m.message_id for m, _ in batch}
    first = parsed[batch[0][0].message_id]
    assert first["Subject"] == batch[0][0].subject
    assert first["From"].addresses[0].display_name == "省机关事务管理局"
    body = first.get_body(("plain",))
    assert body is not None and body.get_content() == batch[0][0].text


def test_mailbox_module_reads_it_back(tmp_path: Path) -> None:
    asyncio.run(MaildirTransport(tmp_path / "box").send_many([(message(1), NOW)]))
    box = mailbox.Maildir(tmp_path / "box", factory=None, create=False)
    [key] = box.keys()
    assert parse(box.get_bytes(key))["Message-ID"] == message(1).message_id


def test_invalid_message_is_permanent_and_a_write_error_temporary(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    bad_date, unwritable = asyncio.run(
        MaildirTransport(blocker / "box").send_many([(message(1), NOW.replace(tzinfo=None)), (message(2), NOW)])
    )
    assert not bad_date.ok and bad_date.permanent
    assert not unwritable.ok and not unwritable.permanent
