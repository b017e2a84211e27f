"""NetworkPolicies, checked by what they allow: a small evaluator of the NetworkPolicy
semantics (union of policies selecting a pod; default deny once any policy selects it)
asks the rendered policies about each flow rdev needs, and about flows it must not have."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pytest

from .support import WORKSPACES_NAMESPACE, Manifests, Obj

PUBLIC_IP = "203.0.113.10"  # documentation range: stands for any internet host
KUBE_SYSTEM = {"kubernetes.io/metadata.name": "kube-system"}
KUBE_DNS = {"k8s-app": "kube-dns"}
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class Peer:
    """One end of a flow: a pod (namespace + labels) or, outside the cluster, an IP."""

    namespace: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    ip: str = ""

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def external(ip: str) -> Peer:
    return Peer(ip=ip)


def matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(rule_peer: Obj, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        if not peer.ip:
            return False  # ipBlock is meant for traffic from/to outside the cluster
        block, ip = rule_peer["ipBlock"], ipaddress.ip_address(peer.ip)
        cidr = ipaddress.ip_network(block["cidr"])
        if ip.version != cidr.version or ip not in cidr:
            return False
        return not any(
            ip.version == ipaddress.ip_network(ex).version and ip in ipaddress.ip_network(ex)
            for ex in block.get("except", [])
        )
    if peer.ip:
        return False
    if "namespaceSelector" in rule_peer:
        if not matches(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return matches(rule_peer.get("podSelector"), peer.labels)


def port_matches(rule_ports: list[Obj] | None, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        if "port" not in p or p["port"] == port or p["port"] <= port <= p.get("endPort", -1):
            return True
    return False


def allowed(
    policies: list[Obj], direction: str, pod: Peer, other: Peer, port: int, protocol: str
) -> bool:
    """Does `pod` accept (Ingress) from / send (Egress) to `other` on port/protocol?"""
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and matches(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True  # not isolated in this direction
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if port_matches(rule.get("ports"), port, protocol) and (
                not peers
                or any(peer_matches(p, other, policy["metadata"]["namespace"]) for p in peers)
            ):
                return True
    return False


def can_connect(
    manifests: Manifests, src: Peer, dst: Peer, port: int, protocol: str = "TCP"
) -> bool:
    """Both ends must allow it: the source's egress and (for a pod) the target's ingress."""
    policies = manifests.of_kind("NetworkPolicy")
    out = not src.namespace or allowed(policies, "Egress", src, dst, port, protocol)
    inn = not dst.namespace or allowed(policies, "Ingress", dst, src, port, protocol)
    return out and inn


def pod(manifests: Manifests, kind: str, name: str) -> Peer:
    obj = manifests.get(kind, name)
    return Peer(obj["metadata"]["namespace"], obj["spec"]["template"]["metadata"]["labels"])


def rdev_pods(manifests: Manifests) -> dict[str, Peer]:
    return {
        "api": pod(manifests, "Deployment", "rdev-api"),
        "executor": pod(manifests, "Deployment", "rdev-executor"),
        "webhooks": pod(manifests, "Deployment", "rdev-webhooks"),
        "audit": pod(manifests, "Deployment", "rdev-audit"),
        "migrate": pod(manifests, "Job", "rdev-migrate"),
        "nats": pod(manifests, "StatefulSet", "nats"),
    }


KUBE_DNS_POD = Peer("kube-system", KUBE_DNS)
PROMETHEUS_POD = Peer("monitoring", PROMETHEUS)
WORKSPACE_POD = Peer(WORKSPACES_NAMESPACE, {"rdev.dev/project": "demo"})
INGRESS_CONTROLLER = Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})


def test_default_deny_in_each_namespace(manifests: Manifests) -> None:
    for namespace in ("rdev", WORKSPACES_NAMESPACE):
        deny_all = [
            p
            for p in manifests.of_kind("NetworkPolicy")
            if p["metadata"]["namespace"] == namespace
            and p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress")
            and not p["spec"].get("egress")
        ]
        assert deny_all, f"no default-deny NetworkPolicy in {namespace}"


def test_everyone_resolves_dns(manifests: Manifests) -> None:
    for name, src in rdev_pods(manifests).items():
        assert can_connect(manifests, src, KUBE_DNS_POD, 53, "UDP"), name
        assert can_connect(manifests, src, KUBE_DNS_POD, 53, "TCP"), name


@pytest.mark.parametrize("name", ["api", "executor", "webhooks", "audit"])
def test_services_reach_nats(manifests: Manifests, name: str) -> None:
    pods = rdev_pods(manifests)
    assert can_connect(manifests, pods[name], pods["nats"], 4222)
    assert not can_connect(manifests, pods[name], pods["nats"], 6222), "routes are NATS-only"


def test_nats_nodes_route_to_each_other(manifests: Manifests) -> None:
    nats = rdev_pods(manifests)["nats"]
    assert can_connect(manifests, nats, nats, 6222)


def test_only_sql_users_reach_postgres(manifests: Manifests) -> None:
    database = external("10.20.30.40")
    for name, src in rdev_pods(manifests).items():
        expected = name in {"api", "webhooks", "audit", "migrate"}
        assert can_connect(manifests, src, database, 5432) is expected, name


def test_webhooks_reach_the_internet_but_not_private_ranges(manifests: Manifests) -> None:
    pods = rdev_pods(manifests)
    webhooks = pods["webhooks"]
    for port in (443, 80):
        assert can_connect(manifests, webhooks, external(PUBLIC_IP), port)
        assert can_connect(manifests, webhooks, external("2001:db8::1"), port)
    for private in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "127.0.0.1"):
        assert not can_connect(manifests, webhooks, external(private), 443), private
    assert not can_connect(manifests, webhooks, external("fd00::1"), 443)
    assert not can_connect(manifests, webhooks, external(PUBLIC_IP), 22)
    for name in ("api", "audit", "migrate", "nats"):
        assert not can_connect(manifests, pods[name], external(PUBLIC_IP), 443), name


def test_executor_reaches_the_api_server(manifests: Manifests) -> None:
    pods = rdev_pods(manifests)
    api_server = external("172.18.0.2")
    assert can_connect(manifests, pods["executor"], api_server, 443)
    assert can_connect(manifests, pods["executor"], api_server, 6443)
    for name in ("api", "audit", "migrate", "nats"):
        assert not can_connect(manifests, pods[name], api_server, 6443), name


def test_only_the_api_takes_client_traffic(manifests: Manifests) -> None:
    pods = rdev_pods(manifests)
    assert can_connect(manifests, INGRESS_CONTROLLER, pods["api"], 8080)
    assert not can_connect(manifests, INGRESS_CONTROLLER, pods["executor"], 8081)
    assert not can_connect(manifests, INGRESS_CONTROLLER, pods["nats"], 4222)
    assert not can_connect(manifests, INGRESS_CONTROLLER, pods["api"], 9999)


def test_prometheus_scrapes_health_ports(manifests: Manifests) -> None:
    pods = rdev_pods(manifests)
    ports = {"api": 8080, "executor": 8081, "webhooks": 8082, "audit": 8083, "nats": 8222}
    for name, port in ports.items():
        assert can_connect(manifests, PROMETHEUS_POD, pods[name], port), name
    stranger = Peer("default", PROMETHEUS)  # same labels, wrong namespace
    assert not can_connect(manifests, stranger, pods["executor"], 8081)


def test_workspace_pods_are_isolated(manifests: Manifests) -> None:
    pods = rdev_pods(manifests)
    assert not can_connect(manifests, WORKSPACE_POD, external(PUBLIC_IP), 443)
    assert not can_connect(manifests, WORKSPACE_POD, KUBE_DNS_POD, 53, "UDP")
    assert not can_connect(manifests, WORKSPACE_POD, pods["nats"], 4222)
    assert not can_connect(manifests, pods["executor"], WORKSPACE_POD, 22)
