"""docker-compose.yml: the whole system on one machine. Checked by structure here, and by
`docker compose config -q` (or the standalone `docker-compose`) when one is installed;
neither needs a Docker engine."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from .docker_engine import compose_command, nats_passwords
from .support import REPO, SERVICES, load_documents

COMPOSE_FILE = REPO / "docker-compose.yml"
HEALTH_PORTS = {"executor": 8081, "webhooks": 8082, "audit": 8083}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = load_documents(COMPOSE_FILE.read_text())
    return dict(doc)


def compose_config(with_passwords: bool) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip(
            "neither the `docker compose` plugin nor `docker-compose` is installed "
            "(Debian package docker-compose provides the latter)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_NATS_")}
    if with_passwords:
        env |= nats_passwords()
    return subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )


def test_compose_config_is_valid() -> None:
    result = compose_config(with_passwords=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_refuses_to_start_without_broker_passwords() -> None:
    """No well-known default: without the passwords the stack does not start at all."""
    result = compose_config(with_passwords=False)
    assert result.returncode != 0
    assert "RDEV_NATS_" in result.stderr and "rdev nats-passwords" in result.stderr, result.stderr


def test_compose_runs_the_whole_system(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"nats", "postgres", "migrate", *SERVICES}


def test_nats_runs_jetstream_on_a_volume(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    image, _, tag = nats["image"].partition(":")
    major, minor = (int(x) for x in tag.split("-")[0].split(".")[:2])
    assert image == "nats"
    assert (major, minor) >= (2, 14), nats["image"]
    command = nats["command"]
    assert "-js" in command
    store = command[command.index("-sd") + 1]
    assert any(v.endswith(f":{store}") for v in nats["volumes"]), "JetStream store not on a volume"
    assert "healthcheck" in nats


def test_postgres_has_a_healthcheck(compose: dict[str, Any]) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_migrations_run_once_before_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "-m", "rdev_common.db.migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "webhooks", "audit"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["postgres"]["condition"] == "service_healthy", name
    for name in SERVICES:
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy", name


@pytest.mark.parametrize("svc", SERVICES)
def test_service_is_built_from_its_dockerfile(compose: dict[str, Any], svc: str) -> None:
    service = compose["services"][svc]
    assert service["build"] == {"context": ".", "args": {"SERVICE": svc}}
    assert (REPO / "Dockerfile").is_file()
    assert service["image"].startswith(f"ghcr.io/rdev/rdev-{svc}:")
    env = service["environment"]
    assert env["RDEV_NATS_URL"] == "nats://nats:4222"
    if svc != "executor":
        assert env["RDEV_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["RDEV_DATABASE_URL"]
    if svc in HEALTH_PORTS:
        assert env["RDEV_HEALTH_PORT"] == str(HEALTH_PORTS[svc])
        assert env["RDEV_HEALTH_HOST"] == "0.0.0.0"


def test_api_is_published_on_loopback_on_a_chosen_port(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["ports"] == ["${RDEV_API_BIND:-127.0.0.1}:${RDEV_API_PORT:-8080}:8080"]
    env = api["environment"]
    assert (env["RDEV_HOST"], env["RDEV_PORT"]) == ("0.0.0.0", "8080")


def test_no_admin_key_is_written_in_the_file(compose: dict[str, Any]) -> None:
    """Unset, the api generates the admin key on its first start and prints it once."""
    assert compose["services"]["api"]["environment"]["RDEV_BOOTSTRAP_KEY"] == (
        "${RDEV_BOOTSTRAP_KEY:-}"
    )
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if "KEY" in key:
                assert str(value).startswith("${") and str(value).endswith(":-}"), (name, key)


def test_the_secrets_key_goes_to_the_api_and_executor_only(compose: dict[str, Any]) -> None:
    holders = {
        name
        for name, svc in compose["services"].items()
        if "RDEV_SECRETS_KEY" in (svc.get("environment") or {})
    }
    assert holders == {"api", "executor"}
