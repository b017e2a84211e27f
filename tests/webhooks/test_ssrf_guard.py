"""The SSRF guard: metadata and link-local stay refused whatever the setting, IPv4 in IPv6 too."""

from __future__ import annotations

import ipaddress

import pytest

from rdev_common.errors import ValidationFailed
from rdev_common.webhook_rules import check_destination, refused_address
from rdev_webhooks.adapters.httpx_sender import HttpxWebhookSender
from rdev_webhooks.domain import signing
from rdev_webhooks.domain.model import Delivery, Endpoint

# Refused even with RDEV_WEBHOOKS_ALLOW_PRIVATE_TARGETS=true.
ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data",  # AWS, GCP, Azure, OpenStack metadata
    "http://169.254.170.2/v2/credentials",  # ECS task credentials
    "http://169.254.1.1/",  # the rest of the link-local range
    "http://100.100.100.200/latest/meta-data",  # Alibaba metadata
    "http://168.63.129.16/",  # Azure wire server
    "http://[fd00:ec2::254]/latest/meta-data",  # AWS metadata over IPv6
    "http://[fe80::1]/",  # IPv6 link-local
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::a9fe:a9fe]/",  # local-use NAT64 of it
    "http://[2002:a9fe:a9fe::]/",  # 6to4 of it
    "http://[::a9fe:a9fe]/",  # IPv4-compatible form of it
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
]

# Refused by default, allowed for development receivers.
PRIVATE_FORMS = [
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a00:7]/hook",  # NAT64 of 10.0.0.7
    "http://[2002:c0a8:10a::]/hook",  # 6to4 of 192.168.1.10
    "http://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
async def test_metadata_and_link_local_are_refused_even_when_private_targets_are_allowed(
    url: str,
) -> None:
    for allow_private in (False, True):
        with pytest.raises(ValidationFailed) as info:
            await check_destination(url, allow_private=allow_private)
        assert info.value.details["field"] == "url"


@pytest.mark.parametrize("url", PRIVATE_FORMS)
async def test_nat64_and_6to4_forms_of_a_private_address_are_private(url: str) -> None:
    with pytest.raises(ValidationFailed, match="loopback, private"):
        await check_destination(url, allow_private=False)
    await check_destination(url, allow_private=True)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"]
)
def test_public_addresses_and_their_ipv6_forms_pass(address: str) -> None:
    assert not refused_address(ipaddress.ip_address(address))
    assert not refused_address(ipaddress.ip_address(address), allow_private=True)


async def test_the_sender_never_dials_metadata_even_when_private_targets_are_allowed() -> None:
    """The connect-time check holds with the flag on: nothing is dialled."""
    sender = HttpxWebhookSender(timeout_s=5, allow_private=True)
    delivery = Delivery("msg_1", "w1", "e1", "t", "{}", 0)
    try:
        for url in ("http://169.254.169.254/latest/meta-data", "http://[64:ff9b::a9fe:a9fe]/x"):
            endpoint = Endpoint("w1", "p", url, ["*"], [signing.generate_secret()], True)
            result = await sender.send(endpoint, delivery, 1)
            assert result.status_code is None
            assert "destination refused" in (result.error or ""), result.error
    finally:
        await sender.aclose()
