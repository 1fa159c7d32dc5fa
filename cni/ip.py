"""Tiny IP helpers on ints (the ``ipaddress`` module costs ~5 ms to import)."""
from __future__ import annotations

import _socket

AF = {4: _socket.AF_INET, 6: _socket.AF_INET6}
BITS = {4: 32, 6: 128}


def parse_ip(s: str) -> tuple[int, int]:
    """'10.0.0.1' -> (4, int). Raises ValueError."""
    s = s.strip()
    fam = 6 if ":" in s else 4
    try:
        raw = _socket.inet_pton(AF[fam], s)
    except (OSError, TypeError) as e:
        raise ValueError(f"invalid IP address {s!r}") from e
    return fam, int.from_bytes(raw, "big")


def parse_cidr(s: str) -> tuple[int, int, int]:
    """'10.0.0.5/24' -> (family, address int, prefix). Raises ValueError."""
    if not isinstance(s, str) or "/" not in s:
        raise ValueError(f"invalid CIDR {s!r}")
    a, p = s.split("/", 1)
    fam, v = parse_ip(a)
    if not p.isdigit() or not 0 <= int(p) <= BITS[fam]:
        raise ValueError(f"invalid prefix length in {s!r}")
    return fam, v, int(p)


def fmt_ip(fam: int, v: int) -> str:
    return _socket.inet_ntop(AF[fam], v.to_bytes(BITS[fam] // 8, "big"))


def to_bytes(fam: int, v: int) -> bytes:
    return v.to_bytes(BITS[fam] // 8, "big")


def mask(fam: int, prefix: int) -> int:
    bits = BITS[fam]
    return ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)


def network(fam: int, v: int, prefix: int) -> int:
    return v & mask(fam, prefix)


def last(fam: int, v: int, prefix: int) -> int:
    return network(fam, v, prefix) | ((1 << (BITS[fam] - prefix)) - 1)


def contains(fam: int, net: int, prefix: int, fam2: int, v: int) -> bool:
    return fam == fam2 and network(fam, v, prefix) == network(fam, net, prefix)
