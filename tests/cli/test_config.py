"""Where the CLI finds rdev: environment over the config file over the local admin key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from rdev_cli import config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("RDEV_URL", "RDEV_API_KEY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RDEV_CONFIG", str(tmp_path / "cfg" / "config.toml"))
    monkeypatch.setenv("RDEV_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_saved_file_is_owner_only_and_read_back(isolated: Path) -> None:
    path = config.save("http://rdev.example:8080", 'rdev_"quoted"\\key')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = config.load()
    assert (loaded.url, loaded.api_key) == ("http://rdev.example:8080", 'rdev_"quoted"\\key')


def test_environment_wins_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    config.save("http://from-file", "rdev_file")
    monkeypatch.setenv("RDEV_URL", "http://from-env/")
    monkeypatch.setenv("RDEV_API_KEY", "rdev_env")
    loaded = config.load()
    assert (loaded.url, loaded.api_key, loaded.source) == (
        "http://from-env",
        "rdev_env",
        "RDEV_API_KEY",
    )


def test_local_admin_key_is_the_last_resort(isolated: Path) -> None:
    assert config.load().api_key is None
    (isolated / "data").mkdir()
    (isolated / "data" / "admin.key").write_text("rdev_local\n")
    assert config.load().api_key == "rdev_local"
    assert config.load().url == config.DEFAULT_URL


def test_forget_removes_the_file() -> None:
    config.save("http://x", "rdev_x")
    assert config.forget() is True
    assert config.forget() is False
