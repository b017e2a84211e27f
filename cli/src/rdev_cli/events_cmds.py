"""`rdev events replay|tail|info`: read rdev's event history straight from JetStream.

Operators' tools: they need RDEV_NATS_URL (the broker `rdev up` or the
deployment runs), not an API key. Output is CloudEvents JSON, one per line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from rdev_cli import local
from rdev_cli.broker_identities import cli_credentials
from rdev_cli.replay import Replay, ReplayRange, Sink
from rdev_common.broker import connect
from rdev_common.events import structured
from rdev_common.settings import CommonSettings
from rdev_common.streams import ALL_STREAMS

app = typer.Typer(help="Replay, follow and inspect the event streams (needs RDEV_NATS_URL).")
err = Console(stderr=True)

StreamOpt = Annotated[str, typer.Option("--stream", "-s", help=f"One of {', '.join(ALL_STREAMS)}")]
SubjectOpt = Annotated[
    str | None, typer.Option("--subject", help="Filter, e.g. 'rdev.runs.my-project.>'")
]
FormatOpt = Annotated[str, typer.Option("--format", help="jsonl or pretty")]


async def _connect() -> Client:
    settings = CommonSettings()
    return await connect(local.nats_url(), "rdev-cli-events", **cli_credentials(settings))


def _pretty_line(seq: int, subject: str, data: bytes) -> str:
    try:
        event = json.loads(data)
        head = f"{event.get('time', '')}  {event.get('type', '')}"
        body = json.dumps(event.get("data", {}), ensure_ascii=False)
    except ValueError:
        head, body = "-", data.decode(errors="replace")
    return f"{seq:>10}  {head}  {subject}\n{' ' * 12}{body}\n"


def _sink(fmt: str) -> tuple[Sink, Any]:
    """A writer of raw bytes (jsonl) or readable lines (pretty), and its output to flush."""
    if fmt == "pretty":

        def pretty(seq: int, subject: str, data: bytes) -> None:
            sys.stdout.write(_pretty_line(seq, subject, data))

        return pretty, sys.stdout
    out = sys.stdout.buffer

    def raw(_seq: int, _subject: str, data: bytes) -> None:
        out.write(data)
        out.write(b"\n")

    return raw, out


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


async def _replay(span: ReplayRange, fmt: str) -> int:
    nc = await _connect()
    write, out = _sink(fmt)
    try:
        replay = Replay(nc, span, write)
        if not err.is_terminal:
            return await replay.run()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task(span.stream, total=None)

            async def tick() -> None:
                while True:
                    bar.update(task, completed=replay.count, total=replay.total or None)
                    await asyncio.sleep(0.1)

            ticker = asyncio.create_task(tick())
            try:
                return await replay.run()
            finally:
                ticker.cancel()
    finally:
        out.flush()
        await nc.close()


@app.command()
def replay(
    stream: StreamOpt,
    from_seq: Annotated[int | None, typer.Option("--from-seq", min=1)] = None,
    since: Annotated[datetime | None, typer.Option("--since", help="ISO 8601, UTC")] = None,
    subject: SubjectOpt = None,
    to_seq: Annotated[int | None, typer.Option("--to-seq", min=1)] = None,
    fmt: FormatOpt = "jsonl",
) -> None:
    """Print a stream's stored events as CloudEvents JSON lines, oldest first, then exit."""
    if from_seq and since:
        raise typer.BadParameter("give --from-seq or --since, not both")
    if fmt not in ("jsonl", "pretty"):
        raise typer.BadParameter("--format must be jsonl or pretty")
    span = ReplayRange(stream.upper(), subject, from_seq, _utc(since), to_seq)
    count = asyncio.run(_replay(span, fmt))
    if err.is_terminal:
        err.print(f"{count} events")


async def _tail(stream: str, subject: str | None, from_seq: int | None, fmt: str) -> None:
    nc = await _connect()
    write, out = _sink(fmt)
    config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    if from_seq:
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, from_seq
    try:
        sub = await nc.jetstream().subscribe(
            subject or ">",
            stream=stream,
            ordered_consumer=True,
            config=config,
            deliver_policy=config.deliver_policy,
        )
        async for msg in sub.messages:
            write(msg.metadata.sequence.stream, msg.subject, structured(msg.data, msg.headers))
            out.flush()
    finally:
        await nc.close()


@app.command()
def tail(
    stream: StreamOpt,
    subject: SubjectOpt = None,
    from_seq: Annotated[int | None, typer.Option("--from-seq", min=1)] = None,
    fmt: FormatOpt = "jsonl",
) -> None:
    """Follow a stream live (from now, or from --from-seq) until interrupted."""
    try:
        asyncio.run(_tail(stream.upper(), subject, from_seq, fmt))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


async def _first_time(js: Any, info: Any) -> str:
    if not info.state.messages:
        return "-"
    try:
        first = await js.get_msg(info.config.name, seq=info.state.first_seq, direct=True)
    except Exception:  # an aged-out or deleted first message: no time to show
        return "-"
    return first.time.isoformat(timespec="seconds") if first.time else "-"


async def _info() -> tuple[list[Any], dict[str, list[Any]], dict[str, str]]:
    nc = await _connect()
    try:
        js = nc.jetstream()
        streams = [s for s in await js.streams_info() if s.config.name in ALL_STREAMS]
        consumers = {
            s.config.name or "": await js.consumers_info(s.config.name or "") for s in streams
        }
        firsts = {s.config.name or "": await _first_time(js, s) for s in streams}
        return streams, consumers, firsts
    finally:
        await nc.close()


def _stream_table(streams: list[Any], firsts: dict[str, str]) -> Table:
    table = Table(title="streams")
    for column in ("stream", "messages", "bytes", "first seq", "last seq", "first time", "max age"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    for s in sorted(streams, key=lambda s: s.config.name):
        state, config = s.state, s.config
        first = firsts.get(config.name or "", "-")
        max_age = f"{config.max_age / 86400:g}d" if config.max_age else "-"
        row = (state.messages, state.bytes, state.first_seq, state.last_seq)
        table.add_row(config.name, *(str(v) for v in row), first, max_age)
    return table


def _consumer_table(consumers: dict[str, list[Any]]) -> Table:
    table = Table(title="durable consumers")
    for column in ("stream", "consumer", "delivered seq", "ack floor", "pending", "ack pending"):
        table.add_column(column, justify="left" if column in ("stream", "consumer") else "right")
    table.add_column("lag", justify="right")
    for stream, infos in sorted(consumers.items()):
        for c in sorted(infos, key=lambda c: c.name):
            if not c.config.durable_name:
                continue
            lag = (c.num_pending or 0) + (c.num_ack_pending or 0)
            row = (c.delivered.stream_seq, c.ack_floor.stream_seq, c.num_pending, c.num_ack_pending)
            table.add_row(stream, c.name, *(str(v) for v in row), str(lag))
    return table


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable")] = False) -> None:
    """Streams (sequences, sizes, retention) and durable consumers with their lag."""
    streams, consumers, firsts = asyncio.run(_info())
    if as_json:
        payload = {
            "streams": [
                {"name": s.config.name, "messages": s.state.messages, "bytes": s.state.bytes,
                 "first_seq": s.state.first_seq, "last_seq": s.state.last_seq}
                for s in streams
            ],
            "consumers": [
                {"stream": stream, "name": c.name, "pending": c.num_pending,
                 "ack_pending": c.num_ack_pending,
                 "lag": (c.num_pending or 0) + (c.num_ack_pending or 0)}
                for stream, infos in consumers.items() for c in infos if c.config.durable_name
            ],
        }  # fmt: skip
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    console.print(_stream_table(streams, firsts))
    console.print(_consumer_table(consumers))
