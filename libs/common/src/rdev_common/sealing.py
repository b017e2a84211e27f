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

import json

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# A sealed value: this prefix, then a Fernet token of the JSON object name → value.
SEALED = b"fernet:"


class SealError(Exception):
    """A sealed value this process cannot open."""


class Sealer:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("RDEV_SECRETS_KEY holds no key")
        try:
            self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except ValueError as exc:
            raise ValueError(
                "RDEV_SECRETS_KEY: each key must be 32 url-safe base64-encoded bytes "
                "(`rdev secrets-key` makes one)"
            ) from exc

    @classmethod
    def from_setting(cls, value: str | None) -> Sealer | None:
        """The sealer of a comma-separated key list; None for an empty or unset one."""
        keys = [key for key in (value or "").split(",") if key.strip()]
        return cls(keys) if keys else None

    def seal(self, secrets: dict[str, str]) -> bytes:
        return SEALED + self._fernet.encrypt(orjson.dumps(secrets))

    def open(self, value: bytes) -> dict[str, str]:
        try:
            plain = self._fernet.decrypt(value.removeprefix(SEALED))
        except InvalidToken:
            raise SealError(
                "no key of RDEV_SECRETS_KEY opens this project's secrets "
                "(sealed under a key this executor was not given)"
            ) from None
        return _object(plain)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def seal(secrets: dict[str, str], sealer: Sealer | None) -> bytes:
    """The bucket value of `secrets`: sealed when there is a key, else plain JSON."""
    return sealer.seal(secrets) if sealer else orjson.dumps(secrets)


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
