"""Input validation shared by every entry point. Each error names its field."""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re

from rdev_common.errors import ValidationFailed
from rdev_common.ids import is_slug
from rdev_common.patterns import PatternError, compile_pattern

MAX_COMMAND_BYTES = 64 * 1024
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MIN_TIMEOUT_S = 1.0
# Variables that decide which program runs, how the shell reads its input, or what the
# dynamic loader loads: a command's `env` (and a project's env and secrets) may not set
# them, unless the project's `command_policy.allow_env` names them (docs/security.md).
RESERVED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "SHELL",
        "IFS",
        "ENV",
        "BASH_ENV",
        "CDPATH",
        "PS4",
        "SHELLOPTS",
        "BASHOPTS",
        "GLOBIGNORE",
        "PWD",
        "OLDPWD",
        "TRACEPARENT",
    }
)
RESERVED_ENV_PREFIXES = ("LD_", "DYLD_", "BASH_FUNC_", "RDEV_")
MAX_ALLOWED_ENV = 50


def project_id(value: str, field: str = "id") -> str:
    if not is_slug(value):
        raise ValidationFailed(
            f"{field} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            field=field,
        )
    return value


def command_text(value: str, field: str = "command") -> str:
    if not value.strip():
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if "\x00" in value:
        raise ValidationFailed(f"{field} must not contain NUL bytes", field=field)
    if len(value.encode()) > MAX_COMMAND_BYTES:
        raise ValidationFailed(f"{field} is longer than {MAX_COMMAND_BYTES} bytes", field=field)
    return value


def env_vars(values: dict[str, str], field: str = "env") -> dict[str, str]:
    for name, value in values.items():
        if not ENV_NAME_RE.match(name):
            raise ValidationFailed(
                f"{field}.{name} is not a valid variable name", field=f"{field}.{name}"
            )
        if "\x00" in value:
            raise ValidationFailed(
                f"{field}.{name} must not contain NUL bytes", field=f"{field}.{name}"
            )
    return values


def reserved_env(name: str) -> bool:
    return name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES)


def env_policy(
    values: dict[str, str | None] | dict[str, str], allowed: list[str], field: str = "env"
) -> None:
    """Refuse a reserved variable (`PATH`, `LD_PRELOAD`, …) that `allowed` does not name."""
    for name in values:
        if reserved_env(name) and name not in allowed:
            raise ValidationFailed(
                f"{field}.{name} is reserved: a command may not set it unless the project's "
                "command_policy.allow_env names it",
                field=f"{field}.{name}",
            )


def allowed_env(values: list[str], field: str = "command_policy.allow_env") -> list[str]:
    """Reserved variable names a project lets its commands set."""
    if len(values) > MAX_ALLOWED_ENV:
        raise ValidationFailed(f"{field} has more than {MAX_ALLOWED_ENV} names", field=field)
    for i, name in enumerate(values):
        if not isinstance(name, str) or not ENV_NAME_RE.match(name):
            raise ValidationFailed(f"{field}[{i}] is not a variable name", field=f"{field}[{i}]")
    return sorted(set(values))


def absolute_dir(value: str, field: str = "workdir") -> str:
    """An absolute path, normalised. Whether the directory exists is the executors' to
    say: they own the workspaces, and the api may run on another host or in another
    container (docker-compose mounts the workspaces volume on the executor only). A run
    in a workdir its executor does not have fails with reason `error` and says so."""
    if "\x00" in value:
        raise ValidationFailed(f"{field} must not contain NUL bytes", field=field)
    if not os.path.isabs(value):
        raise ValidationFailed(f"{field} must be an absolute path", field=field)
    return os.path.normpath(value)


def relative_cwd(value: str, field: str = "cwd") -> str:
    """A directory below the workdir: relative, and no '..' that climbs out of it."""
    if "\x00" in value:
        raise ValidationFailed(f"{field} must not contain NUL bytes", field=field)
    normal = posixpath.normpath(value)
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise ValidationFailed(f"{field} must stay inside the project's workdir", field=field)
    return normal


def cidr(value: str, field: str = "allowed_ips") -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise ValidationFailed(
            f"{field}: {value!r} is not an IP address or CIDR", field=field
        ) from exc


def timeout(value: float | None, maximum: float, field: str = "timeout_s") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not MIN_TIMEOUT_S <= value <= maximum:
        raise ValidationFailed(
            f"{field} must be a number of seconds from {MIN_TIMEOUT_S:g} to {maximum:g}",
            field=field,
        )
    return value


MAX_NAME_CHARS = 200
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 1000
MAX_ENV_VALUE_BYTES = 32 * 1024
MAX_ENV_VARS = 200
REGEX_PREFIX = "re:"


def text(value: str, field: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A short, printable, non-empty line (names, descriptions)."""
    if not value.strip():
        raise ValidationFailed(f"{field} must not be empty", field=field)
    if len(value) > max_chars:
        raise ValidationFailed(f"{field} is longer than {max_chars} characters", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationFailed(f"{field} must not contain control characters", field=field)
    return value.strip()


def ident(value: str, field: str) -> str:
    """An id rdev issued (UUID) or a slug: safe in a URL path and a NATS subject."""
    if not is_slug(value.lower()):
        raise ValidationFailed(f"{field} {value[:80]!r} is not a valid id", field=field)
    return value


def env_map(values: dict[str, str], field: str = "env") -> dict[str, str]:
    """Variable names and values for a project or a command: names like a shell's, no NUL."""
    if len(values) > MAX_ENV_VARS:
        raise ValidationFailed(f"{field} has more than {MAX_ENV_VARS} variables", field=field)
    for name, value in env_vars(values, field).items():
        if len(value.encode()) > MAX_ENV_VALUE_BYTES:
            raise ValidationFailed(
                f"{field}.{name} is longer than {MAX_ENV_VALUE_BYTES} bytes",
                field=f"{field}.{name}",
            )
    return values


def cidrs(values: list[str], field: str = "allowed_ips") -> list[str]:
    """Addresses or networks, normalised (`10.0.0.1` → `10.0.0.1/32`)."""
    return [cidr(v, f"{field}[{i}]") for i, v in enumerate(values)]


def url(value: str, field: str = "url", schemes: tuple[str, ...] = ("https", "http")) -> str:
    """An absolute URL with one of `schemes` and a host, no credentials, no whitespace."""
    from urllib.parse import urlsplit

    if len(value) > 2048 or any(c.isspace() for c in value):
        raise ValidationFailed(f"{field} is not a valid URL", field=field)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationFailed(f"{field} is not a valid URL", field=field) from exc
    if parts.scheme not in schemes or not parts.hostname:
        raise ValidationFailed(
            f"{field} must be an absolute {' or '.join(schemes)} URL", field=field
        )
    if parts.username or parts.password:
        raise ValidationFailed(f"{field} must not contain credentials", field=field)
    return value


def int_range(value: int | None, field: str, low: int, high: int) -> int | None:
    if value is not None and not low <= value <= high:
        raise ValidationFailed(f"{field} must be between {low} and {high}", field=field)
    return value


def patterns(values: list[str], field: str) -> list[str]:
    """Command-policy patterns: globs, or `re:` followed by a valid regular expression."""
    if len(values) > MAX_PATTERNS:
        raise ValidationFailed(f"{field} has more than {MAX_PATTERNS} patterns", field=field)
    for i, pattern in enumerate(values):
        where = f"{field}[{i}]"
        if not pattern or len(pattern) > MAX_PATTERN_CHARS or "\x00" in pattern:
            raise ValidationFailed(f"{where} must be 1-{MAX_PATTERN_CHARS} characters", field=where)
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            kind = "regular expression" if pattern.startswith(REGEX_PREFIX) else "glob"
            raise ValidationFailed(
                f"{where} is not a valid {kind} (RE2 syntax, no backreferences or "
                f"look-around): {exc}",
                field=where,
            ) from exc
    return values


def resolved_cwd(workdir: str, value: str, field: str = "cwd") -> str:
    """The real directory `value` names below `workdir`, after every symlink.

    Checked where the command starts (the executor's host), since only there do the
    symlinks exist: a `cwd` that is, or passes through, a link leading out of the
    workdir is refused, and the command runs in the resolved path, so a link changed
    after the check cannot move it.
    """
    relative = relative_cwd(value, field)
    root = os.path.realpath(workdir)
    target = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, target]) != root:
        raise ValidationFailed(
            f"{field} {value!r} leads outside the project's workdir", field=field
        )
    if not os.path.isdir(target):
        raise ValidationFailed(f"{field} {value!r} does not exist in the workspace", field=field)
    return target
