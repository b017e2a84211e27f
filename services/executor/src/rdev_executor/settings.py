"""Settings of the executor service."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import Field

from rdev_common.settings import HealthSettings


class ExecutorSettings(HealthSettings):
    executor_backend: Literal["local", "kubernetes"] = "local"
    executor_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 2, ge=1)
    executor_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    executor_ack_wait_s: float = Field(default=30.0, gt=0)
    executor_sweep_interval_s: float = Field(default=1.0, gt=0)
    priority_aging_s: float = Field(default=30.0, gt=0)
    project_slot_ttl_s: float = Field(default=30.0, gt=0)
    kill_grace_s: float = Field(default=10.0, ge=0)
    # Fewer, larger messages: at 64 KiB the broker spent more CPU per byte of a flood
    # of output than at 256 KiB (bench/README.md). Larger batches of escaped text are
    # split to fit the broker's max_payload.
    output_batch_bytes: int = Field(default=256 * 1024, gt=0)
    output_batch_age_s: float = Field(default=0.02, gt=0)
    output_tail_idle_s: float = Field(default=1.0, gt=0)
    # 8 Ki characters keep every SSE `data:` line under 64 KiB whatever the content
    # (6 bytes for an escaped control character), the limit of Go's bufio.Scanner.
    output_max_line_chars: int = Field(default=8 * 1024, ge=256)
    output_cap_bytes: int = Field(default=2 * 1024**3, gt=0)
    # Output waiting for the broker: per run in memory, then on disk (the data dir's
    # spool/) for all of the executor's runs together; past both, with the broker
    # away, a run's output is dropped and the run says so (docs/architecture.md).
    output_buffer_bytes: int = Field(default=4 * 1024**2, gt=0)
    output_spool_bytes: int = Field(default=1024**3, ge=0)
    # Standard input one run may be sent in all (docs/interactive.md).
    input_max_bytes: int = Field(default=1024**3, gt=0)
    # The kubernetes backend (RDEV_EXECUTOR_BACKEND=kubernetes): workspace pods.
    k8s_namespace: str = "rdev-workspaces"
    k8s_idle_gc_s: float = Field(default=1800.0, gt=0)
    k8s_ready_timeout_s: float = Field(default=120.0, gt=0)
    k8s_kubeconfig: str | None = None  # unset: in-cluster in a pod, else ~/.kube/config
    k8s_context: str | None = None
    k8s_breaker_failures: int = Field(default=5, ge=1)
    k8s_breaker_cooldown_s: float = Field(default=15.0, gt=0)
    k8s_exec_ping_s: float = Field(default=20.0, gt=0)  # keeps idle exec streams open
    k8s_image_pull_tries: int = Field(default=3, ge=1)  # ImagePullBackOffs before a run fails
    k8s_unschedulable_grace_s: float = Field(default=30.0, ge=0)  # time for an autoscaler
