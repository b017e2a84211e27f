"""Every Prometheus metric rdev exports, defined once; each service serves its own on /metrics.

Services increment the objects below directly (`COMMANDS_SUBMITTED.labels(priority=…).inc()`).
Labels stay low-cardinality: no command ids, no projects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
)

from rdev_common.circuit_breaker import StateChange
from rdev_common.streams import priority_of_durable

log = structlog.get_logger()

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# api
COMMANDS_SUBMITTED = Counter(
    "rdev_commands_submitted_total", "Commands accepted by the API (not replays)", ["priority"]
)
SSE_CONNECTIONS = Gauge("rdev_sse_connections", "Open Server-Sent Events connections")
HTTP_REQUEST_DURATION = Histogram(
    "rdev_http_request_duration_seconds",
    "Time from request to response headers, by route template",
    ["method", "route", "status"],
    buckets=HTTP_BUCKETS,
)
RATE_LIMIT_REJECTIONS = Counter(
    "rdev_rate_limit_rejections_total",
    "Requests refused with 429, by the limit that refused them (key, ip, project…)",
    ["limit"],
)

# executor
COMMANDS_COMPLETED = Counter(
    "rdev_commands_completed_total",
    "Runs ended by this executor",
    ["priority", "reason", "exit_code"],
)
RUN_DURATION = Histogram(
    "rdev_run_duration_seconds",
    "Wall time of a run, from pickup to its completed event",
    ["priority", "reason"],
    buckets=DURATION_BUCKETS,
)
ACTIVE_RUNS = Gauge("rdev_active_runs", "Runs in progress on this executor")
OUTPUT_BYTES = Counter("rdev_output_bytes_total", "Bytes of command output published")
QUEUE_DEPTH = Gauge(
    "rdev_queue_depth", "Commands waiting to be picked up, per priority", ["priority"]
)

# any durable consumer (executor, webhooks, audit)
CONSUMER_LAG_MESSAGES = Gauge(
    "rdev_consumer_lag_messages",
    "Messages of a durable consumer not yet acknowledged (pending + in flight)",
    ["consumer"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "rdev_consumer_lag_seconds",
    "Age of the last message a consumer handled, when it handled it",
    ["consumer"],
)
MESSAGES_CONSUMED = Counter(
    "rdev_messages_consumed_total", "Messages handed to a handler", ["consumer", "outcome"]
)

# webhooks
WEBHOOK_ATTEMPTS = Counter(
    "rdev_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (success, http_error, timeout, network_error, "
    "circuit_open, blocked)",
    ["outcome"],
)
WEBHOOK_DELIVERY_DURATION = Histogram(
    "rdev_webhook_delivery_duration_seconds",
    "Time of one delivery attempt",
    ["outcome"],
    buckets=HTTP_BUCKETS,
)
WEBHOOK_CIRCUIT_STATE = Enum(
    "rdev_webhook_circuit_state",
    "Circuit-breaker state per webhook endpoint",
    ["webhook"],
    states=["closed", "open", "half_open"],
)
WEBHOOK_CIRCUIT_TRANSITIONS = Counter(
    "rdev_webhook_circuit_transitions_total", "Circuit-breaker state changes", ["state"]
)

# audit
AUDIT_PROJECTION_LAG = Gauge(
    "rdev_audit_projection_lag_seconds",
    "Age of the last event the audit projection wrote, when it wrote it",
)
AUDIT_EVENTS_PROJECTED = Counter(
    "rdev_audit_events_projected_total", "Events written to the audit log and history", ["stream"]
)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text format of this process's metrics, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_consumed(consumer: str, msgs: Sequence[Msg], outcome: str) -> None:
    """Count handled messages; the consumer's lag is the age of the last one."""
    MESSAGES_CONSUMED.labels(consumer=consumer, outcome=outcome).inc(len(msgs))
    try:
        stamp = msgs[-1].metadata.timestamp if msgs else None
    except Exception:  # not a JetStream message
        return
    if stamp is not None:
        lag = max(0.0, time.time() - stamp.timestamp())
        CONSUMER_LAG_SECONDS.labels(consumer=consumer).set(lag)


async def poll_consumers(
    js: JetStreamContext, consumers: Sequence[tuple[str, str]], interval_s: float = 5.0
) -> None:
    """Refresh lag (and, for executor consumers, queue depth) from consumer info, forever.

    `consumers` are (stream, durable name) pairs.
    """
    while True:
        for stream, durable in consumers:
            try:
                info = await js.consumer_info(stream, durable)
            except Exception as exc:  # broker away or consumer not there yet: next round
                log.debug("consumer info failed", consumer=durable, error=repr(exc))
                continue
            pending, in_flight = info.num_pending or 0, info.num_ack_pending or 0
            CONSUMER_LAG_MESSAGES.labels(consumer=durable).set(pending + in_flight)
            priority = priority_of_durable(durable)
            if priority is not None:
                QUEUE_DEPTH.labels(priority=priority.value).set(pending)
        await asyncio.sleep(interval_s)


def circuit_state_recorder(webhook_id: str) -> Callable[[StateChange], None]:
    """An `on_state_change` callback for a webhook endpoint's circuit breaker."""
    WEBHOOK_CIRCUIT_STATE.labels(webhook=webhook_id).state("closed")

    def record(change: StateChange) -> None:
        WEBHOOK_CIRCUIT_STATE.labels(webhook=webhook_id).state(change.new.value)
        WEBHOOK_CIRCUIT_TRANSITIONS.labels(state=change.new.value).inc()

    return record


def webhook_outcome(status_code: int | None, error: str | None) -> str:
    """The `outcome` label of one delivery attempt."""
    if status_code is not None:
        return "success" if 200 <= status_code < 300 else "http_error"
    if error and "timed out" in error:
        return "timeout"
    return "network_error"


def observe_webhook_attempt(status_code: int | None, error: str | None, seconds: float) -> str:
    outcome = webhook_outcome(status_code, error)
    WEBHOOK_ATTEMPTS.labels(outcome=outcome).inc()
    WEBHOOK_DELIVERY_DURATION.labels(outcome=outcome).observe(seconds)
    return outcome
