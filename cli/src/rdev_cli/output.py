"""Show results: aligned columns, JSON with --json.

On a terminal: the run state in colour, relative times ("2m ago"), yes/no. Anywhere
else (a pipe, a file, a script): plain columns of full values, never wrapped or cut,
so `awk` and `cut` see one row per line, as `kubectl` and `gh` print them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from rdev_common import run_state

Column = tuple[str, Callable[[dict[str, Any]], Any]]

JsonOption = typer.Option("--json", help="print JSON instead of a table")


class Styled(str):
    """A cell with a rich style, shown when the table goes to a terminal."""

    style: str = ""

    def __new__(cls, text: str, style: str) -> Styled:
        value = super().__new__(cls, text)
        value.style = style
        return value


class When(str):
    """A timestamp cell: relative on a terminal, as given (ISO 8601) otherwise."""


def is_tty() -> bool:
    return sys.stdout.isatty()


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


def when(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: When(row[name]) if row.get(name) else None


def cell(value: Any, tty: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return ("yes" if value else "no") if tty else str(value).lower()
    if isinstance(value, When) and tty:
        return relative(value)
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def relative(iso: str, now: datetime | None = None) -> str:
    """`2m ago`, `3h ago`, `5d ago`: how long before `now` the time `iso` was."""
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], as_json: bool) -> None:
    if as_json:
        emit_json(list(rows))
        return
    tty = is_tty()
    cells = [[get(row) for _, get in columns] for row in rows]
    if not tty:
        _plain([title for title, _ in columns], [[cell(v) for v in r] for r in cells])
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    grid = Table(show_edge=False, pad_edge=False, header_style="bold", box=None)
    for title, _ in columns:
        grid.add_column(title, overflow="fold")
    for values in cells:
        grid.add_row(
            *(Text(cell(v, tty), style=v.style if isinstance(v, Styled) else "") for v in values)
        )
    Console(soft_wrap=False).print(grid)


def _plain(titles: list[str], rows: list[list[str]]) -> None:
    """Columns padded to their widest value, separated by three spaces, no truncation."""
    widths = [max([len(t), *(len(r[i]) for r in rows)]) for i, t in enumerate(titles)]
    for values in [titles, *rows]:
        line = "   ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def record(value: dict[str, Any], as_json: bool) -> None:
    """One object: JSON, or `key: value` lines."""
    if as_json:
        emit_json(value)
        return
    tty = is_tty()
    width = max((len(k) for k in value), default=0)
    for key, item in value.items():
        typer.echo(f"{key.ljust(width)}  {cell(item, tty)}")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def state_of(row: dict[str, Any]) -> str:
    """The run's state identifier (from an API that predates `state`: derived)."""
    return str(
        row.get("state")
        or run_state.state_of(str(row.get("status")), row.get("reason"), row.get("exit_code"))
    )


def status(row: dict[str, Any]) -> Styled:
    """How the run stands, in the words and colour every rdev surface uses."""
    state = state_of(row)
    text = row.get("state_label") or run_state.label(state, row.get("reason"), row.get("exit_code"))
    return Styled(str(text), run_state.COLOURS.get(state, ""))
