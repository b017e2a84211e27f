"""A project's Kubernetes spec and the workspace pod rdev makes from it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

MANAGED_BY = "app.kubernetes.io/managed-by"
PROJECT_LABEL = "rdev.dev/project"
SPEC_LABEL = "rdev.dev/spec"
LAST_USED = "rdev.dev/last-used"
SELECTOR = f"{MANAGED_BY}=rdev"
CONTAINER = "workspace"
KNOWN_KEYS = frozenset(
    {"namespace", "image", "resources", "env", "service_account", "node_selector", "workdir"}
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# PID 1 of the workspace container idles and exits promptly on SIGTERM.
IDLE_COMMAND = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]


class SpecInvalid(ValueError):
    """The project's Kubernetes spec cannot describe a pod."""


@dataclass(frozen=True)
class KubernetesSpec:
    namespace: str
    image: str
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    service_account: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    workdir: str = "/workspace"

    @classmethod
    def parse(cls, raw: dict[str, Any], default_namespace: str) -> KubernetesSpec:
        unknown = set(raw) - KNOWN_KEYS
        if unknown:
            raise SpecInvalid(f"unknown kubernetes spec keys: {', '.join(sorted(unknown))}")
        image = raw.get("image")
        if not isinstance(image, str) or not image:
            raise SpecInvalid("kubernetes spec needs an image")
        resources = _str_maps(raw.get("resources") or {}, "resources")
        if set(resources) - {"requests", "limits"}:
            raise SpecInvalid("kubernetes resources take only requests and limits")
        env = _str_map(raw.get("env") or {}, "env")
        if bad := [k for k in env if not ENV_NAME.match(k)]:
            raise SpecInvalid(f"invalid env names in kubernetes spec: {', '.join(bad)}")
        workdir = raw.get("workdir") or "/workspace"
        if not isinstance(workdir, str) or not workdir.startswith("/"):
            raise SpecInvalid("kubernetes workdir must be an absolute path")
        return cls(
            namespace=str(raw.get("namespace") or default_namespace),
            image=image,
            resources=resources,
            env=env,
            service_account=raw.get("service_account") or None,
            node_selector=_str_map(raw.get("node_selector") or {}, "node_selector"),
            workdir=workdir,
        )

    def digest(self) -> str:
        """Identifies the pod shape: a changed spec gets a new pod, the old one ages out."""
        encoded = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:10]


def _str_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SpecInvalid(f"kubernetes {name} must map strings to strings")
    return dict(value)


def _str_maps(value: Any, name: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, dict):
        raise SpecInvalid(f"kubernetes {name} must be an object")
    return {k: _str_map(v, f"{name}.{k}") for k, v in value.items()}


GENERATION_LABEL = "rdev.dev/generation"


def pod_name(project: str, spec: KubernetesSpec, generation: int = 0) -> str:
    """The pod's name: readable prefix, then a hash of the whole project id, the
    spec and the generation (a new one replaces a pod stuck terminating).

    Project ids are DNS labels already; the name stays one (≤63 characters). Only
    the hash tells apart two projects that share their first 44 characters.
    """
    key = json.dumps([project, spec.digest(), generation]).encode()
    return f"rdev-ws-{project[:44].rstrip('-')}-{hashlib.sha256(key).hexdigest()[:10]}"


def pod_manifest(
    project: str, spec: KubernetesSpec, now: str, generation: int = 0
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": IDLE_COMMAND,
        "workingDir": spec.workdir,
        "env": [{"name": k, "value": v} for k, v in sorted(spec.env.items())],
        "resources": spec.resources,
        "securityContext": {"allowPrivilegeEscalation": False},
        "volumeMounts": [
            {"name": "workspace", "mountPath": spec.workdir},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (the pod's own, for pid files)
        ],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 5,
        "automountServiceAccountToken": spec.service_account is not None,
        "nodeSelector": spec.node_selector,
        # Passes the `baseline` Pod Security level, which rdev-workspaces enforces:
        # `restricted` would refuse root images (runAsNonRoot), which most build
        # images are. See deploy/README.md.
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(project, spec, generation),
            "namespace": spec.namespace,
            "labels": {
                MANAGED_BY: "rdev",
                PROJECT_LABEL: project,
                SPEC_LABEL: spec.digest(),
                GENERATION_LABEL: str(generation),
            },
            "annotations": {LAST_USED: now},
        },
        "spec": pod_spec,
    }
