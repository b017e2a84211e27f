"""Traces and metrics of webhook delivery attempts.

An attempt runs later than the event it carries (retries, back-off), so it joins
the event's trace through the CloudEvent's `traceparent`; the httpx
instrumentation adds the HTTP client span and sends `traceparent` to the receiver.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from rdev_common.metrics import observe_webhook_attempt
from rdev_common.telemetry import event_span
from rdev_webhooks.domain.model import AttemptResult, Delivery, Endpoint

Send = Callable[[Endpoint, Delivery, int], Awaitable[AttemptResult]]


async def observed_send(
    send: Send, endpoint: Endpoint, delivery: Delivery, attempt: int
) -> AttemptResult:
    attributes = {
        "rdev.webhook_id": endpoint.id,
        "rdev.delivery_id": delivery.id,
        "rdev.attempt": attempt,
    }
    began = time.monotonic()
    with event_span("webhook delivery", delivery.payload, attributes) as span:
        result = await send(endpoint, delivery, attempt)
        outcome = observe_webhook_attempt(
            result.status_code, result.error, time.monotonic() - began
        )
        span.set_attribute("rdev.outcome", outcome)
        if result.status_code is not None:
            span.set_attribute("http.response.status_code", result.status_code)
    return result
