"""Which endpoint URLs the service may call: https, and only public addresses.

An endpoint URL is checked when it is created and again before every delivery,
after resolving its host: a name that resolved to a public address at creation can
later resolve to 127.0.0.1 or a cloud metadata address (DNS rebinding). The
delivery then connects to the address that was checked, not to a second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeEndpointURL(ValueError):
    """The URL is not https, has no host, or its host resolves to a non-public address."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (a seam the tests replace)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> Target:
    """Parse, resolve and vet an endpoint URL. Raises UnsafeEndpointURL."""
    parts = urlsplit(url)
    allowed = {"https"} if settings.WEBHOOK_REQUIRE_HTTPS else {"https", "http"}
    if parts.scheme not in allowed:
        raise UnsafeEndpointURL("The endpoint URL must use https.")
    if not parts.hostname:
        raise UnsafeEndpointURL("The endpoint URL has no host.")
    if parts.username or parts.password:
        raise UnsafeEndpointURL("The endpoint URL may not hold a user name or password.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeEndpointURL("The endpoint URL has an invalid port.") from None
    try:
        addresses = resolve(parts.hostname, port)
    except (OSError, UnicodeError):
        raise UnsafeEndpointURL(f"The host {parts.hostname!r} does not resolve.") from None
    if not addresses:
        raise UnsafeEndpointURL(f"The host {parts.hostname!r} does not resolve.")
    if not settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
        private = [a for a in addresses if not is_public(a)]
        if private:
            raise UnsafeEndpointURL(
                f"The host {parts.hostname!r} resolves to a private, loopback or link-local address."
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, path=path, addresses=tuple(addresses))
