"""Project secrets sealed for the broker, which only the api and the executors can open.

The api hands a project's secrets to executors through the `rdev_secrets` key-value
bucket. The broker is shared: other services subscribe to rdev's subjects, and
operators replay its streams. So each value is sealed with Fernet (AES-128-CBC and
HMAC-SHA256, from `cryptography`) under RDEV_SECRETS_KEY, which only the api and the
executors are given; anyone else reading the bucket sees a token.

RDEV_SECRETS_KEY holds one or more keys, comma-separated: the first seals, every one
opens, so a key is rotated by putting the new one first (the api re-seals every
project's secrets when it starts) and dropping the old one once every executor has
the new list. Without a key, values are written as plain JSON, and the api says so
when it starts; an executor opens both kinds.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# A sealed value: this prefix, then a Fernet token of the JSON object name → value.
SEALED = b"fernet:"


class SealError(Exception):
    """A sealed value this process cannot open."""


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
                raise ValueError(
                    "RDEV_SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes "
                    "(`rdev secrets-key` makes one)"
                )

    @functools.cached_property
    def _fernet(self) -> MultiFernet:
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(key) for key in self._keys])

    @classmethod
    def from_setting(cls, value: str | None) -> Sealer | None:
        """The sealer of a comma-separated key list; None for an empty or unset one."""
        keys = [key for key in (value or "").split(",") if key.strip()]
        return cls(keys) if keys else None

    def seal(self, secrets: dict[str, str]) -> bytes:
        return SEALED + self._fernet.encrypt(orjson.dumps(secrets))

    def open(self, value: bytes) -> dict[str, str]:
        from cryptography.fernet import InvalidToken

        try:
            plain = self._fernet.decrypt(value.removeprefix(SEALED))
        except InvalidToken:
            raise SealError(
                "no key of RDEV_SECRETS_KEY opens this project's secrets "
                "(sealed under a key this executor was not given)"
            ) from None
        return _object(plain)


def generate_key() -> str:
    """A new Fernet key: 32 random bytes, url-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def seal(secrets: dict[str, str], sealer: Sealer | None) -> bytes:
    """The bucket value of `secrets`: sealed when there is a key and something to hide,
    else plain JSON (`{}` tells nothing)."""
    return sealer.seal(secrets) if sealer and secrets else orjson.dumps(secrets)


def unseal(value: bytes, sealer: Sealer | None) -> dict[str, str]:
    """The secrets of a bucket value, sealed or plain; SealError if it cannot be opened."""
    if value.startswith(SEALED):
        if sealer is None:
            raise SealError(
                "this project's secrets are sealed, and this executor has no RDEV_SECRETS_KEY"
            )
        return sealer.open(value)
    return _object(value or b"{}")


def _object(raw: bytes) -> dict[str, str]:
    values = json.loads(raw)
    return {str(k): str(v) for k, v in values.items()}
