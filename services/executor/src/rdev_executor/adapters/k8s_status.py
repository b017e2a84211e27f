"""Reading a workspace pod's status: Ready, gone, stuck starting, restarted.

Pure functions over the pod objects the client returns, so the API server's own
words (the scheduler's and the kubelet's reasons and messages) reach the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rdev_executor.adapters.k8s_spec import CONTAINER

# Waiting reasons that no retry of the kubelet will fix.
FINAL_WAITING = frozenset(
    {
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",  # the idle command itself fails: the image cannot host rdev
    }
)
PULL_FAILING = frozenset({"ErrImagePull", "ImagePullBackOff"})


def is_terminating(pod: Any) -> bool:
    return pod.metadata.deletion_timestamp is not None


def is_ready(pod: Any) -> bool:
    if is_terminating(pod) or pod.status is None:
        return False
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in conditions
    )


def gone_reason(pod: Any) -> str | None:
    """Why a pod can no longer run commands, or None while it still can."""
    if pod is None or is_terminating(pod):
        return "was deleted"
    status = pod.status
    if status is not None and status.reason == "Evicted":
        return f"was evicted: {status.message or 'no message'}"
    if status is not None and status.phase in ("Failed", "Succeeded"):
        return f"stopped (phase {status.phase})"
    return None


def workspace_status(pod: Any) -> Any | None:
    for cs in (pod.status.container_statuses if pod.status else None) or []:
        if cs.name == CONTAINER:
            return cs
    return None


def restart_count(pod: Any) -> int:
    cs = workspace_status(pod)
    return int(cs.restart_count or 0) if cs is not None else 0


def memory_limit(pod: Any) -> str | None:
    for c in pod.spec.containers or []:
        if c.name == CONTAINER and c.resources is not None:
            return (c.resources.limits or {}).get("memory")
    return None


def restart_reason(pod: Any, restarts_before: int) -> str | None:
    """Why the workspace container restarted since `restarts_before`, if it did."""
    cs = workspace_status(pod)
    if cs is None or int(cs.restart_count or 0) <= restarts_before:
        return None
    last = cs.last_state.terminated if cs.last_state else None
    if last is not None and last.reason == "OOMKilled":
        limit = memory_limit(pod)
        at = f"its memory limit of {limit}" if limit else "the node's memory"
        return f"was killed for memory (OOMKilled at {at}); the container restarted"
    what = f"{last.reason}, exit code {last.exit_code}" if last is not None else "no reason given"
    return f"restarted its container ({what})"


@dataclass
class Startup:
    """Follows a pod that is not Ready yet: progress to show, or the final reason."""

    name: str
    image_pull_tries: int
    unschedulable_grace_s: float
    clock: Callable[[], float] = time.monotonic
    pull_failures: int = 0
    _last_waiting: str | None = None
    _unschedulable_since: float | None = None
    trail: list[str] = field(default_factory=list)
    # What the pod waits for, as of the last `observe`: scheduling, pulling, starting.
    phase: str = "scheduling"

    def observe(self, pod: Any) -> tuple[str, str | None]:
        """(progress, final error or None) for the pod as it is now."""
        status = pod.status
        conditions = {c.type: c for c in (status.conditions if status else None) or []}
        scheduled = conditions.get("PodScheduled")
        self.phase = "scheduling"
        if scheduled is not None and scheduled.status == "False":
            message = scheduled.message or scheduled.reason or "no node fits"
            if self._unschedulable_since is None:
                self._unschedulable_since = self.clock()
            waited = self.clock() - self._unschedulable_since
            if scheduled.reason == "Unschedulable" and waited >= self.unschedulable_grace_s:
                return self._note(f"waiting for a node: {message}"), (
                    f"workspace pod {self.name} cannot be scheduled: {message}"
                )
            return self._note(f"waiting for a node: {message}"), None
        self._unschedulable_since = None
        if scheduled is None:
            return self._note("waiting to be scheduled"), None
        self.phase = "starting"
        cs = workspace_status(pod)
        waiting = cs.state.waiting if cs is not None and cs.state is not None else None
        if cs is None or waiting is None:
            self._last_waiting = None
            return self._note("starting the container"), None
        reason, message = waiting.reason or "", waiting.message or ""
        detail = f"{reason}: {message}" if message else reason
        if reason == "ImagePullBackOff" and self._last_waiting != reason:
            self.pull_failures += 1
        self._last_waiting = reason
        if reason in FINAL_WAITING:
            last = cs.last_state.terminated if cs.last_state else None
            if last is not None:
                detail += f" (last exit: {last.reason}, code {last.exit_code})"
            return self._note(detail), f"workspace pod {self.name} cannot start: {detail}"
        if reason in PULL_FAILING:
            self.phase = "pulling"
            tries = f"{self.pull_failures}/{self.image_pull_tries}"
            progress = self._note(f"pulling image {cs.image} failed ({tries}): {detail}")
            if self.pull_failures >= self.image_pull_tries:
                return progress, (
                    f"workspace pod {self.name} cannot pull image {cs.image} "
                    f"after {self.pull_failures} tries: {detail}"
                )
            return progress, None
        if reason == "ContainerCreating":
            self.phase = "pulling"
            return self._note(f"pulling image {cs.image} and creating the container"), None
        return self._note(detail), None

    def _note(self, progress: str) -> str:
        if not self.trail or self.trail[-1] != progress:
            self.trail.append(progress)
        return progress
