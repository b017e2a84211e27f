"""A run's input to its executor: core NATS requests on the run's input subject."""

from __future__ import annotations

from nats.aio.client import Client
from nats.errors import NoRespondersError, TimeoutError

from rdev_common import subjects
from rdev_common.run_input import Message, Reply

# Long enough for a command that reads its input slowly; a request that times out is
# sent again with the same number, which the executor recognises.
REQUEST_TIMEOUT_S = 5.0


class NatsRunInput:
    def __init__(self, nc: Client, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.nc = nc
        self.timeout_s = timeout_s

    async def send(self, project: str, command_id: str, message: Message) -> Reply | None:
        """The executor's answer; None when none came (the run is not running: queued,
        ended, or its executor is away)."""
        try:
            msg = await self.nc.request(
                subjects.run_input(project, command_id),
                message.data,
                timeout=self.timeout_s,
                headers=message.headers(),
            )
        except (TimeoutError, NoRespondersError):
            return None
        return Reply.from_bytes(msg.data)
