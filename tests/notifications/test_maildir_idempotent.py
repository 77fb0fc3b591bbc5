"""A message handed to the Maildir twice (a dispatcher that died after delivering it but
before recording that) is stored once."""
from __future__ import annotations

import asyncio
import mailbox
from datetime import UTC, datetime, timedelta

from notifications import Address, MaildirTransport, OutgoingMessage


def test_same_message_id_is_stored_once(tmp_path) -> None:
    msg = OutgoingMessage(sender=Address("noreply@workflow.local", "节约型机关创建工作"),
                          to=(Address("unit1@example.cn", "省委办公厅"),), subject="提醒", text="请于10月20日前提交。",
                          message_id="<reminder.1.self_assessment.7@workflow.local>")
    other = OutgoingMessage(sender=msg.sender, to=msg.to, subject="提醒", text="另一封",
                            message_id="<reminder.2.self_assessment.7@workflow.local>")
    box = MaildirTransport(tmp_path / "mail")
    when = datetime(2021, 10, 13, 1, tzinfo=UTC)
    first = asyncio.run(box.send_many([(msg, when)]))
    again = asyncio.run(box.send_many([(msg, when + timedelta(hours=1)), (other, when)]))
    assert first[0].ok and all(r.ok for r in again) and first[0].detail == again[0].detail
    messages = list(mailbox.Maildir(tmp_path / "mail", create=False))
    assert sorted(m["Message-ID"] for m in messages) == sorted([msg.message_id, other.message_id])
