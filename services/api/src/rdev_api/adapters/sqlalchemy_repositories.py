"""SQLAlchemy adapters of the repository ports; the same code on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_api.domain.model import ApiKey, Project, Scope
from rdev_common.db.tables import ApiKeyRow, ProjectRow, SessionRow


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything rdev stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


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
        created_at=_utc(row.created_at) or row.created_at,
        updated_at=_utc(row.updated_at) or row.updated_at,
    )


def _api_key(row: ApiKeyRow) -> ApiKey:
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
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
        created_at=_utc(row.created_at) or row.created_at,
        last_used_at=_utc(row.last_used_at),
    )


class SqlAlchemyProjectRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, project_id: str) -> Project | None:
        row = await self.session.get(ProjectRow, project_id)
        return _project(row) if row else None

    async def list(self) -> list[Project]:
        rows = await self.session.scalars(select(ProjectRow).order_by(ProjectRow.id))
        return [_project(r) for r in rows]

    async def add(self, project: Project) -> None:
        self.session.add(
            ProjectRow(
                id=project.id,
                workdir=project.workdir,
                kubernetes=project.kubernetes,
                env=project.env,
                secrets=project.secrets,
                max_concurrency=project.max_concurrency,
                default_timeout_s=project.default_timeout_s,
                command_policy=project.command_policy,
                created_at=project.created_at,
                updated_at=project.updated_at,
            )
        )


class SqlAlchemyApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: str) -> ApiKey | None:
        row = await self.session.get(ApiKeyRow, key_id)
        return _api_key(row) if row else None

    async def get_by_hash(self, secret_hash: str) -> ApiKey | None:
        row = await self.session.scalar(
            select(ApiKeyRow).where(ApiKeyRow.secret_hash == secret_hash)
        )
        return _api_key(row) if row else None

    async def add(self, key: ApiKey) -> None:
        self.session.add(
            ApiKeyRow(
                id=key.id,
                name=key.name,
                secret_hash=key.secret_hash,
                prefix=key.prefix,
                scopes=sorted(s.value for s in key.scopes),
                projects=sorted(key.projects) if key.projects is not None else None,
                allowed_ips=list(key.allowed_ips) if key.allowed_ips is not None else None,
                expires_at=key.expires_at,
                revoked_at=key.revoked_at,
                created_at=key.created_at,
                last_used_at=key.last_used_at,
            )
        )

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0)


class SqlAlchemySessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token_hash: str, key_id: str, now: datetime, expires_at: datetime) -> None:
        self.session.add(
            SessionRow(token_hash=token_hash, key_id=key_id, created_at=now, expires_at=expires_at)
        )

    async def key_id_for(self, token_hash: str, now: datetime) -> str | None:
        row = await self.session.get(SessionRow, token_hash)
        if row is None or (_utc(row.expires_at) or now) <= now:
            return None
        return row.key_id

    async def remove(self, token_hash: str) -> None:
        await self.session.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash))


class SqlAlchemyUnitOfWork:
    """One database transaction; rolled back unless `commit()` was called."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        self.projects = SqlAlchemyProjectRepository(self._session)
        self.api_keys = SqlAlchemyApiKeyRepository(self._session)
        self.sessions = SqlAlchemySessionRepository(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.rollback()
        await self._session.close()

    async def commit(self) -> None:
        await self._session.commit()
