"""The audit check over HTTP, within the caller's scope."""
from __future__ import annotations

from typing import Any, Iterator

from fastapi import FastAPI

from .common import Application, Caller, require


class _Within:
    """The event source of one jurisdiction subtree (or everything)."""

    def __init__(self, db: Any, path: str | None) -> None:
        self.db, self.path = db, path

    def all_cases(self) -> Iterator[Any]:
        return self.db.all_cases(self.path)

    def all_events(self) -> Iterator[Any]:
        return self.db.all_events(self.path)

    def rubric_of(self, round_id: str) -> Any:
        return self.db.rubric_of(round_id)

    def all_duty_streams(self) -> Iterator[Any]:
        return self.db.all_duty_streams(self.path)

    def all_duty_events(self) -> Iterator[Any]:
        return self.db.all_duty_events(self.path)


def register(api: FastAPI) -> None:
    @api.get("/api/v1/audit/verify", tags=["audit"])
    def verify(who: Caller, application: Application) -> dict[str, Any]:
        """Check every hash chain in the caller's scope and compare each case with the replay of
        its events. ``ok`` false lists the findings (first bad event per case)."""
        from ..service.audit import verify as check

        require(who, "auditor", "coordinator", "admin", doing="run the audit check")
        report = check(_Within(application.db, who.jurisdiction_path))
        return {"ok": report.ok, "scope": who.jurisdiction_path or "/", "cases": report.cases,
                "events": report.events, "duty_streams": report.duty_streams, "duty_events": report.duty_events,
                "findings": [{"case_id": f.case_id if f.kind == "case" else None,
                              "stream": f.case_id if f.kind != "case" else None, "seq": f.seq, "what": f.what}
                             for f in report.findings]}
