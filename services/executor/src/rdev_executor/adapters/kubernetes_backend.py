"""The `kubernetes` backend: commands run in the project's workspace pod.

The pod is created from the project's Kubernetes spec (carried on
command.requested), reused by every later command, and deleted once it has been
idle for `idle_gc_s`. Commands go through the exec API; see k8s_exec.py for how
they are started so that cancel and timeout can kill the remote process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import structlog
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.stream import WsApiClient
from prometheus_client import Enum

from rdev_common.circuit_breaker import BreakerPolicy, CircuitBreaker, StateChange
from rdev_common.events import CommandRequested
from rdev_executor.adapters.k8s_exec import KubernetesProcess, kill_argv, run_argv
from rdev_executor.adapters.k8s_pods import (
    WorkspacePods,
    describe,
    gone_reason,
    is_api_failure,
)
from rdev_executor.adapters.k8s_spec import CONTAINER, ENV_NAME, KubernetesSpec

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
        self._clients: tuple[ApiClient, WsApiClient] | None = None
        self._pods: WorkspacePods | None = None
        self._busy: Counter[str] = Counter()
        self._gc: dict[str, asyncio.Task[None]] = {}

    async def start(
        self, request: CommandRequested, extra_env: dict[str, str]
    ) -> KubernetesProcess:
        if request.kubernetes is None:
            raise ValueError(f"project {request.project} has no Kubernetes spec")
        spec = KubernetesSpec.parse(request.kubernetes, self.options.namespace)
        try:
            return await self._start_in_pod(request, spec, extra_env)
        except Exception as exc:
            if is_api_failure(exc):
                raise KubernetesUnavailable(f"the Kubernetes API failed: {describe(exc)}") from exc
            if isinstance(exc, ApiException):
                raise KubernetesUnavailable(f"the Kubernetes API refused: {describe(exc)}") from exc
            raise

    async def _start_in_pod(
        self, request: CommandRequested, spec: KubernetesSpec, extra_env: dict[str, str]
    ) -> KubernetesProcess:
        pods = await self._workspace_pods()
        self._collect_in(self.options.namespace)  # also orphans of earlier executors
        self._collect_in(spec.namespace)
        name = await pods.ensure(request.project, spec)
        env = {k: v for k, v in {**request.env, **extra_env}.items() if ENV_NAME.match(k)}
        cwd = posixpath.normpath(posixpath.join(spec.workdir, request.cwd or "."))
        argv = run_argv(request.command, cwd, request.command_id, env)
        ws = await self._exec(spec.namespace, name, argv)
        return self._track(spec.namespace, name, request.command_id, ws)

    async def aclose(self) -> None:
        for task in self._gc.values():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._clients is not None:
            for client in self._clients:
                await client.close()

    def _track(
        self, ns: str, name: str, tag: str, ws: aiohttp.ClientWebSocketResponse
    ) -> KubernetesProcess:
        async def signal_group(signum: int) -> None:
            await self._run_quietly(ns, name, kill_argv(signum, tag))

        async def pod_gone() -> str | None:
            assert self._pods is not None
            try:
                return gone_reason(await self._pods.read(ns, name))
            except Exception:  # the API cannot tell us: trust the exit status
                return None

        heartbeat = asyncio.create_task(self._heartbeat(ns, name))
        self._busy[name] += 1

        def on_exit() -> None:
            heartbeat.cancel()
            self._busy[name] -= 1

        return KubernetesProcess(
            ws, pod=name, signal_group=signal_group, pod_gone=pod_gone, on_exit=on_exit
        )

    async def _exec(self, ns: str, name: str, argv: list[str]) -> aiohttp.ClientWebSocketResponse:
        _, ws_client = await self._api_clients()
        async with self.breaker:
            connecting = await CoreV1Api(ws_client).connect_get_namespaced_pod_exec(
                name,
                ns,
                container=CONTAINER,
                command=argv,  # type: ignore[arg-type]  # a list becomes repeated params
                stdout=True,
                stderr=True,
                stdin=True,  # held open: its end tells the pod rdev is gone
                tty=False,
                _preload_content=False,
            )
            # With _preload_content=False the WsApiClient hands back aiohttp's
            # websocket connect, not the str its stubs declare.
            return await connecting  # type: ignore[misc,no-any-return]

    async def _run_quietly(self, ns: str, name: str, argv: list[str]) -> None:
        try:
            ws = await self._exec(ns, name, argv)
            async for _ in ws:
                pass
        except Exception as exc:
            log.warning("signalling a workspace command failed", pod=name, error=str(exc))

    async def _heartbeat(self, ns: str, name: str) -> None:
        assert self._pods is not None
        while True:
            await asyncio.sleep(self.options.idle_gc_s / 3)
            with contextlib.suppress(Exception):
                await self._pods.touch(ns, name)

    def _collect_in(self, ns: str) -> None:
        if ns not in self._gc:
            self._gc[ns] = asyncio.create_task(self._collect_loop(ns))

    async def _collect_loop(self, ns: str) -> None:
        assert self._pods is not None
        interval = max(1.0, min(self.options.idle_gc_s / 4, 60.0))
        while True:
            await asyncio.sleep(interval)
            try:
                busy = {name for name, n in self._busy.items() if n > 0}
                await self._pods.collect_idle(ns, busy)
            except Exception as exc:
                log.warning("idle workspace pod collection failed", namespace=ns, error=str(exc))

    async def _workspace_pods(self) -> WorkspacePods:
        if self._pods is None:
            api_client, _ = await self._api_clients()
            self._pods = WorkspacePods(
                CoreV1Api(api_client),
                self.breaker,
                ready_timeout_s=self.options.ready_timeout_s,
                idle_gc_s=self.options.idle_gc_s,
            )
        return self._pods

    async def _api_clients(self) -> tuple[ApiClient, WsApiClient]:
        if self._clients is None:
            cfg = await self._configuration()
            self._clients = (ApiClient(cfg), WsApiClient(cfg))
        return self._clients

    async def _configuration(self) -> Configuration:
        cfg = Configuration()
        o = self.options
        if o.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=o.kubeconfig, context=o.context, client_configuration=cfg
            )
        return cfg
