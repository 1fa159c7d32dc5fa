"""Kubernetes resource quantities: "200m" CPU, "64Mi" memory."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "m": Decimal("0.001")}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")


def parse_quantity(q: str | int | float) -> Decimal:
    """A quantity as an exact decimal number of base units; ValueError names what is wrong."""
    if isinstance(q, (int, float)) and not isinstance(q, bool):
        return Decimal(str(q))
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', got {q!r}")
    try:
        return Decimal(m.group(1)) * Decimal(_SUFFIX[m.group(2) or ""])
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {q!r}") from exc


def cpu_millis(q: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as the kubelet does ("100m" → 100, "0.5" → 500)."""
    value = parse_quantity(q) * 1000
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def bytes_of(q: str | int | float) -> int:
    """Memory quantity in bytes ("64Mi" → 67108864), rounded up."""
    return int(parse_quantity(q).to_integral_value(rounding="ROUND_CEILING"))
