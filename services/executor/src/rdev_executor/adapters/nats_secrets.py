"""Project secrets from the `rdev_secrets` KV bucket (key: project id, value: JSON object)."""

from __future__ import annotations

import json

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from rdev_common.streams import SECRETS_BUCKET


class NatsSecrets:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None

    async def for_project(self, project: str) -> dict[str, str]:
        # The bucket handle is looked up once: binding it is a stream-info round trip.
        kv = self._kv = self._kv or await self.js.key_value(SECRETS_BUCKET)
        try:
            entry = await kv.get(project)
        except KeyNotFoundError:
            return {}
        values = json.loads(entry.value or b"{}")
        return {str(k): str(v) for k, v in values.items()}
