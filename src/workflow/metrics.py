"""Prometheus metrics of the process (served at /metrics by the API).

One registry for the process: requests and their latency by route template, transitions
by action and outcome, sweep and dispatch durations; the outbox backlog is read from the
database when /metrics is scraped.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("workflow_http_requests_total", "HTTP requests answered", ["method", "route", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("workflow_http_request_duration_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5), registry=REGISTRY)
TRANSITIONS = Counter("workflow_transitions_total", "Actions taken on cases", ["action", "outcome"],
                      registry=REGISTRY)
SWEEP_SECONDS = Histogram("workflow_sweep_duration_seconds", "Deadline sweep duration",
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
DISPATCH_SECONDS = Histogram("workflow_dispatch_duration_seconds", "Dispatcher pass duration",
                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY)
OUTBOX = Gauge("workflow_outbox_notifications", "Notifications in the outbox by status", ["status"],
               registry=REGISTRY)
