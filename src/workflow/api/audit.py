"""The audit check over HTTP, within the caller's scope; the signed checkpoints of the chains."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..domain.access import Principal
from ..domain.errors import DomainError, NotFound
from ..service.audit import Finding as Found
from ..service.audit import verify as check
from ..service.checkpoints import Checkpoint, latest_checkpoint, verify_checkpoints, write_checkpoint
from .common import Application, log, role_in
from .schemas import AuditOut, ChainHeadOut, CheckpointCheckOut, CheckpointOut, Finding

router = APIRouter(prefix="/api/v1")

Reader = Annotated[Principal, Depends(role_in("auditor", "coordinator", "admin", doing="run the audit check"))]


def _finding(f: Found) -> Finding:
    return Finding(case_id=f.case_id if f.kind == "case" else None,
                   stream=f.case_id if f.kind in ("duties", "operator") else None,
                   seq=f.seq, what=f.what if f.kind in ("case", "duties", "operator") else str(f))


def _checkpoint_check(application: Application, who: Principal) -> CheckpointCheckOut | None:
    """The latest checkpoint checked against the chains of the caller's scope (None: none kept)."""
    store = application.checkpoint_store()
    if not store.sequences():
        return None
    try:
        verifier = application.checkpoint_verifier()
    except DomainError as exc:  # an unusable key file: the operator's to fix (logged), not the audit's end
        log.error("checkpoint key unusable", error=exc.message)
        verifier = None
    if verifier is None:
        found = [Found("directory", None, "cannot be checked: the server has no usable checkpoint key",
                       "checkpoint")]
        return CheckpointCheckOut(sequence=None, created_at=None, merkle_root=None, ok=False,
                                  findings=[_finding(f) for f in found])
    result = verify_checkpoints(application.db.within(who.jurisdiction_path), store, verifier,
                                scoped=who.jurisdiction_path is not None, latest_only=True)
    latest = result.latest
    return CheckpointCheckOut(sequence=None if latest is None else latest.sequence,
                              created_at=None if latest is None else latest.created_at,
                              merkle_root=None if latest is None else latest.merkle_root, ok=result.ok,
                              findings=[_finding(f) for f in result.findings])


@router.get("/audit/verify", tags=["audit"])
def verify(who: Reader, application: Application) -> AuditOut:
    """Check every hash chain in the caller's scope, compare each case with the replay of its
    events and the filing batches with the events naming them; and (``checkpoint``) check the
    latest signed checkpoint and that the scope's chains still hold what it saw (null: no
    checkpoint kept). ``ok`` false lists the findings (first bad event per case)."""
    report = check(application.db.within(who.jurisdiction_path), scoped=who.jurisdiction_path is not None)
    anchored = _checkpoint_check(application, who)
    return AuditOut(ok=report.ok and (anchored is None or anchored.ok), scope=who.jurisdiction_path or "/",
                    cases=report.cases, events=report.events, duty_streams=report.duty_streams,
                    duty_events=report.duty_events, operator_streams=report.operator_streams,
                    operator_events=report.operator_events, findings=[_finding(f) for f in report.findings],
                    checkpoint=anchored)


def _out(checkpoint: Checkpoint, name: str, signature_ok: bool | None, application: Application,
         who: Principal) -> CheckpointOut:
    chains = list(checkpoint.chains)
    if who.jurisdiction_path is not None:  # the heads of the chains in the caller's scope only
        mine = {(h.kind, h.key) for h in application.db.within(who.jurisdiction_path).chain_heads()}
        chains = [h for h in chains if (h.kind, h.key) in mine]
    return CheckpointOut(sequence=checkpoint.sequence, created_at=checkpoint.created_at,
                         previous=checkpoint.previous, digest=checkpoint.digest(), key_id=checkpoint.key_id,
                         merkle_root=checkpoint.merkle_root, counts=dict(checkpoint.counts), file=name,
                         signature_ok=signature_ok, scope=who.jurisdiction_path or "/",
                         chains=[ChainHeadOut(kind=h.kind, key=h.key, seq=h.seq, hash=h.hash) for h in chains])


@router.post("/audit/checkpoints", tags=["audit"], status_code=201)
def write(who: Annotated[Principal, Depends(role_in("admin", doing="write a checkpoint"))],
          application: Application) -> CheckpointOut:
    """Write a signed checkpoint now (the head of every chain, outside the database)."""
    done = write_checkpoint(application.db, application.checkpoint_store(), application.checkpoint_signer(),
                            application.clock.now())
    return _out(done.checkpoint, done.name, True, application, who)


@router.get("/audit/checkpoints/latest", tags=["audit"])
def latest(who: Annotated[Principal, Depends(role_in("auditor", "coordinator", "admin",
                                                       doing="read the checkpoints"))],
           application: Application) -> CheckpointOut:
    """The latest signed checkpoint and whether its signature holds (null: the server has no key
    to check it with); ``chains``: the heads it saw of the chains in the caller's scope (all
    of them for an admin, who can recompute the Merkle root from them)."""
    opened = latest_checkpoint(application.checkpoint_store(), application.checkpoint_verifier())
    if opened is None:
        raise NotFound("no checkpoint has been written yet", "尚未生成检查点")
    return _out(opened.checkpoint, opened.name, opened.signature_ok, application, who)
