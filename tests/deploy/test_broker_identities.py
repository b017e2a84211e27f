"""Compose and Kubernetes give each service its own broker identity, from secrets, and the
broker's users are the ones rdev_common.nats_auth defines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import nats
import pytest

from rdev_common.broker import EmbeddedNats, nats_server_binary
from rdev_common.nats_auth import HEADER, IDENTITIES, authorization_block, password_variable

from .support import DEPLOY, SERVICES, Manifests, load_documents

AUTH_CONF = DEPLOY / "base" / "nats-auth.conf"
COMPOSE_FILE = DEPLOY.parent / "docker-compose.yml"


def test_the_checked_in_authorization_is_the_generated_one() -> None:
    """`python -m rdev_common.nats_auth > deploy/base/nats-auth.conf` after a change."""
    assert AUTH_CONF.read_text() == HEADER + authorization_block()


def test_the_authorization_works_with_passwords_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployments' file, passwords from variables: right one in, wrong one out, and
    a missing variable stops the server rather than leave it open."""
    (tmp_path / "nats-auth.conf").write_text(AUTH_CONF.read_text())
    conf = tmp_path / "nats.conf"
    conf.write_text("include ./nats-auth.conf\n")
    unset = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)],
        env={},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert unset.returncode != 0, "a missing password must stop the broker, not open it"
    assert "RDEV_NATS_API_PASSWORD" in unset.stdout + unset.stderr
    for user in IDENTITIES:  # the broker process inherits them
        monkeypatch.setenv(password_variable(user), f"{user}-pw")
    broker = EmbeddedNats(tmp_path / "store", config="include ../nats-auth.conf\n")
    broker.start()

    async def logins() -> None:
        nc = await nats.connect(broker.url, user="observer", password="observer-pw")
        await nc.close()
        for credentials in ({"user": "api", "password": "observer-pw"}, {}):
            with pytest.raises((nats.errors.Error, OSError)):
                await nats.connect(broker.url, allow_reconnect=False, **credentials)

    try:
        asyncio.run(logins())
    finally:
        broker.stop(kill=True)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def test_each_deployment_logs_in_as_itself_with_a_password_from_a_secret(
    manifests: Manifests,
) -> None:
    for svc in SERVICES:
        pod = manifests.get("Deployment", f"rdev-{svc}")["spec"]["template"]["spec"]
        env = _env(pod["containers"][0])
        assert env["RDEV_NATS_USER"]["value"] == svc
        ref = env["RDEV_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["name"].startswith("rdev-nats") and ref["key"] == f"{svc}-password", ref


def test_the_broker_reads_every_password_from_the_same_secret(manifests: Manifests) -> None:
    sts = manifests.get("StatefulSet", "nats")
    env = _env(sts["spec"]["template"]["spec"]["containers"][0])
    for user in IDENTITIES:
        ref = env[password_variable(user)]["valueFrom"]["secretKeyRef"]
        assert ref["name"].startswith("rdev-nats") and ref["key"] == f"{user}-password", ref
    (config_map,) = [o for o in manifests.of_kind("ConfigMap") if "nats.conf" in o["data"]]
    assert "include ./nats-auth.conf" in config_map["data"]["nats.conf"]
    assert config_map["data"]["nats-auth.conf"] == AUTH_CONF.read_text()


def test_no_password_sits_in_a_config_map(manifests: Manifests) -> None:
    for cm in manifests.of_kind("ConfigMap"):
        assert "RDEV_NATS_PASSWORD" not in cm.get("data", {}), cm["metadata"]["name"]


def test_compose_gives_each_service_its_identity() -> None:
    (doc,) = load_documents(COMPOSE_FILE.read_text())
    services = doc["services"]
    for svc in SERVICES:
        env = services[svc]["environment"]
        assert env["RDEV_NATS_USER"] == svc
        assert env["RDEV_NATS_PASSWORD"].startswith(f"${{{password_variable(svc)}")
    nats_service = services["nats"]
    assert nats_service["command"][:2] == ["-c", "/etc/nats/auth.conf"]
    assert "./deploy/base/nats-auth.conf:/etc/nats/auth.conf:ro" in nats_service["volumes"]
    for user in IDENTITIES:
        assert nats_service["environment"][password_variable(user)].startswith(
            f"${{{password_variable(user)}"
        )


def test_rdev_nats_passwords_prints_a_fresh_set_for_compose_or_a_secret() -> None:
    rdev = Path(sys.executable).parent / "rdev"
    runs = [
        subprocess.run([str(rdev), "nats-passwords"], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    sets = [dict(line.split("=", 1) for line in r.stdout.splitlines()) for r in runs]
    for printed in sets:
        assert set(printed) == {password_variable(user) for user in IDENTITIES}
        assert all(len(pw) >= 32 for pw in printed.values())
    assert not set(sets[0].values()) & set(sets[1].values()), "every run makes new ones"
