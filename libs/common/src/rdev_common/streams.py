"""Every JetStream stream and durable consumer rdev uses, defined in one place.

Streams use LIMITS retention (replay needs history). RDEV_RUNS receives each
`command.requested` from RDEV_COMMANDS server-side (a source with a subject
transform), so one ordered consumer on RDEV_RUNS sees a run from queued to
completed without the API publishing twice. RDEV_LIFECYCLE holds only the
low-volume lifecycle events of RDEV_RUNS, so webhooks and audit never step over
output batches. Minimum server version: 2.11 (subject transforms on sources).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import structlog
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.errors import NotFoundError

from rdev_common import subjects
from rdev_common.events import Priority
from rdev_common.settings import CommonSettings

log = structlog.get_logger()

COMMANDS = "RDEV_COMMANDS"
RUNS = "RDEV_RUNS"
LIFECYCLE = "RDEV_LIFECYCLE"
ADMIN = "RDEV_ADMIN"
WEBHOOKS = "RDEV_WEBHOOKS"
ALL_STREAMS = (COMMANDS, RUNS, LIFECYCLE, ADMIN, WEBHOOKS)

MIB = 1024 * 1024
# The largest event RDEV_RUNS stores; an output batch is split to stay under it.
RUNS_MAX_MSG_SIZE = 2 * MIB


def stream_configs(settings: CommonSettings) -> list[StreamConfig]:
    """The stream definitions, with retention and replicas from settings."""

    def stream(**config: Any) -> StreamConfig:
        return StreamConfig(
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=settings.stream_replicas,
            discard=DiscardPolicy.OLD,
            allow_direct=True,
            duplicate_window=settings.dedup_window_s,
            **config,
        )

    requested_into_runs = StreamSource(
        name=COMMANDS,
        subject_transforms=[
            SubjectTransform(
                src=f"{subjects.COMMANDS_PREFIX}.*.*.*",
                dest=f"{subjects.RUNS_PREFIX}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.requested",
            )
        ],
    )
    lifecycle_from_runs = StreamSource(
        name=RUNS,
        subject_transforms=[
            SubjectTransform(
                src=subjects.any_run_event(kind),
                dest=f"{subjects.RUNS_PREFIX}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{kind}",
            )
            for kind in subjects.LIFECYCLE_KINDS
        ],
    )
    return [
        stream(
            name=COMMANDS,
            description="command.requested, by priority and project",
            subjects=[f"{subjects.COMMANDS_PREFIX}.*.*.*"],
            max_age=settings.commands_max_age_s,
        ),
        stream(
            name=RUNS,
            description="everything one run's SSE stream replays, in order",
            subjects=[f"{subjects.RUNS_PREFIX}.*.*.*"],
            max_age=settings.runs_max_age_s,
            max_bytes=settings.runs_max_bytes,
            max_msg_size=RUNS_MAX_MSG_SIZE,
            sources=[requested_into_runs],
        ),
        stream(
            name=LIFECYCLE,
            description="lifecycle events of RDEV_RUNS, without output",
            max_age=settings.admin_max_age_s,
            sources=[lifecycle_from_runs],
        ),
        stream(
            name=ADMIN,
            description="project.*, api_key.*, webhook.* changes",
            subjects=[f"{subjects.ADMIN_PREFIX}.*.*"],
            max_age=settings.admin_max_age_s,
        ),
        stream(
            name=WEBHOOKS,
            description="webhook delivery attempts and endpoint state",
            subjects=[f"{subjects.WEBHOOKS_PREFIX}.*.*"],
            max_age=settings.admin_max_age_s,
        ),
    ]


@dataclass(frozen=True)
class DurableConsumer:
    stream: str
    config: ConsumerConfig

    @property
    def durable(self) -> str:
        return self.config.durable_name or ""


EXECUTOR_DURABLE_PREFIX = "executor-"


def executor_durable(priority: Priority) -> str:
    """The durable name of the executor's consumer of one priority's queue."""
    return f"{EXECUTOR_DURABLE_PREFIX}{Priority(priority).value}"


def priority_of_durable(durable: str) -> Priority | None:
    """The priority whose queue `durable` consumes; None for any other consumer."""
    if not durable.startswith(EXECUTOR_DURABLE_PREFIX):
        return None
    try:
        return Priority(durable.removeprefix(EXECUTOR_DURABLE_PREFIX))
    except ValueError:
        return None


def executor_consumer(priority: Priority, ack_wait_s: float) -> DurableConsumer:
    """One pull consumer per priority; the executor sweeps them high → low."""
    return DurableConsumer(
        COMMANDS,
        ConsumerConfig(
            durable_name=executor_durable(priority),
            filter_subject=subjects.commands_of_priority(priority),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=-1,
            max_ack_pending=10_000,
        ),
    )


def lifecycle_consumer(service: str, ack_wait_s: float = 30.0) -> DurableConsumer:
    """A durable pull consumer of every run lifecycle event, for `service`."""
    return DurableConsumer(
        LIFECYCLE,
        ConsumerConfig(
            durable_name=f"{service}-runs",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=-1,
        ),
    )


def admin_consumer(
    service: str, ack_wait_s: float = 30.0, deliver_policy: DeliverPolicy = DeliverPolicy.ALL
) -> DurableConsumer:
    """A durable pull consumer of every admin change (project.*, api_key.*, webhook.*),
    from the first one kept, or with `DeliverPolicy.NEW` from its own creation on."""
    return DurableConsumer(
        ADMIN,
        ConsumerConfig(
            durable_name=f"{service}-admin",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=deliver_policy,
            ack_wait=ack_wait_s,
            max_deliver=-1,
        ),
    )


def webhook_events_consumer(service: str, ack_wait_s: float = 30.0) -> DurableConsumer:
    """A durable pull consumer of everything on RDEV_WEBHOOKS (attempts, endpoint state)."""
    return DurableConsumer(
        WEBHOOKS,
        ConsumerConfig(
            durable_name=f"{service}-webhooks",
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_deliver=-1,
        ),
    )


async def ensure_streams(js: JetStreamContext, settings: CommonSettings) -> None:
    """Create or update every stream that is missing or defined otherwise; safe to run
    from any service at start-up. A service whose broker identity may not define streams
    (webhooks, audit: see rdev_common.nats_auth) writes nothing when they are as wanted,
    and otherwise waits for the api or an executor to define them."""
    for config in stream_configs(settings):
        await _ensure_stream(js, config)


STREAM_WAIT_S = 0.5


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    name = config.name or ""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        info = None
    if info is not None and _defined_as(info.config, config):
        return
    try:
        if info is None:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    except NatsTimeoutError:  # what a publish the broker refuses looks like to a request
        if info is not None:
            log.warning("stream defined otherwise; not mine to update", stream=name)
            return
        log.info("waiting for the stream to be defined by the api or an executor", stream=name)
        while True:
            await asyncio.sleep(STREAM_WAIT_S)
            with contextlib.suppress(NotFoundError, NatsTimeoutError):
                await js.stream_info(name)
                return


def _defined_as(have: StreamConfig, want: StreamConfig) -> bool:
    """True when every field `want` sets has that value in `have` (the server fills in the
    rest)."""
    current = have.as_dict()
    return all(current.get(key) == value for key, value in want.as_dict().items())


IDEMPOTENCY_BUCKET = "rdev_idempotency"
SECRETS_BUCKET = "rdev_secrets"


async def ensure_buckets(js: JetStreamContext, settings: CommonSettings) -> None:
    """Key-value buckets: Idempotency-Key claims (kept for the de-duplication window) and
    project secrets (key: project id, value: JSON of name → value), read by executors."""
    for bucket, ttl in ((IDEMPOTENCY_BUCKET, settings.dedup_window_s), (SECRETS_BUCKET, None)):
        try:
            await js.key_value(bucket)
        except Exception:  # not there yet
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    ttl=ttl,
                    history=1,
                    storage=StorageType.FILE,
                    replicas=settings.stream_replicas,
                )
            )


async def ensure_consumer(js: JetStreamContext, consumer: DurableConsumer) -> None:
    """Create the durable consumer, or update it to the current definition."""
    await js.add_consumer(consumer.stream, consumer.config)


RATE_LIMITS = "RDEV_RATELIMIT"
RATE_LIMIT_MAX_WINDOW_S = 3600


def rate_limit_stream_config(settings: CommonSettings) -> StreamConfig:
    """The api's shared rate-limit counters: atomic counter subjects (server 2.12+), only the
    latest total kept per subject, gone once no window can still need them."""
    return StreamConfig(
        name=RATE_LIMITS,
        description="rate-limit counters: rdev.ratelimit.<caller>.<policy>.<window>",
        subjects=[f"{subjects.RATE_LIMIT_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=settings.stream_replicas,
        max_msgs_per_subject=1,
        max_age=2 * RATE_LIMIT_MAX_WINDOW_S,
        allow_direct=True,
        allow_msg_counter=True,
    )


async def ensure_rate_limit_stream(js: JetStreamContext, settings: CommonSettings) -> None:
    config = rate_limit_stream_config(settings)
    try:
        await js.stream_info(RATE_LIMITS)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)
