"""A Docker engine for the compose test: the one that answers, else one started here.

Order: a daemon that already answers `docker info` is used as it is (CI's `.ci/run`
starts one); otherwise, as root with `dockerd` installed, one is started for the
session and stopped at its end; otherwise the compose test skips and says why.
Base images (`python:3.11-slim`, `nats:2.15-alpine`, `postgres:16`) are pulled when
missing; where no registry answers, the stand-in script named by
RDEV_STAND_IN_IMAGES (default `../shared/tools/stand-in-images.sh` beside the
repository) builds local ones, and without it the test skips naming the images.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rdev_common.nats_auth import generate_passwords, password_variable

from .support import REPO, find_tool

BASE_IMAGES = ("python:3.11-slim", "nats:2.15-alpine", "postgres:16")
STAND_IN_SCRIPT = Path(
    os.environ.get("RDEV_STAND_IN_IMAGES", REPO.parent / "shared/tools/stand-in-images.sh")
)
# The legacy builder: BuildKit would pull its `docker/dockerfile` frontend image.
BUILD_ENV = {"DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}


class Unavailable(Exception):
    """No engine, or no images: the reason the compose test skips."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    binary = shutil.which("docker")
    if binary is None:
        raise Unavailable("the docker CLI is not installed (Debian package docker.io)")
    result = subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **BUILD_ENV},
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


def answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return True


@contextmanager
def engine(log_dir: Path) -> Iterator[None]:
    """A Docker engine that answers for the duration of the block."""
    if answers():
        yield
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        raise Unavailable(
            "no Docker engine answers and docker.io is not installed "
            "(apt-get install docker.io docker-compose; `.ci/run` does)"
        )
    if os.geteuid() != 0:
        raise Unavailable("no Docker engine answers, and only root can start dockerd here")
    log = (log_dir / "dockerd.log").open("ab")
    process = subprocess.Popen(
        [dockerd, "--pidfile", str(log_dir / "dockerd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not answers():
            if process.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"dockerd did not start; see {log_dir / 'dockerd.log'}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_base_images() -> None:
    """Every base image present: pulled, or built as stand-ins where no registry answers."""
    missing = [i for i in BASE_IMAGES if not _have(i)]
    for image in list(missing):
        try:
            docker("pull", "-q", image, timeout=300)
            missing.remove(image)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
    if not missing:
        return
    if not STAND_IN_SCRIPT.is_file():
        raise Unavailable(
            f"{', '.join(missing)} cannot be pulled and no stand-in script is at "
            f"{STAND_IN_SCRIPT} (set RDEV_STAND_IN_IMAGES)"
        )
    result = subprocess.run(
        ["bash", str(STAND_IN_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **BUILD_ENV},
        check=False,
    )
    if result.returncode != 0 or not all(_have(i) for i in BASE_IMAGES):
        raise RuntimeError(f"stand-in images failed:\n{result.stderr[-3000:]}")


def _have(image: str) -> bool:
    try:
        docker("image", "inspect", image, timeout=30)
    except RuntimeError:
        return False
    return True


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) where it works, else the standalone `docker-compose`."""
    binary = shutil.which("docker")
    if binary:
        probe = subprocess.run(
            [binary, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [binary, "compose"]
    standalone = find_tool("docker-compose")
    return [standalone] if standalone else None


def nats_passwords() -> dict[str, str]:
    """A fresh password per broker identity, as `rdev nats-passwords` prints them."""
    return {password_variable(user): pw for user, pw in generate_passwords().items()}
