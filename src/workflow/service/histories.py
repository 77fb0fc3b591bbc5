"""Histories as files: the events of a case, a unit or a whole round (in a subtree), as JSON
lines (the canonical form the hashes are computed over) or as CSV for a clerk (Beijing time,
each event's Chinese name beside its code, no cell a spreadsheet would run). One writer for
the API's downloads and the CLI's exports."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from ..domain.dates import BUSINESS_TZ
from ..domain.errors import InvalidInput
from ..domain.events import Event
from ..domain.lifecycle import EVENT_NAMES
from ..domain.operator import EVENT_NAMES as OPERATOR_EVENT_NAMES
from ..domain.operator import OperatorEvent
from ..domain.state import Actor
from ..domain.text import safe_row
from .ports import Storage

CSV_FIELDS = ("case_id", "seq", "event", "type", "actor", "who", "account", "via", "occurred_at", "payload",
              "prev_hash", "hash")
OPERATOR_FIELDS = ("stream", "seq", "event", "type", "actor", "who", "account", "via", "occurred_at", "payload",
                   "prev_hash", "hash")


def who_acted(text: str) -> tuple[str, str, str]:
    """(display name or kind:id, account id, channel) of an event's actor text, for a clerk."""
    try:
        actor = Actor.parse(text)
    except InvalidInput:  # an actor written before the rule: shown as it is
        return text, "", ""
    return (actor.name or f"{actor.kind}:{actor.id}", "" if actor.account is None else str(actor.account),
            actor.channel or "")


def round_events(db: Storage, round_id: str, within_path: str | None) -> tuple[int, Iterator[Event]]:
    """How many of the round's cases lie in the subtree, and their events case by case, in
    order (streamed as they are read)."""
    source = db.within(within_path)
    in_round = {c.id for c in source.all_cases() if c.round_id == round_id}
    return len(in_round), (e for e in source.all_events() if e.case_id in in_round)


def events_jsonl(events: Iterable[Event]) -> Iterator[str]:
    for e in events:
        yield json.dumps(e.to_dict(), ensure_ascii=False) + "\n"


def events_csv(events: Iterable[Event]) -> str:
    """The events as CSV (UTF-8 with BOM) for a clerk: the event's Chinese name beside its code,
    the time in Beijing time with its offset (+08:00); every cell through ``safe_row``. JSON
    lines keep the canonical UTC times the hashes are computed over."""
    return "".join(events_csv_lines(events))


def events_csv_lines(events: Iterable[Event], every: int = 500) -> Iterator[str]:
    """:func:`events_csv` in pieces of ``every`` rows, for a download that streams."""
    out = io.StringIO()
    out.write("\ufeff")  # Excel reads the Chinese as UTF-8
    w = csv.writer(out)
    w.writerow(CSV_FIELDS)
    for n, e in enumerate(events, start=1):
        d = e.to_dict()
        w.writerow(safe_row([d["case_id"], d["seq"], EVENT_NAMES.get(d["type"], d["type"]), d["type"], d["actor"],
                             *who_acted(d["actor"]),
                             e.occurred_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
                             json.dumps(d["payload"], ensure_ascii=False, sort_keys=True), d["prev_hash"],
                             d["hash"]]))
        if n % every == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def operator_jsonl(events: Iterable[OperatorEvent]) -> Iterator[str]:
    for e in events:
        yield json.dumps(e.to_dict(), ensure_ascii=False) + "\n"


def operator_csv_lines(events: Iterable[OperatorEvent], every: int = 500) -> Iterator[str]:
    """The operator log as CSV for a clerk (as :func:`events_csv_lines`), in pieces."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow(OPERATOR_FIELDS)
    for n, e in enumerate(events, start=1):
        w.writerow(safe_row([e.stream_name, e.seq, OPERATOR_EVENT_NAMES.get(e.type, e.type), e.type, e.actor,
                             *who_acted(e.actor), e.occurred_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
                             json.dumps(dict(e.payload), ensure_ascii=False, sort_keys=True), e.prev_hash, e.hash]))
        if n % every == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
