"""How long `rdev up` lets each service stop before it SIGKILLs it.

A service that is killed leaves its work to the next start; the executor's work is
processes. On SIGTERM it gives its runs RDEV_KILL_GRACE_S to end on their own, then
SIGTERMs each run's process group and SIGKILLs it after RDEV_KILL_GRACE_S more, and
publishes each run's `completed` (5 s). Its budget covers all of that plus a margin for
closing its broker connection, so a run's processes are always killed by the executor,
never orphaned by the executor's own SIGKILL. docs/operations.md says the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# What a service that holds no processes may take: finish its requests, flush its batches.
SERVICE_STOP_S = 15.0
# The executor: publishing the runs' `completed` events, then draining its connection.
EXECUTOR_PUBLISH_S = 5.0
EXECUTOR_MARGIN_S = 10.0


class ExecutorGrace(BaseSettings):
    """The executor's grace settings, read as the executor reads them (same default)."""

    model_config = SettingsConfigDict(env_prefix="RDEV_", extra="ignore")

    kill_grace_s: float = Field(default=10.0, ge=0)


def executor_stop_budget_s(kill_grace_s: float) -> float:
    """Twice RDEV_KILL_GRACE_S plus 15 s: 35 s at the default grace of 10 s."""
    return 2 * kill_grace_s + EXECUTOR_PUBLISH_S + EXECUTOR_MARGIN_S


def stop_budget_s(service: str, env: Mapping[str, str]) -> float:
    """The time from SIGTERM to SIGKILL for `service` started with `env`."""
    if service != "executor":
        return SERVICE_STOP_S
    grace = ExecutorGrace.model_validate(
        {"kill_grace_s": env["RDEV_KILL_GRACE_S"]} if "RDEV_KILL_GRACE_S" in env else {}
    )
    return max(SERVICE_STOP_S, executor_stop_budget_s(grace.kill_grace_s))
