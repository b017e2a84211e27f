"""Project secrets for executors, in the `rdev_secrets` KV bucket (project id → the JSON
object of name → value, sealed when RDEV_SECRETS_KEY is set: rdev_common.sealing).

The database stays the source of truth; the api writes the bucket after each commit and
re-writes every project's secrets at start-up, so a crash between the two heals itself.
"""

from __future__ import annotations

import contextlib

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from rdev_common.sealing import Sealer, seal
from rdev_common.streams import SECRETS_BUCKET


class NatsKvSecretStore:
    def __init__(self, js: JetStreamContext, sealer: Sealer | None = None) -> None:
        self.js = js
        self.sealer = sealer

    async def put(self, project: str, secrets: dict[str, str]) -> None:
        kv = await self.js.key_value(SECRETS_BUCKET)
        await kv.put(project, seal(project, secrets, self.sealer))

    async def remove(self, project: str) -> None:
        kv = await self.js.key_value(SECRETS_BUCKET)
        with contextlib.suppress(KeyNotFoundError):
            await kv.purge(project)
