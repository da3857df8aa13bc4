"""Web Push endpoints limited to the push services, so a subscription cannot make the hub call anything else.

A browser's subscription names the URL the hub will POST to. Left open, that is a server-side request forgery:
any staff member could point the hub at an internal address. So an endpoint must be https on port 443, on a host of
`notify.push_allowed_hosts` (the big push services by default; `*.example` matches subdomains) and must resolve
only to public addresses. The check runs at subscribe and again at send, and the send's own connection resolves
through `GuardedResolver`, which drops private, loopback, link-local and other non-public addresses, so a name
that answers differently the second time (DNS rebinding) still reaches no internal host.

`notify.push_allowed_networks` lets a deployment (or a test's local push service) permit specific non-public
networks, and `notify.push_allow_http` plain http on any port (tests only); both are off by default.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hub.model import VakaError

if TYPE_CHECKING:
    from hub.settings import NotifySettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PushEndpointError(VakaError):
    """A push endpoint the hub will not call; the message says why."""


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    """True when `host` is one of `patterns` (`*.example.org` matches any subdomain, not example.org itself)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def address_allowed(address: Address, allowed_networks: Sequence[Network]) -> bool:
    """True for a public unicast address, or one inside a network the settings explicitly allow."""
    if any(address in net for net in allowed_networks):
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_allowed(address.ipv4_mapped, allowed_networks)
    return address.is_global and not address.is_multicast


def check_endpoint(url: str, settings: NotifySettings) -> tuple[str, int]:
    """The endpoint's host and port when its form is acceptable; PushEndpointError says what is not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        msg = "push endpoint is not a valid URL"
        raise PushEndpointError(msg) from exc
    schemes = ("https", "http") if settings.push_allow_http else ("https",)
    if parts.scheme not in schemes:
        msg = "push endpoint must be https"
        raise PushEndpointError(msg)
    host = parts.hostname
    if not host or parts.username is not None or parts.password is not None:
        msg = "push endpoint must name a host and carry no user name or password"
        raise PushEndpointError(msg)
    if not host_allowed(host, settings.push_allowed_hosts):
        msg = f"push endpoint host {host[:100]!r} is not a known push service (notify.push_allowed_hosts)"
        raise PushEndpointError(msg)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(literal, settings.push_allowed_networks):
        msg = "push endpoint is a private, loopback or link-local address"
        raise PushEndpointError(msg)
    if not settings.push_allow_http and port not in (None, 443):
        # the push services all listen on 443; another port on their host is not a push endpoint
        msg = "push endpoint must use port 443"
        raise PushEndpointError(msg)
    return host, port or (443 if parts.scheme == "https" else 80)


async def check_resolves_public(host: str, port: int, settings: NotifySettings) -> None:
    """PushEndpointError when `host` does not resolve, or resolves to any address the hub must not call."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        msg = f"push endpoint host {host[:100]!r} does not resolve"
        raise PushEndpointError(msg) from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address_allowed(address, settings.push_allowed_networks):
            msg = "push endpoint resolves to a private, loopback or link-local address"
            raise PushEndpointError(msg)


async def check_subscription_endpoint(url: str, settings: NotifySettings) -> None:
    """The whole check at subscribe time: form, host allow-list, and every address the name resolves to."""
    host, port = check_endpoint(url, settings)
    await check_resolves_public(host, port, settings)


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp, then keeps only addresses the hub may call; none left is a connection error."""

    def __init__(self, allowed_networks: Sequence[Network]) -> None:
        self._inner = DefaultResolver()
        self._allowed = list(allowed_networks)

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Addresses of `host` that are public (or explicitly allowed)."""
        results = await self._inner.resolve(host, port, family)
        kept = [r for r in results if address_allowed(ipaddress.ip_address(r["host"].split("%")[0]), self._allowed)]
        if not kept:
            msg = f"push endpoint host {host[:100]!r} resolves to no public address"
            raise OSError(msg)
        return kept

    async def close(self) -> None:
        """Release the inner resolver."""
        await self._inner.close()


def guarded_session(settings: NotifySettings, **kwargs: Any) -> aiohttp.ClientSession:
    """A client session whose connections reach only allowed addresses (no DNS cache: each connect re-checks)."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(settings.push_allowed_networks), use_dns_cache=False)
    return aiohttp.ClientSession(connector=connector, **kwargs)
