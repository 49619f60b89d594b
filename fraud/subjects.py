"""Canonical forms of the things rules count and match: IPs, e-mails, domains.

One function per subject so that counting, blocklist matching and the admin's
validation agree on what "the same IP" or "the same e-mail" means.
"""

from __future__ import annotations

import ipaddress

IPV6_GROUP_PREFIX = 64


def parse_ip(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address, with IPv4-mapped IPv6 (::ffff:a.b.c.d) folded to IPv4; None if invalid."""
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def ip_subject(raw: str) -> str:
    """What counts as "one IP": the address for IPv4, its /64 network for IPv6.

    A single IPv6 host usually owns a whole /64, so counting addresses would let it
    rotate through 2^64 of them. An unparseable value (the API validates, other
    callers may not) is counted as given, lower-cased; "" stays "".
    """
    address = parse_ip(raw)
    if address is None:
        return raw.strip().lower()
    if address.version == 6:
        return str(ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False))
    return str(address)


def canonical_ip(raw: str) -> str:
    """The single address in canonical text form (for exact blocklist entries)."""
    address = parse_ip(raw)
    return str(address) if address is not None else raw.strip().lower()


def email_address(raw: str) -> str:
    """A mailbox folded for counting: lower case, "+tag" dropped, dots ignored at Gmail.

    Stops one person multiplying "distinct" e-mails with tags or dots.
    """
    local, sep, domain = raw.strip().lower().rpartition("@")
    if not sep or not local or not domain:
        return raw.strip().lower()
    local = local.split("+", 1)[0]
    if domain in {"gmail.com", "googlemail.com"}:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def email_domain(raw: str) -> str:
    """The e-mail's domain in lower case without a trailing dot; "" if there is none."""
    _local, sep, domain = raw.strip().lower().rpartition("@")
    return domain.rstrip(".") if sep else ""


def domain_suffixes(domain: str) -> list[str]:
    """"a.b.example.com" -> ["a.b.example.com", "b.example.com", "example.com", "com"]:
    a blocked domain also blocks its subdomains."""
    parts = domain.split(".") if domain else []
    return [".".join(parts[i:]) for i in range(len(parts))]
