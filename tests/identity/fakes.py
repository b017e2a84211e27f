"""In-memory fakes of the identity ports, for service-layer unit tests."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self

from rdev_api.domain.model import ApiKey, Project
from rdev_api.domain.ratelimit import Decision, RateLimitPolicy, decide, window_of
from rdev_common.events import CloudEvent, CommandCancelRequested


@dataclass
class Store:
    projects: dict[str, Project] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    sessions: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    outbox: list[tuple[CloudEvent, str]] = field(default_factory=list)


class FakeProjects:
    def __init__(self, data: dict[str, Project]) -> None:
        self.data = data

    async def get(self, project_id: str) -> Project | None:
        return self.data.get(project_id)

    get_for_update = get

    async def list(self) -> list[Project]:
        return [self.data[k] for k in sorted(self.data)]

    async def add(self, project: Project) -> None:
        self.data[project.id] = project

    update = add

    async def remove(self, project_id: str) -> None:
        self.data.pop(project_id, None)


class FakeApiKeys:
    def __init__(self, data: dict[str, ApiKey]) -> None:
        self.data = data

    async def get(self, key_id: str) -> ApiKey | None:
        return self.data.get(key_id)

    get_for_update = get
    fresh = get

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        return next(
            (
                k
                for k in self.data.values()
                if secret_hash in (k.secret_hash, k.previous_secret_hash)
            ),
            None,
        )

    async def add(self, key: ApiKey) -> None:
        self.data[key.id] = key

    update = add

    async def count(self) -> int:
        return len(self.data)

    async def list(self) -> list[ApiKey]:
        return [self.data[k] for k in sorted(self.data)]

    async def touch(self, last_used: dict[str, datetime]) -> None:
        for key_id, at in last_used.items():
            key = self.data.get(key_id)
            if key is not None and (key.last_used_at is None or key.last_used_at < at):
                key.last_used_at = at


class FakeSessions:
    def __init__(self, data: dict[str, tuple[str, datetime]]) -> None:
        self.data = data

    async def add(self, token_hash: str, key_id: str, now: datetime, expires_at: datetime) -> None:
        self.data[token_hash] = (key_id, expires_at)

    async def key_id_for(self, token_hash: str, now: datetime) -> str | None:
        found = self.data.get(token_hash)
        return found[0] if found and found[1] > now else None

    async def remove(self, token_hash: str) -> None:
        self.data.pop(token_hash, None)


class FakeOutbox:
    def __init__(self, rows: list[tuple[CloudEvent, str]]) -> None:
        self.rows = rows

    async def add(self, event: CloudEvent, subject: str) -> None:
        self.rows.append((event, subject))


class FakeUnitOfWork:
    """Works on a copy of the store; `commit()` swaps it in, like a transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.committed = False

    async def __aenter__(self) -> Self:
        self.work = copy.deepcopy(self.store)
        self.projects = FakeProjects(self.work.projects)
        self.api_keys = FakeApiKeys(self.work.keys)
        self.sessions = FakeSessions(self.work.sessions)
        self.outbox = FakeOutbox(self.work.outbox)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    async def commit(self) -> None:
        self.store.__dict__.update(copy.deepcopy(self.work).__dict__)
        self.committed = True


class FakeRateLimiter:
    """The real sliding-window arithmetic over in-memory counters and a settable clock."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.counts: dict[tuple[str, str, int], int] = {}

    async def hit(self, bucket: str, policy: RateLimitPolicy) -> Decision:
        index, elapsed = window_of(self.now, policy.window_s)
        key = (bucket, policy.name, index)
        self.counts[key] = self.counts.get(key, 0) + 1
        previous = self.counts.get((bucket, policy.name, index - 1), 0)
        decision = decide(policy, previous, self.counts[key], elapsed)
        if not decision.allowed:
            self.counts[key] -= 1
        return decision


@dataclass
class FakeActiveCommands:
    active: dict[str, list[str]] = field(default_factory=dict)

    async def of_project(self, project: str) -> list[str]:
        return list(self.active.get(project, []))


@dataclass
class FakeSecretStore:
    data: dict[str, dict[str, str]] = field(default_factory=dict)

    async def sync(
        self, project: str, current: Callable[[], Awaitable[dict[str, str] | None]]
    ) -> None:
        secrets = await current()
        if secrets is None:
            self.data.pop(project, None)
        else:
            self.data[project] = dict(secrets)

    async def remove(self, project: str) -> None:
        self.data.pop(project, None)


@dataclass
class FakeCommandLog:
    cancelled: list[CommandCancelRequested] = field(default_factory=list)

    async def cancel(self, event: CommandCancelRequested) -> None:
        self.cancelled.append(event)

    async def end_before_start(self, event: object) -> bool:
        return False
