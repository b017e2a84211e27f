"""One throw-away PostgreSQL database: created on the suite's server, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support import port_open

POSTGRES_ADMIN_URL = os.environ.get(
    "RDEV_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def postgres_available() -> bool:
    return port_open("127.0.0.1", 5432)


@contextlib.contextmanager
def throwaway_database(
    prefix: str = "rdev_test", admin_url: str = POSTGRES_ADMIN_URL
) -> Iterator[str]:
    """A new, empty database (its SQLAlchemy URL), dropped with its connections afterwards.
    Skips the test when the server is not reachable."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432; PostgreSQL variant skipped")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = admin_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
