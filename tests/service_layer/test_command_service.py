"""The command use cases with an in-memory event log: idempotent submit, history pages.
No broker: these are the rules, run in milliseconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from rdev_api.domain.model import ApiKey, Principal, Project, Scope
from rdev_api.service_layer import command_service
from rdev_api.service_layer.ports import CommandState, Submitted
from rdev_common.errors import Forbidden
from rdev_common.events import CommandCancelRequested, CommandRequested, Priority
from rdev_common.ids import new_id

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeLog:
    """The event log as the use cases see it: requests stored by id, claims by token."""

    requested: dict[str, CommandRequested] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    fail_next_request: bool = False

    async def request(
        self, event: CommandRequested, event_id: str, traceparent: str | None
    ) -> Submitted:
        if self.fail_next_request:
            self.fail_next_request = False
            raise ConnectionError("broker away")
        duplicate = event_id in self.requested  # the broker's de-duplication by message id
        self.requested.setdefault(event_id, event)
        return Submitted(command_id=event.command_id, duplicate=duplicate)

    async def cancel(self, event: CommandCancelRequested) -> None:
        self.statuses[event.command_id] = "cancel_requested"

    async def claim(self, token: str, command_id: str) -> str:
        return self.claims.setdefault(token, command_id)

    async def project_command_ids(self, project: str) -> list[str]:
        return [i for i, e in self.requested.items() if e.project == project]

    async def state(self, command_id: str, project: str | None = None) -> CommandState | None:
        event = self.requested.get(command_id)
        if event is None or (project is not None and event.project != project):
            return None
        return CommandState(
            id=command_id,
            project=event.project,
            command=event.command,
            priority=event.priority,
            status=self.statuses.get(command_id, "requested"),
            requested_at=NOW,
        )


def principal(*scopes: Scope, projects: frozenset[str] | None = None) -> Principal:
    key = ApiKey(
        id="key-1",
        name="ci",
        secret_hash="h",
        prefix="rdev_x",
        scopes=frozenset(scopes or (Scope.COMMANDS_EXECUTE, Scope.COMMANDS_READ)),
        created_at=NOW,
        projects=projects,
    )
    return Principal(key, client_ip="127.0.0.1")


PROJECT = Project(id="web", workdir=None, created_at=NOW, updated_at=NOW)


async def submit(log: FakeLog, who: Principal, key: str | None, command: str = "make") -> Submitted:
    return await command_service.submit(
        log,  # type: ignore[arg-type]
        who,
        PROJECT,
        command=command,
        priority=Priority.NORMAL,
        timeout_s=None,
        max_timeout_s=3600,
        env={},
        cwd=None,
        idempotency_key=key,
        traceparent=None,
    )


async def test_a_repeated_idempotency_key_returns_the_first_command() -> None:
    log, who = FakeLog(), principal()
    first = await submit(log, who, "deploy-42")
    again = await submit(log, who, "deploy-42", command="something else")
    assert not first.duplicate and again.duplicate
    assert again.command_id == first.command_id
    assert list(log.requested) == [first.command_id]
    assert log.requested[first.command_id].command == "make"


async def test_without_a_key_every_submit_is_a_new_command() -> None:
    log, who = FakeLog(), principal()
    a, b = await submit(log, who, None), await submit(log, who, None)
    assert a.command_id != b.command_id and not a.duplicate and not b.duplicate


async def test_a_key_is_per_api_key_and_project() -> None:
    log = FakeLog()
    mine = await submit(log, principal(), "k")
    other_key = principal()
    other_key.key.id = "key-2"
    theirs = await submit(log, other_key, "k")
    assert mine.command_id != theirs.command_id


async def test_a_submit_that_failed_after_its_claim_is_made_again_under_the_same_id() -> None:
    """The claim was stored but the request never was: the retry publishes it, with the
    id the key is bound to, so a retry racing the broker's de-dup window adds nothing."""
    log, who = FakeLog(fail_next_request=True), principal()
    with pytest.raises(ConnectionError):
        await submit(log, who, "retry-me")
    (bound,) = log.claims.values()
    retried = await submit(log, who, "retry-me")
    assert retried.command_id == bound and not retried.duplicate
    assert list(log.requested) == [bound]


async def test_submit_needs_the_execute_scope() -> None:
    with pytest.raises(Forbidden):
        await submit(FakeLog(), principal(Scope.COMMANDS_READ), None)


async def history_ids(log: FakeLog, **kw: object) -> tuple[list[str], str | None]:
    page, cursor = await command_service.history(
        log,  # type: ignore[arg-type]
        principal(),
        PROJECT,
        status=kw.get("status"),  # type: ignore[arg-type]
        cursor=kw.get("cursor"),  # type: ignore[arg-type]
        limit=kw.get("limit", 3),  # type: ignore[arg-type]
    )
    return [s.id for s in page], cursor


async def test_history_pages_newest_first_and_the_cursor_walks_every_command_once() -> None:
    log = FakeLog()
    ids = [(await submit(log, principal(), None)).command_id for _ in range(7)]
    other = Project(id="api", workdir=None, created_at=NOW, updated_at=NOW)
    log.requested[new_id()] = CommandRequested(command_id="x", project=other.id, command="ls")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = await history_ids(log, cursor=cursor)
        seen += page
        pages += 1
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3  # 3 + 3 + 1: no empty last page


async def test_a_full_last_page_says_there_is_no_more() -> None:
    log = FakeLog()
    for _ in range(3):
        await submit(log, principal(), None)
    page, cursor = await history_ids(log, limit=3)
    assert len(page) == 3 and cursor is None


async def test_history_filters_by_status_across_pages() -> None:
    log = FakeLog()
    ids = [(await submit(log, principal(), None)).command_id for _ in range(6)]
    for command_id in ids[::2]:
        log.statuses[command_id] = "completed"
    page, cursor = await history_ids(log, status="completed", limit=2)
    assert page == sorted(ids[::2], reverse=True)[:2] and cursor == page[-1]
    rest, cursor = await history_ids(log, status="completed", limit=2, cursor=cursor)
    assert rest == sorted(ids[::2], reverse=True)[2:] and cursor is None
