"""The audit trail's hash chain: canonical row content and how rows link.

Every row of `audit_log` belongs to the chain of its source stream (one chain per
stream, ordered by stream sequence). A row's hash is SHA-256 over the previous
row's hash and the row's canonical content, so editing, deleting or re-ordering
any row breaks the chain at that row. One chain per stream keeps the order
deterministic: each stream is projected by one sequential consumer, so a rebuild
from sequence 1 reproduces every hash, whatever the interleaving of streams.

Standard library only: the audit service writes with it, the api and the CLI verify.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

# Fields of an audit row that its hash covers, in the order exports print them.
CONTENT_FIELDS = (
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
)


def iso(moment: datetime) -> str:
    """UTC, microseconds, `Z`: one spelling whatever the database gives back.

    SQLite returns naive datetimes, PostgreSQL aware ones; both are UTC here.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: the same text for the same value, every time."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class AuditContent:
    """What one audit row says; `details` is canonical JSON text."""

    stream: str
    seq: int
    event_id: str
    time: datetime
    actor: str | None
    client_ip: str | None
    project: str | None
    action: str
    target: str | None
    outcome: str
    details: str

    def canonical(self) -> bytes:
        fields: dict[str, Any] = {name: getattr(self, name) for name in CONTENT_FIELDS}
        fields["time"] = iso(self.time)
        return canonical_json(fields).encode()

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AuditContent:
        return cls(**{name: row[name] for name in CONTENT_FIELDS})


def chain_hash(prev_hash: str, content: AuditContent) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + content.canonical()).hexdigest()


@dataclass(frozen=True)
class Break:
    """The first row whose chain does not hold, and why."""

    id: int
    stream: str
    seq: int
    problem: str


@dataclass
class ChainChecker:
    """Feed rows of one or more chains, each chain in sequence order; finds the first break."""

    checked: int = 0

    def __post_init__(self) -> None:
        self._last: dict[str, str] = {}

    def start(self, stream: str, prev_hash: str) -> None:
        """Begin `stream`'s chain after a row that is not checked (e.g. a retained prefix)."""
        self._last[stream] = prev_hash

    def check(self, row: Mapping[str, Any]) -> Break | None:
        stream = row["stream"]
        expected_prev = self._last.get(stream, GENESIS)
        self.checked += 1
        if row["prev_hash"] != expected_prev:
            return Break(row["id"], stream, row["seq"], "prev_hash does not match the row before")
        if chain_hash(row["prev_hash"], AuditContent.of(row)) != row["hash"]:
            return Break(row["id"], stream, row["seq"], "content does not match its hash")
        self._last[stream] = row["hash"]
        return None

    def first_break(self, rows: Iterable[Mapping[str, Any]]) -> Break | None:
        for row in rows:
            broken = self.check(row)
            if broken is not None:
                return broken
        return None


@dataclass(frozen=True)
class AuditFilter:
    """Which audit rows to read. `projects` limits a caller restricted to some projects."""

    actor: str | None = None
    project: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    projects: frozenset[str] | None = None


@dataclass(frozen=True)
class Verification:
    checked: int
    broken: Break | None
