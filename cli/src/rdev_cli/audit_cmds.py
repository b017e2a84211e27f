"""`rdev audit verify|rebuild|export`: operator commands on the audit trail.

They talk to the database (RDEV_DATABASE_URL) and, for rebuild, to NATS
(RDEV_NATS_URL) directly: they are for operators of the deployment, not API clients.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import Progress
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rdev_cli import local
from rdev_cli.broker_identities import cli_credentials
from rdev_common.audit import AuditFilter
from rdev_common.audit_export import ExportFormat, export_chunks
from rdev_common.broker import connect
from rdev_common.db.audit_queries import audit_rows, verify_chain
from rdev_common.db.audit_rebuild import positions, reset_projections
from rdev_common.db.engine import create_engine, session_factory
from rdev_common.settings import CommonSettings
from rdev_common.streams import ADMIN, LIFECYCLE, WEBHOOKS

app = typer.Typer(help="The audit trail: verify its hash chain, rebuild it, export it.")
err = Console(stderr=True)
AUDITED_STREAMS = (LIFECYCLE, ADMIN, WEBHOOKS)


def utc(moment: datetime | None) -> datetime | None:
    """Times without a zone are UTC, like every time rdev stores."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@app.command()
def verify() -> None:
    """Recompute the hash chains; exit 1 and name the first broken row, if any."""

    async def main() -> int:
        engine = create_engine(CommonSettings().resolved_database_url())
        try:
            result = await verify_chain(session_factory(engine))
        finally:
            await engine.dispose()
        if result.broken is None:
            typer.echo(f"ok: {result.checked} rows, every chain intact")
            return 0
        b = result.broken
        typer.echo(f"broken: row id={b.id} stream={b.stream} seq={b.seq}: {b.problem}")
        return 1

    raise typer.Exit(asyncio.run(main()))


async def _stream_bounds(settings: CommonSettings) -> dict[str, tuple[int, int]]:
    """stream → (first sequence, last sequence) as the broker holds them now."""
    nc = await connect(local.nats_url(), "rdev-cli-audit", **cli_credentials(settings))
    try:
        js = nc.jetstream()
        bounds = {}
        for stream in AUDITED_STREAMS:
            state = (await js.stream_info(stream)).state
            bounds[stream] = (int(state.first_seq or 1), int(state.last_seq or 0))
        return bounds
    finally:
        await nc.close()


async def _wait_caught_up(
    sessions: async_sessionmaker[AsyncSession],
    targets: dict[str, int],
    generations: dict[str, int],
    timeout_s: float,
) -> bool:
    total = sum(targets.values())
    deadline = time.monotonic() + timeout_s
    with Progress(console=err, disable=not err.is_terminal, transient=True) as progress:
        task = progress.add_task("rebuilding", total=total or 1)
        while time.monotonic() < deadline:
            now = await positions(sessions)
            done = [min(now.get(s, (0, 0))[0], t) for s, t in targets.items()]
            progress.update(task, completed=sum(done))
            current = all(now.get(s, (0, 0))[1] == g for s, g in generations.items())
            if current and sum(done) >= total:
                return True
            await asyncio.sleep(0.2)
    return False


@app.command()
def rebuild(
    wait: Annotated[bool, typer.Option(help="Wait until the service has replayed")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 3600.0,
) -> None:
    """Drop both projections and have the running audit service replay them from sequence 1."""

    async def main() -> int:
        settings = CommonSettings()
        bounds = await _stream_bounds(settings)
        engine = create_engine(settings.resolved_database_url())
        sessions = session_factory(engine)
        try:
            generations = await reset_projections(sessions, {s: b[0] for s, b in bounds.items()})
            err.print(f"projections reset; replaying {sum(b[1] for b in bounds.values())} events")
            if not wait:
                return 0
            targets = {s: b[1] for s, b in bounds.items()}
            if await _wait_caught_up(sessions, targets, generations, timeout):
                typer.echo("rebuilt: the audit service has replayed every stream")
                return 0
            typer.echo("the audit service has not caught up in time; is it running?")
            return 2
        finally:
            await engine.dispose()

    raise typer.Exit(asyncio.run(main()))


async def _export(flt: AuditFilter, fmt: ExportFormat, out: BinaryIO) -> None:
    engine = create_engine(CommonSettings().resolved_database_url())
    try:
        async for chunk in export_chunks(audit_rows(session_factory(engine), flt), fmt):
            out.write(chunk)
    finally:
        await engine.dispose()
    out.flush()


@app.command()
def export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: stdout)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="API key id")] = None,
    project: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option(help="e.g. command.requested")] = None,
    outcome: Annotated[str | None, typer.Option(help="success or failure")] = None,
    since: Annotated[datetime | None, typer.Option(help="From this time (ISO 8601)")] = None,
    until: Annotated[datetime | None, typer.Option(help="Before this time (ISO 8601)")] = None,
) -> None:
    """Write the audit log, oldest first, as JSON lines or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    flt = AuditFilter(actor, project, action, outcome, utc(since), utc(until))
    if output is None:
        asyncio.run(_export(flt, "csv" if fmt == "csv" else "jsonl", sys.stdout.buffer))
        return
    with output.open("wb") as out:
        asyncio.run(_export(flt, "csv" if fmt == "csv" else "jsonl", out))
