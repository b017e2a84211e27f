"""A cache of API keys and projects in front of the repositories, per api process.

Authentication and project look-ups happen on every request; the cache answers them
from memory. Entries are dropped when an admin event about them arrives (every replica
consumes RDEV_ADMIN), at once on the replica that made the change, and after `ttl_s`
as a backstop. A load that raced with an invalidation is not stored (generation check).

While the database is unreachable, an entry past its `ttl_s` is still used for up to
`stale_s` more (docs/security.md says why that is safe): requests that need nothing
else from the database keep working through an outage.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Generic, Self, TypeVar

from rdev_api.domain.model import ApiKey, Project
from rdev_api.service_layer.ports import (
    ApiKeyRepository,
    Outbox,
    ProjectRepository,
    SessionRepository,
    UnitOfWork,
)
from rdev_common.db.outage import is_unavailable

T = TypeVar("T")


class _Entries(Generic[T]):
    def __init__(self, ttl_s: float, clock: Callable[[], float], stale_s: float = 0.0) -> None:
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self.clock = clock
        self.items: dict[str, tuple[T, float]] = {}

    def get(self, key: str) -> T | None:
        found = self.items.get(key)
        if found is None or found[1] < self.clock():
            return None
        return found[0]

    def stale(self, key: str | None) -> T | None:
        """The entry even past its ttl, for up to `stale_s` more (the database is away)."""
        found = self.items.get(key) if key else None
        if found is None or found[1] + self.stale_s < self.clock():
            return None
        return found[0]

    def put(self, key: str, value: T) -> None:
        self.items[key] = (value, self.clock() + self.ttl_s)


class IdentityCache:
    def __init__(
        self,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        stale_s: float = 900.0,
    ) -> None:
        self.keys: _Entries[ApiKey] = _Entries(ttl_s, clock, stale_s)
        self.projects: _Entries[Project] = _Entries(ttl_s, clock, stale_s)
        self.by_hash: dict[str, str] = {}
        self.generation = 0

    def forget_key(self, key_id: str) -> None:
        self.generation += 1
        self.keys.items.pop(key_id, None)

    def forget_project(self, project_id: str) -> None:
        self.generation += 1
        self.projects.items.pop(project_id, None)

    def clear(self) -> None:
        self.generation += 1
        self.keys.items.clear()
        self.projects.items.clear()
        self.by_hash.clear()

    def store_key(self, key: ApiKey, generation: int) -> None:
        if generation == self.generation:
            self.keys.put(key.id, key)
            self.by_hash[key.secret_hash] = key.id
            if key.previous_secret_hash:
                self.by_hash[key.previous_secret_hash] = key.id

    def store_project(self, project: Project, generation: int) -> None:
        if generation == self.generation:
            self.projects.put(project.id, project)


async def _load_or_stale(
    load: Awaitable[T | None], stale: Callable[[], T | None]
) -> tuple[T | None, bool]:
    """(`load`, True), or (the stale entry, False) when the database cannot be reached:
    a stale entry is not stored again, so the outage does not extend its life."""
    try:
        return await load, True
    except Exception as exc:
        kept = stale() if is_unavailable(exc) else None
        if kept is None:
            raise
        return kept, False


class CachedProjects:
    def __init__(self, inner: ProjectRepository, cache: IdentityCache, dirty: set[str]) -> None:
        self.inner = inner
        self.cache = cache
        self.dirty = dirty

    async def get(self, project_id: str) -> Project | None:
        found = self.cache.projects.get(project_id)
        if found is None:
            generation = self.cache.generation
            found, loaded = await _load_or_stale(
                self.inner.get(project_id), lambda: self.cache.projects.stale(project_id)
            )
            if found is not None and loaded:
                self.cache.store_project(found, generation)
        return found

    async def list(self) -> list[Project]:
        return await self.inner.list()

    async def get_for_update(self, project_id: str) -> Project | None:
        return await self.inner.get_for_update(project_id)

    async def add(self, project: Project) -> None:
        self.dirty.add(project.id)
        await self.inner.add(project)

    async def update(self, project: Project) -> None:
        self.dirty.add(project.id)
        await self.inner.update(project)

    async def remove(self, project_id: str) -> None:
        self.dirty.add(project_id)
        await self.inner.remove(project_id)


class CachedApiKeys:
    def __init__(self, inner: ApiKeyRepository, cache: IdentityCache, dirty: set[str]) -> None:
        self.inner = inner
        self.cache = cache
        self.dirty = dirty

    async def get(self, key_id: str) -> ApiKey | None:
        found = self.cache.keys.get(key_id)
        if found is None:
            generation = self.cache.generation
            found, loaded = await _load_or_stale(
                self.inner.get(key_id), lambda: self.cache.keys.stale(key_id)
            )
            if found is not None and loaded:
                self.cache.store_key(found, generation)
        return found

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        key_id = self.cache.by_hash.get(secret_hash)
        found = self.cache.keys.get(key_id) if key_id else None
        if found is None:
            generation = self.cache.generation
            found, loaded = await _load_or_stale(
                self.inner.get_by_hash(secret_hash), lambda: self.cache.keys.stale(key_id)
            )
            if found is not None and loaded:
                self.cache.store_key(found, generation)
        return found

    async def get_for_update(self, key_id: str) -> ApiKey | None:
        return await self.inner.get_for_update(key_id)

    async def fresh(self, key_id: str) -> ApiKey | None:
        return await self.inner.fresh(key_id)

    async def list(self) -> list[ApiKey]:
        return await self.inner.list()

    async def count(self) -> int:
        return await self.inner.count()

    async def add(self, key: ApiKey) -> None:
        self.dirty.add(key.id)
        await self.inner.add(key)

    async def update(self, key: ApiKey) -> None:
        self.dirty.add(key.id)
        await self.inner.update(key)

    async def touch(self, last_used: dict[str, datetime]) -> None:
        await self.inner.touch(last_used)


class CachedUnitOfWork:
    """The inner unit of work, with cached reads; a commit forgets what it changed."""

    projects: ProjectRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository
    outbox: Outbox

    def __init__(self, inner: UnitOfWork, cache: IdentityCache) -> None:
        self.inner = inner
        self.cache = cache

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        self._keys: set[str] = set()
        self._projects: set[str] = set()
        self.projects = CachedProjects(self.inner.projects, self.cache, self._projects)
        self.api_keys = CachedApiKeys(self.inner.api_keys, self.cache, self._keys)
        self.sessions = self.inner.sessions
        self.outbox = self.inner.outbox
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self.inner.commit()
        for key_id in self._keys:
            self.cache.forget_key(key_id)
        for project_id in self._projects:
            self.cache.forget_project(project_id)
        self._keys.clear()
        self._projects.clear()
