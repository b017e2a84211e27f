"""The API-server double, a kubeconfig pointing at it, and a Runner on a real broker."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from rdev_common import subjects
from rdev_common.broker import EmbeddedNats, connect
from rdev_common.circuit_breaker import BreakerPolicy
from rdev_common.events import CloudEvent, CommandRequested
from rdev_common.ids import new_id
from rdev_common.settings import CommonSettings
from rdev_common.streams import ensure_streams
from rdev_executor.adapters.k8s_api import RetryPolicy
from rdev_executor.adapters.kubernetes_backend import KubernetesBackend, KubernetesOptions
from rdev_executor.adapters.nats_event_log import NatsEventLog
from rdev_executor.domain.outcome import Outcome
from rdev_executor.service_layer.runner import Limits, RunControl, Runner
from tests.kubernetes.apiserver_double import ApiServerDouble

# Set, the tests that can run against a real cluster do (make test-k8s-cluster);
# those that need the double skip.
REAL_KUBECONFIG = os.environ.get("RDEV_K8S_TEST_KUBECONFIG")
NAMESPACE = os.environ.get("RDEV_K8S_TEST_NAMESPACE", "rdev-workspaces")
WAIT_S = 60.0 if REAL_KUBECONFIG is None else 600.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[ApiServerDouble]:
    if REAL_KUBECONFIG is not None:
        pytest.skip("needs the API-server double")
    double = ApiServerDouble(tls_dir=tmp_path)  # TLS, as every real API server
    await double.start()
    yield double
    await double.close()


@pytest.fixture
def kubeconfig(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if REAL_KUBECONFIG is not None:
        return Path(REAL_KUBECONFIG)
    double: ApiServerDouble = request.getfixturevalue("apiserver")
    return double.kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def breaker_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(kubeconfig: Path, breaker_clock: FakeClock) -> AsyncIterator[KubernetesBackend]:
    b = KubernetesBackend(backend_options(kubeconfig), clock=breaker_clock)
    yield b
    await b.aclose()


def backend_options(kubeconfig: Path, **overrides: Any) -> KubernetesOptions:
    """Options for a backend against the double: its timings, shortened."""
    fields: dict[str, Any] = {
        "namespace": NAMESPACE,
        "idle_gc_s": 600,
        "ready_timeout_s": WAIT_S,
        "kubeconfig": str(kubeconfig),
        "breaker": BreakerPolicy(failure_threshold=3, cooldown_s=30),
        "poll_s": 0.05,
        "exec_ping_s": 0.5,
        "unschedulable_grace_s": 0.5,
        "restart_status_wait_s": 5.0,
        "retry": RetryPolicy(throttled_retries=3, max_retry_after_s=1.0),
    }
    known = {f.name for f in dataclasses.fields(KubernetesOptions)}
    return KubernetesOptions(**{k: v for k, v in {**fields, **overrides}.items() if k in known})


class ProjectSecrets:
    """A SecretSource over a dict a test fills: project → name → value."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, str]] = {}

    async def for_project(self, project: str) -> dict[str, str]:
        return dict(self.values.get(project, {}))


@pytest.fixture
def project_secrets() -> ProjectSecrets:
    return ProjectSecrets()


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    client = await connect(nats_server.url, "k8s-test")
    await ensure_streams(client.jetstream(), CommonSettings(nats_url=nats_server.url))
    yield client
    await client.close()


@dataclass
class Run:
    """One command through the Runner, with its events as the broker stored them."""

    request: CommandRequested
    control: RunControl
    task: asyncio.Task[Outcome | None]
    sub: Subscription
    events: list[CloudEvent] = field(default_factory=list)

    async def next_event(self) -> CloudEvent:
        msg = await self.sub.next_msg(timeout=WAIT_S)
        event = CloudEvent.from_message(msg.data, msg.headers)
        self.events.append(event)
        return event

    async def wait_for_output(self, text: str) -> None:
        while not any(text in line for line in self.lines("stdout")):
            await self.next_event()

    async def outcome(self) -> Outcome:
        result = await asyncio.wait_for(self.task, WAIT_S)
        assert result is not None
        while not self.events or not self.events[-1].type.startswith("dev.rdev.command.completed"):
            await self.next_event()
        return result

    def lines(self, stream: str) -> list[str]:
        return [
            line
            for e in self.events
            if e.type.startswith("dev.rdev.command.output") and e.data["stream"] == stream
            for line in e.data["text"].split("\n")
        ]

    def completed(self) -> dict[str, Any]:
        return self.events[-1].data


SPEC: dict[str, Any] = {
    "image": "registry.example/rdev-workspace:1",
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "env": {"FROM_SPEC": "spec-value"},
    "service_account": "builder",
    "node_selector": {"pool": "workspaces"},
}
if REAL_KUBECONFIG is not None:  # an image that exists, and no node pool or account to set up
    SPEC = {
        "image": os.environ.get("RDEV_K8S_TEST_IMAGE", "debian:12-slim"),
        "resources": SPEC["resources"],
        "env": SPEC["env"],
        "workdir": "/workspace",
    }


@pytest.fixture
def start_run_with(
    nc: Client, tmp_path: Path, project_secrets: ProjectSecrets
) -> Iterator[Callable[[Any], Callable[..., Any]]]:
    """Runs through a Runner over the given backend (one or more per test)."""
    workdir = tmp_path / "workspace"
    workdir.mkdir()
    tasks: list[asyncio.Task[Any]] = []

    def with_backend(backend: Any) -> Callable[..., Any]:
        runner = Runner(
            backend=backend,
            events=NatsEventLog(nc.jetstream(), source="rdev/executor/k8s-test"),
            limits=Limits(
                kill_grace_s=2.0,
                batch_bytes=64 * 1024,
                batch_age_s=0.02,
                max_line_chars=16 * 1024,
                cap_bytes=1024**2,
            ),
            executor_name="k8s-test",
            secrets=project_secrets,
        )

        async def start(command: str, *, project: str = "demo", **fields: Any) -> Run:
            spec = {"workdir": str(workdir), **SPEC, **fields.pop("spec", {})}
            req = CommandRequested(
                command_id=new_id(), project=project, command=command, kubernetes=spec, **fields
            )
            sub = await nc.subscribe(subjects.run_events(project, req.command_id))
            control = RunControl()
            task = asyncio.create_task(runner.handle(req, control, {}))
            tasks.append(task)
            return Run(req, control, task, sub)

        return start

    yield with_backend
    for task in tasks:
        task.cancel()


@pytest.fixture
def start_run(
    start_run_with: Callable[[Any], Callable[..., Any]], backend: KubernetesBackend
) -> Callable[..., Any]:
    return start_run_with(backend)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


async def process_group_gone(pgid: int) -> bool:
    """Whether the group empties; SIGKILL is delivered at once, dying takes a moment."""
    for _ in range(100):
        if not group_members(pgid):
            return True
        await asyncio.sleep(0.05)
    return False
