"""For operators and their monitoring: liveness, readiness, Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..metrics import OUTBOX, REGISTRY
from .common import ApiError, Application, log
from .schemas import ErrorBody, Health, Ready

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": ErrorBody, "description": "the database is unreachable"}})
def readyz(application: Application) -> Ready:
    """The database answers; which process holds the scheduler."""
    try:
        holder = application.scheduler_holder()
    except Exception as exc:
        raise ApiError("unavailable", f"database unreachable: {type(exc).__name__}") from exc
    return Ready(database="ok", scheduler=holder)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(application: Application) -> Response:
    """Prometheus metrics: requests, latency, transitions, outbox backlog, sweep duration."""
    try:
        counts = application.db.outbox.count_by_status()
        for status in ("pending", "sending", "sent", "failed", "cancelled"):
            OUTBOX.labels(status).set(counts.get(status, 0))
    except Exception as exc:  # the rest of the metrics are still worth serving
        log.warning("outbox backlog unavailable", error=str(exc))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
