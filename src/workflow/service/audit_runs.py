"""Chain checks run in the background, kept with their results.

Checking every hash chain of a province replays every event (two million in a big province:
half a minute), so the console's audit page never does it while a person waits. A check is
*asked for* (the page's button: the person's own scope; the nightly job: every jurisdiction),
*queued*, *run* in the background (``run_queued``: a worker thread after the request, the
scheduler's nightly job) and *kept* with its counts and findings. The page shows the latest
finished check that covers the person's scope — their own, or one of a scope above it (the
nightly check of everything covers every subtree; its findings are shown by where they are) —
and any check still waiting or running.

What a check does is ``service.audit.verify`` of the scope (every chain, every case against the
replay of its events, the duty streams, the operator log, the filing batches, the kept counts)
and, when a checkpoint and a key are there, ``verify_checkpoints`` of the latest checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from ..domain.access import Principal
from ..domain.errors import DomainError
from .audit import Finding, verify
from .ports import AuditRunRecord, Storage

log = structlog.get_logger("workflow.audit_runs")

FINDINGS_KEPT = 1000  # a run keeps this many findings (and counts them all)
STALE_AFTER = timedelta(hours=6)  # a run still "running" after this long: its process stopped
RECENT = 10  # the runs the page lists
EVERYTHING = ""  # the scope of a check of every jurisdiction
SCHEDULER = "scheduler"  # who asks for the nightly check


def scope_of(who: Principal) -> str:
    """The scope a person's check covers: their subtree (an admin: everything)."""
    return who.jurisdiction_path or EVERYTHING


def covering(scope: str) -> list[str]:
    """The scopes whose checks cover ``scope``: everything, then each path above it, then itself."""
    out = [EVERYTHING]
    parts = [p for p in scope.split("/") if p]
    for i in range(1, len(parts) + 1):
        out.append("/" + "/".join(parts[:i]) + "/")
    return out


def request_check(db: Storage, scope: str, requested_by: str, now: datetime) -> tuple[AuditRunRecord, bool]:
    """Queue a check of ``scope`` unless one of it is waiting or running already: (the run, new?)."""
    with db.unit_of_work(core=True) as uow:
        waiting = next((r for r in uow.audit_runs.runs([scope], RECENT) if r.status in ("queued", "running")), None)
        if waiting is not None:
            return waiting, False
        run_id = uow.audit_runs.add(scope=scope, requested_by=requested_by, requested_at=now)
        uow.commit()
    found = db.audit_runs.get(run_id)
    assert found is not None
    log.info("audit check queued", run=run_id, scope=scope or "/", by=requested_by)
    return found, True


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """Where the latest signed checkpoint is read from, and what checks its signature (None:
    no key; ``key_problem`` says why when the key file is unusable)."""

    store: Any
    verifier: Any | None
    key_problem: str | None = None


def run_queued(db: Storage, now: Callable[[], datetime], checkpoints: Callable[[], Checkpoints] | None = None
               ) -> list[int]:
    """Run every queued check, oldest first (one that another process took is skipped); first
    fail the runs left "running" by a process that stopped. The ids run."""
    with db.unit_of_work(core=True) as uow:
        stale = uow.audit_runs.interrupt(now() - STALE_AFTER, now(), "interrupted: the process running it stopped")
        uow.commit()
    if stale:
        log.warning("audit checks interrupted", runs=stale)
    done = []
    for run in db.audit_runs.queued():
        with db.unit_of_work(core=True) as uow:
            if not uow.audit_runs.claim(run.id, now()):
                continue
            uow.commit()
        _run(db, run, now, checkpoints)
        done.append(run.id)
    return done


def _run(db: Storage, run: AuditRunRecord, now: Callable[[], datetime],
         checkpoints: Callable[[], Checkpoints] | None) -> None:
    scoped = run.scope != EVERYTHING
    try:
        report = verify(db.within(run.scope or None), scoped=scoped)
        result: dict[str, Any] = {
            "counts": {"cases": report.cases, "events": report.events, "duty_streams": report.duty_streams,
                       "duty_events": report.duty_events, "operator_streams": report.operator_streams,
                       "operator_events": report.operator_events},
            **_findings(db, report.findings), "checkpoint": None}
        ok = report.ok
        if checkpoints is not None:
            result["checkpoint"] = _checkpoint(db, run.scope, checkpoints())
            ok = ok and result["checkpoint"]["ok"] is not False
    except Exception as exc:  # kept as the run's failure (the page says it failed; the log says why)
        log.error("audit check failed", run=run.id, scope=run.scope or "/", error=str(exc),
                  kind=type(exc).__name__)
        with db.unit_of_work(core=True) as uow:
            uow.audit_runs.finish(run.id, now(), ok=None, result=None, error=type(exc).__name__)
            uow.commit()
        return
    with db.unit_of_work(core=True) as uow:
        uow.audit_runs.finish(run.id, now(), ok=ok, result=result, error=None)
        uow.commit()
    log.info("audit check done", run=run.id, scope=run.scope or "/", ok=ok, findings=result["findings_total"],
             cases=report.cases, events=report.events)


def _findings(db: Storage, findings: list[Finding]) -> dict[str, Any]:
    """The findings as kept: the first ``FINDINGS_KEPT``, each with the path of the jurisdiction
    its chain belongs to (None: the operator log, the checkpoints, the counts, a filing batch),
    and how many there were."""
    paths = {j.id: j.path for j in db.directory.jurisdictions()}
    kept = []
    for f in findings[:FINDINGS_KEPT]:
        path = None
        if f.kind == "case" and isinstance(f.case_id, int):
            scope = db.read.case_scope(f.case_id)
            path = None if scope is None else scope.path
        elif f.kind == "duties":
            path = paths.get(str(f.case_id).rsplit("/", 1)[-1])
        kept.append({"kind": f.kind, "key": f.case_id, "seq": f.seq, "what": f.what, "path": path})
    return {"findings": kept, "findings_total": len(findings)}


def _checkpoint(db: Storage, scope: str, where: Checkpoints) -> dict[str, Any]:
    """The latest checkpoint: whether it reads, its signature, and whether the scope's chains
    still hold what it saw (``ok`` None: nothing to compare: no checkpoint, or no key)."""
    from .checkpoints import latest_checkpoint, verify_checkpoints

    if not where.store.sequences():
        return {"present": False, "ok": None}
    try:
        opened = latest_checkpoint(where.store, where.verifier)
    except DomainError as exc:  # the latest file is damaged: a finding
        return {"present": True, "ok": False, "damaged": exc.message_zh or exc.message, "damaged_en": exc.message}
    assert opened is not None
    cp = opened.checkpoint
    out: dict[str, Any] = {"present": True, "sequence": cp.sequence, "name": opened.name,
                           "created_at": cp.created_at.isoformat(), "merkle_root": cp.merkle_root,
                           "signature_ok": opened.signature_ok, "key_problem": where.key_problem, "ok": None}
    if where.verifier is not None:
        checked = verify_checkpoints(db.within(scope or None), where.store, where.verifier,
                                     scoped=scope != EVERYTHING, latest_only=True)
        out.update(chains=checked.chains, ok=checked.ok and opened.signature_ok is not False,
                   **_findings(db, checked.findings))
    elif opened.signature_ok is False:
        out["ok"] = False
    return out


# ---------------------------------------------------------------- what a person sees

@dataclass
class ScopedFindings:
    """A run's findings as one person sees them: those of their scope, and how many were left out."""

    shown: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # the run's, over its whole scope
    outside: int = 0  # kept findings of another subtree (not shown)
    unplaced: int = 0  # kept findings of no jurisdiction (operator log, checkpoints, counts), not shown


def in_scope(findings: Iterable[dict[str, Any]], total: int, run_scope: str, scope: str) -> ScopedFindings:
    """The findings of a run of ``run_scope`` that a person of ``scope`` sees: all of them when
    the run was of their scope (or they see everything); else those under their path."""
    out = ScopedFindings(total=total)
    for f in findings:
        if run_scope == scope or scope == EVERYTHING:
            out.shown.append(f)
        elif f.get("path") is None:
            out.unplaced += 1
        elif str(f["path"]).startswith(scope):
            out.shown.append(f)
        else:
            out.outside += 1
    return out


@dataclass
class AuditView:
    scope: str
    latest: AuditRunRecord | None  # the latest check done that covers the scope
    failed: AuditRunRecord | None  # a check that failed after it (or with none done)
    waiting: AuditRunRecord | None  # a check of the scope (or above it) queued or running
    recent: list[AuditRunRecord]
    chains: ScopedFindings | None
    checkpoint: dict[str, Any] | None
    checkpoint_findings: ScopedFindings | None

    @property
    def ok(self) -> bool | None:
        """Whether the latest check found nothing in the scope (None: no check done yet)."""
        if self.latest is None or self.chains is None:
            return None
        cp_bad = self.checkpoint is not None and self.checkpoint.get("ok") is False and (
            self.checkpoint_findings is None or bool(self.checkpoint_findings.shown)
            or bool(self.checkpoint.get("damaged")) or self.checkpoint.get("signature_ok") is False)
        return not self.chains.shown and not cp_bad


def audit_view(db: Storage, who: Principal) -> AuditView:
    """What the audit page shows a person: reads the kept runs only (never the chains)."""
    scope = scope_of(who)
    recent = db.audit_runs.runs(covering(scope), RECENT)
    latest = next((r for r in recent if r.status == "done"), None)
    failed = next((r for r in recent if r.status == "failed"), None)
    if failed is not None and latest is not None and failed.id < latest.id:
        failed = None
    waiting = next((r for r in recent if r.status in ("queued", "running")), None)
    chains = checkpoint = checkpoint_findings = None
    if latest is not None and latest.result is not None:
        result = latest.result
        chains = in_scope(result.get("findings", []), int(result.get("findings_total", 0)), latest.scope, scope)
        checkpoint = result.get("checkpoint")
        if checkpoint and "findings" in checkpoint:
            checkpoint_findings = in_scope(checkpoint["findings"], int(checkpoint.get("findings_total", 0)),
                                           latest.scope, scope)
    return AuditView(scope, latest, failed, waiting, recent, chains, checkpoint, checkpoint_findings)
