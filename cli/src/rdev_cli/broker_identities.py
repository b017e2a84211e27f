"""The embedded broker's identities: one NATS user per service, and `observer`.

`rdev up` keeps their passwords in `nats-credentials.json` in the data dir
(mode 0600, made on first start), renders the server's `authorization` block
from them on every start (so permissions follow the code), and hands each
service its own user only. The CLI's broker tools (`rdev events`, `rdev audit`)
log in as `observer` from the same file when RDEV_NATS_USER is not set.
"""

from __future__ import annotations

import json
from pathlib import Path

from rdev_common.nats_auth import IDENTITIES, OBSERVER, generate_passwords
from rdev_common.settings import CommonSettings

FILE = "nats-credentials.json"


def local_passwords(data_dir: Path) -> dict[str, str]:
    """identity → password, from the data dir's file, made (0600) when missing."""
    from rdev_cli.supervisor import _create_whole

    path = data_dir / FILE
    if not path.exists():
        _create_whole(path, json.dumps(generate_passwords(), indent=2) + "\n")
    if path.stat().st_mode & 0o077:
        print(f"rdev: {path} is readable by others; chmod 600 it", flush=True)
    try:
        passwords = json.loads(path.read_text())
        if not all(isinstance(passwords.get(user), str) and passwords[user] for user in IDENTITIES):
            raise ValueError
    except ValueError:  # JSONDecodeError, UnicodeDecodeError included
        raise SystemExit(f"{path} must map {', '.join(IDENTITIES)} to passwords") from None
    return {user: passwords[user] for user in IDENTITIES}


def service_env(user: str, passwords: dict[str, str]) -> dict[str, str]:
    return {"RDEV_NATS_USER": user, "RDEV_NATS_PASSWORD": passwords[user]}


def cli_credentials(settings: CommonSettings) -> dict[str, str]:
    """The CLI's broker login: RDEV_NATS_USER/PASSWORD if set, else the local observer."""
    if settings.nats_user:
        return settings.nats_credentials()
    path = settings.data_dir / FILE
    try:
        password = json.loads(path.read_text())[OBSERVER]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {"user": OBSERVER, "password": str(password)}
