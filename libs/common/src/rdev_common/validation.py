"""Input validation shared by every entry point. Each error names its field."""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re

from rdev_common.errors import ValidationFailed
from rdev_common.ids import is_slug

MAX_COMMAND_BYTES = 64 * 1024
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_ENV = frozenset({"PATH", "HOME", "SHELL", "PWD", "TRACEPARENT"})


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


def absolute_dir(value: str, field: str = "workdir") -> str:
    if not os.path.isabs(value):
        raise ValidationFailed(f"{field} must be an absolute path", field=field)
    if not os.path.isdir(value):
        raise ValidationFailed(f"{field} {value!r} is not an existing directory", field=field)
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
    if not 0 < value <= maximum:
        raise ValidationFailed(
            f"{field} must be greater than 0 and at most {maximum:g}", field=field
        )
    return value
