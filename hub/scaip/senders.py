"""Who may speak to the SCAIP receiver: the per-source allow-list and the per-source rate limit (pure; time passed in).

SCAIP carries no credential of its own, and the units and alarm gateways that send it to a receiver are reached over
a private APN or VPN with fixed addresses (docs/security.md, SCAIP senders): a source address is the one thing every
sender has, so each listed address or network speaks for the inventory devices named for it, and nothing else.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence

from hub.model import Site

ANY_DEVICE = "*"
MAX_SOURCES = 10_000


class Senders:
    """The allow-list: which source may send for which of the site's SCAIP devices (vendor `scaip`)."""

    def __init__(self, senders: Mapping[str, Sequence[str]], site: str) -> None:
        self._site = site
        self._rules = [(ipaddress.ip_network(net, strict=False), frozenset(ids)) for net, ids in senders.items()]
        self._devices: frozenset[str] = frozenset()

    def set_sites(self, sites: Iterable[Site]) -> None:
        """The inventory's SCAIP devices of the receiving site (re-read with every inventory refresh)."""
        self._devices = frozenset(
            d.id for site in sites if site.id == self._site for d in site.devices if d.vendor == "scaip"
        )

    def known(self, peer: str) -> bool:
        """True when the source address is on the list at all."""
        address = _address(peer)
        return address is not None and any(address in net for net, _ in self._rules)

    def may_send_for(self, peer: str, device_id: str) -> bool:
        """True when the device is one of the site's SCAIP devices and this source is listed for it."""
        address = _address(peer)
        if address is None or device_id not in self._devices:
            return False
        return any(address in net and (ANY_DEVICE in ids or device_id in ids) for net, ids in self._rules)


def _address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class SourceRate:
    """A token bucket per source address: `burst` at once, `rate_s` a second on average."""

    def __init__(self, rate_s: float, burst: int) -> None:
        self._rate_s = rate_s
        self._burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, peer: str, now: float) -> bool:
        """Spend one message of this source's allowance; False when it has none left."""
        tokens, last = self._buckets.pop(peer, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate_s)
        allowed = tokens >= 1.0
        self._buckets[peer] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > MAX_SOURCES:
            self._buckets.popitem(last=False)
        return allowed
