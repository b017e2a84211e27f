"""Audit rows as JSON lines or CSV, in chunks of bytes: for HTTP streaming and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

ExportFormat = Literal["jsonl", "csv"]

COLUMNS = (
    "id",
    "time",
    "stream",
    "seq",
    "event_id",
    "actor",
    "actor_name",
    "client_ip",
    "project",
    "action",
    "target",
    "outcome",
    "details",
    "prev_hash",
    "hash",
)
CHUNK_BYTES = 64 * 1024


def jsonl_line(row: dict[str, Any]) -> str:
    """One row; `details` as a JSON object rather than a string of JSON."""
    out = {name: row[name] for name in COLUMNS}
    out["details"] = json.loads(row["details"]) if row["details"] else {}
    return json.dumps(out, ensure_ascii=False) + "\n"


class _CsvLines:
    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")

    def line(self, values: list[Any]) -> str:
        self.writer.writerow(values)
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


async def export_chunks(
    rows: AsyncIterator[dict[str, Any]], fmt: ExportFormat
) -> AsyncIterator[bytes]:
    """Encoded rows, gathered into chunks of about 64 KiB (few writes, bounded memory)."""
    csv_lines = _CsvLines()
    parts: list[str] = []
    size = 0
    if fmt == "csv":
        parts.append(csv_lines.line(list(COLUMNS)))
    async for row in rows:
        text = jsonl_line(row) if fmt == "jsonl" else csv_lines.line([row[c] for c in COLUMNS])
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    if parts:
        yield "".join(parts).encode()
