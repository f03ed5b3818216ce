"""Address families: the one place that knows how IPv4 and IPv6 spell things.

A deployment serves its EIP over one family or both ("dual"). Everything that differs by
family (a host prefix, a URL's host, the API's words, BIRD's channel) is asked of `Family`
rather than branched on where it is used.
"""

from __future__ import annotations

import enum
import ipaddress

from ecmptui.errors import EcmpError


class Family(enum.IntEnum):
    """An address family, numbered as Metal's neighbor records number them (4, 6)."""

    IPV4 = 4
    IPV6 = 6

    @property
    def api(self) -> str:
        """The API's word for it in sessions and flags: ipv4, ipv6."""
        return f"ipv{self.value}"

    @property
    def host_bits(self) -> int:
        return 32 if self is Family.IPV4 else 128

    @property
    def reservation_type(self) -> str:
        """Metal's IP reservation type for a public address of this family."""
        return f"public_ipv{self.value}"

    @property
    def channel(self) -> str:
        """BIRD's channel name."""
        return self.api

    @property
    def short(self) -> str:
        """How screens and tables label it: v4, v6."""
        return f"v{self.value}"

    @classmethod
    def of(cls, address: str) -> Family:
        """The family of an address (raises ValueError when it is none)."""
        return cls(ipaddress.ip_address(address).version)

    @classmethod
    def parse(cls, text: str) -> Family:
        for f in cls:
            if text in (f.api, str(f.value), f.short):
                return f
        raise EcmpError(f"--family {text!r}: expected ipv4 or ipv6")


def host_prefix(address: str) -> str:
    """The address as a one-host prefix: 203.0.113.10/32, 2001:db8::1/128."""
    return f"{address}/{Family.of(address).host_bits}"


def url_host(address: str) -> str:
    """The address as a URL's host: IPv6 in brackets."""
    return f"[{address}]" if Family.of(address) is Family.IPV6 else address


def canonical(address: str) -> str:
    """One spelling for an address (the API may write IPv6 in full)."""
    return str(ipaddress.ip_address(address))


FAMILY_CHOICES = ("ipv4", "ipv6", "dual")


def parse_families(text: str) -> tuple[Family, ...]:
    """`ipv4`, `ipv6` or `dual` (both): the families, IPv4 first. Raises EcmpError."""
    value = text.strip().lower()
    if value == "dual":
        return (Family.IPV4, Family.IPV6)
    if value in ("ipv4", "ipv6"):
        return (Family.parse(value),)
    raise EcmpError(f"--family {text!r}: expected one of {', '.join(FAMILY_CHOICES)}")


def url_family(url: str) -> Family | None:
    """The family of a URL's host when it is an address literal; None for a name.
    Raises EcmpError on a malformed URL (an unclosed `[v6]`, a bracketed non-IPv6)."""
    import urllib.parse

    try:
        host = urllib.parse.urlsplit(url).hostname
    except ValueError as exc:
        raise EcmpError(f"{url!r}: not a valid URL ({exc})") from None
    if not host:
        raise EcmpError(f"{url!r}: not a valid URL (no host)")
    bracketed = "[" in url.split("//", 1)[-1].split("/", 1)[0]
    try:
        family = Family.of(host)
    except ValueError:
        if bracketed:
            raise EcmpError(f"{url!r}: [{host}] is not an IPv6 address") from None
        return None
    if bracketed != (family is Family.IPV6):
        raise EcmpError(f"{url!r}: an IPv6 address goes in brackets, an IPv4 one does not")
    return family
