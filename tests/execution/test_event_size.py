"""Output events on a real broker: one over RDEV_RUNS' size limit is refused at once, not
retried for ever; one that fits reads back exactly as published."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest

from rdev_common.broker import EmbeddedNats
from rdev_common.events import CloudEvent, OutputBatch
from rdev_common.settings import CommonSettings
from rdev_common.streams import RUNS, RUNS_MAX_MSG_SIZE, ensure_streams
from rdev_executor.adapters.nats_event_log import NatsEventLog
from rdev_executor.service_layer.ports import PayloadTooLarge


async def test_an_event_the_stream_refuses_raises_payload_too_large(tmp_path: Path) -> None:
    # A broker that takes 8 MB messages (as deploy/ configures it) in front of a stream
    # that stores at most 2 MiB: only the stream's answer tells the event is too large.
    server = EmbeddedNats(tmp_path / "nats", config="max_payload: 8MB\n")
    server.start()
    nc = await nats.connect(server.url)
    try:
        assert nc.max_payload == 8 * 1024 * 1024 > RUNS_MAX_MSG_SIZE
        js = nc.jetstream()
        await ensure_streams(js, CommonSettings())
        log = NatsEventLog(js, "rdev/executor/test", max_payload=nc.max_payload)
        big = OutputBatch(
            command_id="c1", stream="stdout", first_line=1, text=b"x" * RUNS_MAX_MSG_SIZE
        )
        with pytest.raises(PayloadTooLarge):
            await asyncio.wait_for(log.publish_output(big, project="p"), 10)
        small = OutputBatch(command_id="c1", stream="stdout", first_line=1, text=b"x" * 1000)
        seq = await log.publish_output(small, project="p")
        assert seq >= 1
    finally:
        await nc.close()
        server.stop(kill=True)


async def test_an_output_event_reads_back_from_the_broker_as_published(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    nc = await nats.connect(server.url)
    source = ' rdev/executor/hôte "a" 100% '  # spaces at both ends, non-ASCII, quote, %
    try:
        js = nc.jetstream()
        await ensure_streams(js, CommonSettings())
        log = NatsEventLog(js, source, max_payload=nc.max_payload)
        batch = OutputBatch(
            command_id="c1", stream="stderr", first_line=3, text=b"a\nb\nc", cr=(0, 1)
        )
        await log.publish_output(batch, project="p")
        msg = await js.get_last_msg(RUNS, "rdev.runs.p.c1.output", direct=True)
        event = CloudEvent.from_message(msg.data or b"", msg.headers)
        assert event.source == source
        assert OutputBatch.from_message(msg.data or b"", msg.headers) == batch
    finally:
        await nc.close()
        server.stop(kill=True)
