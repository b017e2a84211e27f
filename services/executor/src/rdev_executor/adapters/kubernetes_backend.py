"""The `kubernetes` backend: commands run in the project's workspace pod.

The pod is created from the project's Kubernetes spec (carried on
command.requested), reused by every later command, and deleted once it has been
idle for `idle_gc_s`. Commands go through the exec API; see k8s_exec.py for how
they are started so that cancel and timeout can kill the remote process group,
and k8s_api.py for what counts against the circuit breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import Enum

from rdev_common.circuit_breaker import BreakerPolicy, CircuitBreaker, StateChange
from rdev_common.events import CommandRequested
from rdev_executor.adapters.k8s_api import ExecRefused, KubeApi, RetryPolicy, is_api_failure
from rdev_executor.adapters.k8s_exec import KubernetesProcess, env_block, kill_argv, run_argv
from rdev_executor.adapters.k8s_pods import (
    PodRef,
    StartupPolicy,
    WorkspacePods,
    describe,
)
from rdev_executor.adapters.k8s_spec import CONTAINER, ENV_NAME, KubernetesSpec
from rdev_executor.adapters.k8s_status import gone_reason, restart_reason
from rdev_executor.domain.redaction import Redactor
from rdev_executor.service_layer.progress import report

log = structlog.get_logger()

API_CIRCUIT_STATE = Enum(
    "rdev_k8s_api_circuit_state",
    "Circuit-breaker state around the Kubernetes API (open: commands fail fast)",
    states=["closed", "open", "half_open"],
)


@dataclass(frozen=True)
class KubernetesOptions:
    namespace: str = "rdev-workspaces"
    idle_gc_s: float = 1800.0
    ready_timeout_s: float = 120.0
    kubeconfig: str | None = None  # unset: in-cluster when in a pod, else ~/.kube/config
    context: str | None = None
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    # Pings (and a stdin newline) this often keep idle exec streams open through
    # kubelets and load balancers; no pong within half of it ends the run.
    exec_ping_s: float = 20.0
    poll_s: float = 1.0  # how often a starting pod is read
    image_pull_tries: int = 3  # ImagePullBackOff this often: the run fails
    unschedulable_grace_s: float = 30.0  # an autoscaler's time to add a node
    restart_status_wait_s: float = 10.0  # the kubelet posts an OOM kill this late
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class KubernetesUnavailable(RuntimeError):
    """The API server refused or failed a call the command needed."""


def record_breaker(change: StateChange) -> None:
    API_CIRCUIT_STATE.state(change.new.value)
    log.warning(
        "kubernetes api circuit changed", old=change.old, new=change.new, reason=change.reason
    )


class KubernetesBackend:
    def __init__(
        self, options: KubernetesOptions, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self.breaker = CircuitBreaker(
            "the Kubernetes API",
            options.breaker,
            clock=clock,
            on_state_change=record_breaker,
            is_failure=is_api_failure,
        )
        self.api = KubeApi(
            self.breaker,
            kubeconfig=options.kubeconfig,
            context=options.context,
            retry=options.retry,
        )
        self.pods = WorkspacePods(
            self.api,
            idle_gc_s=options.idle_gc_s,
            startup=StartupPolicy(
                ready_timeout_s=options.ready_timeout_s,
                poll_s=options.poll_s,
                image_pull_tries=options.image_pull_tries,
                unschedulable_grace_s=options.unschedulable_grace_s,
            ),
        )
        self._busy: Counter[str] = Counter()  # pod UIDs with commands running
        self._gc: dict[str, asyncio.Task[None]] = {}

    async def start(
        self, request: CommandRequested, extra_env: dict[str, str]
    ) -> KubernetesProcess:
        if request.kubernetes is None:
            raise ValueError(f"project {request.project} has no Kubernetes spec")
        spec = KubernetesSpec.parse(request.kubernetes, self.options.namespace)
        env = {k: v for k, v in {**request.env, **extra_env}.items() if ENV_NAME.match(k)}
        redact = Redactor([*env.values(), *extra_env.values()])
        try:
            return await self._start_in_pod(request, spec, env, redact)
        except ExecRefused as exc:
            where = "the pod's node or container" if exc.pod_level else "the Kubernetes API"
            raise KubernetesUnavailable(redact(f"{where} refused the exec: {exc}")) from None
        except Exception as exc:
            if is_api_failure(exc):
                message = f"the Kubernetes API failed: {describe(exc)}"
            elif isinstance(exc, ApiException):
                message = f"the Kubernetes API refused: {describe(exc)}"
            elif redact(str(exc)) != str(exc):
                message = str(exc)
            else:
                raise
            raise KubernetesUnavailable(redact(message)) from None

    async def _start_in_pod(
        self,
        request: CommandRequested,
        spec: KubernetesSpec,
        env: dict[str, str],
        redact: Redactor,
    ) -> KubernetesProcess:
        self._collect_in(self.options.namespace)  # also orphans of earlier executors
        self._collect_in(spec.namespace)

        async def progress(phase: str, message: str) -> None:
            log.info(
                "workspace pod starting",
                project=request.project,
                command_id=request.command_id,
                phase=phase,
                progress=message,
            )
            await report(phase, redact(message))

        ref = await self.pods.ensure(request.project, spec, progress)
        cwd = posixpath.normpath(posixpath.join(spec.workdir, request.cwd or "."))
        marker = secrets.token_hex(16)
        argv = run_argv(request.command, cwd, request.command_id, marker)
        try:
            ws = await self._exec(ref, argv)
        except ExecRefused as exc:
            if not exc.pod_level:
                raise
            # The container may be restarting ("container not found"): once more
            # when the pod is Ready again, then the pod's error stands.
            log.warning(
                "exec refused by the pod; retrying once", pod=ref.name, error=redact(str(exc))
            )
            ref = await self.pods.ensure(request.project, spec, progress)
            ws = await self._exec(ref, argv)
        try:
            await ws.send_bytes(env_block(env, marker))
        except BaseException:
            await ws.close()
            raise
        return self._track(ref, request.command_id, ws)

    async def aclose(self) -> None:
        for task in self._gc.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.api.aclose()

    def _track(
        self, ref: PodRef, tag: str, ws: aiohttp.ClientWebSocketResponse
    ) -> KubernetesProcess:
        async def signal_group(signum: int) -> None:
            await self._run_quietly(ref, kill_argv(signum, tag))

        async def lost_reason(wait_for_status: bool) -> str | None:
            """Why the command ended without its own exit, or None: the pod went
            away, or its container restarted (OOM kills are posted late)."""
            deadline = time.monotonic() + (
                self.options.restart_status_wait_s if wait_for_status else 0
            )
            while True:
                try:
                    pod = await self.pods.read(ref.namespace, ref.name, ref.uid)
                except Exception:  # the API cannot tell us: trust the exit status
                    return None
                reason = gone_reason(pod) or restart_reason(pod, ref.restarts)
                if reason is not None or time.monotonic() >= deadline:
                    return reason
                await asyncio.sleep(min(self.options.poll_s, 0.5))

        heartbeat = asyncio.create_task(self._heartbeat(ref))
        self._busy[ref.uid] += 1

        def on_exit() -> None:
            heartbeat.cancel()
            self._busy[ref.uid] -= 1

        return KubernetesProcess(
            ws,
            pod=ref.name,
            signal_group=signal_group,
            lost_reason=lost_reason,
            keepalive_s=self.options.exec_ping_s,
            on_exit=on_exit,
        )

    async def _exec(self, ref: PodRef, argv: list[str]) -> aiohttp.ClientWebSocketResponse:
        return await self.api.exec_stream(
            ref.namespace, ref.name, CONTAINER, argv, self.options.exec_ping_s
        )

    async def _run_quietly(self, ref: PodRef, argv: list[str]) -> None:
        try:
            ws = await self._exec(ref, argv)
            async for _ in ws:
                pass
        except Exception as exc:
            log.warning("signalling a workspace command failed", pod=ref.name, error=str(exc))

    async def _heartbeat(self, ref: PodRef) -> None:
        while True:
            await asyncio.sleep(self.options.idle_gc_s / 3)
            with contextlib.suppress(Exception):
                await self.pods.touch(ref)

    def _collect_in(self, ns: str) -> None:
        if ns not in self._gc:
            self._gc[ns] = asyncio.create_task(self._collect_loop(ns))

    async def _collect_loop(self, ns: str) -> None:
        interval = max(1.0, min(self.options.idle_gc_s / 4, 60.0))
        while True:
            await asyncio.sleep(interval)
            try:
                busy = {uid for uid, n in self._busy.items() if n > 0}
                await self.pods.collect_idle(ns, busy)
            except Exception as exc:
                log.warning("idle workspace pod collection failed", namespace=ns, error=str(exc))
