"""Identity and access through the real HTTP stack: two api replicas (`python -m rdev_api`)
sharing one nats-server and one database (PostgreSQL when it answers, else SQLite)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from rdev_common.broker import EmbeddedNats
from tests.identity.conftest import fresh_database
from tests.identity.support import (
    ADMIN_KEY_PREFIX,
    ApiProcess,
    StreamWatcher,
    create_key,
    create_project,
)
from tests.postgres import postgres_available
from tests.support import wait_for

AUTH_FAILURES = 30
SECRETS: list[str] = []  # every secret this module created: none may leak anywhere


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend = "postgresql" if postgres_available() else "sqlite"
    if backend == "sqlite":
        print("PostgreSQL not reachable: the replicas share a SQLite database")
    yield from fresh_database(backend, tmp_path_factory.mktemp("identity-db"))


@pytest.fixture(scope="module")
def replicas(
    broker: EmbeddedNats, shared_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    data = tmp_path_factory.mktemp("identity-replicas")
    admin = ADMIN_KEY_PREFIX + "0123456789abcdef"
    SECRETS.append(admin)
    common = {
        "RDEV_RATE_LIMIT_AUTH_FAILURES": str(AUTH_FAILURES),
        "RDEV_LAST_USED_FLUSH_S": "0.5",
        "RDEV_STREAM_AUTH_CHECK_S": "0.5",
        "RDEV_HEARTBEAT_S": "1",
    }
    a = ApiProcess(
        data, broker.url, shared_db, admin, {**common, "RDEV_TRUSTED_PROXIES": "127.0.0.1/32"}
    )
    b = ApiProcess(data, broker.url, shared_db, admin, dict(common))
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("identity-workspaces")


def key_for(api: ApiProcess, **body: Any) -> dict[str, Any]:
    key = create_key(api, **body)
    SECRETS.append(key["secret"])
    return key


def status(api: ApiProcess, key: str, path: str, **headers: str) -> int:
    with api.client(key, headers=headers) as c:
        return c.get(path).status_code


def test_two_replicas_share_one_rate_limit(replicas: tuple[ApiProcess, ApiProcess]) -> None:
    a, b = replicas
    key = key_for(
        a, scopes=["commands:read"], rate_limits={"requests": {"limit": 10, "window_s": 3600}}
    )
    remaining = []
    for i in range(10):
        with (a if i % 2 else b).client(key["secret"]) as c:
            r = c.get("/projects")
        assert r.status_code == 200, r.text
        assert r.headers["RateLimit-Policy"] == '"requests";q=10;w=3600'
        remaining.append(r.headers["RateLimit"].split(";")[1])
    assert remaining == [f"r={n}" for n in range(9, -1, -1)], "one count across both replicas"
    for api in (a, b):
        with api.client(key["secret"]) as c:
            r = c.get("/projects")
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) > 0
        assert r.headers["RateLimit"].startswith('"requests";r=0;t=')
        assert r.json()["error"]["code"] == "rate_limited"


def test_command_submission_has_its_own_lower_limit(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "limited", workspace / "limited")
    key = key_for(
        a,
        scopes=["commands:execute", "commands:read"],
        rate_limits={"submit": {"limit": 2, "window_s": 3600}},
    )
    codes = []
    for api in (a, b, a):
        with api.client(key["secret"]) as c:
            r = c.post("/projects/limited/shell", json={"command": "true"})
        codes.append(r.status_code)
        assert "submit" in r.headers["RateLimit-Policy"]
    assert codes == [202, 202, 429]
    with b.client(key["secret"]) as c:
        assert c.get("/projects/limited").status_code == 200, "reads are not submissions"


def test_failed_authentication_is_limited_per_client_ip(
    replicas: tuple[ApiProcess, ApiProcess],
) -> None:
    a, _ = replicas
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    codes = [
        status(a, "rdev_wrong_" + str(i), "/projects", **attacker) for i in range(AUTH_FAILURES)
    ]
    assert set(codes) == {401}
    with a.client("rdev_wrong_again", headers=attacker) as c:
        r = c.get("/projects")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert status(a, "rdev_wrong", "/projects", **{"X-Forwarded-For": "198.51.100.8"}) == 401
    assert status(a, a.admin_key, "/projects", **attacker) == 200, "valid keys still work"


def test_client_ip_comes_from_x_forwarded_for_only_behind_a_trusted_proxy(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "fenced", workspace / "fenced")
    key = key_for(a, scopes=["commands:read"], allowed_ips=["203.0.113.0/24"])["secret"]
    inside = {"X-Forwarded-For": "203.0.113.5"}
    assert status(a, key, "/projects/fenced", **inside) == 200
    assert status(a, key, "/projects/fenced", **{"X-Forwarded-For": "198.51.100.1"}) == 403
    assert status(a, key, "/projects/fenced") == 403, "the socket peer is 127.0.0.1"
    assert status(a, key, "/projects/fenced", **{"X-Forwarded-For": "203.0.113.5, 10.9.9.9"}) == 403
    assert status(b, key, "/projects/fenced", **inside) == 403, "b trusts no proxy"
    assert status(b, key, "/projects/fenced/events") == 403, "no stream either"


def test_a_project_scoped_key_cannot_see_run_or_stream_another_project(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "own", workspace / "own")
    create_project(a, "foreign", workspace / "foreign")
    with a.client() as admin:
        foreign_cmd = admin.post("/projects/foreign/shell", json={"command": "true"}).json()
    key = key_for(a, scopes=["commands:execute", "commands:read"], projects=["own"])["secret"]
    with b.client(key) as c:
        assert [p["id"] for p in c.get("/projects").json()["data"]] == ["own"]
        assert c.get("/projects/own").status_code == 200
        assert c.get("/projects/foreign").status_code == 404
        r = c.post("/projects/foreign/shell", json={"command": "true"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/projects/foreign/events").status_code == 404
        assert c.get(f"/commands/{foreign_cmd['data']['id']}").status_code == 404
        assert c.post("/projects/own/shell", json={"command": "true"}).status_code == 202
        assert c.get("/api-keys").json()["data"][0]["projects"] == ["own"]


def test_revocation_reaches_every_replica_and_ends_open_streams(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "revoked", workspace / "revoked")
    key = key_for(a, scopes=["commands:read"])
    assert status(b, key["secret"], "/projects/revoked") == 200  # cached on b now
    stream = StreamWatcher(b.base_url, "/projects/revoked/events", {"X-API-Key": key["secret"]})
    assert stream.opened.wait(10) and stream.status == 200
    with a.client() as admin:
        assert admin.delete(f"/api-keys/{key['id']}").status_code == 200
    revoked_at = time.monotonic()
    wait_for(
        lambda: status(b, key["secret"], "/projects/revoked") == 401,
        5,
        "replica b still accepts a key revoked on replica a",
    )
    print(f"revocation effective on the other replica after {time.monotonic() - revoked_at:.3f} s")
    assert stream.ended.wait(10), "the open stream on b did not end after the revocation"
    assert stream.names()[0] == "connected"
    assert ("error", {"message": "the API key is no longer valid", "code": "unauthenticated"}) in (
        stream.events
    )
    assert status(a, key["secret"], "/projects/revoked") == 401


def test_an_expired_key_is_refused_and_its_open_stream_ends(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, _ = replicas
    create_project(a, "expiring", workspace / "expiring")
    expires = datetime.now(UTC) + timedelta(seconds=3)
    key = key_for(a, scopes=["commands:read"], expires_at=expires.isoformat())["secret"]
    stream = StreamWatcher(
        a.base_url, "/projects/expiring/events", {"Authorization": f"Bearer {key}"}
    )
    assert stream.opened.wait(10) and stream.status == 200
    assert stream.ended.wait(20), "the stream of an expired key did not end"
    assert [e for e in stream.events if e[0] != "heartbeat"][-1][0] == "error"
    assert status(a, key, "/projects/expiring") == 401


def test_rotation_keeps_the_old_secret_for_its_grace_period(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "rotating", workspace / "rotating")
    key = key_for(a, scopes=["commands:read"])
    old = key["secret"]
    assert status(b, old, "/projects/rotating") == 200
    stream = StreamWatcher(b.base_url, "/projects/rotating/events", {"X-API-Key": old})
    assert stream.opened.wait(10) and stream.status == 200
    with a.client(old) as c:  # a key rotates itself
        r = c.post(f"/api-keys/{key['id']}/rotate", json={"grace_s": 3})
    assert r.status_code == 200, r.text
    new = r.json()["data"]["secret"]
    SECRETS.append(new)
    assert new != old and r.json()["data"]["previous_secret_valid_until"]
    for api in (a, b):
        assert status(api, new, "/projects/rotating") == 200
        assert status(api, old, "/projects/rotating") == 200, "old secret within its grace"
    wait_for(lambda: status(b, old, "/projects/rotating") == 401, 15, "grace period never ended")
    assert stream.ended.wait(10), "the old secret's stream outlived the grace period"
    assert status(b, new, "/projects/rotating") == 200


def test_last_used_at_is_kept_without_a_write_per_request(
    replicas: tuple[ApiProcess, ApiProcess],
) -> None:
    a, b = replicas
    key = key_for(a, scopes=["commands:read"])
    with a.client() as admin:
        assert admin.get(f"/api-keys/{key['id']}").json()["data"]["last_used_at"] is None
    assert status(a, key["secret"], "/projects") == 200

    def seen_on_b() -> bool:
        with b.client() as admin:
            return admin.get(f"/api-keys/{key['id']}").json()["data"]["last_used_at"] is not None

    wait_for(seen_on_b, 10, "last_used_at never reached the database")


def test_project_crud_with_write_only_secrets_and_command_policy(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    secret_value = "s3cr3t-" + "e" * 12
    SECRETS.append(secret_value)
    create_project(
        a,
        "crud",
        workspace / "crud",
        env={"MODE": "test"},
        secrets={"DEPLOY_TOKEN": secret_value},
        command_policy={"allow": ["npm *", "true"], "deny": ["*rm -rf*"]},
        max_concurrency=2,
        default_timeout_s=60,
    )
    with b.client() as c:
        project = c.get("/projects/crud").json()["data"]
        assert project["secret_names"] == ["DEPLOY_TOKEN"] and secret_value not in str(project)
        r = c.post("/projects/crud/shell", json={"command": "rm -rf /"})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "command"
        assert c.post("/projects/crud/shell", json={"command": "ls"}).status_code == 422
        r = c.patch("/projects/crud", json={"env": {"MODE": None, "X": "1"}, "max_concurrency": 4})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["env"] == {"X": "1"} and r.json()["data"]["max_concurrency"] == 4
        r = c.patch("/projects/crud", json={"max_concurrency": 0})
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "max_concurrency"
        r = c.patch("/projects/crud", json={"env": {"BAD NAME": "x"}})
        assert r.json()["error"]["details"]["field"] == "env.BAD NAME"
        queued = c.post("/projects/crud/shell", json={"command": "npm test"})
        assert queued.status_code == 202, "no executor runs here: the command stays queued"
        r = c.delete("/projects/crud")
        assert r.status_code == 409 and queued.json()["data"]["id"] in r.text
        assert c.delete("/projects/crud", params={"force": "true"}).status_code == 204
        assert c.get("/projects/crud").status_code == 404
    wait_for(lambda: status(a, a.admin_key, "/projects/crud") == 404, 5, "a still sees it")


def test_a_narrowed_ip_allowlist_ends_an_open_stream_from_an_address_now_outside(
    replicas: tuple[ApiProcess, ApiProcess], workspace: Path
) -> None:
    a, b = replicas
    create_project(a, "narrowed", workspace / "narrowed")
    key = key_for(a, scopes=["commands:read"], allowed_ips=["203.0.113.0/24"])
    inside = {"X-API-Key": key["secret"], "X-Forwarded-For": "203.0.113.5"}
    stream = StreamWatcher(a.base_url, "/projects/narrowed/events", inside)
    assert stream.opened.wait(10) and stream.status == 200
    with b.client() as admin:  # changed on the other replica
        r = admin.patch(f"/api-keys/{key['id']}", json={"allowed_ips": ["198.51.100.0/24"]})
    assert r.status_code == 200, r.text
    assert stream.ended.wait(10), "the stream from an address no longer allowed went on"
    assert [e for e in stream.events if e[0] != "heartbeat"][-1][0] == "error"
    assert (
        status(a, key["secret"], "/projects/narrowed", **{"X-Forwarded-For": "203.0.113.5"}) == 403
    )
    assert (
        status(a, key["secret"], "/projects/narrowed", **{"X-Forwarded-For": "198.51.100.2"}) == 200
    )


def test_bodies_over_the_limit_are_refused_also_when_chunked(
    replicas: tuple[ApiProcess, ApiProcess],
) -> None:
    a, _ = replicas

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 100_000

    with a.client() as c:
        r = c.post("/projects", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.request.headers.get("Transfer-Encoding") == "chunked"
        assert r.status_code == 413 and r.json()["error"]["details"]["field"] == "body"
        r = c.post(
            "/projects", content=b" " * 2_000_000, headers={"Content-Type": "application/json"}
        )
        assert r.status_code == 413


def test_admin_changes_are_published_with_their_event_id(
    replicas: tuple[ApiProcess, ApiProcess], broker: EmbeddedNats
) -> None:
    events = admin_events(broker.url)
    types = {e["type"] for e, _ in events}
    assert {
        "dev.rdev.project.created.v1",
        "dev.rdev.project.updated.v1",
        "dev.rdev.project.deleted.v1",
        "dev.rdev.api_key.created.v1",
        "dev.rdev.api_key.revoked.v1",
        "dev.rdev.api_key.rotated.v1",
        "dev.rdev.api_key.updated.v1",
    } <= types
    assert all(e["id"] == msg_id for e, msg_id in events)
    assert len({e["id"] for e, _ in events}) == len(events), "no event published twice"


def test_no_secret_appears_in_any_log_event_or_response(
    replicas: tuple[ApiProcess, ApiProcess], broker: EmbeddedNats
) -> None:
    a, b = replicas
    assert len(SECRETS) > 5
    with a.client() as c:
        responses = [c.get("/api-keys").text, c.get("/projects").text]
        responses += [c.get(f"/api-keys/{k['id']}").text for k in c.get("/api-keys").json()["data"]]
    texts = {
        "log of a": a.log_path.read_text(),
        "log of b": b.log_path.read_text(),
        "RDEV_ADMIN": "\n".join(str(e) for e, _ in admin_events(broker.url)),
        "responses": "\n".join(responses),
    }
    assert "outbox events published" in texts["log of a"] + texts["log of b"]
    for secret in SECRETS:
        for where, text in texts.items():
            assert secret not in text, f"a secret ({secret[:8]}…) appears in the {where}"


def admin_events(nats_url: str) -> list[tuple[dict[str, Any], str]]:
    import asyncio

    from rdev_common.broker import connect
    from rdev_common.streams import ADMIN

    async def read() -> list[tuple[dict[str, Any], str]]:
        import json

        nc = await connect(nats_url, "test-reader")
        js = nc.jetstream()
        info = await js.stream_info(ADMIN)
        found = []
        if info.state.messages == 0:
            await nc.close()
            return found
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(ADMIN, seq)
            found.append((json.loads(msg.data), msg.headers["Nats-Msg-Id"]))
        await nc.close()
        return found

    return asyncio.run(read())


__all__ = ["admin_events", "httpx"]
