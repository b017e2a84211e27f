"""Composition root of the executor. No I/O at import."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from rdev_common import streams
from rdev_common.broker import connect
from rdev_common.circuit_breaker import BreakerPolicy
from rdev_common.events import Priority
from rdev_common.metrics import poll_consumers
from rdev_common.service import broker_check, serving
from rdev_common.streams import (
    ensure_buckets,
    ensure_consumer,
    ensure_streams,
    executor_consumer,
)
from rdev_common.telemetry import configure_telemetry, shutdown_telemetry
from rdev_executor.adapters.file_spool import FileSpool
from rdev_executor.adapters.local_backend import LocalBackend
from rdev_executor.adapters.nats_event_log import NatsEventLog
from rdev_executor.adapters.nats_project_slots import NatsProjectSlots
from rdev_executor.adapters.nats_secrets import NatsSecrets
from rdev_executor.adapters.process_guard import ProcessGuard
from rdev_executor.adapters.routing_backend import RoutingBackend
from rdev_executor.adapters.traced_event_log import TracedEventLog
from rdev_executor.entrypoints.priority_loop import PriorityLoop
from rdev_executor.service_layer.ports import Backend
from rdev_executor.service_layer.runner import Limits, Runner
from rdev_executor.settings import ExecutorSettings

log = structlog.get_logger()


def make_backend(settings: ExecutorSettings, guard: ProcessGuard | None = None) -> Backend:
    """Commands of projects with a Kubernetes spec need RDEV_EXECUTOR_BACKEND=kubernetes;
    the others always run locally."""
    kubernetes = None
    if settings.executor_backend == "kubernetes":
        kubernetes = make_kubernetes_backend(settings)
    return RoutingBackend(LocalBackend(settings.executor_concurrency, guard), kubernetes)


def make_kubernetes_backend(settings: ExecutorSettings) -> Backend:
    # Imported only here: the Kubernetes client takes seconds to import, which
    # executors with the local backend should not pay at every start.
    from rdev_executor.adapters.kubernetes_backend import KubernetesBackend, KubernetesOptions

    return KubernetesBackend(
        KubernetesOptions(
            namespace=settings.k8s_namespace,
            idle_gc_s=settings.k8s_idle_gc_s,
            ready_timeout_s=settings.k8s_ready_timeout_s,
            kubeconfig=settings.k8s_kubeconfig,
            context=settings.k8s_context,
            exec_ping_s=settings.k8s_exec_ping_s,
            image_pull_tries=settings.k8s_image_pull_tries,
            unschedulable_grace_s=settings.k8s_unschedulable_grace_s,
            breaker=BreakerPolicy(
                failure_threshold=settings.k8s_breaker_failures,
                cooldown_s=settings.k8s_breaker_cooldown_s,
            ),
        )
    )


# A line's characters take up to four bytes each in UTF-8; a one-line batch's
# headers take far less than this allowance.
CHAR_BYTES = 4
ENVELOPE_ALLOWANCE = 4096


def check_line_fits(max_line_chars: int, max_payload: int) -> None:
    """Refuse to start if one output line could make an event larger than `max_payload`.

    Batches of many lines are split when too large; a single line cannot be.
    """
    if max_line_chars * CHAR_BYTES + ENVELOPE_ALLOWANCE > max_payload:
        raise SystemExit(
            f"RDEV_OUTPUT_MAX_LINE_CHARS={max_line_chars} can make an output event larger "
            f"than the broker accepts ({max_payload} bytes); at most "
            f"{(max_payload - ENVELOPE_ALLOWANCE) // CHAR_BYTES} fits"
        )


async def serve(settings: ExecutorSettings) -> None:
    sealer = settings.secrets_sealer()
    configure_telemetry("executor")
    nc = await connect(
        settings.require_nats_url(),
        f"rdev-executor-{settings.executor_name}",
        **settings.nats_credentials(),
    )
    # The broker refuses a message over its max_payload, RDEV_RUNS one over its own limit.
    max_event = min(nc.max_payload, streams.RUNS_MAX_MSG_SIZE)
    check_line_fits(settings.output_max_line_chars, max_event)
    js = nc.jetstream()
    await ensure_streams(js, settings)
    await ensure_buckets(js, settings)
    for priority in Priority:
        await ensure_consumer(js, executor_consumer(priority, settings.executor_ack_wait_s))
    guard = ProcessGuard(settings.kill_grace_s)
    await guard.start()
    spool = FileSpool(settings.data_dir.resolve() / "spool", settings.output_spool_bytes)
    spool.sweep()
    runner = Runner(
        backend=make_backend(settings, guard),
        events=TracedEventLog(
            NatsEventLog(
                js, source=f"rdev/executor/{settings.executor_name}", max_payload=max_event
            )
        ),
        limits=Limits(
            kill_grace_s=settings.kill_grace_s,
            batch_bytes=settings.output_batch_bytes,
            batch_age_s=settings.output_batch_age_s,
            max_line_chars=settings.output_max_line_chars,
            cap_bytes=settings.output_cap_bytes,
            tail_idle_s=settings.output_tail_idle_s,
            buffer_bytes=settings.output_buffer_bytes,
        ),
        executor_name=settings.executor_name,
        secrets=NatsSecrets(js, sealer),
        spool=spool if settings.output_spool_bytes else None,
    )
    loop = PriorityLoop(
        nc,
        runner,
        settings.executor_concurrency,
        settings.executor_ack_wait_s,
        settings.executor_sweep_interval_s,
        aging_s=settings.priority_aging_s,
        slots=NatsProjectSlots(js, settings.executor_name, settings.project_slot_ttl_s),
        input_max_bytes=settings.input_max_bytes,
    )
    await loop.start()

    checks = {"nats": broker_check(nc, js)}
    started = dict(executor=settings.executor_name, concurrency=settings.executor_concurrency)
    async with serving(
        "executor", checks, settings.health_host, settings.health_port, **started
    ) as stop:
        watched = [executor_consumer(p, settings.executor_ack_wait_s) for p in Priority]
        queues = [(c.stream, c.durable) for c in watched]
        tasks = [
            asyncio.create_task(loop.run()),
            asyncio.create_task(poll_consumers(js, queues)),
        ]
        await stop.wait()
        log.info("executor stopping")
        await loop.stop(grace_s=settings.kill_grace_s)
        # Whatever a run left running (its task did not end in time) ends before we do.
        guard.kill_all()
        await guard.close()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await nc.drain()
    spool.close()
    shutdown_telemetry()
