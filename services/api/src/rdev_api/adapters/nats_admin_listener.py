"""Keeps this replica's identity cache in step with admin changes made anywhere.

An ordered consumer on RDEV_ADMIN from "new" (no durable state: every process has its
own). Each admin event names its aggregate in the CloudEvent `subject`; the entry is
dropped and the next look-up reads the database.
"""

from __future__ import annotations

import orjson
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from rdev_api.adapters.cached_identity import IdentityCache
from rdev_common import subjects
from rdev_common.streams import ADMIN

log = structlog.get_logger()


def forget(cache: IdentityCache, subject: str, payload: bytes) -> None:
    entity = subjects.admin_entity(subject)
    try:
        aggregate = str(orjson.loads(payload)["subject"])
    except (ValueError, KeyError, TypeError):
        log.warning("admin event without subject, cache cleared", subject=subject)
        cache.clear()
        return
    if entity == "api_key":
        cache.forget_key(aggregate)
    elif entity == "project":
        cache.forget_project(aggregate)


async def listen(js: JetStreamContext, cache: IdentityCache) -> object:
    """Subscribe; returns the subscription (unsubscribe to stop)."""

    async def on_message(msg: Msg) -> None:
        forget(cache, msg.subject, msg.data)

    return await js.subscribe(
        f"{subjects.ADMIN_PREFIX}.>",
        stream=ADMIN,
        cb=on_message,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
    )
