"""Picks the backend per command: projects with a Kubernetes spec run in their
workspace pod, the others on the executor's host."""

from __future__ import annotations

from rdev_common.events import CommandRequested
from rdev_executor.service_layer.ports import Backend, Process


class KubernetesDisabled(RuntimeError):
    pass


class RoutingBackend:
    def __init__(self, local: Backend, kubernetes: Backend | None) -> None:
        self.local = local
        self.kubernetes = kubernetes

    async def start(self, request: CommandRequested, extra_env: dict[str, str]) -> Process:
        if request.kubernetes is None:
            return await self.local.start(request, extra_env)
        if self.kubernetes is None:
            # Never fall back to the host: the project asked for its own pod.
            raise KubernetesDisabled(
                f"project {request.project} runs in Kubernetes, but this executor has the "
                "kubernetes backend off (RDEV_EXECUTOR_BACKEND=local)"
            )
        return await self.kubernetes.start(request, extra_env)
