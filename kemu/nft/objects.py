"""The nftables objects of one table as typed data (knftables' objects.go in Python).

Objects carry no family or table: a ``Transaction`` is bound to one ``family table``.
Rules, keys and values are nft syntax strings; a concatenated key is ``"a . b"``
(``concat("a", "b")``). Each object renders the body nft puts between braces
(``spec``); the transaction writes the command around it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


def concat(*parts: object) -> str:
    """A concatenated set key or value: ``concat("10.0.0.1", "tcp", 80) == "10.0.0.1 . tcp . 80"``."""
    return " . ".join(str(p) for p in parts)


def _comment(text: str | None) -> str:
    if text is None:
        return ""
    if '"' in text or "\n" in text:
        raise ValueError(f"nft comments cannot hold quotes or newlines: {text!r}")
    return f'comment "{text}"'


@dataclass(frozen=True)
class Table:
    """The transaction's table (``add table``, ``delete table``, ``flush table``)."""

    comment: str | None = None
    kind: ClassVar[str] = "table"

    @property
    def spec(self) -> str:
        return f"{_comment(self.comment)} ;" if self.comment else ""


@dataclass(frozen=True)
class Chain:
    """A chain; a base chain has type, hook and priority (an int or e.g. ``"srcnat - 1"``)."""

    name: str
    type: str | None = None          # filter, nat, route
    hook: str | None = None          # prerouting, input, forward, output, postrouting, ingress
    priority: int | str | None = None
    policy: str | None = None        # accept, drop (base chains)
    device: str | None = None        # ingress/egress hooks (netdev, inet)
    comment: str | None = None
    kind: ClassVar[str] = "chain"

    def __post_init__(self) -> None:
        if (self.type is None) != (self.hook is None) or (self.hook is None) != (self.priority is None):
            raise ValueError(f"chain {self.name}: a base chain needs type, hook and priority together")

    @property
    def is_base(self) -> bool:
        return self.hook is not None

    @property
    def spec(self) -> str:
        parts = []
        if self.hook is not None:
            dev = f" device {self.device}" if self.device else ""
            parts.append(f"type {self.type} hook {self.hook}{dev} priority {self.priority} ;")
        if self.policy:
            parts.append(f"policy {self.policy} ;")
        if self.comment:
            parts.append(f"{_comment(self.comment)} ;")
        return " ".join(parts)


@dataclass(frozen=True)
class Rule:
    """A rule of ``chain`` (nft syntax). ``handle`` positions an insert/add, and names the rule to replace/delete."""

    chain: str
    rule: str = ""
    comment: str | None = None
    handle: int | None = None
    kind: ClassVar[str] = "rule"

    @property
    def text(self) -> str:
        """The rule as nft stores it (statements, then the comment)."""
        return f"{self.rule} {_comment(self.comment)}" if self.comment else self.rule


@dataclass(frozen=True)
class Set:
    """A named set: ``type`` (e.g. ``"ipv4_addr . inet_service"``) or ``typeof`` (e.g. ``"ip daddr"``)."""

    name: str
    type: str | None = None
    typeof: str | None = None
    flags: tuple[str, ...] = ()      # constant, interval, timeout, dynamic
    timeout: int | None = None       # seconds, default for elements
    size: int | None = None
    policy: str | None = None        # performance, memory
    auto_merge: bool = False
    comment: str | None = None
    kind: ClassVar[str] = "set"
    is_map: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if (self.type is None) == (self.typeof is None):
            raise ValueError(f"{self.kind} {self.name}: give exactly one of type and typeof")
        if self.is_map and ":" not in (self.type or self.typeof or ""):
            raise ValueError(f"map {self.name}: the type needs 'key : value'")

    @property
    def dynamic(self) -> bool:
        """Filled by the packet path (``update @set``), not by transactions."""
        return "dynamic" in self.flags

    @property
    def spec(self) -> str:
        parts = [f"type {self.type} ;" if self.type is not None else f"typeof {self.typeof} ;"]
        if self.flags:
            parts.append(f"flags {','.join(self.flags)} ;")
        if self.timeout is not None:
            parts.append(f"timeout {self.timeout}s ;")
        if self.size is not None:
            parts.append(f"size {self.size} ;")
        if self.policy:
            parts.append(f"policy {self.policy} ;")
        if self.auto_merge:
            parts.append("auto-merge ;")
        if self.comment:
            parts.append(f"{_comment(self.comment)} ;")
        return " ".join(parts)


@dataclass(frozen=True)
class Map(Set):
    """A named map: ``type "ipv4_addr . inet_service : verdict"`` or ``typeof "ip daddr : ip daddr . tcp dport"``."""

    kind: ClassVar[str] = "map"
    is_map: ClassVar[bool] = True


@dataclass(frozen=True)
class Element:
    """One element of set/map ``set``: ``key`` and, for a map, ``value`` (e.g. ``"goto svc-1"``)."""

    set: str
    key: str
    value: str | None = None
    timeout: int | None = None
    comment: str | None = None
    kind: ClassVar[str] = "element"

    def text(self, with_value: bool = True) -> str:
        """The element inside ``{ }``: key, options, then ``: value``."""
        out = self.key
        if self.timeout is not None:
            out += f" timeout {self.timeout}s"
        if self.comment:
            out += f" {_comment(self.comment)}"
        if with_value and self.value is not None:
            out += f" : {self.value}"
        return out


@dataclass(frozen=True)
class Elements:
    """Many elements of one set/map, ``(key, value|None)`` pairs: no object per element (bulk loads)."""

    set: str
    items: Sequence[tuple[str, str | None]]
    kind: ClassVar[str] = "element"

    def texts(self, with_value: bool = True) -> list[str]:
        if not with_value:
            return [k for k, _v in self.items]
        return [k if v is None else f"{k} : {v}" for k, v in self.items]


Object = Table | Chain | Rule | Set | Map | Element | Elements
