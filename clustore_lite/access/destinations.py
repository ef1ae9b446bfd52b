"""Where webhooks may point: the destination policy the store admin sets (a blind SSRF
guard). Whoever may set a webhook (an access's admin, a member on her own membership)
could otherwise make the server POST to addresses only the server reaches: loopback
services, the LAN, a cloud's metadata endpoint.

Public (globally routable) addresses are allowed; every other address (loopback,
private, link-local, shared, multicast, reserved) is refused unless the admin allows
its network or its host name (`--webhook-allow 10.0.0.0/8,hooks.example`).

Applied twice: when a caller other than the store admin writes a webhook (`check_written`,
a clear error, without DNS: a write holds the store's write lock), and when a webhook is
called (`addresses`, at connection time: the host is resolved once, every address is
checked, and the connection goes to a checked address, so a name that resolves to a
public address first and to an internal one next (DNS rebinding) gains nothing)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from ..errors import InvalidValue, PermissionDenied

ENV = "CLUSTORE_WEBHOOK_ALLOW"
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.ip_network("64:ff9b::/96")
KINDS = ("loopback", "unspecified", "link-local", "multicast", "private", "reserved")
HOW = ("webhooks may call public addresses, and the networks and hosts the store admin "
       f"allows (clustore-lite serve/deliver --webhook-allow, or {ENV})")


class DestinationRefused(PermissionDenied):
    """A webhook points where the destination policy does not allow."""


def parse_address(host: str) -> Address | None:
    """The address a host written as an IP literal stands for, None for a name. Also
    the legacy IPv4 forms the resolver accepts without DNS (127.1, 0x7f000001, ...)."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded(address: Address) -> list[Address]:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), then the address."""
    found = [address]
    if isinstance(address, ipaddress.IPv6Address):
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address in NAT64:
            inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if inner is not None:
            found.insert(0, inner)
    return found


def _kind(address: Address) -> str | None:
    """What makes an address non-public, or None for a public one."""
    for inner in _embedded(address):
        for kind in KINDS:
            if getattr(inner, f"is_{kind.replace('-', '_')}"):
                return kind
        if not inner.is_global:
            return "non-public"
    return None


@dataclass(frozen=True)
class WebhookPolicy:
    """Networks and host names allowed besides public addresses. A host entry
    `*.example.org` allows the names under example.org."""

    networks: tuple[Network, ...] = ()
    hosts: tuple[str, ...] = ()

    @classmethod
    def parse(cls, allow: "str | Iterable[str] | WebhookPolicy | None") -> "WebhookPolicy":
        """From `--webhook-allow` text ("10.0.0.0/8,hooks.example"), a list of entries,
        a policy, or None (public addresses only)."""
        if isinstance(allow, WebhookPolicy):
            return allow
        if allow is None:
            return cls()
        entries = allow.split(",") if isinstance(allow, str) else list(allow)
        networks, hosts = [], []
        for entry in (str(e).strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            label = name[2:] if name.startswith("*.") else name
            if not label or not all(part and all(c.isalnum() or c == "-" for c in part)
                                    for part in label.split(".")):
                raise InvalidValue(f"webhook allow list: {entry!r} is neither a network "
                                   "(10.0.0.0/8), an address (127.0.0.1) nor a host name "
                                   "(hooks.example, *.example.org)")
            hosts.append(name)
        return cls(tuple(networks), tuple(hosts))

    def __str__(self) -> str:
        allowed = [str(n) for n in self.networks] + list(self.hosts)
        return "public addresses" + (f" and {', '.join(allowed)}" if allowed else " only")

    def host_allowed(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return any(name == h or (h.startswith("*.") and name.endswith(h[1:])) for h in self.hosts)

    def refusal(self, address: Address) -> str | None:
        """What makes `address` refused ("a loopback address"), or None when allowed."""
        if any(a in network for a in _embedded(address) for network in self.networks):
            return None
        kind = _kind(address)
        return None if kind is None else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} address"

    def check_written(self, url: str) -> None:
        """Refuse a webhook being written whose host is, without asking DNS, an address
        the policy refuses (an IP literal, localhost). Other names are checked when
        called."""
        host = urlsplit(url).hostname or ""
        if self.host_allowed(host):
            return
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            candidates = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        else:
            address = parse_address(host)
            candidates = [] if address is None else [address]
        for address in candidates:
            reason = self.refusal(address)
            if reason:
                raise DestinationRefused(f"webhook {url!r} is refused: {address} is {reason}; {HOW}")

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve `host` once and answer its addresses to connect to; raise
        DestinationRefused if any of them is refused (an allowed host name is
        trusted whatever it resolves to)."""
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(info[4][0] for info in infos))
        if not self.host_allowed(host):
            for text in found:
                reason = self.refusal(ipaddress.ip_address(text.split("%")[0]))
                if reason:
                    raise DestinationRefused(f"webhook host {host} refused: it resolves to "
                                             f"{text}, {reason}; {HOW}")
        return found
