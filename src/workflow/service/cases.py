"""Case commands, and the one path every change of a case takes.

``take`` is that path: the domain decides what the action means, the event is applied to the
case, the new projection and the event are appended together (guarded by the case's version),
and the notices the event implies go to the outbox in the same transaction. Every service that
changes a case — a person's action, the sweep's misses and expiries, a spot check, a filing, a
failed notification — goes through it. ``recall`` is the one idempotency check.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..domain.case import Actor, CaseState, RoundContext, allowed_actions, apply, decide, notices_for
from ..domain.dates import require_aware
from ..domain.errors import ConflictError, Forbidden
from ..domain.events import Event
from ..domain.lifecycle import ACTIONS, action_zh
from .ports import CaseStore, CaseStoreFactory, Remembered, Storage


@dataclass(frozen=True, slots=True)
class ActionResult:
    case: CaseState
    event: Event
    ctx: RoundContext
    now: datetime

    @property
    def allowed(self) -> list[str]:
        """What may happen next to the case (computed when asked)."""
        return allowed_actions(self.case, self.ctx, self.now)


def take(uow: CaseStore, case: CaseState, action: str, data: Mapping[str, Any] | None, actor: Actor,
         now: datetime, ctx: RoundContext | None = None) -> tuple[CaseState, Event]:
    """Decide ``action`` on ``case`` and record it in ``uow``: the event, the new projection and
    the notices it implies. Returns the case after and the event (nothing is committed)."""
    ctx = ctx or uow.round_context(case.round_id)
    event = decide(case, action, data, actor, now, ctx)
    after = apply(case, event)
    uow.append(case, event, after)
    for notice in notices_for(event):
        uow.notify(after, notice, now)
    return after, event


def take_many(uow: CaseStore, cases: Sequence[CaseState], action: str, data: Mapping[str, Any] | None,
              actor: Actor, now: datetime, ctx: RoundContext | None = None) -> list[tuple[CaseState, Event]]:
    """``take`` for many cases of one round at once: each case decided and applied on its own
    (the same rules, its own hash chain), then the batch appended together (every case still
    guarded by its version: ConflictError if any moved, and the unit of work must be rolled
    back) with the notices the events imply. Returns each case after and its event, in order."""
    if not cases:
        return []
    ctx = ctx or uow.round_context(cases[0].round_id)
    changes = []
    for case in cases:
        if case.round_id != ctx.round_id:
            raise ValueError(f"take_many takes the cases of one round: case {case.id} is of {case.round_id}, "
                             f"not {ctx.round_id}")
        event = decide(case, action, data, actor, now, ctx)
        changes.append((case, event, apply(case, event)))
    uow.append_many(changes)
    notices = [(after, notice) for _, event, after in changes for notice in notices_for(event)]
    if notices:
        uow.notify_many(notices, now)
    return [(after, event) for _, event, after in changes]


def fingerprint(*parts: Any) -> str:
    """The sha256 of a request's parts (decimals and dates as text)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def recall(uow: CaseStore, key: str | None, what: str, request: str, case_id: int | None = None
           ) -> Remembered | None:
    """What an earlier request with this idempotency key did, if it was this request (the same
    action on the same case with the same input); the same key with another request is a
    conflict, and no key (or an unknown one) is None."""
    if not key:
        return None
    found = uow.recall(key)
    if found is None:
        return None
    if (found.what, found.case_id) != (what, case_id):
        raise ConflictError(f"idempotency key {key!r} was used for {found.what}"
                            + (f" on case {found.case_id}" if found.case_id else "")
                            + f", not {what}" + (f" on case {case_id}" if case_id else ""),
                            f"幂等键 {key!r} 已用于" + (f"案件 {found.case_id} 的" if found.case_id else "")
                            + f"“{action_zh(found.what)}”，不能用于" + (f"案件 {case_id} 的" if case_id else "")
                            + f"“{action_zh(what)}”", key=key)
    if found.fingerprint != request:
        raise ConflictError(f"idempotency key {key!r} was used for {what} with other input; "
                            "a new request needs a new key",
                            f"幂等键 {key!r} 已用于输入不同的“{action_zh(what)}”请求；新的请求须使用新的幂等键",
                            key=key)
    return found


def _recalled(uow: CaseStore, key: str | None, action: str, case_id: int, now: datetime,
              request: str) -> ActionResult | None:
    found = recall(uow, key, action, request, case_id)
    if found is None or found.seq is None:
        return None
    case = uow.get(case_id)
    event = uow.events(case_id)[found.seq - 1]
    return ActionResult(case, event, uow.round_context(case.round_id), now)


def by_name_only(action: str) -> None:
    """Refuse an action that is recorded only through its own resource (``file`` inside a
    filing batch, a spot-check draw inside a spot check, the contact form), so that a filing
    cannot name a batch that does not exist, nor a draw a spot check nobody made. Every entry
    point that takes an action by name (the API's action route, ``workflow cases act``, a
    scenario's case step) calls this first."""
    spec = ACTIONS.get(action)
    if spec is not None and spec.bookkeeping:
        where = f" through {spec.through}" if spec.through else " by the system"
        where_zh = f"通过{spec.through_zh or spec.through}" if spec.through else "由系统"
        raise Forbidden(f"{action} is recorded only{where}, not as an action on a case",
                        f"“{action_zh(action)}”（{action}）只能{where_zh}登记，不能作为案件操作直接提交", action=action)


def perform_action(store: CaseStoreFactory, case_id: int, action: str, data: Mapping[str, Any] | None,
                   actor: Actor, now: datetime, expected_version: int | None = None,
                   idempotency_key: str | None = None) -> ActionResult:
    """Take ``action`` on a case: decide, then commit the new projection and its event together.

    ``expected_version`` is the version the caller saw; if the case has moved on since,
    nothing is written and :class:`ConflictError` says so. With an ``idempotency_key`` a
    request already carried out is answered with its recorded event and not taken again.
    """
    require_aware(now, "now")
    with store.unit_of_work() as uow:
        request = fingerprint(action, case_id, data, expected_version) if idempotency_key else ""
        done = _recalled(uow, idempotency_key, action, case_id, now, request)
        if done is not None:
            return done
        case = uow.get(case_id)
        if expected_version is not None and case.version != expected_version:
            raise ConflictError(
                f"case {case_id} is at version {case.version}, not {expected_version}: "
                "it changed since you read it; reload and retry",
                f"案件 {case_id} 已是第 {case.version} 版，不是您读取时的第 {expected_version} 版："
                "读取后已被他人修改，请刷新后重试",
                case_id=case_id, expected_version=expected_version, version=case.version)
        ctx = uow.round_context(case.round_id)
        after, event = take(uow, case, action, data, actor, now, ctx)
        if idempotency_key is not None:
            uow.remember(idempotency_key, action, now, fingerprint=request, case_id=case_id, seq=event.seq)
        uow.commit()
    return ActionResult(after, event, ctx, now)


def perform_actions(store: CaseStoreFactory, case_id: int, steps: Sequence[tuple[str, Mapping[str, Any]]],
                    actor: Actor, now: datetime, idempotency_key: str | None = None) -> list[ActionResult]:
    """Several actions on one case in one transaction: all are recorded or none. With an
    ``idempotency_key`` a batch already recorded answers with its last event."""
    require_aware(now, "now")
    results = []
    with store.unit_of_work() as uow:
        request = fingerprint(case_id, steps) if idempotency_key else ""
        done = _recalled(uow, idempotency_key, steps[-1][0] if steps else "", case_id, now, request)
        if done is not None:
            return [done]
        case = uow.get(case_id)
        ctx = uow.round_context(case.round_id)
        for action, data in steps:
            case, event = take(uow, case, action, data, actor, now, ctx)
            results.append(ActionResult(case, event, ctx, now))
        if idempotency_key is not None and results:
            uow.remember(idempotency_key, steps[-1][0], now, fingerprint=request, case_id=case_id,
                         seq=results[-1].event.seq)
        uow.commit()
    return results


@dataclass(frozen=True, slots=True)
class CaseRead:
    """A case as stored, its round's rules, and (when asked for) its events, read together."""

    case: CaseState
    ctx: RoundContext
    events: list[Event]


def read_case(db: Storage, case_id: int, *, events: bool = False) -> CaseRead:
    """The case (NotFound if there is none), its round's rules and, with ``events``, its history,
    in one read-only unit of work."""
    with db.reader() as uow:
        case = uow.get(case_id)
        return CaseRead(case, uow.round_context(case.round_id), uow.events(case_id) if events else [])


def dry_run(db: Storage, case_id: int, steps: Sequence[tuple[str, Mapping[str, Any]]], actor: Actor,
            now: datetime) -> None:
    """Decide every step on the case as it is now, writing nothing (raises what the real run would)."""
    found = read_case(db, case_id)
    case, ctx = found.case, found.ctx
    for action, data in steps:
        case = apply(case, decide(case, action, data, actor, now, ctx))


def register_case(store: CaseStoreFactory, round_id: str, unit_id: int, actor: Actor, now: datetime,
                  carried_over_from: int | None = None) -> tuple[CaseState, Event]:
    """Register one unit's case in a round (a unit has at most one case per round)."""
    require_aware(now, "now")
    with store.unit_of_work() as uow:
        case, event = uow.create(round_id, unit_id, str(actor), now, carried_over_from)
        uow.commit()
    return case, event
