"""`rdev projects|keys|webhooks` against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.support import as_json, rdev_cli
from tests.support import RdevSystem

pytestmark = pytest.mark.e2e


def test_projects_create_show_delete(cli_env: dict[str, str], tmp_path: Path) -> None:
    workdir = tmp_path / "ws"
    workdir.mkdir()
    created = as_json(
        rdev_cli(cli_env, "projects", "create", "cli-tmp", "--workdir", str(workdir), "--json")
    )
    assert created["id"] == "cli-tmp" and created["workdir"] == str(workdir)
    assert "cli-tmp" in rdev_cli(cli_env, "projects", "list").stdout
    assert rdev_cli(cli_env, "projects", "delete", "cli-tmp", "--yes").returncode == 0
    assert rdev_cli(cli_env, "projects", "show", "cli-tmp").returncode == 5


def test_keys_create_rotate_revoke(cli_env: dict[str, str]) -> None:
    created = as_json(rdev_cli(cli_env, "keys", "create", "ci-bot", "--scope", "admin", "--json"))
    key_id, secret = created["id"], created["secret"]
    assert secret.startswith("rdev_")
    assert key_id in [k["id"] for k in as_json(rdev_cli(cli_env, "keys", "list", "--json"))]
    as_bot = {**cli_env, "RDEV_API_KEY": secret}
    assert rdev_cli(as_bot, "projects", "list").returncode == 0
    rotated = as_json(rdev_cli(cli_env, "keys", "rotate", key_id, "--grace", "0", "--json"))
    assert rotated["secret"] != secret
    assert (
        rdev_cli({**cli_env, "RDEV_API_KEY": rotated["secret"]}, "projects", "list").returncode == 0
    )
    assert rdev_cli(cli_env, "keys", "revoke", key_id).returncode == 0
    refused = rdev_cli({**cli_env, "RDEV_API_KEY": rotated["secret"]}, "projects", "list")
    assert refused.returncode == 4, refused.stderr


def test_webhooks_add_list_deliveries(
    rdev: RdevSystem, cli_env: dict[str, str], project: str
) -> None:
    url = "http://127.0.0.1:9/never"
    added = as_json(rdev_cli(cli_env, "webhooks", "add", url, "-p", project, "--json"))
    assert added["secret"].startswith("whsec_")
    hooks = as_json(rdev_cli(cli_env, "webhooks", "list", "-p", project, "--json"))
    assert added["id"] in [h["id"] for h in hooks]
    deliveries = rdev_cli(cli_env, "webhooks", "deliveries", added["id"], "-p", project, "--json")
    assert isinstance(as_json(deliveries), list)
    missing = rdev_cli(cli_env, "webhooks", "redeliver", added["id"], "nope", "-p", project)
    assert missing.returncode == 5, missing.stderr
