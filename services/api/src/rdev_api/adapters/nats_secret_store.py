"""Project secrets for executors, in the `rdev_secrets` KV bucket (project id → JSON object).

The database stays the source of truth; the api writes the bucket after each commit and
re-writes every project's secrets at start-up, so a crash between the two heals itself.
"""

from __future__ import annotations

import contextlib

import orjson
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from rdev_common.streams import SECRETS_BUCKET


class NatsKvSecretStore:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def put(self, project: str, secrets: dict[str, str]) -> None:
        kv = await self.js.key_value(SECRETS_BUCKET)
        await kv.put(project, orjson.dumps(secrets))

    async def remove(self, project: str) -> None:
        kv = await self.js.key_value(SECRETS_BUCKET)
        with contextlib.suppress(KeyNotFoundError):
            await kv.purge(project)
