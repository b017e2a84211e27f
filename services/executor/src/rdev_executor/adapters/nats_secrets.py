"""Project secrets from the `rdev_secrets` KV bucket (key: project id, value: JSON object)."""

from __future__ import annotations

import json

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from rdev_common.streams import SECRETS_BUCKET


class NatsSecrets:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def for_project(self, project: str) -> dict[str, str]:
        kv = await self.js.key_value(SECRETS_BUCKET)
        try:
            entry = await kv.get(project)
        except KeyNotFoundError:
            return {}
        values = json.loads(entry.value or b"{}")
        return {str(k): str(v) for k, v in values.items()}
