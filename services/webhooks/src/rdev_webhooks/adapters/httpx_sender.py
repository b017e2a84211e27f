"""HttpxWebhookSender: signed POSTs, no redirects, a hard deadline, an SSRF check at connect.

The address check runs inside the connection pool's network backend, on the
addresses actually dialled, so a DNS answer that changes after registration
(rebinding) cannot steer a delivery to a private address. TLS still verifies
the certificate against the URL's host name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpcore
import httpx

from rdev_common.webhook_rules import refused_address, resolve
from rdev_webhooks.adapters.observed_delivery import observed_send
from rdev_webhooks.domain import signing
from rdev_webhooks.domain.model import AttemptResult, Delivery, Endpoint

USER_AGENT = "rdev-webhooks/0.1"
RETRY_AFTER_STATUSES = (429, 503)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Dials only public addresses (private ones too when allowed; never metadata)."""

    def __init__(self, allow_private: bool) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from exc
        allowed = [a for a in addresses if not refused_address(a, self.allow_private)]
        if not allowed or len(allowed) != len(addresses):
            what = "" if self.allow_private else "loopback, private, "
            raise httpcore.ConnectError(
                f"destination refused: {host} resolves to a {what}link-local or metadata address"
            )
        error: httpcore.ConnectError | None = None
        for address in allowed:  # every checked address in turn, as a resolver-driven dial would
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in RETRY_AFTER_STATUSES:
        return None
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HttpxWebhookSender:
    def __init__(self, timeout_s: float, allow_private: bool, body_limit: int = 2048) -> None:
        self.timeout_s = timeout_s
        self.body_limit = body_limit
        transport = httpx.AsyncHTTPTransport(retries=0)
        # httpx takes no network backend; the pool it wraps does.
        transport._pool = httpcore.AsyncConnectionPool(
            max_connections=1000,
            max_keepalive_connections=200,
            network_backend=GuardedBackend(allow_private),
        )
        self.client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            timeout=timeout_s,
            headers={"user-agent": USER_AGENT},
            # One client serves every endpoint: keep no cookie any receiver sets.
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        )

    async def send(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult:
        return await observed_send(self._send, endpoint, delivery, attempt)

    async def _send(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> AttemptResult:
        body = delivery.payload.encode()
        headers = signing.headers(endpoint.secrets, delivery.id, int(time.time()), body, attempt)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(endpoint.url, body, headers, started)
        except TimeoutError:
            return self._failed(started, f"timed out after {self.timeout_s:g}s")
        except httpx.HTTPError as exc:
            return self._failed(started, f"{type(exc).__name__}: {exc}"[:500])

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], started: float
    ) -> AttemptResult:
        async with self.client.stream("POST", url, content=body, headers=headers) as response:
            kept = b""
            # Read no more of the answer than is kept: a receiver can't make us buffer much.
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= self.body_limit:
                    break
        return AttemptResult(
            status_code=response.status_code,
            duration_ms=_ms(started),
            response_body=kept[: self.body_limit].decode(errors="replace") or None,
            error=None if response.is_success else f"HTTP {response.status_code}",
            retry_after_s=_retry_after(response),
        )

    def _failed(self, started: float, error: str) -> AttemptResult:
        return AttemptResult(status_code=None, duration_ms=_ms(started), error=error)

    async def aclose(self) -> None:
        await self.client.aclose()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
