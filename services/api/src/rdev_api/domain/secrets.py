"""API key secrets: generated with a prefix, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "rdev_"


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 is enough here: secrets are 256-bit random, not passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:12]
