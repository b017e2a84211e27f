"""The CLI's own failures: one message on stderr and a distinct exit code per kind."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")

EXIT_ERROR = 1  # the server refused the request (validation, conflict …)
EXIT_USAGE = 2  # the command line asks for something rdev cannot do
EXIT_UNREACHABLE = 3  # no answer from the server
EXIT_AUTH = 4  # missing, wrong, expired or insufficient key
EXIT_NOT_FOUND = 5  # unknown project, command, key or webhook
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it
EXIT_REMOTE_FAILURE = 255  # `rdev run`: rdev itself failed, like ssh


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def exit_code_for(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    return EXIT_ERROR


def report(error: CliError, style: str = "red") -> None:
    from rich.console import Console

    Console(stderr=True).print(
        f"rdev: {error.message}", style=style, markup=False, highlight=False, soft_wrap=True
    )


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a CliError into its message on stderr and its exit code, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as error:
            report(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper
