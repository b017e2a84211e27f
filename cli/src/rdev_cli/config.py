"""Where the CLI finds rdev: environment first, then the config file `rdev login` wrote.

The file holds an API key, so it is created with mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Config:
    url: str
    api_key: str | None
    source: str  # where the key came from, for `rdev login --status` and error messages


def config_path() -> Path:
    explicit = os.environ.get("RDEV_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "rdev" / "config.toml"


def read_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open("rb") as f:
        data = tomllib.load(f)
    return {k: str(v) for k, v in data.items() if k in ("url", "api_key")}


def _local_admin_key() -> str | None:
    """The key `rdev up` generated, when the CLI runs next to its data dir."""
    local = Path(os.environ.get("RDEV_DATA_DIR", ".rdev")) / "admin.key"
    try:
        return local.read_text().strip() or None
    except OSError:
        return None


def load() -> Config:
    stored = read_file(config_path())
    url = os.environ.get("RDEV_URL") or stored.get("url") or DEFAULT_URL
    if os.environ.get("RDEV_API_KEY"):
        return Config(url.rstrip("/"), os.environ["RDEV_API_KEY"], "RDEV_API_KEY")
    if stored.get("api_key"):
        return Config(url.rstrip("/"), stored["api_key"], str(config_path()))
    local = _local_admin_key()
    return Config(url.rstrip("/"), local, "admin.key" if local else "none")


def save(url: str, api_key: str) -> Path:
    """Write the config file readable by its owner only, replacing it atomically."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # JSON string literals are valid TOML basic strings for any text.
    body = f"url = {json.dumps(url)}\napi_key = {json.dumps(api_key)}\n"
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(body)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def forget() -> bool:
    path = config_path()
    if path.exists():
        path.unlink()
        return True
    return False
