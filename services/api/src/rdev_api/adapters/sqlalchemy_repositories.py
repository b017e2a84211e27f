"""SQLAlchemy adapters of the repository ports; the same code on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_api.domain.model import ApiKey, Project, Scope
from rdev_api.domain.ratelimit import RateLimitPolicy
from rdev_api.service_layer.ports import (
    ApiKeyRepository,
    Outbox,
    ProjectRepository,
    SessionRepository,
)
from rdev_common.db.tables import ApiKeyRow, OutboxRow, ProjectRow, RateLimitPolicyRow, SessionRow
from rdev_common.events import CloudEvent


def _project(row: ProjectRow) -> Project:
    return Project(
        id=row.id,
        workdir=row.workdir,
        kubernetes=row.kubernetes,
        env=dict(row.env or {}),
        secrets=dict(row.secrets or {}),
        max_concurrency=row.max_concurrency,
        default_timeout_s=row.default_timeout_s,
        command_policy=dict(row.command_policy or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _project_values(project: Project) -> dict[str, Any]:
    return {
        "workdir": project.workdir,
        "kubernetes": project.kubernetes,
        "env": project.env,
        "secrets": project.secrets,
        "max_concurrency": project.max_concurrency,
        "default_timeout_s": project.default_timeout_s,
        "command_policy": project.command_policy,
        "updated_at": project.updated_at,
    }


def _api_key(row: ApiKeyRow, policies: list[RateLimitPolicyRow]) -> ApiKey:
    projects: Any = row.projects
    allowed: Any = row.allowed_ips
    scopes: Any = row.scopes
    return ApiKey(
        id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        prefix=row.prefix,
        scopes=frozenset(Scope(s) for s in scopes),
        projects=frozenset(projects) if projects is not None else None,
        allowed_ips=tuple(allowed) if allowed is not None else None,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        previous_secret_hash=row.previous_secret_hash,
        previous_expires_at=row.previous_expires_at,
        rate_limits={p.name: RateLimitPolicy(p.name, p.limit, p.window_s) for p in policies},
    )


def _key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "secret_hash": key.secret_hash,
        "prefix": key.prefix,
        "scopes": sorted(s.value for s in key.scopes),
        "projects": sorted(key.projects) if key.projects is not None else None,
        "allowed_ips": list(key.allowed_ips) if key.allowed_ips is not None else None,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "previous_secret_hash": key.previous_secret_hash,
        "previous_expires_at": key.previous_expires_at,
    }


class _Repository:
    """Reads and writes in its unit of work's session, which opens on first use: a
    unit of work whose reads all come from a cache never opens one."""

    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        self._uow = uow

    @property
    def session(self) -> AsyncSession:
        return self._uow.session


class SqlAlchemyProjectRepository(_Repository):
    async def get(self, project_id: str) -> Project | None:
        row = await self.session.get(ProjectRow, project_id)
        return _project(row) if row else None

    async def get_for_update(self, project_id: str) -> Project | None:
        row = await self.session.scalar(
            select(ProjectRow).where(ProjectRow.id == project_id).with_for_update()
        )
        return _project(row) if row else None

    async def list(self) -> list[Project]:
        rows = await self.session.scalars(select(ProjectRow).order_by(ProjectRow.id))
        return [_project(r) for r in rows]

    async def add(self, project: Project) -> None:
        self.session.add(
            ProjectRow(id=project.id, created_at=project.created_at, **_project_values(project))
        )

    async def update(self, project: Project) -> None:
        await self.session.execute(
            update(ProjectRow).where(ProjectRow.id == project.id).values(**_project_values(project))
        )

    async def remove(self, project_id: str) -> None:
        await self.session.execute(delete(ProjectRow).where(ProjectRow.id == project_id))


class SqlAlchemyApiKeyRepository(_Repository):
    async def _with_policies(self, rows: list[ApiKeyRow]) -> list[ApiKey]:
        if not rows:
            return []
        policies = await self.session.scalars(
            select(RateLimitPolicyRow).where(RateLimitPolicyRow.key_id.in_([r.id for r in rows]))
        )
        by_key: dict[str, list[RateLimitPolicyRow]] = {}
        for policy in policies:
            by_key.setdefault(policy.key_id, []).append(policy)
        return [_api_key(r, by_key.get(r.id, [])) for r in rows]

    async def _one(self, row: ApiKeyRow | None) -> ApiKey | None:
        return (await self._with_policies([row]))[0] if row else None

    async def get(self, key_id: str) -> ApiKey | None:
        return await self._one(await self.session.get(ApiKeyRow, key_id))

    async def fresh(self, key_id: str) -> ApiKey | None:
        return await self.get(key_id)

    async def get_for_update(self, key_id: str) -> ApiKey | None:
        query = select(ApiKeyRow).where(ApiKeyRow.id == key_id).with_for_update()
        return await self._one(await self.session.scalar(query))

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        query = select(ApiKeyRow).where(
            or_(ApiKeyRow.secret_hash == secret_hash, ApiKeyRow.previous_secret_hash == secret_hash)
        )
        return await self._one((await self.session.scalars(query)).first())

    async def list(self) -> list[ApiKey]:
        rows = await self.session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))
        return await self._with_policies(list(rows))

    async def add(self, key: ApiKey) -> None:
        self.session.add(
            ApiKeyRow(
                id=key.id,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
                **_key_values(key),
            )
        )
        self._add_policies(key)

    def _add_policies(self, key: ApiKey) -> None:
        for policy in key.rate_limits.values():
            self.session.add(
                RateLimitPolicyRow(
                    key_id=key.id, name=policy.name, limit=policy.limit, window_s=policy.window_s
                )
            )

    async def update(self, key: ApiKey) -> None:
        await self.session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(**_key_values(key))
        )
        # Core statements: the ORM may hold the old policy rows of this key in its identity map.
        await self.session.execute(
            delete(RateLimitPolicyRow).where(RateLimitPolicyRow.key_id == key.id)
        )
        if key.rate_limits:
            await self.session.execute(
                insert(RateLimitPolicyRow),
                [
                    {"key_id": key.id, "name": p.name, "limit": p.limit, "window_s": p.window_s}
                    for p in key.rate_limits.values()
                ],
            )

    async def touch(self, last_used: dict[str, datetime]) -> None:
        for key_id, at in last_used.items():
            await self.session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id)
                .where(or_(ApiKeyRow.last_used_at.is_(None), ApiKeyRow.last_used_at < at))
                .values(last_used_at=at)
            )

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0)


class SqlAlchemySessionRepository(_Repository):
    async def add(self, token_hash: str, key_id: str, now: datetime, expires_at: datetime) -> None:
        self.session.add(
            SessionRow(token_hash=token_hash, key_id=key_id, created_at=now, expires_at=expires_at)
        )

    async def key_id_for(self, token_hash: str, now: datetime) -> str | None:
        row = await self.session.get(SessionRow, token_hash)
        if row is None or (row.expires_at or now) <= now:
            return None
        return row.key_id

    async def remove(self, token_hash: str) -> None:
        await self.session.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash))


class SqlAlchemyOutbox(_Repository):
    """Rows of the `outbox` table, inserted in the caller's transaction."""

    def __init__(self, uow: SqlAlchemyUnitOfWork) -> None:
        super().__init__(uow)
        self.added = 0

    async def add(self, event: CloudEvent, subject: str) -> None:
        self.session.add(
            OutboxRow(
                id=event.id,
                subject=subject,
                payload=event.to_bytes().decode(),
                created_at=event.time,
                attempts=0,
            )
        )
        self.added += 1


class SqlAlchemyUnitOfWork:
    """One database transaction; rolled back unless `commit()` was called.

    `after_commit` runs once a commit that wrote outbox rows has succeeded: it wakes the
    relay, so admin events leave within milliseconds instead of at the next poll.
    """

    projects: ProjectRepository
    api_keys: ApiKeyRepository
    sessions: SessionRepository
    outbox: Outbox

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._after_commit = after_commit

    async def __aenter__(self) -> Self:
        self._session: AsyncSession | None = None
        self.projects = SqlAlchemyProjectRepository(self)
        self.api_keys = SqlAlchemyApiKeyRepository(self)
        self.sessions = SqlAlchemySessionRepository(self)
        self._outbox = SqlAlchemyOutbox(self)
        self.outbox = self._outbox
        return self

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessions()
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.rollback()
            await session.close()

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()
        if self._outbox.added and self._after_commit is not None:
            self._after_commit()
        self._outbox.added = 0
