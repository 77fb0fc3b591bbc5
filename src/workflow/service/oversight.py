"""Spot checks (抽查) and filing batches (备案): a coordinator's acts over many cases.

Each is one transaction: the record (a spot check or a filing batch) and an event on every
case it touches are written together, or nothing is.
"""
from __future__ import annotations

import csv
import io
import math
import random
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..domain.case import PARSERS, Actor
from ..domain.dates import BUSINESS_TZ, business_date, require_aware
from ..domain.errors import ActionRefused, InvalidInput, NotFound, Problem, zh_of
from ..domain.lifecycle import CERTIFIED_STATES
from ..domain.text import safe_row
from .cases import fingerprint, recall, take
from .ports import CaseStore, FilingRecord, SpotCheckRecord, Storage


def _subtree(uow: CaseStore, jurisdiction_id: str) -> str:
    jurisdiction = uow.directory.jurisdiction(jurisdiction_id)
    if jurisdiction is None:
        raise NotFound(f"jurisdiction {jurisdiction_id!r} does not exist", f"地区 {jurisdiction_id!r} 不存在",
                       jurisdiction_id=jurisdiction_id)
    return jurisdiction.path


def _require_round(uow: CaseStore, round_id: str) -> None:
    """The round exists; its row is locked (PostgreSQL) so that two draws or batches of one
    round at once number themselves one after the other (SQLite's writer lock does that)."""
    if not uow.rounds.lock(round_id):
        raise NotFound(f"round {round_id!r} does not exist", f"轮次 {round_id!r} 不存在", round_id=round_id)


def draw_sample(population: list[int], share: Decimal, seed: int) -> list[int]:
    """The reproducible draw: ceil(share × N) cases (at least one), in id order."""
    if not population:
        return []
    k = max(1, math.ceil(Decimal(len(population)) * share))
    return sorted(random.Random(seed).sample(sorted(population), k))


def _parsed(share: Any, seed: Any) -> dict[str, Any]:
    problems = []
    parsed: dict[str, Any] = {}
    for key, value in (("share", share), ("seed", seed)):
        try:
            parsed[key] = PARSERS[key](value)
        except ValueError as exc:
            problems.append(Problem(key, str(exc), zh_of(exc)))
    if problems:
        raise InvalidInput("invalid spot check", problems,
                           "抽查输入有误：" + "；".join(f"{p.where}：{p.zh or p.what}" for p in problems))
    return parsed


def spot_check(db: Storage, round_id: str, jurisdiction_id: str, *, share: Any, seed: Any, actor: Actor,
               now: datetime, idempotency_key: str | None = None) -> SpotCheckRecord:
    """Draw a sample of the certified (or filed) cases of a round in a subtree; the draw is a
    spot-check record and a SpotCheckDrawn event on each drawn case, in one transaction.
    With an ``idempotency_key`` a draw already made is returned, not made again."""
    require_aware(now, "now")
    parsed = _parsed(share, seed)
    with db.unit_of_work(core=True) as uow:
        request = fingerprint("spot_check", round_id, jurisdiction_id, parsed["share"], parsed["seed"])
        done = recall(uow, idempotency_key, "spot_check", request)
        if done is not None:
            return next(s for s in uow.oversight.spot_checks(round_id) if s.id == done.ref)
        _require_round(uow, round_id)
        path = _subtree(uow, jurisdiction_id)
        population = uow.oversight.cases_in(round_id, path, CERTIFIED_STATES)
        if not population:
            raise ActionRefused(f"round {round_id} has no certified cases in {jurisdiction_id} to draw from",
                                f"轮次 {round_id} 在地区 {jurisdiction_id} 没有可供抽查的已认定案件",
                                round_id=round_id, jurisdiction_id=jurisdiction_id)
        drawn = draw_sample(population, parsed["share"], parsed["seed"])
        record = SpotCheckRecord(f"{round_id}-spot-{uow.oversight.count_spot_checks(round_id) + 1}", round_id,
                                 jurisdiction_id, parsed["seed"], parsed["share"], population, drawn, now, str(actor),
                                 path)
        for case_id in drawn:
            take(uow, uow.get(case_id), "record_spot_check", {"draw": record.id, "seed": parsed["seed"],
                                                              "share": str(parsed["share"])}, actor, now)
        uow.oversight.add_spot_check(record)
        if idempotency_key:
            uow.remember(idempotency_key, "spot_check", now, fingerprint=request, ref=record.id)
        uow.commit()
    return record


def list_spot_checks(db: Storage, round_id: str, within_path: str | None = None) -> list[SpotCheckRecord]:
    return db.oversight.spot_checks(round_id, within_path)


# ---------------------------------------------------------------- filing (备案)

def file_round(db: Storage, round_id: str, jurisdiction_id: str, *, actor: Actor, now: datetime,
               note: str | None = None, idempotency_key: str | None = None) -> FilingRecord:
    """File every certified case of a round in a subtree with the national bureau as one
    batch: each case moves to ``filed`` with the batch id; the batch lists the cases and
    totals. Nothing certified: refused, nothing written. With an ``idempotency_key`` a batch
    already filed is returned, not filed again."""
    require_aware(now, "now")
    with db.unit_of_work(core=True) as uow:
        request = fingerprint("filing", round_id, jurisdiction_id, note)
        done = recall(uow, idempotency_key, "filing", request)
        if done is not None:
            return get_filing(db, str(done.ref)) if done.ref else _missing(done.ref)
        _require_round(uow, round_id)
        path = _subtree(uow, jurisdiction_id)
        ids = uow.oversight.cases_in(round_id, path, ("certified",))
        if not ids:
            raise ActionRefused(f"round {round_id} has no certified cases in {jurisdiction_id} to file",
                                f"轮次 {round_id} 在地区 {jurisdiction_id} 没有可备案的已认定案件",
                                round_id=round_id, jurisdiction_id=jurisdiction_id)
        batch_id = f"{round_id}-filing-{uow.oversight.count_filings(round_id) + 1}"
        names = uow.oversight.unit_names(ids)
        listed = []
        for case_id in ids:
            case = uow.get(case_id)
            take(uow, case, "file", {"batch": batch_id, **({"note": note} if note else {})}, actor, now)
            score = case.recheck_total if case.recheck_total is not None else case.verified_total
            listed.append({"case_id": case_id, "unit_id": case.unit_id, "unit_name": names[case_id],
                           "score": None if score is None else format(score, "f"),
                           "rechecked": case.recheck_total is not None})
        totals = {"cases": len(listed), "after_recheck": sum(1 for c in listed if c["rechecked"]),
                  "filed_on": business_date(now).isoformat()}
        record = FilingRecord(batch_id, round_id, jurisdiction_id, listed, totals, now, str(actor), path)
        uow.oversight.add_filing(record)
        if idempotency_key:
            uow.remember(idempotency_key, "filing", now, fingerprint=request, ref=batch_id)
        uow.commit()
    return get_filing(db, batch_id)


def _missing(ref: Any) -> FilingRecord:
    raise NotFound(f"filing batch {ref!r} does not exist", f"备案批次 {ref!r} 不存在", batch_id=ref)


def get_filing(db: Storage, batch_id: str) -> FilingRecord:
    found = db.oversight.filing(batch_id)
    if found is None:
        raise NotFound(f"filing batch {batch_id!r} does not exist", f"备案批次 {batch_id!r} 不存在", batch_id=batch_id)
    return found


def list_filings(db: Storage, round_id: str, within_path: str | None = None) -> list[FilingRecord]:
    return db.oversight.filings(round_id, within_path)


def filing_csv(batch: FilingRecord) -> str:
    """The batch as CSV (UTF-8 with BOM, so Excel opens the Chinese names), times in Beijing time
    with their offset; every row through ``safe_row`` (a unit named ``=...`` is text, not a formula)."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow(["batch", "round", "case_id", "unit_id", "unit_name", "score", "rechecked", "filed_at", "filed_by"])
    for c in batch.cases:
        score = None if c["score"] is None else Decimal(c["score"])  # a number, written as it was recorded
        w.writerow(safe_row([batch.id, batch.round_id, c["case_id"], c["unit_id"], c["unit_name"], score,
                             "是" if c["rechecked"] else "否",
                             batch.filed_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"), batch.filed_by]))
    return out.getvalue()
