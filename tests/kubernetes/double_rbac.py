"""RBAC for the API-server double: every request is authorised against the Role
the executor is deployed with (deploy/base/executor-rbac.yaml), as the real API
server's RBAC authoriser would for the executor's service account."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROLE_FILE = Path(__file__).resolve().parents[2] / "deploy" / "base" / "executor-rbac.yaml"
SERVICE_ACCOUNT = "system:serviceaccount:rdev:rdev-executor"


@dataclass(frozen=True)
class Rule:
    resources: frozenset[str]
    verbs: frozenset[str]


class Rbac:
    """Rules of the Roles bound to the executor's service account, per namespace."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        roles = {
            (d["metadata"]["namespace"], d["metadata"]["name"]): d
            for d in documents
            if d and d.get("kind") == "Role"
        }
        self.rules: dict[str, list[Rule]] = {}
        for d in documents:
            if not d or d.get("kind") != "RoleBinding":
                continue
            ns = d["metadata"]["namespace"]
            bound = any(
                s.get("kind") == "ServiceAccount"
                and f"system:serviceaccount:{s.get('namespace')}:{s.get('name')}" == SERVICE_ACCOUNT
                for s in d.get("subjects") or []
            )
            role = roles.get((ns, d["roleRef"]["name"]))
            if not bound or role is None or d["roleRef"].get("kind") != "Role":
                continue
            for rule in role.get("rules") or []:
                if "" not in (rule.get("apiGroups") or []):
                    continue
                self.rules.setdefault(ns, []).append(
                    Rule(frozenset(rule.get("resources") or []), frozenset(rule.get("verbs") or []))
                )

    @classmethod
    def load(cls, path: Path = ROLE_FILE) -> Rbac:
        return cls(list(yaml.safe_load_all(path.read_text())))

    def allows(self, ns: str, verb: str, resource: str) -> bool:
        return any(
            (resource in r.resources or "*" in r.resources) and (verb in r.verbs or "*" in r.verbs)
            for r in self.rules.get(ns, [])
        )

    def denial(self, ns: str, verbs: list[str], resource: str, name: str) -> str | None:
        """The API server's Forbidden message for the first verb not allowed, or None."""
        plain, _, sub = resource.partition("/")
        for verb in verbs:
            if not self.allows(ns, verb, resource):
                what = f'"{plain}"' + (f' with subresource "{sub}"' if sub else "")
                return (
                    f'{plain} "{name}" is forbidden: User "{SERVICE_ACCOUNT}" cannot {verb} '
                    f'resource {what} in API group "" in the namespace "{ns}"'
                )
        return None
