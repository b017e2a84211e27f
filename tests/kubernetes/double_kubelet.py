"""The cluster behind the API-server double: scheduler and kubelet, as unkind as real ones.

A created pod is scheduled only onto a node whose labels match its nodeSelector
(else it stays Pending with PodScheduled=False, reason Unschedulable); its image
is pulled (an unpullable one cycles ErrImagePull → ImagePullBackOff for ever);
then it turns Running and Ready. A pod with a finalizer stays Terminating after
its delete. An OOM kill ends every process of the container at once and the
kubelet posts the restart (lastState OOMKilled) only some time later.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

NODES: dict[str, dict[str, str]] = {
    "node-a": {"pool": "workspaces", "kubernetes.io/hostname": "node-a"},
    "node-b": {"pool": "workspaces", "kubernetes.io/hostname": "node-b"},
}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    c = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": now()}
    if reason:
        c.update(reason=reason, message=message)
    return c


def container_status(pod: dict[str, Any], **state: Any) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    old = (pod["status"].get("containerStatuses") or [{}])[0]
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": "",
        "ready": "running" in state,
        "started": "running" in state,
        "restartCount": old.get("restartCount", 0),
        "lastState": old.get("lastState", {}),
        "state": state,
    }


def unschedulable_message(selector: dict[str, str]) -> str:
    misfits = sum(
        1 for labels in NODES.values() if any(labels.get(k) != v for k, v in selector.items())
    )
    n = len(NODES)
    return (
        f"0/{n} nodes are available: {misfits} node(s) didn't match Pod's node "
        f"affinity/selector. preemption: 0/{n} nodes are available: {n} Preemption is "
        "not helpful for scheduling."
    )


class Kubelet:
    """Drives one pod through scheduling, image pull and start; posts its status."""

    def __init__(self, double: Any) -> None:
        self.double = double

    def alive(self, key: tuple[str, str], uid: str) -> dict[str, Any] | None:
        pod = self.double.pods.get(key)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return None
        return pod

    async def run_pod(self, key: tuple[str, str], uid: str) -> None:
        d = self.double
        await asyncio.sleep(d.ready_after_s / 2)
        if (pod := self.alive(key, uid)) is None:
            return
        selector = pod["spec"].get("nodeSelector") or {}
        while not (nodes := self.fitting(selector)):
            if not pod["status"]["conditions"]:
                message = unschedulable_message(selector)
                pod["status"]["conditions"] = [
                    condition("PodScheduled", False, "Unschedulable", message)
                ]
                d.changed(pod)
            await d.nodes_changed.wait()  # until a node joins (`add_node`), if ever
            if (pod := self.alive(key, uid)) is None:
                return
        pod["spec"]["nodeName"] = nodes[0]
        pod["status"].update(
            conditions=[
                condition("PodScheduled", True),
                condition("Initialized", True),
                condition(
                    "Ready",
                    False,
                    "ContainersNotReady",
                    "containers with unready status: [workspace]",
                ),
            ],
            containerStatuses=[container_status(pod, waiting={"reason": "ContainerCreating"})],
            hostIP="10.0.1.1",
        )
        d.changed(pod)
        image = pod["spec"]["containers"][0]["image"]
        if (pulled := d.slow_pulls.get(image)) is not None:
            await pulled.wait()
            if (pod := self.alive(key, uid)) is None:
                return
        while image in d.unpullable_images:
            for reason, message in (
                (
                    "ErrImagePull",
                    f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": '
                    f"{image}: not found",
                ),
                ("ImagePullBackOff", f'Back-off pulling image "{image}"'),
            ):
                if (pod := self.alive(key, uid)) is None:
                    return
                pod["status"]["containerStatuses"] = [
                    container_status(pod, waiting={"reason": reason, "message": message})
                ]
                d.changed(pod)
                await asyncio.sleep(d.pull_backoff_s)
        await asyncio.sleep(d.ready_after_s / 2)
        if (pod := self.alive(key, uid)) is None:
            return
        self.post_running(pod)

    def fitting(self, selector: dict[str, str]) -> list[str]:
        every = {**NODES, **self.double.extra_nodes}
        return [
            n for n, labels in every.items() if all(labels.get(k) == v for k, v in selector.items())
        ]

    def post_running(self, pod: dict[str, Any]) -> None:
        pod["status"].update(
            phase="Running",
            podIP="10.0.0.7",
            startTime=pod["status"].get("startTime") or now(),
            conditions=[
                condition(t, True)
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            containerStatuses=[container_status(pod, running={"startedAt": now()})],
        )
        self.double.changed(pod)

    async def oom_kill(self, key: tuple[str, str], status_delay_s: float) -> None:
        """The kernel kills the container's whole cgroup now; the kubelet tells later."""
        d = self.double
        d.kill_pod_processes(key)
        await asyncio.sleep(status_delay_s)
        pod = d.pods.get(key)
        if pod is None:
            return
        old = pod["status"]["containerStatuses"][0]
        started = old.get("state", {}).get("running", {}).get("startedAt", now())
        old["restartCount"] = old.get("restartCount", 0) + 1
        old["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "startedAt": started,
                "finishedAt": now(),
                "containerID": "containerd://double",
            }
        }
        self.post_running(pod)
