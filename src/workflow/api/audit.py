"""The audit check over HTTP, within the caller's scope."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ..domain.access import Principal
from ..service.audit import verify as check
from .common import Application, role_in
from .schemas import AuditOut, Finding

router = APIRouter(prefix="/api/v1")


@router.get("/audit/verify", tags=["audit"])
def verify(who: Annotated[Principal, Depends(role_in("auditor", "coordinator", "admin",
                                                     doing="run the audit check"))],
           application: Application) -> AuditOut:
    """Check every hash chain in the caller's scope and compare each case with the replay of
    its events. ``ok`` false lists the findings (first bad event per case)."""
    report = check(application.db.within(who.jurisdiction_path))
    return AuditOut(ok=report.ok, scope=who.jurisdiction_path or "/", cases=report.cases, events=report.events,
                    duty_streams=report.duty_streams, duty_events=report.duty_events,
                    findings=[Finding(case_id=f.case_id if f.kind == "case" else None,
                                      stream=f.case_id if f.kind != "case" else None, seq=f.seq, what=f.what)
                              for f in report.findings])
