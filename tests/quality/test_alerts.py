"""Alert events (pure) and their delivery to a real local webhook, with retries."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from strata.quality.alerts import EVENT_NAME, AlertConfig, AlertSender, alert_events
from strata.quality.evaluate import CheckResult

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def result(
    check: str, tenant: str | None, status: str, *, kind: str = "not_null", **extra: Any
) -> CheckResult:
    return CheckResult(
        table="silver.workers",
        check=check,
        kind=kind,
        tenant=tenant,
        status=status,  # type: ignore[arg-type]
        severity="warn" if status == "warn" else "error",
        failing=extra.get("failing", 2),
        measured=extra.get("measured"),
        threshold="<= 0 failing rows",
        message="2 failing rows",
        samples=({"company_id": tenant, "email": "secret@example.com"},),
    )


RESULTS = [
    result("not_null_email", "globex", "error"),
    result("not_null_email", "acme", "error"),
    result("unique_email", "acme", "warn"),
    result("row_count", "initech", "warn", kind="row_count", failing=None, measured=0.0),
    result("not_null_email", "initech", "pass", failing=0),
    result("schema", None, "error", kind="schema", failing=1),
]


def events(config: AlertConfig) -> list[dict[str, Any]]:
    return alert_events(
        config, RESULTS, run_id="run-1", table_version=7, published=False, now=lambda: NOW
    )


def test_one_event_per_tenant_with_errors() -> None:
    found = events(AlertConfig(url="http://hooks.invalid"))
    assert [e["tenant_id"] for e in found] == [None, "acme", "globex"]
    acme = found[1]
    assert acme["type"] == EVENT_NAME == "data_quality.alert.v1"
    assert acme["occurred_at"] == "2026-11-22T12:00:00+00:00"
    assert len({e["event_id"] for e in found}) == 3
    assert acme["payload"] == {
        "run_id": "run-1",
        "table": "silver.workers",
        "table_version": 7,
        "published": False,
        "checks": [
            {
                "check": "not_null_email",
                "kind": "not_null",
                "status": "error",
                "severity": "error",
                "failing": 2,
                "measured": None,
                "threshold": "<= 0 failing rows",
                "message": "2 failing rows",
            }
        ],
    }


def test_warn_alerts_include_warnings() -> None:
    found = events(AlertConfig(url="http://hooks.invalid", min_status="warn"))
    assert [e["tenant_id"] for e in found] == [None, "acme", "globex", "initech"]
    assert [c["check"] for c in found[1]["payload"]["checks"]] == ["not_null_email", "unique_email"]
    assert [c["status"] for c in found[3]["payload"]["checks"]] == ["warn"]


def test_event_type_with_a_prefix() -> None:
    config = AlertConfig(url="http://hooks.invalid", event_prefix="melmastoon.analytics")
    assert {e["type"] for e in events(config)} == {"melmastoon.analytics.data_quality.alert.v1"}


def test_no_sample_rows_ever_leave_in_an_alert() -> None:
    text = json.dumps(events(AlertConfig(url="http://hooks.invalid", min_status="warn")))
    assert "secret@example.com" not in text
    assert "samples" not in text


def test_no_events_when_everything_passes() -> None:
    passing = [result("not_null_email", "acme", "pass", failing=0)]
    config = AlertConfig(url="http://hooks.invalid", min_status="warn")
    assert alert_events(config, passing, run_id=None, table_version=None, published=True) == []


# -- delivery to a real webhook ------------------------------------------------------------


class Webhook:
    """A local HTTP server answering POSTs with the queued statuses, then 200.

    ``gate``, when given, holds every response until it is set; ``arrived`` is set as soon
    as a request has been read.
    """

    def __init__(self, statuses: list[int] | None = None, gate: threading.Event | None = None):
        self.statuses = list(statuses or [])
        self.gate = gate
        self.arrived = threading.Event()
        self.requests: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.lock = threading.Lock()
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with webhook.lock:
                    webhook.requests.append((json.loads(body), dict(self.headers)))
                    status = webhook.statuses.pop(0) if webhook.statuses else 200
                webhook.arrived.set()
                if webhook.gate is not None:
                    webhook.gate.wait()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/strata"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


EVENT = {
    "event_id": "e-1",
    "type": EVENT_NAME,
    "tenant_id": "acme",
    "occurred_at": NOW.isoformat(),
    "payload": {"checks": []},
}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def sender(url: str, sleeps: list[float], **config: Any) -> AlertSender:
    return AlertSender(AlertConfig(url=url, **config), sleep=sleeps.append)


def test_retries_5xx_with_backoff_then_delivers_once(sleeps: list[float]) -> None:
    with Webhook([503, 503]) as hook:
        alerts = sender(hook.url, sleeps, headers={"authorization": "Bearer t0ken"})
        alerts.send([EVENT])
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (1, 0)
    assert [body for body, _ in hook.requests] == [EVENT, EVENT, EVENT]  # two refused, one taken
    assert sleeps == [0.5, 1.0]
    headers = {k.lower(): v for k, v in hook.requests[-1][1].items()}
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["content-type"] == "application/json"


def test_429_and_408_are_retried(sleeps: list[float]) -> None:
    with Webhook([429, 408]) as hook:
        alerts = sender(hook.url, sleeps)
        alerts.send([EVENT])
        alerts.close()
    assert (alerts.delivered, alerts.dropped, len(hook.requests)) == (1, 0, 3)


@pytest.mark.parametrize("status", [400, 401, 404, 301])
def test_a_refusal_is_not_retried(sleeps: list[float], status: int) -> None:
    with Webhook([status]) as hook:
        alerts = sender(hook.url, sleeps)
        alerts.send([EVENT])
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (0, 1)
    assert len(hook.requests) == 1
    assert sleeps == []


def test_gives_up_after_max_attempts(sleeps: list[float]) -> None:
    with Webhook([500, 502, 503, 504]) as hook:
        alerts = sender(hook.url, sleeps, max_attempts=3, backoff_s=0.25)
        alerts.send([EVENT, {**EVENT, "event_id": "e-2"}])
        alerts.close()
    # The first event takes 500, 502, 503 and is dropped; the second 504, then 200.
    assert (alerts.delivered, alerts.dropped) == (1, 1)
    assert [body["event_id"] for body, _ in hook.requests] == ["e-1", "e-1", "e-1", "e-2", "e-2"]
    assert sleeps == [0.25, 0.5, 0.25]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_server_that_is_down_is_retried_then_dropped(
    sleeps: list[float], closed_port: int
) -> None:
    alerts = sender(f"http://127.0.0.1:{closed_port}/hook", sleeps, max_attempts=4)
    alerts.send([EVENT])
    alerts.close()
    assert (alerts.delivered, alerts.dropped) == (0, 1)
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.timeout(60)
def test_send_returns_before_the_server_answers(sleeps: list[float]) -> None:
    gate = threading.Event()
    with Webhook(gate=gate) as hook:
        alerts = sender(hook.url, sleeps)
        alerts.send([EVENT])  # the server holds its answer until the gate opens: a send
        # that waited for it would never get here
        assert hook.arrived.wait(30)
        assert (alerts.delivered, alerts.dropped) == (0, 0)
        gate.set()
        alerts.close()
    assert (alerts.delivered, alerts.dropped) == (1, 0)


@pytest.mark.timeout(60)
def test_close_waits_a_bounded_time_then_gives_up(sleeps: list[float]) -> None:
    gate = threading.Event()
    with httpx.Client() as client, Webhook(gate=gate) as hook:
        alerts = AlertSender(AlertConfig(url=hook.url), client=client, sleep=sleeps.append)
        alerts.send([EVENT, {**EVENT, "event_id": "e-2"}])
        assert hook.arrived.wait(30)
        alerts.close(timeout_s=0.05)  # the server still holds the first answer
        gate.set()
        alerts._thread.join(30)
        assert not alerts._thread.is_alive()
    # The answer in flight still counts; what was still queued is dropped, not posted.
    assert (alerts.delivered, alerts.dropped) == (1, 1)
    assert [body["event_id"] for body, _ in hook.requests] == ["e-1"]


def test_a_bad_event_is_dropped_and_the_next_still_delivered(sleeps: list[float]) -> None:
    with Webhook() as hook:
        alerts = sender(hook.url, sleeps)
        alerts.send([{**EVENT, "payload": {"bad": object()}}, EVENT])
        alerts.close()
        alerts.close()  # twice is harmless
    assert (alerts.delivered, alerts.dropped) == (1, 1)
    assert [body for body, _ in hook.requests] == [EVENT]


def test_events_sent_after_close_are_dropped(sleeps: list[float]) -> None:
    with Webhook() as hook:
        alerts = sender(hook.url, sleeps)
        alerts.close()
        alerts.send([EVENT])
    assert (alerts.delivered, alerts.dropped) == (0, 1)
    assert hook.requests == []
