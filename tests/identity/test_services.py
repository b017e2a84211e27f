"""Service layer of identity and access, driven through its use cases with in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rdev_api.domain.model import Principal, Scope
from rdev_api.domain.secrets import hash_secret
from rdev_api.service_layer import apikey_service, auth, project_service
from rdev_api.service_layer.apikey_service import NewKey
from rdev_api.service_layer.project_service import ProjectChanges
from rdev_common.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed
from tests.identity.fakes import (
    FakeActiveCommands,
    FakeCommandLog,
    FakeSecretStore,
    FakeUnitOfWork,
    Store,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
async def admin(store: Store) -> Principal:
    secret = "rdev_admin_secret_for_unit_tests"
    await auth.ensure_bootstrap_key(FakeUnitOfWork(store), secret, NOW)
    return await login(store, secret)


async def login(
    store: Store, secret: str, ip: str | None = "127.0.0.1", now: datetime = NOW
) -> Principal:
    return await auth.authenticate(
        FakeUnitOfWork(store), secret=secret, session_token=None, client_ip=ip, now=now
    )


async def new_key(store: Store, admin: Principal, **spec: object) -> tuple[str, str]:
    spec.setdefault("name", "k")
    spec.setdefault("scopes", ["commands:execute", "commands:read"])
    key, secret = await apikey_service.create_key(
        FakeUnitOfWork(store),
        admin,
        NewKey(**spec),
        NOW,  # type: ignore[arg-type]
    )
    return key.id, secret


# --- API keys -------------------------------------------------------------------------


async def test_a_new_key_is_stored_as_a_hash_and_announced_without_its_secret(
    store: Store, admin: Principal
) -> None:
    key_id, secret = await new_key(store, admin, projects=["alpha"])
    stored = store.keys[key_id]
    assert secret.startswith("rdev_")
    assert stored.secret_hash == hash_secret(secret)
    assert secret not in repr(stored)
    event, subject = store.outbox[-1]
    assert subject == "rdev.admin.api_key.created"
    assert event.type == "dev.rdev.api_key.created.v1"
    assert event.subject == key_id and event.actor == admin.key.id
    assert secret not in event.model_dump_json()
    assert stored.secret_hash not in event.model_dump_json()
    assert event.data["projects"] == ["alpha"]


async def test_only_admins_create_keys(store: Store, admin: Principal) -> None:
    _, secret = await new_key(store, admin, scopes=["projects:write"])
    writer = await login(store, secret)
    with pytest.raises(Forbidden):
        await apikey_service.create_key(
            FakeUnitOfWork(store), writer, NewKey(name="x", scopes=["admin"]), NOW
        )


async def test_a_project_scoped_admin_hands_out_only_keys_inside_its_projects(
    store: Store, admin: Principal
) -> None:
    _, secret = await new_key(store, admin, scopes=["admin"], projects=["alpha", "beta"])
    scoped = await login(store, secret)
    await new_key(store, scoped, projects=["alpha"])
    for projects in (None, ["alpha", "gamma"]):
        with pytest.raises(Forbidden) as refused:
            await new_key(store, scoped, projects=projects)
        assert refused.value.details["field"] == "projects"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"scopes": ["root"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"name": " "}, "name"),
        ({"allowed_ips": ["10.0.0.0/8", "not-an-ip"]}, "allowed_ips[1]"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "expires_at"),
        ({"projects": ["Bad_Id"]}, "projects[0]"),
        ({"rate_limits": {"burst": (1, 1)}}, "rate_limits.burst"),
        ({"rate_limits": {"requests": (0, 60)}}, "rate_limits.requests.limit"),
    ],
)
async def test_key_validation_names_the_field(
    store: Store, admin: Principal, spec: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await new_key(store, admin, **spec)
    assert refused.value.details["field"] == field


async def test_revoked_expired_and_unknown_keys_are_refused(store: Store, admin: Principal) -> None:
    key_id, secret = await new_key(store, admin, expires_at=NOW + timedelta(hours=1))
    await login(store, secret)
    with pytest.raises(Unauthenticated):
        await login(store, secret, now=NOW + timedelta(hours=1))
    await apikey_service.revoke_key(FakeUnitOfWork(store), admin, key_id, NOW)
    with pytest.raises(Unauthenticated):
        await login(store, secret)
    with pytest.raises(Unauthenticated):
        await login(store, "rdev_never_issued")
    assert store.outbox[-1][1] == "rdev.admin.api_key.revoked"


async def test_allowed_ips_are_cidrs(store: Store, admin: Principal) -> None:
    _, secret = await new_key(store, admin, allowed_ips=["10.0.0.0/8", "192.0.2.7"])
    await login(store, secret, ip="10.20.30.40")
    await login(store, secret, ip="192.0.2.7")
    for ip in ("192.0.2.8", None, "not-an-address"):
        with pytest.raises(Forbidden):
            await login(store, secret, ip=ip)


async def test_rotation_keeps_the_old_secret_for_the_grace_period_only(
    store: Store, admin: Principal
) -> None:
    key_id, old = await new_key(store, admin)
    before = await login(store, old)
    _, new = await apikey_service.rotate_key(
        FakeUnitOfWork(store), admin, key_id, NOW, timedelta(minutes=10)
    )
    assert (await login(store, new)).via_previous is False
    during = await login(store, old, now=NOW + timedelta(minutes=9))
    assert during.via_previous is True
    with pytest.raises(Unauthenticated):
        await login(store, old, now=NOW + timedelta(minutes=10))
    # An open stream of the old secret may go on during the grace period only.
    assert await auth.still_valid(FakeUnitOfWork(store), before, NOW + timedelta(minutes=9))
    assert not await auth.still_valid(FakeUnitOfWork(store), before, NOW + timedelta(minutes=11))
    event, subject = store.outbox[-1]
    assert subject == "rdev.admin.api_key.rotated"
    assert new not in event.model_dump_json() and old not in event.model_dump_json()


async def test_rotation_without_grace_ends_the_old_secret_at_once(
    store: Store, admin: Principal
) -> None:
    key_id, old = await new_key(store, admin)
    await apikey_service.rotate_key(FakeUnitOfWork(store), admin, key_id, NOW, timedelta(0))
    with pytest.raises(Unauthenticated):
        await login(store, old)


async def test_a_key_manages_itself_but_sees_no_other_key(store: Store, admin: Principal) -> None:
    mine, secret = await new_key(store, admin)
    other, _ = await new_key(store, admin)
    me = await login(store, secret)
    assert [k.id for k in await apikey_service.list_keys(FakeUnitOfWork(store), me)] == [mine]
    with pytest.raises(NotFound):
        await apikey_service.get_key(FakeUnitOfWork(store), me, other)
    with pytest.raises(NotFound):
        await apikey_service.revoke_key(FakeUnitOfWork(store), me, other, NOW)
    await apikey_service.rotate_key(FakeUnitOfWork(store), me, mine, NOW)


async def test_last_used_is_written_in_one_batch(store: Store, admin: Principal) -> None:
    key_id, _ = await new_key(store, admin)
    usage = {key_id: NOW, admin.key.id: NOW + timedelta(seconds=1)}
    assert await apikey_service.flush_usage(FakeUnitOfWork(store), usage) == 2
    assert usage == {}
    assert store.keys[key_id].last_used_at == NOW
    await apikey_service.flush_usage(FakeUnitOfWork(store), {key_id: NOW - timedelta(hours=1)})
    assert store.keys[key_id].last_used_at == NOW, "last_used_at never moves back"


# --- projects ---------------------------------------------------------------------------


async def test_secrets_are_stored_but_announced_by_name_only(
    store: Store, admin: Principal, tmp_path: object
) -> None:
    secrets = FakeSecretStore()
    project = await project_service.create_project(
        FakeUnitOfWork(store),
        admin,
        project_id="alpha",
        now=NOW,
        changes=ProjectChanges(workdir=str(tmp_path), secrets={"TOKEN": "hunter2"}),
        secret_store=secrets,
    )
    assert project.secrets == {"TOKEN": "hunter2"}
    assert secrets.data == {"alpha": {"TOKEN": "hunter2"}}
    event, subject = store.outbox[-1]
    assert subject == "rdev.admin.project.created"
    assert event.data["secret_names"] == ["TOKEN"]
    assert "hunter2" not in event.model_dump_json()


async def test_patch_merges_env_and_secrets_and_null_removes(
    store: Store, admin: Principal, tmp_path: object
) -> None:
    await project_service.create_project(
        FakeUnitOfWork(store),
        admin,
        project_id="alpha",
        workdir=str(tmp_path),
        env={"A": "1", "B": "2"},
        now=NOW,
    )
    changes = ProjectChanges(env={"B": None, "C": "3"}, secrets={"S": "x"}, max_concurrency=2)
    project = await project_service.update_project(
        FakeUnitOfWork(store), admin, "alpha", changes, NOW + timedelta(seconds=1)
    )
    assert project.env == {"A": "1", "C": "3"}
    assert project.secrets == {"S": "x"} and project.max_concurrency == 2
    event, _ = store.outbox[-1]
    assert event.type == "dev.rdev.project.updated.v1"
    assert event.data["changed"] == ["env", "max_concurrency", "secrets"]
    assert "x" not in event.data["env"].values()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (ProjectChanges(env={"1BAD": "x"}), "env.1BAD"),
        (ProjectChanges(env={"BIG": "x" * 40_000}), "env.BIG"),
        (ProjectChanges(secrets={"OK": "a\x00b"}), "secrets.OK"),
        (ProjectChanges(max_concurrency=0), "max_concurrency"),
        (ProjectChanges(default_timeout_s=-1), "default_timeout_s"),
        (ProjectChanges(command_policy={"deny": ["re:("]}), "command_policy.deny[0]"),
        (ProjectChanges(workdir="relative/dir"), "workdir"),
    ],
)
async def test_project_validation_names_the_field(
    store: Store, admin: Principal, tmp_path: object, changes: ProjectChanges, field: str
) -> None:
    await project_service.create_project(
        FakeUnitOfWork(store), admin, project_id="alpha", workdir=str(tmp_path), now=NOW
    )
    with pytest.raises(ValidationFailed) as refused:
        await project_service.update_project(FakeUnitOfWork(store), admin, "alpha", changes, NOW)
    assert refused.value.details["field"] == field


async def test_a_project_scoped_key_sees_other_projects_as_absent(
    store: Store, admin: Principal, tmp_path: object
) -> None:
    for pid in ("alpha", "beta"):
        await project_service.create_project(
            FakeUnitOfWork(store), admin, project_id=pid, workdir=str(tmp_path), now=NOW
        )
    _, secret = await new_key(store, admin, scopes=["projects:write"], projects=["alpha"])
    scoped = await login(store, secret)
    listed = await project_service.list_projects(FakeUnitOfWork(store), scoped)
    assert [p.id for p in listed] == ["alpha"]
    with pytest.raises(NotFound):
        await project_service.get_project(FakeUnitOfWork(store), scoped, "beta")
    with pytest.raises(NotFound):
        await project_service.update_project(
            FakeUnitOfWork(store), scoped, "beta", ProjectChanges(max_concurrency=1), NOW
        )
    with pytest.raises(Forbidden):
        await project_service.create_project(
            FakeUnitOfWork(store), scoped, project_id="gamma", workdir=str(tmp_path), now=NOW
        )


async def test_delete_is_refused_while_commands_run_unless_forced(
    store: Store, admin: Principal, tmp_path: object
) -> None:
    await project_service.create_project(
        FakeUnitOfWork(store), admin, project_id="alpha", workdir=str(tmp_path), now=NOW
    )
    active = FakeActiveCommands({"alpha": ["c1", "c2"]})
    log = FakeCommandLog()
    with pytest.raises(Conflict) as refused:
        await project_service.delete_project(
            FakeUnitOfWork(store), admin, "alpha", force=False, active=active, command_log=log
        )
    assert refused.value.details["commands"] == ["c1", "c2"]
    assert "alpha" in store.projects
    cancelled = await project_service.delete_project(
        FakeUnitOfWork(store), admin, "alpha", force=True, active=active, command_log=log
    )
    assert cancelled == ["c1", "c2"]
    assert [c.command_id for c in log.cancelled] == ["c1", "c2"]
    assert "alpha" not in store.projects
    event, subject = store.outbox[-1]
    assert subject == "rdev.admin.project.deleted" and event.data["forced"] is True


async def test_a_failed_change_writes_no_event(
    store: Store, admin: Principal, tmp_path: object
) -> None:
    await project_service.create_project(
        FakeUnitOfWork(store), admin, project_id="alpha", workdir=str(tmp_path), now=NOW
    )
    before = len(store.outbox)
    with pytest.raises(Conflict):
        await project_service.create_project(
            FakeUnitOfWork(store), admin, project_id="alpha", workdir=str(tmp_path), now=NOW
        )
    assert len(store.outbox) == before


def test_command_policy_is_a_422_naming_command() -> None:
    from rdev_api.domain.model import Project

    project = Project(
        id="alpha",
        workdir="/",
        created_at=NOW,
        updated_at=NOW,
        command_policy={"allow": ["npm *", "re:^make( |$)"], "deny": ["*rm -rf*"]},
    )
    project_service.enforce_command_policy(project, "npm test")
    project_service.enforce_command_policy(project, "make build")
    for command in ("ls", "npm test; rm -rf /", "makefoo"):
        with pytest.raises(ValidationFailed) as refused:
            project_service.enforce_command_policy(project, command)
        assert refused.value.details["field"] == "command"


def test_scopes_are_the_documented_set() -> None:
    assert {s.value for s in Scope} == {
        "admin",
        "projects:write",
        "commands:execute",
        "commands:read",
        "webhooks:write",
        "audit:read",
    }


async def test_a_browser_session_outlives_a_rotation_but_not_a_revocation(
    store: Store, admin: Principal
) -> None:
    key_id, secret = await new_key(store, admin)
    token = await auth.open_session(FakeUnitOfWork(store), await login(store, secret), NOW)
    session = await auth.authenticate(
        FakeUnitOfWork(store), secret=None, session_token=token, client_ip=None, now=NOW
    )
    assert session.via_session
    await apikey_service.rotate_key(FakeUnitOfWork(store), admin, key_id, NOW, timedelta(0))
    assert await auth.still_valid(FakeUnitOfWork(store), session, NOW)
    await apikey_service.revoke_key(FakeUnitOfWork(store), admin, key_id, NOW)
    assert not await auth.still_valid(FakeUnitOfWork(store), session, NOW)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(
            FakeUnitOfWork(store), secret=None, session_token=token, client_ip=None, now=NOW
        )


async def test_narrowing_a_keys_addresses_applies_to_new_requests_and_open_streams(
    store: Store, admin: Principal
) -> None:
    key_id, secret = await new_key(store, admin, allowed_ips=["10.0.0.0/8"])
    streaming = await login(store, secret, ip="10.1.1.1")
    changes = apikey_service.KeyChanges(allowed_ips=["192.0.2.0/24"], name="narrowed")
    key = await apikey_service.update_key(FakeUnitOfWork(store), admin, key_id, changes, NOW)
    assert key.allowed_ips == ("192.0.2.0/24",) and key.name == "narrowed"
    assert not await auth.still_valid(FakeUnitOfWork(store), streaming, NOW)
    with pytest.raises(Forbidden):
        await login(store, secret, ip="10.1.1.1")
    await login(store, secret, ip="192.0.2.9")
    event, subject = store.outbox[-1]
    assert subject == "rdev.admin.api_key.updated"
    assert event.data["changed"] == ["name", "allowed_ips"]
    cleared = apikey_service.KeyChanges(clear_allowed_ips=True)
    await apikey_service.update_key(FakeUnitOfWork(store), admin, key_id, cleared, NOW)
    await login(store, secret, ip="10.1.1.1")
