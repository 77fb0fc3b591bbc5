"""notifications.testing.InMemoryTransport behaves like a transport with scripted failures."""
from __future__ import annotations

import asyncio

from notifications import Address, Transport
from notifications.testing import InMemoryTransport
from tests.notifications.helpers import NOW, UNIT, message


def test_records_sent_messages_and_lists_them_by_address() -> None:
    transport = InMemoryTransport()
    assert isinstance(transport, Transport)
    other = Address("other@example.cn")
    batch = [(message(1), NOW), (message(2, to=(other,)), NOW), (message(3, to=(UNIT, other)), NOW)]

    results = asyncio.run(transport.send_many(batch))

    assert all(r.ok for r in results)
    assert transport.sent == batch
    assert transport.batches == 1
    assert [m.message_id for m in transport.to("UNIT@example.cn")] == [batch[0][0].message_id, batch[2][0].message_id]
    assert [m.message_id for m in transport.to(other)] == [batch[1][0].message_id, batch[2][0].message_id]
    assert transport.to("nobody@example.cn") == []


def test_scripted_failures() -> None:
    transport = InMemoryTransport()
    gone, busy = Address("gone@example.cn"), Address("busy@example.cn")
    transport.fail(gone, permanent=True, code=550, detail="no such user")
    transport.fail("busy@example.cn", permanent=False, code=451, detail="try later")

    ok, permanent, temporary, partly = asyncio.run(
        transport.send_many(
            [(message(1), NOW), (message(2, to=(gone,)), NOW), (message(3, to=(busy,)), NOW), (message(4, to=(UNIT, gone)), NOW)]
        )
    )

    assert ok.ok
    assert (permanent.ok, permanent.permanent, permanent.code, permanent.detail) == (False, True, 550, "gone@example.cn: 550 no such user")
    assert (temporary.ok, temporary.permanent, temporary.code) == (False, False, 451)
    assert partly.ok and "550" in partly.detail
    assert [m.message_id for m, _ in transport.sent] == [message(1).message_id, message(4).message_id]
    assert transport.to(gone) == []

    transport.heal(gone)
    [healed] = asyncio.run(transport.send_many([(message(5, to=(gone,)), NOW)]))
    assert healed.ok


def test_down_makes_every_send_a_temporary_failure() -> None:
    transport = InMemoryTransport()
    transport.down(True)
    results = asyncio.run(transport.send_many([(message(n), NOW) for n in range(3)]))
    assert all(not r.ok and not r.permanent for r in results)
    assert transport.sent == []

    transport.down(False)
    assert all(r.ok for r in asyncio.run(transport.send_many([(message(9), NOW)])))
    assert len(transport.sent) == 1
    transport.clear()
    assert transport.sent == [] and transport.to(UNIT) == []


def test_invalid_message_is_a_permanent_failure() -> None:
    [result] = asyncio.run(InMemoryTransport().send_many([(message(1), NOW.replace(tzinfo=None))]))
    assert not result.ok and result.permanent
