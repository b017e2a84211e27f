"""Project secrets for executors, in the `rdev_secrets` KV bucket (project id → the JSON
object of name → value, sealed when RDEV_SECRETS_KEY is set: rdev_common.sealing).

The database stays the source of truth; the api writes the bucket after each commit and
re-writes every project's secrets at start-up, so a crash between the two heals itself.
Writes are compare-and-set on the entry's revision around a fresh read of the project, so
racing writers (two updates, or an update and the start-up pass) cannot leave an older
value last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError

from rdev_common.sealing import Sealer, seal
from rdev_common.streams import SECRETS_BUCKET

# Each lost race means another writer stored a newer read; this many in a row is not a race.
MAX_TRIES = 50
# JetStream's error code for a write whose expected last subject sequence is stale.
WRONG_LAST_SEQUENCE = 10071


class NatsKvSecretStore:
    def __init__(self, js: JetStreamContext, sealer: Sealer | None = None) -> None:
        self.js = js
        self.sealer = sealer

    async def sync(
        self, project: str, current: Callable[[], Awaitable[dict[str, str] | None]]
    ) -> None:
        """Make the entry hold `current()`, the project's secrets read now (None: gone).

        The entry's revision is read before the project, and the write succeeds only if
        no other write came in between; otherwise both are read again. So the last
        write always carries a read of the database made after every earlier write.
        """
        kv = await self.js.key_value(SECRETS_BUCKET)
        for _ in range(MAX_TRIES):
            try:
                revision: int | None = (await kv.get(project)).revision
            except KeyNotFoundError:  # never written, or deleted
                revision = None
            secrets = await current()
            try:
                if secrets is None:
                    if revision is not None:  # a delete marker, as of that revision only
                        await kv.delete(project, last=revision)
                elif revision is None:
                    await kv.create(project, seal(project, secrets, self.sealer))
                else:
                    await kv.update(project, seal(project, secrets, self.sealer), last=revision)
                return
            except KeyWrongLastSequenceError:
                continue  # another writer came in between
            except APIError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:  # delete() does not translate it
                    raise
        raise RuntimeError(f"the secrets entry of {project!r} kept changing: {MAX_TRIES} tries")

    async def remove(self, project: str) -> None:
        kv = await self.js.key_value(SECRETS_BUCKET)
        with contextlib.suppress(KeyNotFoundError):
            await kv.purge(project)
