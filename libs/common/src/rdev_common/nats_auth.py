"""Each service's own NATS identity, and the least it may do on the broker.

The broker is the system's back door: a client that can publish on
`rdev.commands.>` has the executor run anything, bypassing keys, scopes and
audit. So every service connects as its own user (`RDEV_NATS_USER`,
`RDEV_NATS_PASSWORD`), and the server's `authorization` block (rendered here,
for `rdev up`, compose and Kubernetes alike) allows each user only the
subjects its code uses:

- api: publishes commands, cancel requests (and the end of a run cancelled
  while queued), runs' input (`rdev.input.>`), admin events, rate-limit
  counters and its two key-value buckets; reads runs; defines the streams.
- executor: takes commands from its three durable consumers, publishes run
  events (started, output, completed) and its slot leases; defines the streams;
  answers the api's requests on `rdev.input.>` (runs' stdin) with one reply each.
- webhooks: reads lifecycle and admin events through its own durable
  consumers, publishes only delivery events on `rdev.webhooks.>`.
- audit: reads lifecycle, admin and webhook events through its own durable
  consumers; publishes nothing.
- observer: read-only, for internal subscribers and `rdev events`: stream and
  consumer info, ephemeral consumers, direct gets, core subscriptions to
  `rdev.>`. It cannot publish an event, ack, define or delete a stream, or
  touch a durable consumer or the secrets bucket.

Every user gets replies on its own inbox prefix (`_INBOX_<user>`), so no
identity can read the answers the broker sends another.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from rdev_common import streams, subjects
from rdev_common.events import Priority

IDENTITIES = ("api", "executor", "webhooks", "audit", "observer")
SERVICE_IDENTITIES = ("api", "executor", "webhooks", "audit")
OBSERVER = "observer"

JS = "$JS.API"
SLOTS_BUCKET = "rdev_project_slots"
BUCKETS = (streams.IDEMPOTENCY_BUCKET, streams.SECRETS_BUCKET, SLOTS_BUCKET)
EVENT_STREAMS = streams.ALL_STREAMS
DEFINED_STREAMS = (*EVENT_STREAMS, streams.RATE_LIMITS, *(f"KV_{b}" for b in BUCKETS))

# Every durable consumer, by stream: only its owner may pull from, reset or delete it.
DURABLES: dict[str, tuple[str, ...]] = {
    streams.COMMANDS: tuple(streams.executor_durable(p) for p in Priority),
    streams.LIFECYCLE: ("webhooks-runs", "audit-runs"),
    streams.ADMIN: ("webhooks-admin", "audit-admin"),
    streams.WEBHOOKS: ("audit-webhooks",),
}


def inbox_prefix(user: str) -> str:
    """Where the broker answers `user`'s requests; nobody else may subscribe there."""
    return f"_INBOX_{user}"


def _info() -> list[str]:
    return [f"{JS}.INFO", f"{JS}.STREAM.INFO.*", f"{JS}.STREAM.NAMES", f"{JS}.STREAM.LIST"]


def _define() -> list[str]:
    """Create and update the streams and buckets (never delete or purge them)."""
    return [f"{JS}.STREAM.{op}.{s}" for s in DEFINED_STREAMS for op in ("CREATE", "UPDATE")]


def _get(*names: str) -> list[str]:
    """Read single messages of these streams (last by subject, by sequence)."""
    return [
        rule
        for s in names
        for rule in (f"{JS}.DIRECT.GET.{s}", f"{JS}.DIRECT.GET.{s}.>", f"{JS}.STREAM.MSG.GET.{s}")
    ]


def _ephemeral(*names: str) -> list[str]:
    """Short-lived consumers on these streams: create (unnamed, or named as nats-py's
    pull_subscribe does), pull, acknowledge, look at and delete them. Others' durables are denied
    separately (`_not_others_durables`)."""
    return [
        rule
        for s in names
        for rule in (
            f"{JS}.CONSUMER.CREATE.{s}",
            f"{JS}.CONSUMER.CREATE.{s}.>",
            f"{JS}.CONSUMER.MSG.NEXT.{s}.*",
            f"{JS}.CONSUMER.INFO.{s}.*",
            f"{JS}.CONSUMER.DELETE.{s}.*",
            f"$JS.ACK.{s}.>",
        )
    ]


def _durable(stream: str, name: str) -> list[str]:
    """Own one durable consumer: define, pull, reset, look at, acknowledge."""
    return [
        f"{JS}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
        f"{JS}.CONSUMER.CREATE.{stream}.{name}",
        f"{JS}.CONSUMER.CREATE.{stream}.{name}.>",
        f"{JS}.CONSUMER.MSG.NEXT.{stream}.{name}",
        f"{JS}.CONSUMER.RESET.{stream}.{name}",
        f"{JS}.CONSUMER.INFO.{stream}.{name}",
        f"$JS.ACK.{stream}.{name}.>",
    ]


def _not_others_durables(owned: tuple[str, ...] = ()) -> list[str]:
    """Deny redefining, pulling from, acknowledging for, resetting or deleting a durable
    consumer that is not one's own (a deny wins over any allow)."""
    return [
        rule
        for stream, names in DURABLES.items()
        for name in names
        if name not in owned
        for rule in (
            f"{JS}.CONSUMER.CREATE.{stream}.{name}",
            f"{JS}.CONSUMER.CREATE.{stream}.{name}.>",
            f"{JS}.CONSUMER.DURABLE.CREATE.{stream}.{name}",
            f"{JS}.CONSUMER.MSG.NEXT.{stream}.{name}",
            f"{JS}.CONSUMER.RESET.{stream}.{name}",
            f"{JS}.CONSUMER.DELETE.{stream}.{name}",
            f"$JS.ACK.{stream}.{name}.>",
        )
    ]


def _kv(bucket: str) -> list[str]:
    return [f"$KV.{bucket}.>", *_get(f"KV_{bucket}")]


def _run_events(*kinds: str) -> list[str]:
    return [subjects.any_run_event(kind) for kind in kinds]


@dataclass(frozen=True)
class Permissions:
    publish: list[str]
    subscribe: list[str]
    deny_publish: list[str]
    # May answer a request it received, once, on the requester's reply subject
    # (nats-server's `allow_responses`), and publish to no other inbox.
    allow_responses: bool = False


def permissions(user: str) -> Permissions:
    """What `user` may publish and subscribe to."""
    inbox = f"{inbox_prefix(user)}.>"
    flow_control = "$JS.FC.>"  # answering a push consumer's flow control
    if user == "api":
        owned: tuple[str, ...] = ()
        publish = [
            *_info(),
            *_define(),
            f"{subjects.COMMANDS_PREFIX}.>",
            # A cancel; and the end of a run cancelled while still queued, which no
            # executor will ever start (stored only if nothing of the run came since).
            *_run_events("cancel_requested", "completed"),
            # Where a watched queued run stands: read from the executors' consumers
            # (looked at, never pulled from), published as `command.queued`.
            *_run_events("queued"),
            *(f"{JS}.CONSUMER.INFO.{streams.COMMANDS}.executor-{p.value}" for p in Priority),
            f"{subjects.ADMIN_PREFIX}.>",
            f"{subjects.INPUT_PREFIX}.>",  # runs' stdin, as requests to their executor
            f"{subjects.RATE_LIMIT_PREFIX}.>",
            *_kv(streams.IDEMPOTENCY_BUCKET),
            *_kv(streams.SECRETS_BUCKET),
            *_get(streams.COMMANDS, streams.RUNS, streams.LIFECYCLE, streams.RATE_LIMITS),
            *_ephemeral(streams.RUNS, streams.LIFECYCLE, streams.ADMIN),
            flow_control,
        ]
        subscribe = [inbox]
    elif user == "executor":
        owned = DURABLES[streams.COMMANDS]
        publish = [
            *_info(),
            *_define(),
            *_run_events("started", "progress", "output", "completed"),
            *_kv(SLOTS_BUCKET),
            *_get(f"KV_{streams.SECRETS_BUCKET}", streams.COMMANDS, streams.RUNS),
            *(rule for name in owned for rule in _durable(streams.COMMANDS, name)),
        ]
        # Wake-ups when a command is queued, and cancel requests, as plain messages;
        # runs' input as requests, answered through `allow_responses`.
        subscribe = [
            inbox,
            f"{subjects.COMMANDS_PREFIX}.>",
            *_run_events("cancel_requested"),
            f"{subjects.INPUT_PREFIX}.>",
        ]
    elif user in ("webhooks", "audit"):
        owned = tuple(n for names in DURABLES.values() for n in names if n.startswith(user))
        publish = [
            *_info(),
            *(
                rule
                for stream, names in DURABLES.items()
                for name in names
                if name in owned
                for rule in _durable(stream, name)
            ),
        ]
        if user == "webhooks":
            publish.append(f"{subjects.WEBHOOKS_PREFIX}.>")
        subscribe = [inbox]
    elif user == OBSERVER:
        owned = ()
        publish = [
            *_info(),
            f"{JS}.CONSUMER.INFO.*.*",
            f"{JS}.CONSUMER.NAMES.*",
            f"{JS}.CONSUMER.LIST.*",
            *_get(*EVENT_STREAMS),
            *_ephemeral(*EVENT_STREAMS),
            flow_control,
        ]
        subscribe = [inbox, "rdev.>"]
    else:
        raise ValueError(f"unknown NATS identity {user!r}; one of {', '.join(IDENTITIES)}")
    responds = user == "executor"
    return Permissions(publish, subscribe, _not_others_durables(owned), responds)


def generate_passwords() -> dict[str, str]:
    return {user: secrets.token_urlsafe(32) for user in IDENTITIES}


def password_variable(user: str) -> str:
    """The environment variable a deployment's nats-server reads `user`'s password from."""
    return f"RDEV_NATS_{user.upper()}_PASSWORD"


def authorization_block(passwords: dict[str, str] | None = None) -> str:
    """The nats-server `authorization` block: one user per identity, with its permissions.

    With `passwords` (rdev up) they are written in; without (compose, Kubernetes) each is
    a reference to the server's environment variable `password_variable(user)`, filled
    from a Secret. JSON is valid nats-server configuration; quoting keeps `$JS…` from
    being read as a variable reference."""
    users = []
    for user in IDENTITIES:
        p = permissions(user)
        rules: dict[str, object] = {
            "publish": {"allow": p.publish, "deny": p.deny_publish},
            "subscribe": {"allow": p.subscribe},
        }
        if p.allow_responses:
            rules["allow_responses"] = True
        users.append(
            {
                "user": user,
                "password": passwords[user] if passwords else f"@{password_variable(user)}@",
                "permissions": rules,
            }
        )
    text = json.dumps({"users": users}, indent=2)
    if not passwords:
        for user in IDENTITIES:
            text = text.replace(f'"@{password_variable(user)}@"', f"${password_variable(user)}")
    return "authorization: " + text + "\n"


HEADER = """\
# Generated by `python -m rdev_common.nats_auth` from rdev_common/nats_auth.py: do not
# edit; regenerate (a test checks that it matches). The passwords come from the
# server's environment (RDEV_NATS_<USER>_PASSWORD, from a Secret); docs/events.md
# ("Broker identities") explains each user's permissions.
"""


def main() -> None:
    print(HEADER + authorization_block(), end="")


if __name__ == "__main__":
    main()
