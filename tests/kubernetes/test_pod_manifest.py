"""The workspace pod rdev creates is a valid Pod for the Kubernetes versions it supports."""

from __future__ import annotations

from typing import Any

import pytest

from rdev_executor.adapters.k8s_spec import KubernetesSpec, SpecInvalid, pod_manifest, pod_name
from tests.kubernetes.conftest import SPEC

K8S_VERSIONS = ("1.30.0", "1.35.0")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_workspace_pod_validates_against_the_kubernetes_schema(version: str) -> None:
    kv: Any = pytest.importorskip("kubernetes_validate")
    spec = KubernetesSpec.parse(SPEC, "rdev-workspaces")
    kv.validate(pod_manifest("demo", spec, "2026-01-01T00:00:00+00:00"), version, strict=True)


def test_pod_names_are_dns_labels_even_for_long_project_ids() -> None:
    spec = KubernetesSpec.parse({"image": "img"}, "ns")
    name = pod_name("p" * 63, spec)
    assert len(name) <= 63 and name.startswith("rdev-ws-p")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "kubernetes spec needs an image"),
        ({"image": "i", "env": {"1BAD": "x"}}, "invalid env names in kubernetes spec: 1BAD"),
        ({"image": "i", "resources": {"limitz": {}}}, "take only requests and limits"),
        ({"image": "i", "node_selector": {"a": 1}}, "node_selector must map strings to strings"),
        ({"image": "i", "workdir": "rel"}, "workdir must be an absolute path"),
    ],
)
def test_invalid_specs_are_refused_with_their_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecInvalid, match=message):
        KubernetesSpec.parse(raw, "ns")
