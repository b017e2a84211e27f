"""Workspace pods: create, wait for Ready, reuse, and collect when idle.

Every call to the API server goes through one circuit breaker, so a failing
API server makes commands fail fast instead of piling up behind timeouts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from rdev_common.circuit_breaker import CircuitBreaker
from rdev_executor.adapters.k8s_spec import (
    LAST_USED,
    SELECTOR,
    KubernetesSpec,
    pod_manifest,
    pod_name,
)

log = structlog.get_logger()

DELETE_POLL_S = 0.25


class PodNotReady(RuntimeError):
    """The workspace pod failed, vanished, or did not become Ready in time."""


def is_api_failure(exc: BaseException) -> bool:
    """Errors that say the API server is unwell; a 404 or 409 says nothing of the sort."""
    if isinstance(exc, ApiException | aiohttp.ClientResponseError):
        return exc.status is None or exc.status >= 500 or exc.status == 429
    return isinstance(exc, aiohttp.ClientError | OSError | TimeoutError)


def describe(exc: BaseException) -> str:
    """One line for an API error: status, reason and the Status message, no headers."""
    if not isinstance(exc, ApiException):
        return str(exc)
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def is_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return False
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def gone_reason(pod: Any) -> str | None:
    """Why a pod can no longer run commands, or None while it still can."""
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return "was deleted"
    status = pod.status
    if status is not None and status.reason == "Evicted":
        return f"was evicted: {status.message or 'no message'}"
    if status is not None and status.phase in ("Failed", "Succeeded"):
        return f"stopped (phase {status.phase})"
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


class WorkspacePods:
    def __init__(
        self,
        api: CoreV1Api,
        breaker: CircuitBreaker,
        *,
        ready_timeout_s: float,
        idle_gc_s: float,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.api = api
        self.breaker = breaker
        self.ready_timeout_s = ready_timeout_s
        self.idle_gc_s = idle_gc_s
        self._now = now

    async def ensure(self, project: str, spec: KubernetesSpec) -> str:
        """The name of the project's Ready workspace pod, created if needed."""
        name, ns = pod_name(project, spec), spec.namespace
        pod = await self.read(ns, name)
        if pod is not None and gone_reason(pod) is not None:
            await self.delete(ns, name)
            await self._wait_deleted(ns, name)
            pod = None
        if pod is None:
            await self._create(project, spec)
            log.info("workspace pod created", pod=name, namespace=ns, project=project)
        elif is_ready(pod):
            await self.touch(ns, name)
            return name
        await self._wait_ready(ns, name)
        await self.touch(ns, name)
        return name

    async def read(self, ns: str, name: str) -> Any | None:
        try:
            async with self.breaker:
                return await self.api.read_namespaced_pod(name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, ns: str, name: str) -> None:
        try:
            async with self.breaker:
                await self.api.delete_namespaced_pod(name, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def touch(self, ns: str, name: str) -> None:
        """Record use, so idle collection (by any executor) spares the pod."""
        body = {"metadata": {"annotations": {LAST_USED: self._now().isoformat()}}}
        async with self.breaker:
            await self.api.patch_namespaced_pod(name, ns, body)

    async def collect_idle(self, ns: str, busy: Collection[str] = ()) -> list[str]:
        """Delete rdev's pods in `ns` unused for longer than the idle time."""
        async with self.breaker:
            pods = await self.api.list_namespaced_pod(ns, label_selector=SELECTOR)
        cutoff = self._now() - timedelta(seconds=self.idle_gc_s)
        deleted = []
        for pod in pods.items:
            stamp = (pod.metadata.annotations or {}).get(LAST_USED)
            if pod.metadata.name in busy:
                continue
            if stamp is None or datetime.fromisoformat(stamp) < cutoff:
                await self.delete(ns, pod.metadata.name)
                deleted.append(pod.metadata.name)
                log.info("idle workspace pod deleted", pod=pod.metadata.name, namespace=ns)
        return deleted

    async def _create(self, project: str, spec: KubernetesSpec) -> None:
        manifest = pod_manifest(project, spec, self._now().isoformat())
        try:
            async with self.breaker:
                # The client serialises plain dicts as they are.
                await self.api.create_namespaced_pod(spec.namespace, manifest)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 409:  # another executor created it first
                raise

    async def _wait_ready(self, ns: str, name: str) -> None:
        try:
            async with asyncio.timeout(self.ready_timeout_s):
                await self._watch_until_ready(ns, name)
        except TimeoutError:
            raise PodNotReady(
                f"workspace pod {name} was not Ready after {self.ready_timeout_s:g}s"
            ) from None

    async def _wait_deleted(self, ns: str, name: str) -> None:
        # Polled: a watch opened after the pod vanished would never see it go.
        try:
            async with asyncio.timeout(self.ready_timeout_s):
                while await self.read(ns, name) is not None:  # noqa: ASYNC110 (remote state)
                    await asyncio.sleep(DELETE_POLL_S)
        except TimeoutError:
            raise PodNotReady(f"old workspace pod {name} is still terminating") from None

    async def _watch_until_ready(self, ns: str, name: str) -> None:
        # A watch without a resourceVersion starts with the pod's current state,
        # so a pod that turned Ready before the watch opened is seen at once.
        while True:
            async with self.breaker, watch.Watch() as w:
                stream = w.stream(
                    self.api.list_namespaced_pod,
                    ns,
                    field_selector=f"metadata.name={name}",
                    timeout_seconds=max(1, int(self.ready_timeout_s)),
                )
                async for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        raise PodNotReady(f"workspace pod {name} was deleted while starting")
                    if is_ready(pod):
                        return
                    if reason := gone_reason(pod):
                        raise PodNotReady(f"workspace pod {name} {reason} while starting")
