"""Prometheus metrics of one app, in a registry of its own (two apps in one process, as in
tests, must not share or clash over counters).

Labels are bounded sets: route templates (``/api/v1/analytics/etl/jobs/{job_id}``, never
the id), methods, statuses, refusal codes and the collector's namespaces (only those an
ingest key was issued for reach a counter). Nothing names a tenant, so scraping
``/metrics`` reveals no tenant's activity to anyone.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "unmatched"  # requests no route took (404s): one label, not one per path
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "strata_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "strata_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ("route", "method"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.refusals = Counter(
            "strata_query_refusals",
            "Queries refused or failed, by error code (query_refused, scan_budget_exceeded...).",
            ("kind",),
            registry=self.registry,
        )
        self.rows = Counter(
            "strata_query_rows_returned",
            "Rows returned by queries.",
            registry=self.registry,
        )
        self.ingest_requests = Counter(
            "strata_ingest_requests",
            "Collector requests that were read, by namespace and outcome "
            "(landed: every record; partial: skip_invalid left some out; refused: none).",
            ("namespace", "outcome"),
            registry=self.registry,
        )
        self.ingest_records = Counter(
            "strata_ingest_records",
            "Records sent to the collector, by namespace and outcome: accepted (journaled), "
            "rejected (invalid; the valid records of a refused request count in neither).",
            ("namespace", "outcome"),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by the route template that served it."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if nothing is sent, the server answers for us

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            # The router leaves the matched route in the scope it shares with us.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)
