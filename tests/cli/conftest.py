"""Fixtures of the CLI tests: a project on the session's system, and the CLI's environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.support import PROJECT
from tests.support import RdevSystem


@pytest.fixture(scope="module")
def project(rdev: RdevSystem) -> str:
    rdev.create_project(PROJECT)
    return PROJECT


@pytest.fixture
def cli_env(rdev: RdevSystem, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    env.update(
        {
            "RDEV_URL": rdev.base_url,
            "RDEV_API_KEY": rdev.api_key,
            "RDEV_CONFIG": str(tmp_path / "config.toml"),
            "RDEV_DATA_DIR": str(tmp_path / "no-data-dir"),
            "COLUMNS": "200",
        }
    )
    return env
