"""Per-project concurrency shared by every executor: slots are keys in a NATS KV bucket.

A run holds key `<project>.<n>` (n < max_concurrency), created atomically (create
fails if the key exists) and refreshed while the run lasts; the bucket's TTL frees
the slot of an executor that died, so a crash never leaks capacity for long.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = structlog.get_logger()

BUCKET = "rdev_project_slots"


@dataclass
class Lease:
    key: str
    refresher: asyncio.Task[None]


class NatsProjectSlots:
    def __init__(self, js: JetStreamContext, owner: str, ttl_s: float = 30.0) -> None:
        self.js = js
        self.owner = owner.encode()
        self.ttl_s = ttl_s
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(BUCKET)
            except Exception:
                self._kv = await self.js.create_key_value(
                    KeyValueConfig(
                        bucket=BUCKET, ttl=self.ttl_s, history=1, storage=StorageType.FILE
                    )
                )
        return self._kv

    async def acquire(self, project: str, limit: int) -> Lease | None:
        """A free slot of the project, or None when all `limit` slots are held."""
        kv = await self._bucket()
        for n in range(limit):
            key = f"{project}.{n}"
            try:
                revision = await kv.create(key, self.owner)
            except KeyWrongLastSequenceError:
                continue
            return Lease(key, asyncio.create_task(self._refresh(kv, key, revision)))
        return None

    async def _refresh(self, kv: KeyValue, key: str, revision: int) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                revision = await kv.update(key, self.owner, last=revision)
            except Exception as exc:  # broker away: the slot may lapse; the run goes on
                log.warning("slot refresh failed", key=key, error=repr(exc))

    async def release(self, lease: Lease) -> None:
        lease.refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lease.refresher
        kv = await self._bucket()
        with contextlib.suppress(Exception):
            await kv.delete(lease.key)
