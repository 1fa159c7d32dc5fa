"""Kubernetes resource quantities ("200m" CPU, "64Mi" memory), exact and rounded up as resource.Quantity does."""
from __future__ import annotations

import math
import re
from fractions import Fraction

_SUFFIX = {
    "": Fraction(1),
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
    "T": Fraction(10**12), "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30),
    "Ti": Fraction(2**40), "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([eE][+-]?\d+)|([a-zA-Z]*))$")


def parse_quantity(q: str | int | float) -> Fraction:
    """Exact value of a Kubernetes quantity ("200m", "1.5Gi", "1e3", 2, 0.5)."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}")
    if isinstance(q, int):
        return Fraction(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise ValueError(f"invalid quantity {q!r}")
        return Fraction(str(q))
    m = _QUANTITY.match(str(q).strip())
    if not m:
        raise ValueError(f"invalid quantity {q!r}")
    sign, num, exp, suffix = m.groups()
    value = Fraction(num)
    if exp is not None:
        value *= Fraction(10) ** int(exp[1:])
    elif suffix in _SUFFIX:
        value *= _SUFFIX[suffix]
    else:
        raise ValueError(f"invalid quantity suffix in {q!r}")
    return -value if sign == "-" else value


def cpu_millis(q: str | int | float) -> int:
    """CPU quantity -> millicores, rounded up like Quantity.MilliValue ("0.1m" -> 1)."""
    return math.ceil(parse_quantity(q) * 1000)


def bytes_of(q: str | int | float) -> int:
    """Memory quantity -> bytes, rounded up like Quantity.Value ("1.5" -> 2)."""
    return math.ceil(parse_quantity(q))
