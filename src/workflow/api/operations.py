"""For operators and their monitoring: liveness, readiness, Prometheus metrics."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
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
def metrics(application: Application, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus metrics: requests, latency, transitions, outbox backlog, sweep duration.
    With ``WORKFLOW_METRICS_TOKEN`` set, only a scraper sending it as a bearer token reads them;
    with ``WORKFLOW_METRICS_ENABLED=false`` the path does not exist."""
    st = application.settings
    if not st.metrics_enabled:
        raise ApiError("not_found", "/metrics is turned off on this server")
    if st.metrics_token is not None:
        given = (authorization or "").removeprefix("Bearer ").strip().encode()
        if not hmac.compare_digest(given, st.metrics_token.encode()):
            raise ApiError("unauthorized", "/metrics needs the metrics token (Authorization: Bearer ...)")
    try:
        counts = application.db.outbox.count_by_status()
        for status in ("pending", "sending", "sent", "failed", "cancelled"):
            OUTBOX.labels(status).set(counts.get(status, 0))
    except Exception as exc:  # the rest of the metrics are still worth serving
        log.warning("outbox backlog unavailable", error=str(exc))
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
