"""What a real cluster does with the manifests, checked offline: Pod Security levels
(a small evaluator of the `baseline` and `restricted` rules), HPAs owning replica
counts, replicated streams by default, NodeLocal DNS and the dev database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rdev_executor.adapters.k8s_spec import KubernetesSpec, pod_manifest

from .support import DEPLOY, RDEV_NAMESPACE, WORKSPACES_NAMESPACE, Manifests, Obj
from .test_network_policies import KUBE_DNS_POD, Peer, can_connect, external, rdev_pods

NODELOCAL_DNS = "169.254.20.10"
BASELINE_CAPS = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip


def containers(pod: Obj) -> list[Obj]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def baseline_violations(pod: Obj) -> list[str]:
    """The Pod Security `baseline` checks that a manifest can fail."""
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(key)
    found += [f"hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
    for c in containers(pod):
        sec = c.get("securityContext") or {}
        if sec.get("privileged"):
            found.append(f"{c['name']}: privileged")
        if set(sec.get("capabilities", {}).get("add", [])) - BASELINE_CAPS:
            found.append(f"{c['name']}: capabilities beyond baseline")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{c['name']}: hostPort")
    return found


def restricted_violations(pod: Obj) -> list[str]:
    """`baseline` plus the `restricted` checks."""
    found = baseline_violations(pod)
    pod_sec = pod.get("securityContext") or {}
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(f"volume {v['name']}: {kinds}")
    for c in containers(pod):
        sec = c.get("securityContext") or {}
        if sec.get("allowPrivilegeEscalation") is not False:
            found.append(f"{c['name']}: allowPrivilegeEscalation")
        if sec.get("runAsNonRoot", pod_sec.get("runAsNonRoot")) is not True:
            found.append(f"{c['name']}: runAsNonRoot")
        if sec.get("runAsUser", pod_sec.get("runAsUser")) == 0:
            found.append(f"{c['name']}: runAsUser 0")
        seccomp = sec.get("seccompProfile", pod_sec.get("seccompProfile")) or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c['name']}: seccompProfile")
        caps = sec.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            found.append(f"{c['name']}: capabilities not dropped")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{c['name']}: capabilities added")
    return found


def namespace_level(manifests: Manifests, name: str) -> str:
    (ns,) = [n for n in manifests.of_kind("Namespace") if n["metadata"]["name"] == name]
    labels: dict[str, str] = ns["metadata"]["labels"]
    return labels["pod-security.kubernetes.io/enforce"]


def test_every_rdev_pod_passes_the_level_its_namespace_enforces(manifests: Manifests) -> None:
    assert namespace_level(manifests, RDEV_NAMESPACE) == "restricted"
    for workload, pod in manifests.workloads():
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        assert not restricted_violations(pod), (name, restricted_violations(pod))


def test_workspace_pods_pass_the_level_their_namespace_enforces(manifests: Manifests) -> None:
    """rdev-workspaces enforces `baseline`: project images may need root."""
    assert namespace_level(manifests, WORKSPACES_NAMESPACE) == "baseline"
    spec = KubernetesSpec.parse({"image": "debian:12"}, WORKSPACES_NAMESPACE)
    pod = pod_manifest("demo", spec, "2026-01-01T00:00:00+00:00")["spec"]
    assert not baseline_violations(pod), baseline_violations(pod)
    assert restricted_violations(pod), "passes restricted: the namespace could enforce it"


def test_deployments_an_hpa_scales_set_no_replicas(manifests: Manifests) -> None:
    for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
        target = manifests.get("Deployment", hpa["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], target["metadata"]["name"]


def test_streams_are_replicated_unless_an_overlay_opts_down(manifests: Manifests) -> None:
    base = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text())
    (config,) = [g for g in base["configMapGenerator"] if g["name"] == "rdev-config"]
    literals = dict(lit.split("=", 1) for lit in config["literals"])
    assert literals["RDEV_STREAM_REPLICAS"] == "3"
    nats = manifests.get("StatefulSet", "nats")["spec"]["replicas"]
    assert int(manifests.config()["RDEV_STREAM_REPLICAS"]) <= nats


def test_everyone_resolves_dns_through_nodelocal_dns_cache(manifests: Manifests) -> None:
    cache = external(NODELOCAL_DNS)
    for name, src in rdev_pods(manifests).items():
        assert can_connect(manifests, src, cache, 53, "UDP"), name
        assert can_connect(manifests, src, cache, 53, "TCP"), name
        assert can_connect(manifests, src, KUBE_DNS_POD, 53, "UDP"), name
    for name in ("api", "audit", "nats"):
        src = rdev_pods(manifests)[name]
        assert not can_connect(manifests, src, cache, 80), name
        assert not can_connect(manifests, src, external("169.254.169.254"), 53, "UDP"), name


def test_the_dev_database_is_reachable_by_sql_users_only(dev: Manifests) -> None:
    database = Peer(RDEV_NAMESPACE, postgres_labels(dev))
    for name, src in rdev_pods(dev).items():
        expected = name in {"api", "webhooks", "audit", "migrate"}
        assert can_connect(dev, src, database, 5432) is expected, name
    url = secret_literal(dev, "database-url")
    assert "@postgres.rdev.svc.cluster.local:5432/" in url
    service = dev.get("Service", "postgres")
    assert service["spec"]["selector"].items() <= postgres_labels(dev).items()


def postgres_labels(manifests: Manifests) -> dict[str, str]:
    labels: dict[str, str] = manifests.get("StatefulSet", "postgres")["spec"]["template"][
        "metadata"
    ]["labels"]
    return labels


def secret_literal(manifests: Manifests, key: str) -> str:
    import base64

    (secret,) = [
        s for s in manifests.of_kind("Secret") if s["metadata"]["name"].startswith("rdev-secrets")
    ]
    data: dict[str, Any] = secret["data"]
    return base64.b64decode(data[key]).decode()


def test_kubernetes_tests_can_target_a_real_cluster() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    target = makefile.split("\ntest-k8s-cluster:", 1)[1].split("\n\n", 1)[0]
    assert "RDEV_K8S_TEST_KUBECONFIG" in target
    assert "tests/kubernetes/test_real_cluster.py" in target


def test_the_executor_spools_output_on_a_writable_volume(manifests: Manifests) -> None:
    """With a read-only root filesystem, the output spool needs a volume of its own."""
    pod = manifests.get("Deployment", "rdev-executor")["spec"]["template"]["spec"]
    (executor,) = (c for c in pod["containers"] if c["name"] == "executor")
    assert executor["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in executor.get("env", [])}
    data_dir = env.get("RDEV_DATA_DIR")
    assert data_dir, "RDEV_DATA_DIR unset: the spool would go to the read-only image"
    mounts = {m["mountPath"]: m["name"] for m in executor["volumeMounts"]}
    assert data_dir in mounts, f"{data_dir} is not a mounted volume"
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[data_dir])
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume
