"""Spot checks (抽查) and filing batches (备案): a coordinator's acts over many cases.

Each is one transaction: the record (a ``spot_checks`` or ``filing_batches`` row) and an
event on every case it touches are written together, or nothing is.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select

from ..adapters.db.store import Database
from ..adapters.db.tables import Case, FilingBatch, Jurisdiction, Round, SpotCheck, Unit
from ..clock import business_date, require_aware
from ..domain.case import Actor, apply, decide
from ..adapters.db.store import fingerprint
from ..domain.errors import ActionRefused, ConflictError, InvalidInput, NotFound, Problem
from .rounds import DONE_STATES


def _subtree(conn: Any, jurisdiction_id: str) -> str:
    path = conn.execute(select(Jurisdiction.path).where(Jurisdiction.id == jurisdiction_id)).scalar()
    if path is None:
        raise NotFound(f"jurisdiction {jurisdiction_id!r} does not exist", jurisdiction_id=jurisdiction_id)
    return path


def _cases_in(round_id: str, path: str, states: tuple[str, ...]) -> Any:
    return (select(Case.id).join(Unit, Unit.id == Case.unit_id).join(Jurisdiction, Jurisdiction.id == Unit.jurisdiction_id)
            .where(Case.round_id == round_id, Case.state.in_(states),
                   Jurisdiction.path.startswith(path, autoescape=True)).order_by(Case.id))


def _require_round(conn: Any, round_id: str) -> None:
    """The round exists; its row is locked (PostgreSQL) so that two draws or batches of one
    round at once number themselves one after the other (SQLite's writer lock does that)."""
    if conn.execute(select(Round.id).where(Round.id == round_id).with_for_update()).first() is None:
        raise NotFound(f"round {round_id!r} does not exist", round_id=round_id)


def _recall(uow: Any, key: str | None, what: str, request: str) -> Any:
    """An earlier request with this key, if it was the same request; another one is a conflict."""
    if not key:
        return None
    found = uow.recall(key)
    if found is not None and (found.what, found.fingerprint) != (what, request):
        raise ConflictError(f"idempotency key {key!r} was used for another request ({found.what})", key=key)
    return found


def draw_sample(population: list[int], share: Decimal, seed: int) -> list[int]:
    """The reproducible draw: ceil(share × N) cases (at least one), in id order."""
    if not population:
        return []
    k = max(1, math.ceil(Decimal(len(population)) * share))
    return sorted(random.Random(seed).sample(sorted(population), k))


@dataclass(frozen=True, slots=True)
class SpotCheckResult:
    id: str
    round_id: str
    jurisdiction_id: str
    seed: int
    share: Decimal
    population: list[int]
    drawn: list[int]
    drawn_at: datetime
    drawn_by: str


def spot_check(db: Database, round_id: str, jurisdiction_id: str, *, share: Any, seed: Any, actor: Actor,
               now: datetime, idempotency_key: str | None = None) -> SpotCheckResult:
    """Draw a sample of the certified (or filed) cases of a round in a subtree; the draw is a
    ``spot_checks`` row and a SpotCheckDrawn event on each drawn case, in one transaction.
    With an ``idempotency_key`` a draw already made is returned, not made again."""
    from ..domain.case import PARSERS

    require_aware(now, "now")
    problems = []
    parsed: dict[str, Any] = {}
    for key, value in (("share", share), ("seed", seed)):
        try:
            parsed[key] = PARSERS[key](value)
        except ValueError as exc:
            problems.append(Problem(key, str(exc)))
    if problems:
        raise InvalidInput("invalid spot check", problems)
    with db.unit_of_work(core=True) as uow:
        conn = uow.connection
        request = fingerprint("spot_check", round_id, jurisdiction_id, parsed["share"], parsed["seed"])
        done = _recall(uow, idempotency_key, "spot_check", request)
        if done is not None:
            row = conn.execute(select(SpotCheck.__table__).where(SpotCheck.id == done.ref)).mappings().one()
            return SpotCheckResult(row["id"], row["round_id"], row["jurisdiction_id"], row["seed"],
                                   Decimal(row["share"]), row["population"], row["drawn"], row["drawn_at"],
                                   row["drawn_by"])
        _require_round(conn, round_id)
        path = _subtree(conn, jurisdiction_id)
        population = list(conn.execute(_cases_in(round_id, path, DONE_STATES)).scalars())
        if not population:
            raise ActionRefused(f"round {round_id} has no certified cases in {jurisdiction_id} to draw from",
                                round_id=round_id, jurisdiction_id=jurisdiction_id)
        drawn = draw_sample(population, parsed["share"], parsed["seed"])
        count = conn.execute(select(func.count()).select_from(SpotCheck).where(SpotCheck.round_id == round_id)).scalar()
        draw_id = f"{round_id}-spot-{count + 1}"
        ctx = None
        for case_id in drawn:
            case = uow.get(case_id)
            ctx = ctx or uow.round_context(case.round_id)
            event = decide(case, "record_spot_check", {"draw": draw_id, "seed": parsed["seed"],
                                                        "share": str(parsed["share"])}, actor, now, ctx)
            uow.append(case, event, apply(case, event))
        conn.execute(insert(SpotCheck).values(
            id=draw_id, round_id=round_id, jurisdiction_id=jurisdiction_id, seed=parsed["seed"],
            share=parsed["share"], population=population, drawn=drawn, drawn_at=now, drawn_by=str(actor)))
        if idempotency_key:
            uow.remember(idempotency_key, "spot_check", now, fingerprint=request, ref=draw_id)
        uow.commit()
    return SpotCheckResult(draw_id, round_id, jurisdiction_id, parsed["seed"], parsed["share"], population, drawn,
                           now, str(actor))


def list_spot_checks(db: Database, round_id: str, within_path: str | None = None) -> list[Any]:
    q = (select(SpotCheck.__table__).join(Jurisdiction, Jurisdiction.id == SpotCheck.jurisdiction_id)
         .where(SpotCheck.round_id == round_id).order_by(SpotCheck.drawn_at, SpotCheck.id))
    if within_path is not None:
        q = q.where(Jurisdiction.path.startswith(within_path, autoescape=True))
    with db.engine.connect() as conn:
        return conn.execute(q).mappings().all()


# ---------------------------------------------------------------- filing (备案)

def file_round(db: Database, round_id: str, jurisdiction_id: str, *, actor: Actor, now: datetime,
               note: str | None = None, idempotency_key: str | None = None) -> Any:
    """File every certified case of a round in a subtree with the national bureau as one
    batch: each case moves to ``filed`` with the batch id; the batch row lists the cases
    and totals. Nothing certified: refused, nothing written. With an ``idempotency_key``
    a batch already filed is returned, not filed again."""
    require_aware(now, "now")
    with db.unit_of_work(core=True) as uow:
        conn = uow.connection
        request = fingerprint("filing", round_id, jurisdiction_id, note)
        done = _recall(uow, idempotency_key, "filing", request)
        if done is not None:
            return get_filing(db, str(done.ref))
        _require_round(conn, round_id)
        path = _subtree(conn, jurisdiction_id)
        ids = list(conn.execute(_cases_in(round_id, path, ("certified",))).scalars())
        if not ids:
            raise ActionRefused(f"round {round_id} has no certified cases in {jurisdiction_id} to file",
                                round_id=round_id, jurisdiction_id=jurisdiction_id)
        count = conn.execute(select(func.count()).select_from(FilingBatch)
                             .where(FilingBatch.round_id == round_id)).scalar()
        batch_id = f"{round_id}-filing-{count + 1}"
        names = dict(conn.execute(select(Case.id, Unit.name).join(Unit, Unit.id == Case.unit_id)
                                  .where(Case.id.in_(ids))).all())
        listed = []
        ctx = None
        for case_id in ids:
            case = uow.get(case_id)
            ctx = ctx or uow.round_context(case.round_id)
            data = {"batch": batch_id, **({"note": note} if note else {})}
            event = decide(case, "file", data, actor, now, ctx)
            uow.append(case, event, apply(case, event))
            score = case.recheck_total if case.recheck_total is not None else case.verified_total
            listed.append({"case_id": case_id, "unit_id": case.unit_id, "unit_name": names[case_id],
                           "score": None if score is None else format(score, "f"),
                           "rechecked": case.recheck_total is not None})
        totals = {"cases": len(listed), "after_recheck": sum(1 for c in listed if c["rechecked"]),
                  "filed_on": business_date(now).isoformat()}
        conn.execute(insert(FilingBatch).values(id=batch_id, round_id=round_id, jurisdiction_id=jurisdiction_id,
                                                cases=listed, totals=totals, filed_at=now, filed_by=str(actor)))
        if idempotency_key:
            uow.remember(idempotency_key, "filing", now, fingerprint=request, ref=batch_id)
        uow.commit()
    return get_filing(db, batch_id)


def get_filing(db: Database, batch_id: str) -> Any:
    with db.engine.connect() as conn:
        row = conn.execute(select(FilingBatch.__table__, Jurisdiction.path)
                           .join(Jurisdiction, Jurisdiction.id == FilingBatch.jurisdiction_id)
                           .where(FilingBatch.id == batch_id)).mappings().first()
    if row is None:
        raise NotFound(f"filing batch {batch_id!r} does not exist", batch_id=batch_id)
    return row


def list_filings(db: Database, round_id: str, within_path: str | None = None) -> list[Any]:
    q = (select(FilingBatch.__table__, Jurisdiction.path).join(Jurisdiction, Jurisdiction.id == FilingBatch.jurisdiction_id)
         .where(FilingBatch.round_id == round_id).order_by(FilingBatch.filed_at, FilingBatch.id))
    if within_path is not None:
        q = q.where(Jurisdiction.path.startswith(within_path, autoescape=True))
    with db.engine.connect() as conn:
        return conn.execute(q).mappings().all()


def filing_csv(batch: Any) -> str:
    """The batch as CSV (UTF-8 with BOM, so Excel opens the Chinese names)."""
    import csv
    import io

    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow(["batch", "round", "case_id", "unit_id", "unit_name", "score", "rechecked", "filed_at", "filed_by"])
    for c in batch["cases"]:
        w.writerow([batch["id"], batch["round_id"], c["case_id"], c["unit_id"], c["unit_name"], c["score"],
                    "yes" if c["rechecked"] else "no", batch["filed_at"].isoformat(), batch["filed_by"]])
    return out.getvalue()
