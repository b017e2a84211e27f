"""Show results: a rich table on a terminal, JSON with --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

Column = tuple[str, Callable[[dict[str, Any]], Any]]

JsonOption = typer.Option("--json", help="print JSON instead of a table")


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], as_json: bool) -> None:
    if as_json:
        emit_json(list(rows))
        return
    grid = Table(show_edge=False, pad_edge=False, header_style="bold")
    for title, _ in columns:
        grid.add_column(title, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(get(row)) for _, get in columns))
    Console(soft_wrap=False).print(grid)


def record(value: dict[str, Any], as_json: bool) -> None:
    """One object: JSON, or `key: value` lines."""
    if as_json:
        emit_json(value)
        return
    width = max((len(k) for k in value), default=0)
    for key, item in value.items():
        typer.echo(f"{key.ljust(width)}  {cell(item)}")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def status(row: dict[str, Any]) -> str:
    """A completed run is shown by how it ended (exited, cancelled, timeout …)."""
    if row.get("status") == "completed":
        return str(row.get("reason") or "completed")
    return str(row.get("status"))
