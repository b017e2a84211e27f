"""Project secrets from the `rdev_secrets` KV bucket (key: project id, value: the JSON
object of name → value, sealed or plain: rdev_common.sealing)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from rdev_common.sealing import Sealer, SealError, unseal
from rdev_common.streams import SECRETS_BUCKET
from rdev_executor.service_layer.ports import SecretsUnreadable


class NatsSecrets:
    def __init__(self, js: JetStreamContext, sealer: Sealer | None = None) -> None:
        self.js = js
        self.sealer = sealer
        self._kv: KeyValue | None = None

    async def for_project(self, project: str) -> dict[str, str]:
        # The bucket handle is looked up once: binding it is a stream-info round trip.
        kv = self._kv = self._kv or await self.js.key_value(SECRETS_BUCKET)
        try:
            entry = await kv.get(project)
        except KeyNotFoundError:
            return {}
        try:
            return unseal(project, entry.value or b"", self.sealer)
        except SealError as exc:
            raise SecretsUnreadable(str(exc)) from None
