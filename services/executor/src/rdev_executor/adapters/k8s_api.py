"""Calls to the Kubernetes API: breaker, throttling, expiring credentials, exec handshakes.

Every call goes through one circuit breaker, but only failures that say the API
server is unwell count toward it: a 429 (API Priority and Fairness) is retried
after its Retry-After, a bounded number of times; a 401 reloads the credentials
(a kubeconfig's exec plugin or OIDC token, a rotated service-account token) and
retries once; an exec refused by one pod's kubelet is that pod's problem.

The exec websocket is opened here rather than through the client library, so
that a refused handshake keeps its Status body (aiohttp keeps only "Invalid
response status"), pings keep idle streams open and find dead ones, and the URL
carries no environment.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import structlog
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from rdev_common.circuit_breaker import CircuitBreaker

log = structlog.get_logger()

T = TypeVar("T")
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
# Status messages that come from a kubelet (through the API server's proxy), not from
# the API server itself: one node's trouble, not the API's.
KUBELET_MESSAGES = (
    "unable to upgrade connection",
    "error dialing backend",
    "container not found",
    "error sending request",
    "proxy error",
    "pod does not exist",
    "is not running",
)


@dataclass(frozen=True)
class RetryPolicy:
    throttled_retries: int = 3  # 429s retried per call before it fails
    max_retry_after_s: float = 10.0  # a longer Retry-After is cut to this


class ExecRefused(Exception):
    """The API server or a kubelet refused to open an exec stream; the Status kept."""

    def __init__(self, status: int, reason: str, message: str, retry_after: str | None) -> None:
        super().__init__(f"{status} {reason}" + (f": {message}" if message else ""))
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def pod_level(self) -> bool:
        """The pod's node or container refused, not the API server."""
        if self.status in (400, 404):
            return True
        lowered = self.message.lower()
        return self.status >= 500 and any(m in lowered for m in KUBELET_MESSAGES)


def status_of(exc: BaseException) -> int | None:
    if isinstance(exc, ApiException | ExecRefused):
        return exc.status
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status
    return None


def is_api_failure(exc: BaseException) -> bool:
    """Errors that say the API server is unwell. A 404, 409, 429, a refusal, or one
    pod's kubelet failing an exec say nothing of the sort."""
    if isinstance(exc, ExecRefused):
        return exc.status >= 500 and not exc.pod_level
    if isinstance(exc, ApiException | aiohttp.ClientResponseError):
        return exc.status is None or exc.status >= 500
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


def retry_after_s(exc: BaseException, cap: float) -> float:
    raw = None
    if isinstance(exc, ExecRefused):
        raw = exc.retry_after
    elif isinstance(exc, ApiException) and exc.headers is not None:
        raw = exc.headers.get("Retry-After")
    try:
        return min(max(float(raw), 0.0), cap) if raw is not None else 1.0
    except ValueError:
        return 1.0


class _HandshakeResponse(aiohttp.ClientResponse):
    """Reads the body of a refused websocket upgrade before aiohttp throws it away."""

    async def start(self, connection: Any) -> aiohttp.ClientResponse:
        response = await super().start(connection)
        upgrading = "upgrade" in self.request_info.headers.get("Connection", "").lower()
        if self.status != 101 and upgrading:
            body = await self.read()
            try:
                st = json.loads(body)
            except ValueError:
                st = {"message": body.decode(errors="replace")[:500]}
            if not isinstance(st, dict):
                st = {}
            raise ExecRefused(
                self.status,
                str(st.get("reason") or self.reason or ""),
                str(st.get("message") or ""),
                self.headers.get("Retry-After"),
            )
        return response


class KubeApi:
    """Clients built from the kubeconfig (or the in-cluster account), rebuilt on a 401."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        *,
        kubeconfig: str | None,
        context: str | None,
        retry: RetryPolicy,
    ) -> None:
        self.breaker = breaker
        self.kubeconfig = kubeconfig
        self.context = context
        self.retry = retry
        self._client: ApiClient | None = None
        self._ws_session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        # Replaced clients stay open until the end: streams opened through them live on.
        self._retired: list[tuple[ApiClient, aiohttp.ClientSession | None]] = []
        self.refreshes = 0

    async def call(self, op: Callable[[CoreV1Api], Awaitable[T]]) -> T:
        """`op` through the breaker, retried after a 429 or once after a 401."""
        throttled, refreshed = 0, False
        while True:
            client = await self._api_client()
            try:
                async with self.breaker:
                    return await op(CoreV1Api(client))
            except (ApiException, ExecRefused) as exc:
                if exc.status == 401 and not refreshed:
                    refreshed = True
                    await self._refresh(client)
                    continue
                if exc.status == 429 and throttled < self.retry.throttled_retries:
                    throttled += 1
                    delay = retry_after_s(exc, self.retry.max_retry_after_s)
                    log.info("kubernetes api throttled", retry_in_s=delay, attempt=throttled)
                    await asyncio.sleep(delay)
                    continue
                raise

    async def exec_stream(
        self, ns: str, name: str, container: str, argv: list[str], heartbeat_s: float
    ) -> aiohttp.ClientWebSocketResponse:
        """An exec websocket with stdin open; nothing but the argv in its URL."""

        async def connect(_: CoreV1Api) -> aiohttp.ClientWebSocketResponse:
            assert self._client is not None
            assert self._ws_session is not None
            cfg = self._client.configuration
            headers: dict[str, str] = {}
            await self._client.update_params_for_auth(headers, [], ["BearerToken"])
            query = [("container", container), ("stdin", "true"), ("stdout", "true")]
            query += [("stderr", "true"), ("tty", "false")]
            query += [("command", arg) for arg in argv]
            url = f"{cfg.host}/api/v1/namespaces/{ns}/pods/{name}/exec?{urlencode(query)}"
            return await self._ws_session.ws_connect(
                url,
                headers=headers,
                protocols=PROTOCOLS,
                heartbeat=heartbeat_s,
                autoping=True,
                max_msg_size=0,
            )

        return await self.call(connect)

    async def aclose(self) -> None:
        for client, ws_session in [*self._retired, (self._client, self._ws_session)]:
            if ws_session is not None:
                await ws_session.close()
            if client is not None:
                await client.close()

    async def _api_client(self) -> ApiClient:
        async with self._lock:
            if self._client is None:
                self._client = ApiClient(await self._configuration())
                session = self._client.rest_client.pool_manager
                self._ws_session = aiohttp.ClientSession(
                    connector=session.connector,
                    connector_owner=False,
                    response_class=_HandshakeResponse,
                )
            return self._client

    async def _refresh(self, stale: ApiClient) -> None:
        """New credentials: the kubeconfig is read again (running its exec plugin)."""
        async with self._lock:
            if self._client is not stale:  # another call refreshed already
                return
            self._client, ws_session = None, self._ws_session
            self._ws_session = None
            self._retired.append((stale, ws_session))
        self.refreshes += 1
        log.warning("kubernetes api refused the credentials; reloading them")

    async def _configuration(self) -> Configuration:
        cfg = Configuration()
        if self.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=self.kubeconfig, context=self.context, client_configuration=cfg
            )
        return cfg
