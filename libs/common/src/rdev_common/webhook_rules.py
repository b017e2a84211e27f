"""Rules the api and the webhooks service must agree on: event patterns, URLs, SSRF.

Event patterns name rdev event kinds (`command.completed`), with `*` as a
wildcard (`command.*`, `*`). A full CloudEvents type
(`dev.rdev.command.completed.v1`) is accepted too.

The SSRF guard refuses destinations that are not public unicast addresses
(loopback, private, link-local, carrier-grade NAT, multicast, reserved, cloud
metadata). Allowing private targets lifts that for loopback and private
development receivers only: link-local (which holds the cloud metadata
services), metadata, multicast and unspecified addresses stay refused whatever
the setting. An IPv6 address that carries an IPv4 one (mapped, compatible,
NAT64, 6to4, Teredo) is refused when the IPv4 address is. The api checks at
registration; the webhooks service checks again at connect time, because DNS
can answer differently later (rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from rdev_common.errors import ValidationFailed
from rdev_common.events import TYPE_PREFIX

PATTERN_RE = re.compile(r"^[a-z*][a-z0-9_.*]{0,99}$")
MAX_PATTERNS = 50
MAX_URL = 2048
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "168.63.129.16",
        "fd00:ec2::254",
    )
)

# Prefixes whose last 32 bits are an IPv4 address: NAT64 (RFC 6052, RFC 8215) and
# the deprecated IPv4-compatible form.
EMBEDDING_PREFIXES = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")
)
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def event_kind(event_type: str) -> str:
    """`dev.rdev.command.completed.v1` → `command.completed`."""
    kind = event_type.removeprefix(TYPE_PREFIX)
    head, _, version = kind.rpartition(".")
    return head if head and re.fullmatch(r"v\d+", version) else kind


def matches(patterns: list[str], event_type: str) -> bool:
    kind = event_kind(event_type)
    return any(fnmatchcase(kind, p) or fnmatchcase(event_type, p) for p in patterns)


def event_patterns(values: list[str], field: str = "events") -> list[str]:
    if not values:
        raise ValidationFailed(f"{field} must name at least one event type", field=field)
    if len(values) > MAX_PATTERNS:
        raise ValidationFailed(f"{field} may hold at most {MAX_PATTERNS} patterns", field=field)
    for value in values:
        if not PATTERN_RE.match(value):
            raise ValidationFailed(
                f"{field}: {value!r} is not an event type pattern such as 'command.*'",
                field=field,
            )
    return sorted(set(values))


def webhook_url(value: str, field: str = "url") -> str:
    """An absolute http(s) URL without credentials."""
    if len(value) > MAX_URL:
        raise ValidationFailed(f"{field} is longer than {MAX_URL} characters", field=field)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ValidationFailed(f"{field} is not a valid URL: {exc}", field=field) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(f"{field} must be an absolute http or https URL", field=field)
    if parts.username or parts.password:
        raise ValidationFailed(f"{field} must not contain credentials", field=field)
    return value


def embedded_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64, 6to4, Teredo, compatible)."""
    if isinstance(address, ipaddress.IPv4Address):
        return []
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    if any(address in prefix for prefix in EMBEDDING_PREFIXES) and int(address) > 1:
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    return []


def _never_allowed(address: IpAddress) -> bool:
    return (
        address in METADATA_ADDRESSES
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address in THIS_NETWORK
    )


def refused_address(address: IpAddress, allow_private: bool = False) -> bool:
    """True for every destination that is not a public unicast address.

    With `allow_private`, loopback and private addresses pass; metadata,
    link-local, multicast and unspecified ones never do.
    """
    for candidate in (address, *embedded_ipv4(address)):
        if _never_allowed(candidate) or not (allow_private or candidate.is_global):
            return True
    return False


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def check_destination(url: str, allow_private: bool, field: str = "url") -> None:
    """Refuse a URL whose host resolves to a refused address (or does not resolve)."""
    parts = urlsplit(webhook_url(url, field))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise ValidationFailed(f"{field}: host {host!r} does not resolve", field=field) from exc
    refused = [str(a) for a in addresses if refused_address(a, allow_private)]
    if refused or not addresses:
        what = (
            "a link-local, metadata, multicast or unspecified address"
            if allow_private
            else "a loopback, private, link-local or metadata address"
        )
        raise ValidationFailed(
            f"{field} points at {what}",
            field=field,
            addresses=refused,
        )
