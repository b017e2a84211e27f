"""Project secrets sealed for the broker, which only the api and the executors can open.

The api hands a project's secrets to executors through the `rdev_secrets` key-value
bucket. The broker is shared: other services subscribe to rdev's subjects, and
operators replay its streams. So each value is sealed with Fernet (AES-128-CBC and
HMAC-SHA256, from `cryptography`) under RDEV_SECRETS_KEY, which only the api and the
executors are given; anyone else reading the bucket sees a token. The sealed text
names its project, so a token copied under another project's key does not open there.

RDEV_SECRETS_KEY holds one or more keys, comma-separated: the first seals, every one
opens, so a key is rotated by putting the new one first (the api re-seals every
project's secrets when it starts) and dropping the old one once every executor has
the new list. Without a key, values are written as plain JSON, and the api says so
when it starts. An executor without a key reads only plain values; one with a key
reads only sealed ones (and `{}`), so whoever can write the bucket but has no key
cannot hand commands environment variables of their choosing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# A sealed value: this prefix, then a Fernet token of the JSON object
# {"project": <project id>, "secrets": {name: value}}.
SEALED = b"fernet:"
KEY_FORM = "32 url-safe base64-encoded bytes (`rdev secrets-key` makes one)"


class SealError(Exception):
    """A stored value this process cannot open or read."""


class Sealer:
    """Fernet under RDEV_SECRETS_KEY's keys. `cryptography` (≈ 11 MiB of a process's
    memory) is loaded on the first seal or open, so a process that never meets a secret
    does not carry it; the keys' form is checked at once."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("RDEV_SECRETS_KEY holds no key")
        self._keys = [key.strip().encode() for key in keys]
        for key in self._keys:
            try:
                well_formed = len(base64.urlsafe_b64decode(key)) == 32
            except (binascii.Error, ValueError):
                well_formed = False
            if not well_formed:
                raise ValueError(f"RDEV_SECRETS_KEY: each key must be {KEY_FORM}")

    @classmethod
    def from_setting(cls, value: str | None) -> Sealer | None:
        """The sealer of a comma-separated key list; None for an empty or blank one."""
        keys = [key for key in (value or "").split(",") if key.strip()]
        return cls(keys) if keys else None

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(key) for key in self._keys])

    def seal(self, project: str, secrets: dict[str, str]) -> bytes:
        return SEALED + self._fernet.encrypt(orjson.dumps({"project": project, "secrets": secrets}))

    def open(self, project: str, value: bytes) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            plain = self._fernet.decrypt(value.removeprefix(SEALED))
        except InvalidToken:
            raise SealError(
                "no key of RDEV_SECRETS_KEY opens this project's secrets "
                "(sealed under a key this executor was not given)"
            ) from None
        content = _json_object(plain)
        if content.get("project") != project:
            raise SealError("the secrets stored for this project were sealed for another one")
        return _names_to_values(content.get("secrets"))


def generate_key() -> str:
    """A new Fernet key: 32 random bytes, url-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def seal(project: str, secrets: dict[str, str], sealer: Sealer | None) -> bytes:
    """The bucket value of a project's secrets: sealed when there is a key and something
    to hide, else plain JSON (`{}` tells nothing)."""
    return sealer.seal(project, secrets) if sealer and secrets else orjson.dumps(secrets)


def unseal(project: str, value: bytes, sealer: Sealer | None) -> dict[str, str]:
    """The secrets of a project's bucket value; SealError if it cannot be opened or read,
    or if it is plain (and not empty) where a key is set."""
    if value.startswith(SEALED):
        if sealer is None:
            raise SealError(
                "this project's secrets are sealed, and this executor has no RDEV_SECRETS_KEY"
            )
        return sealer.open(project, value)
    secrets = _names_to_values(_json_object(value or b"{}"))
    if secrets and sealer is not None:
        raise SealError(
            "this project's secrets are stored unsealed while RDEV_SECRETS_KEY is set "
            "(the api re-seals them when it starts with the key)"
        )
    return secrets


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python goes
        raise SealError("this project's stored secrets are not JSON") from None
    if not isinstance(value, dict):
        raise SealError("this project's stored secrets are not a JSON object")
    return value


def _names_to_values(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SealError("this project's stored secrets are not an object of strings")
    return {str(k): v for k, v in value.items()}
