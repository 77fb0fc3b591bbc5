"""Test doubles shipped with the package (like ``structlog.testing``).

:class:`InMemoryTransport` records what would have been sent and can be told to fail:

    transport = InMemoryTransport()
    transport.fail("bad@example.cn", permanent=True, code=550, detail="no such user")
    transport.down(True)        # every send is now a temporary failure (an outage)
    results = await transport.send_many([(message, now)])
    transport.sent              # [(message, now), ...] delivered, in order
    transport.to("unit@example.cn")  # messages delivered to that address
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from .message import Address, OutgoingMessage
from .transport import DeliveryResult, build

__all__ = ["InMemoryTransport"]


@dataclass(frozen=True)
class _Failure:
    permanent: bool
    code: int
    detail: str


def _key(address: str | Address) -> str:
    return (address.email if isinstance(address, Address) else address).lower()


class InMemoryTransport:
    """A transport that keeps delivered messages in memory; failures are scripted.

    It follows :class:`~notifications.transport.SmtpTransport`'s rules: each message is
    built with ``to_email`` (an invalid one is a permanent failure); a message whose
    recipients all fail is a failure (permanent only if every failure is), one with some
    failing recipients is delivered to the others (``ok=True``, refusals in ``detail``).
    ``batches`` counts ``send_many`` calls.
    """

    def __init__(self) -> None:
        self.sent: list[tuple[OutgoingMessage, datetime]] = []
        self.batches = 0
        self._delivered_to: list[frozenset[str]] = []
        self._failures: dict[str, _Failure] = {}
        self._down = False

    def fail(self, address: str | Address, permanent: bool = True, code: int = 550, detail: str = "refused") -> None:
        """Make every later send to ``address`` fail with ``code``/``detail``."""
        self._failures[_key(address)] = _Failure(permanent, code, detail)

    def heal(self, address: str | Address) -> None:
        """Undo :meth:`fail` for ``address``."""
        self._failures.pop(_key(address), None)

    def down(self, flag: bool = True) -> None:
        """While down, every message is a temporary failure (no code), as in an outage."""
        self._down = flag

    def to(self, address: str | Address) -> list[OutgoingMessage]:
        """Messages delivered to ``address`` (case-insensitive), in order."""
        wanted = _key(address)
        return [msg for (msg, _), rcpts in zip(self.sent, self._delivered_to) if wanted in rcpts]

    def clear(self) -> None:
        """Forget what was sent (scripted failures and the down flag stay)."""
        self.sent.clear()
        self._delivered_to.clear()

    async def send_many(self, messages: Sequence[tuple[OutgoingMessage, datetime]]) -> list[DeliveryResult]:
        """Record each deliverable message; one result per message, in order."""
        self.batches += 1
        return [self._send_one(msg, when) for msg, when in messages]

    def _send_one(self, msg: OutgoingMessage, when: datetime) -> DeliveryResult:
        built = build(msg, when)
        if isinstance(built, DeliveryResult):
            return built
        if self._down:
            return DeliveryResult(msg.message_id, ok=False, permanent=False, detail="transport down")
        refused = {_key(a): self._failures[_key(a)] for a in msg.to if _key(a) in self._failures}
        delivered = frozenset(_key(a) for a in msg.to) - refused.keys()
        detail = "; ".join(f"{rcpt}: {f.code} {f.detail}" for rcpt, f in refused.items())
        if not delivered:
            temporary = [f for f in refused.values() if not f.permanent]
            first = temporary[0] if temporary else next(iter(refused.values()))
            return DeliveryResult(msg.message_id, ok=False, permanent=not temporary, code=first.code, detail=detail)
        self.sent.append((msg, when))
        self._delivered_to.append(delivered)
        return DeliveryResult(msg.message_id, ok=True, detail=f"partly refused: {detail}" if refused else "queued")
