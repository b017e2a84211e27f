"""A subscriber of rdev's run lifecycle events in plain nats-py (no rdev code needed).

    RDEV_NATS_URL=nats://127.0.0.1:4222 RDEV_NATS_USER=observer RDEV_NATS_PASSWORD=… \
        python docs/examples/subscriber.py [--project my-project] [--durable my-service] \
        [--from-start]

It reads RDEV_LIFECYCLE, the low-volume stream of `command.requested`,
`command.started`, `command.cancel_requested` and `command.completed` (no
output batches), and prints one line per event:

    dev.rdev.command.completed.v1 <command id> {"duration_ms": 12, "exit_code": 0, ...}

Without --durable it uses an ordered consumer: nothing is stored on the server,
and it sees events from now on (or from the first one with --from-start). With
--durable NAME it uses a durable pull consumer and acknowledges each event after
handling it, so a restarted subscriber resumes where it stopped (at-least-once:
make the handler idempotent on the event `id`). The observer identity may not
create durable consumers: --durable needs an identity of its own that owns that
consumer (docs/events.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "RDEV_LIFECYCLE"


def handle(event: dict[str, Any]) -> None:
    """Your code goes here. `event` is a CloudEvent; `event["data"]` its payload."""
    data = json.dumps(event["data"], sort_keys=True)
    print(f"{event['type']} {event['subject']} {data}", flush=True)


async def follow_ordered(js: Any, subject: str, from_start: bool) -> None:
    policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
    sub = await js.subscribe(subject, stream=STREAM, ordered_consumer=True, deliver_policy=policy)
    print("ready", flush=True)
    async for msg in sub.messages:
        handle(json.loads(msg.data))


async def follow_durable(js: Any, subject: str, durable: str, from_start: bool) -> None:
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        max_deliver=-1,
    )
    sub = await js.pull_subscribe(subject, durable=durable, stream=STREAM, config=config)
    print("ready", flush=True)
    while True:
        try:
            msgs = await sub.fetch(100, timeout=5)
        except (NatsTimeoutError, TimeoutError):
            continue
        for msg in msgs:
            handle(json.loads(msg.data))
            await msg.ack()


async def main() -> None:
    parser = argparse.ArgumentParser(description="Print rdev run lifecycle events.")
    parser.add_argument("--project", help="only this project's runs")
    parser.add_argument("--durable", help="durable consumer name, e.g. my-service-runs")
    parser.add_argument("--from-start", action="store_true", help="from the first stored event")
    args = parser.parse_args()

    # One server or a comma-separated list of them (the NATS convention).
    servers = os.environ.get("RDEV_NATS_URL", "nats://127.0.0.1:4222").split(",")
    # The broker takes only known identities; an internal subscriber reads as `observer`,
    # whose replies come on its own inbox prefix (docs/events.md, "Subscribing").
    user = os.environ.get("RDEV_NATS_USER")
    login: dict[str, Any] = {}
    if user:
        login = {
            "user": user,
            "password": os.environ.get("RDEV_NATS_PASSWORD", ""),
            "inbox_prefix": f"_INBOX_{user}",
        }
    nc = await nats.connect([server.strip() for server in servers], **login)
    js = nc.jetstream()
    # Lifecycle subjects: rdev.runs.<project>.<command id>.<kind>
    subject = f"rdev.runs.{args.project or '*'}.*.*"
    try:
        if args.durable:
            await follow_durable(js, subject, args.durable, args.from_start)
        else:
            await follow_ordered(js, subject, args.from_start)
    finally:
        await nc.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends it quietly
        asyncio.run(main())
