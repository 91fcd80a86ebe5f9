"""Alerts on failing checks: a webhook carrying ``data_quality.alert.v1`` events (seed 004).

One event per table and tenant with failing results, in the envelope Strata's own event
sink accepts (``event_id``, ``type``, ``tenant_id``, ``occurred_at``, ``payload``). The
payload names the run, table, version, whether it was published, and each failing check
with its measured value and threshold; never sample rows (they may hold personal data).

Delivery never blocks a run: events go to a background thread that POSTs each one,
retrying timeouts, connection errors, 408, 429 and 5xx with exponential backoff. ``close``
waits a bounded time for what is queued, so a CLI run that ends at once still delivers.
Each delivery, retry and drop is logged.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from strata.core.logging import fields, get_logger
from strata.quality.evaluate import CheckResult

log = get_logger(__name__)

EVENT_NAME: Final = "data_quality.alert.v1"
_RETRYABLE: Final = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class AlertConfig:
    url: str
    min_status: str = "error"  # "warn" alerts on warnings too
    event_prefix: str = ""  # e.g. "melmastoon.analytics" -> melmastoon.analytics.data_quality...
    timeout_s: float = 5.0
    max_attempts: int = 4
    backoff_s: float = 0.5
    headers: Mapping[str, str] | None = None

    @property
    def event_type(self) -> str:
        return f"{self.event_prefix}.{EVENT_NAME}" if self.event_prefix else EVENT_NAME


def alert_events(
    config: AlertConfig,
    results: Sequence[CheckResult],
    *,
    run_id: str | None,
    table_version: int | None,
    published: bool,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[dict[str, Any]]:
    """The events for one table's results: one per tenant with results at or above
    ``config.min_status``. Pure."""
    levels = ("error",) if config.min_status == "error" else ("warn", "error")
    by_tenant: dict[str | None, list[CheckResult]] = {}
    for result in results:
        if result.status in levels:
            by_tenant.setdefault(result.tenant, []).append(result)
    events = []
    for tenant, failing in sorted(by_tenant.items(), key=lambda kv: kv[0] or ""):
        events.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": config.event_type,
                "tenant_id": tenant,
                "occurred_at": now().isoformat(),
                "payload": {
                    "run_id": run_id,
                    "table": failing[0].table,
                    "table_version": table_version,
                    "published": published,
                    "checks": [
                        {
                            "check": r.check,
                            "kind": r.kind,
                            "status": r.status,
                            "severity": r.severity,
                            "failing": r.failing,
                            "measured": r.measured,
                            "threshold": r.threshold,
                            "message": r.message,
                        }
                        for r in failing
                    ],
                },
            }
        )
    return events


class AlertSender:
    """Posts alert events from a background thread; ``send`` only enqueues."""

    def __init__(
        self,
        config: AlertConfig,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """``sleep`` waits between attempts; by default a wait that ``close`` cuts short
        once it gives up, so an abandoned retry never outlives the run by long."""
        self.config = config
        self.delivered = 0
        self.dropped = 0
        self._client = client or httpx.Client(timeout=config.timeout_s)
        # Set when close() gives up waiting: the thread stops retrying and exits.
        self._abandoned = threading.Event()
        self._sleep: Callable[[float], object] = sleep or self._abandoned.wait
        self._closed = False
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._deliver_all, name="strata-alerts", daemon=True)
        self._thread.start()

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Queue ``events`` for delivery; returns at once."""
        if self._closed:
            log.error("alerts sent after close are dropped", extra=fields(events=len(events)))
            self.dropped += len(events)
            return
        for event in events:
            self._queue.put(event)

    def close(self, timeout_s: float = 30.0) -> None:
        """Deliver what is queued (waiting at most ``timeout_s``), then stop."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._abandoned.set()
            log.warning("alerts still queued at exit", extra=fields(queued=self._queue.qsize()))
            return  # the thread may still be posting: it closes nothing, the process ends
        self._client.close()

    def _deliver_all(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            if self._abandoned.is_set():
                self.dropped += 1
                continue
            try:
                delivered = self._deliver(event)
            except Exception:  # a bad event or client must not end delivery of the others
                log.exception("alert dropped", extra=fields(event_id=event.get("event_id")))
                delivered = False
            if delivered:
                self.delivered += 1
            else:
                self.dropped += 1

    def _deliver(self, event: Mapping[str, Any]) -> bool:
        headers = {"content-type": "application/json", **(self.config.headers or {})}
        problem = ""
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                response = self._client.post(self.config.url, json=event, headers=headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    log.info(
                        "alert delivered",
                        extra=fields(event_id=event["event_id"], attempts=attempt),
                    )
                    return True
                problem = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in _RETRYABLE:
                    break  # the receiver refuses this event: retrying will not help
            if attempt < self.config.max_attempts and not self._abandoned.is_set():
                log.warning(
                    "alert delivery failed, retrying",
                    extra=fields(event_id=event["event_id"], attempt=attempt, problem=problem),
                )
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
            else:
                break
        log.error(
            "alert dropped",
            extra=fields(event_id=event["event_id"], url=self.config.url, problem=problem),
        )
        return False
