"""Workspace pods: create, wait for Ready, reuse, and collect when idle.

Several executors share the pods, so a pod is known by its UID once found, and
every delete carries preconditions: the UID (never a newer pod of the same name)
and, for idle collection, the resourceVersion it judged idle (a command another
executor started since changed the pod, and the delete fails with 409).

A pod stuck terminating (an unreachable node, a finalizer) is left to the
cluster and the project moves to a pod of the next generation, a new name: a
force-delete would not clear finalizers, and on an unreachable node the old
container may still run beside its replacement.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from kubernetes_asyncio.client.exceptions import ApiException

from rdev_executor.adapters.k8s_api import KubeApi
from rdev_executor.adapters.k8s_spec import (
    GENERATION_LABEL,
    LAST_USED,
    PROJECT_LABEL,
    SELECTOR,
    SPEC_LABEL,
    KubernetesSpec,
    pod_manifest,
    pod_name,
)
from rdev_executor.adapters.k8s_status import (
    Startup,
    gone_reason,
    is_ready,
    is_terminating,
    restart_count,
)

log = structlog.get_logger()

MAX_GENERATIONS = 8
# (phase, message): what a starting workspace pod waits for now.
Progress = Callable[[str, str], Awaitable[None]]


async def no_progress(_: str, __: str) -> None:
    return None


class PodNotReady(RuntimeError):
    """The workspace pod failed, vanished, or did not become Ready in time."""


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    restarts: int = 0  # the workspace container's restartCount when found Ready


def describe(exc: BaseException) -> str:
    """One line for an API error: status, reason and the Status message, no headers."""
    if not isinstance(exc, ApiException):
        return str(exc)
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def utcnow() -> datetime:
    return datetime.now(UTC)


def generation_of(pod: Any) -> int:
    try:
        return int((pod.metadata.labels or {}).get(GENERATION_LABEL, "0"))
    except ValueError:
        return 0


@dataclass(frozen=True)
class StartupPolicy:
    ready_timeout_s: float = 120.0
    poll_s: float = 1.0
    image_pull_tries: int = 3
    unschedulable_grace_s: float = 30.0


class WorkspacePods:
    def __init__(
        self,
        api: KubeApi,
        *,
        idle_gc_s: float,
        startup: StartupPolicy,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.api = api
        self.idle_gc_s = idle_gc_s
        self.startup = startup
        self._now = now

    async def ensure(
        self, project: str, spec: KubernetesSpec, progress: Progress = no_progress
    ) -> PodRef:
        """The project's Ready workspace pod, created if needed."""
        ns = spec.namespace
        selector = f"{PROJECT_LABEL}={project},{SPEC_LABEL}={spec.digest()}"
        listed = await self.api.call(lambda a: a.list_namespaced_pod(ns, label_selector=selector))
        pods = [p for p in listed.items if (p.metadata.labels or {}).get(PROJECT_LABEL) == project]
        usable = sorted((p for p in pods if gone_reason(p) is None), key=generation_of)
        if usable:
            pod = usable[0]
        else:
            for dead in pods:
                if not is_terminating(dead):  # failed or evicted: make room for a new one
                    await self.delete(ns, dead.metadata.name, dead.metadata.uid)
            taken = {p.metadata.name for p in pods}
            generation = next(
                (g for g in range(MAX_GENERATIONS) if pod_name(project, spec, g) not in taken),
                None,
            )
            if generation is None:
                raise PodNotReady(
                    f"all {MAX_GENERATIONS} workspace pods of project {project} are stuck "
                    f"terminating; see `kubectl -n {ns} get pods -l {selector}`"
                )
            if generation:
                stuck = pod_name(project, spec, generation - 1)
                log.warning("workspace pod stuck terminating; using a new one", pod=stuck)
                await progress(
                    "replacing", f"workspace pod {stuck} is still terminating; starting a new one"
                )
            pod = await self._create(project, spec, generation)
        ref = PodRef(ns, pod.metadata.name, pod.metadata.uid)
        if not is_ready(pod):
            pod = await self._wait_ready(ref, progress)
        await self.touch(ref)
        return PodRef(ns, ref.name, ref.uid, restart_count(pod))

    async def read(self, ns: str, name: str, uid: str | None = None) -> Any | None:
        """The pod, or None if it is gone (or, given `uid`, replaced by another)."""
        try:
            pod = await self.api.call(lambda a: a.read_namespaced_pod(name, ns))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return None if uid is not None and pod.metadata.uid != uid else pod

    async def delete(
        self, ns: str, name: str, uid: str, resource_version: str | None = None
    ) -> bool:
        """Delete exactly this pod (and, given one, in this version); False if it
        was gone or changed."""
        preconditions = {"uid": uid}
        if resource_version is not None:
            preconditions["resourceVersion"] = resource_version
        body = {"preconditions": preconditions}
        try:
            await self.api.call(lambda a: a.delete_namespaced_pod(name, ns, body=body))  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def touch(self, ref: PodRef) -> None:
        """Record use, so idle collection (by any executor) spares the pod."""
        body = {"metadata": {"annotations": {LAST_USED: self._now().isoformat()}}}
        await self.api.call(lambda a: a.patch_namespaced_pod(ref.name, ref.namespace, body))

    async def collect_idle(self, ns: str, busy: Collection[str] = ()) -> list[str]:
        """Delete rdev's pods in `ns` unused for longer than the idle time."""
        pods = await self.api.call(lambda a: a.list_namespaced_pod(ns, label_selector=SELECTOR))
        now = self._now()
        cutoff = now - timedelta(seconds=self.idle_gc_s)
        starting_since = now - timedelta(seconds=self.startup.ready_timeout_s)
        deleted = []
        for pod in pods.items:
            meta = pod.metadata
            stamp = (meta.annotations or {}).get(LAST_USED)
            if meta.uid in busy or is_terminating(pod):
                continue
            created = meta.creation_timestamp
            if not is_ready(pod) and created is not None and created > starting_since:
                continue  # still starting for some command
            if stamp is None or datetime.fromisoformat(stamp) < cutoff:
                if await self.delete(ns, meta.name, meta.uid, meta.resource_version):
                    deleted.append(meta.name)
                    log.info("idle workspace pod deleted", pod=meta.name, namespace=ns)
                else:
                    log.info("idle workspace pod was used meanwhile; kept", pod=meta.name)
        return deleted

    async def _create(self, project: str, spec: KubernetesSpec, generation: int) -> Any:
        manifest = pod_manifest(project, spec, self._now().isoformat(), generation)
        ns, name = spec.namespace, manifest["metadata"]["name"]
        try:
            # The client serialises plain dicts as they are.
            pod = await self.api.call(lambda a: a.create_namespaced_pod(ns, manifest))  # type: ignore[arg-type]
            log.info("workspace pod created", pod=name, namespace=ns, project=project)
            return pod
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = await self.read(ns, name)  # another executor created it first
        if existing is None or gone_reason(existing) is not None:
            raise PodNotReady(f"workspace pod {name} went away while starting")
        return existing

    async def _wait_ready(self, ref: PodRef, progress: Progress) -> Any:
        policy = self.startup
        startup = Startup(ref.name, policy.image_pull_tries, policy.unschedulable_grace_s)
        deadline = time.monotonic() + policy.ready_timeout_s
        shown, pause = None, min(0.1, policy.poll_s)
        while True:
            pod = await self.read(ref.namespace, ref.name, ref.uid)
            if pod is None:
                raise PodNotReady(f"workspace pod {ref.name} was deleted while starting")
            if is_ready(pod):
                return pod
            if reason := gone_reason(pod):
                raise PodNotReady(f"workspace pod {ref.name} {reason} while starting")
            now, final = startup.observe(pod)
            if final is not None:
                # Gone, the next command starts afresh (the image may exist by then)
                # instead of waiting out this pod's back-off.
                await self.delete(ref.namespace, ref.name, ref.uid)
                raise PodNotReady(final)
            if now != shown:
                shown = now
                await progress(startup.phase, now)
            if time.monotonic() >= deadline:
                raise PodNotReady(
                    f"workspace pod {ref.name} was not Ready after "
                    f"{policy.ready_timeout_s:g}s: {now}"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, policy.poll_s)
