"""Events: past-tense facts about a case, hash-chained per case.

An event's hash covers its case, sequence number, type, actor, time, payload and the
previous event's hash, so altering, removing or reordering any stored event breaks
the chain from that point on.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64


def _check_json_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        raise TypeError(f"{where}: floats are not allowed in event payloads; use a Decimal string")
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            _check_json_value(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-safe; convert it (Decimal and date to str)")


def to_payload_value(value: Any) -> Any:
    """Convert domain values to their payload form: Decimal → str, date → ISO str."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def canonical_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def utc_iso(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        if moment.tzinfo is None:
            raise ValueError(f"event time must be timezone-aware, got {moment.isoformat()}")
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def chain_hash(case_id: int | str, seq: int, type_: str, actor: str, occurred_at: datetime | str,
               payload_json: str, prev_hash: str) -> str:
    """``occurred_at`` as an aware datetime, or already as its UTC ISO text. ``case_id`` names
    the stream: a case's id, or another stream's key (a jurisdiction's duties in a round)."""
    at = occurred_at if isinstance(occurred_at, str) else utc_iso(occurred_at)
    material = f"{case_id}\x1f{seq}\x1f{type_}\x1f{actor}\x1f{at}\x1f{payload_json}\x1f{prev_hash}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class Chained:
    """What every hash-chained event has: its payload as hashed, and the hash it should have
    (recomputed from the fields themselves, never from a cached text: this is the audit)."""

    __slots__ = ()
    seq: int
    type: str
    actor: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    payload_text: str | None
    prev_hash: str

    def stream(self) -> int | str:
        """What the hash names as the event's stream (a case id, or another stream's key)."""
        raise NotImplementedError

    @property
    def payload_json(self) -> str:
        return self.payload_text if self.payload_text is not None else canonical_json(self.payload)

    def expected_hash(self) -> str:
        return chain_hash(self.stream(), self.seq, self.type, self.actor, self.occurred_at, self.payload_json,
                          self.prev_hash)


@dataclass(frozen=True, slots=True)
class Event(Chained):
    case_id: int
    seq: int
    type: str
    actor: str
    occurred_at: datetime
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    position: int | None = None  # global order in the store, once stored
    payload_text: str | None = None  # the payload exactly as stored and hashed, when known
    at_iso: str | None = None  # occurred_at as hashed (UTC ISO text), when known

    @property
    def occurred_iso(self) -> str:
        return self.at_iso if self.at_iso is not None else utc_iso(self.occurred_at)

    def stream(self) -> int:
        return self.case_id

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-safe data (what auditors export)."""
        return {
            "position": self.position,
            "case_id": self.case_id,
            "seq": self.seq,
            "type": self.type,
            "actor": self.actor,
            "occurred_at": utc_iso(self.occurred_at),
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


_PLAIN = frozenset({str, int, bool, type(None)})


def new_event(case_id: int, seq: int, type_: str, actor: str, occurred_at: datetime,
              payload: Mapping[str, Any], prev_hash: str) -> Event:
    clean = {k: v if type(v) in _PLAIN else to_payload_value(v) for k, v in payload.items()}
    if any(type(v) not in _PLAIN for v in clean.values()):
        _check_json_value(clean, f"{type_}.payload")
    body = canonical_json(clean)
    at = utc_iso(occurred_at)
    if occurred_at.tzinfo is not UTC:
        occurred_at = occurred_at.astimezone(UTC)
    return Event(case_id, seq, type_, actor, occurred_at, clean, prev_hash,
                 chain_hash(case_id, seq, type_, actor, at, body, prev_hash), payload_text=body, at_iso=at)
