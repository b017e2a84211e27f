"""Helpers for the audit tests: the audit service as a real process, events on a real broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from nats.js import JetStreamContext

from rdev_common import subjects
from rdev_common.broker import free_port
from rdev_common.db.engine import sync_url
from rdev_common.events import (
    CloudEvent,
    CommandCompleted,
    CommandRequested,
    CommandStarted,
    OutputBatch,
    Reason,
)
from rdev_common.ids import new_id
from tests.support import wait_for_async

BIN = Path(sys.executable).parent
ROW_COLUMNS = (
    "stream",
    "seq",
    "event_id",
    "time",
    "actor",
    "client_ip",
    "project",
    "action",
    "target",
    "outcome",
    "details",
    "prev_hash",
    "hash",
)


def env_for(nats_url: str, db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDEV_")}
    env.update(
        RDEV_NATS_URL=nats_url,
        RDEV_DATABASE_URL=db_url,
        RDEV_DATA_DIR=str(data_dir),
        RDEV_LOG_LEVEL="info",
        PATH=f"{BIN}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@dataclass
class AuditProcess:
    """`python -m rdev_audit` as its own process, killable with SIGKILL."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    health_port: int = field(default_factory=free_port)

    def start(self) -> None:
        log = self.log_path.open("ab")
        env = {**self.env, "RDEV_HEALTH_PORT": str(self.health_port)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rdev_audit"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class BinaryOutput:
    """An output batch as the executor publishes it: CloudEvents binary mode."""

    batch: OutputBatch
    project: str
    id: str = field(default_factory=new_id)

    @property
    def subject(self) -> str:
        return self.batch.command_id

    def message(self) -> tuple[dict[str, str], bytes]:
        headers, payload = self.batch.message(
            source="rdev/test", project=self.project, event_id=self.id
        )
        return {**headers, "Nats-Msg-Id": self.id}, payload


def _message(event: CloudEvent | BinaryOutput) -> tuple[dict[str, str], bytes]:
    if isinstance(event, BinaryOutput):
        return event.message()
    return {"Nats-Msg-Id": event.id}, event.to_bytes()


def run_events(project: str, command_id: str, actor: str, exit_code: int = 0) -> list[tuple]:
    """(subject, event) of one run: requested (on RDEV_COMMANDS), started, output, completed."""
    requested = CommandRequested(
        command_id=command_id,
        project=project,
        command=f"echo {command_id}",
        actor=actor,
        client_ip="127.0.0.1",
    )
    started = CommandStarted(command_id=command_id, project=project, executor="test-host")
    output = BinaryOutput(
        OutputBatch(command_id=command_id, stream="stdout", first_line=1, text=b"x"), project
    )
    completed = CommandCompleted(
        command_id=command_id,
        project=project,
        exit_code=exit_code,
        reason=Reason.EXITED,
        duration_ms=5,
    )
    wrap = CloudEvent.wrap
    src = "rdev/test"
    return [
        (subjects.command("normal", project, command_id),
         wrap(requested, source=src, subject=command_id, project=project, actor=actor)),
        (subjects.run_event(project, command_id, "started"),
         wrap(started, source=src, subject=command_id, project=project)),
        (subjects.run_event(project, command_id, "output"), output),
        (subjects.run_event(project, command_id, "completed"),
         wrap(completed, source=src, subject=command_id, project=project)),
    ]  # fmt: skip


def admin_event(entity: str, action: str, target: str, actor: str, data: dict) -> tuple:
    event = CloudEvent(
        source="rdev/api",
        type=f"dev.rdev.{entity}.{action}.v1",
        subject=target,
        data=data,
        actor=actor,
    )
    return subjects.admin(entity, action), event


async def publish_all(js: JetStreamContext, events: list[tuple], window: int = 500) -> None:
    """Publish in windows of concurrent acked publishes (fast, and every one confirmed)."""
    for start in range(0, len(events), window):
        chunk = events[start : start + window]
        messages = [(subject, *_message(event)) for subject, event in chunk]
        await asyncio.gather(
            *(
                js.publish(subject, payload, headers=headers)
                for subject, headers, payload in messages
            )
        )


async def publish_runs(js: JetStreamContext, project: str, count: int, actor: str) -> list[str]:
    ids = [new_id() for _ in range(count)]
    events = [e for cid in ids for e in run_events(project, cid, actor, exit_code=len(cid) % 2)]
    # Requested first, then the rest: RDEV_COMMANDS is sourced into RDEV_RUNS asynchronously.
    requested = [e for e in events if e[0].startswith(subjects.COMMANDS_PREFIX)]
    await publish_all(js, requested)
    await wait_stream_count(js, "RDEV_RUNS", len(requested), at_least=True)
    await publish_all(js, [e for e in events if not e[0].startswith(subjects.COMMANDS_PREFIX)])
    return ids


async def stream_last_seq(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.last_seq or 0)


async def wait_stream_count(
    js: JetStreamContext, stream: str, count: int, at_least: bool = False, timeout: float = 60
) -> None:
    async def enough() -> bool:
        have = (await js.stream_info(stream)).state.messages
        return have >= count if at_least else have == count

    await wait_for_async(enough, timeout, f"{stream} to hold {count} messages")


class Db:
    """Synchronous access to the test database, for assertions and tampering."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(sync_url(url))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def execute(self, sql: str, **params: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql), params)

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]

    def audit_rows(self) -> list[tuple]:
        cols = ", ".join(ROW_COLUMNS)
        return self.rows(f"SELECT {cols} FROM audit_log ORDER BY stream, seq")

    def history_rows(self) -> list[tuple]:
        return self.rows(
            "SELECT id, project, command, priority, status, exit_code, reason, actor,"
            " requested_at, started_at, completed_at, duration_ms FROM command_history ORDER BY id"
        )

    def position(self, stream: str) -> int:
        return int(
            self.scalar("SELECT last_seq FROM audit_positions WHERE stream = :s", s=stream) or 0
        )

    def close(self) -> None:
        self.engine.dispose()


def rdev_cli(
    env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The `rdev` command line as a user runs it."""
    return subprocess.run(
        [str(BIN / "rdev"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


async def verify_db(url: str) -> Any:
    from rdev_common.db.audit_queries import verify_chain
    from rdev_common.db.engine import create_engine, session_factory

    engine = create_engine(url)
    try:
        return await verify_chain(session_factory(engine))
    finally:
        await engine.dispose()


async def wait_caught_up(
    js: JetStreamContext, db: Db, streams: tuple[str, ...], service: Any
) -> None:
    """Until the projection's position reaches each stream's last sequence."""

    async def caught_up() -> bool:
        for stream in streams:
            if db.position(stream) < await stream_last_seq(js, stream):
                return False
        return True

    async def state() -> str:
        behind = [(s, db.position(s), await stream_last_seq(js, s)) for s in streams]
        process = getattr(service, "process", None)
        status = "running" if process is not None and process.poll() is None else "exited"
        if process is not None and process.returncode is not None:
            status += f" with {process.returncode}"
        return (
            f"projection to catch up; (stream, position, last seq): {behind}; "
            f"service {status}; its log:\n{service.log_tail()}"
        )

    await wait_for_async(caught_up, 300, state)
