"""A transaction: operations on one ``family table``, rendered to one nft script (one kernel batch)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from .objects import Chain, Elements, Map, Object, Rule, Set, Table

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")

# which verbs each kind of object takes
VERBS = {
    "table": ("add", "create", "flush", "delete"),
    "chain": ("add", "create", "flush", "delete"),
    "rule": ("add", "insert", "replace", "delete"),
    "set": ("add", "create", "flush", "delete"),
    "map": ("add", "create", "flush", "delete"),
    "element": ("add", "create", "delete"),
}


class NftError(RuntimeError):
    """A transaction was rejected; nothing of it was applied."""


class Op(NamedTuple):
    """One operation: a verb (add, create, insert, replace, flush, delete) on an object."""

    verb: str
    obj: Object

    @property
    def kind(self) -> str:
        return self.obj.kind

    def size(self) -> int:
        """1, or the number of elements of a bulk element op."""
        return len(self.obj.items) if isinstance(self.obj, Elements) else 1


@dataclass
class Transaction:
    """Operations on one table, applied atomically (all or nothing)."""

    family: str
    table: str
    ops: list[Op] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown nftables family {self.family!r}")

    # -- building
    def _op(self, verb: str, obj: Object) -> Transaction:
        if verb not in VERBS[obj.kind]:
            raise ValueError(f"cannot {verb} a {obj.kind}")
        if isinstance(obj, Rule) and verb in ("replace", "delete") and obj.handle is None:
            raise ValueError(f"{verb} rule needs the rule's handle")
        self.ops.append(Op(verb, obj))
        return self

    def add(self, obj: Object) -> Transaction:
        """Create if missing (idempotent); a rule is appended (after ``handle`` if given)."""
        return self._op("add", obj)

    def create(self, obj: Object) -> Transaction:
        """Create; fails if it exists."""
        return self._op("create", obj)

    def insert(self, rule: Rule) -> Transaction:
        """Prepend a rule (before ``handle`` if given)."""
        return self._op("insert", rule)

    def replace(self, rule: Rule) -> Transaction:
        return self._op("replace", rule)

    def flush(self, obj: Table | Chain | Set | Map) -> Transaction:
        """Empty a table (rules and elements), a chain (rules) or a set/map (elements)."""
        return self._op("flush", obj)

    def delete(self, obj: Object) -> Transaction:
        return self._op("delete", obj)

    def extend(self, ops: Iterable[Op]) -> Transaction:
        for op in ops:
            self._op(op.verb, op.obj)
        return self

    # -- reading
    def __len__(self) -> int:
        """Number of operations, counting each element of a bulk element op."""
        return sum(op.size() for op in self.ops)

    def counts(self) -> dict[str, int]:
        """How many operations of each "verb kind"."""
        out: dict[str, int] = {}
        for op in self.ops:
            k = f"{op.verb} {op.kind}"
            out[k] = out.get(k, 0) + op.size()
        return out

    def render(self) -> str:
        """The nft script; consecutive element ops of one verb on one set become one command."""
        t = f"{self.family} {self.table}"
        lines: list[str] = []
        ops = self.ops
        i = 0
        while i < len(ops):
            verb, obj = ops[i]
            if obj.kind == "element":
                items: list[str] = []
                j = i
                with_value = verb != "delete"
                while j < len(ops) and ops[j].obj.kind == "element" and ops[j].verb == verb \
                        and ops[j].obj.set == obj.set:
                    o = ops[j].obj
                    if isinstance(o, Elements):
                        items += o.texts(with_value)
                    else:
                        items.append(o.text(with_value))
                    j += 1
                if items:
                    lines.append(f"{verb} element {t} {obj.set} {{ {', '.join(items)} }}")
                i = j
                continue
            lines.append(_command(verb, obj, t))
            i += 1
        return "\n".join(lines) + "\n"


def _command(verb: str, obj: Object, t: str) -> str:
    """One nft command for a non-element op."""
    if isinstance(obj, Rule):
        where = f" handle {obj.handle}" if obj.handle is not None else ""
        if verb == "delete":
            return f"delete rule {t} {obj.chain}{where}"
        return f"{verb} rule {t} {obj.chain}{where} {obj.text}"
    if isinstance(obj, Table):
        name = f"table {t}"
    elif isinstance(obj, Chain):
        name = f"chain {t} {obj.name}"
    else:
        name = f"{obj.kind} {t} {obj.name}"
    spec = obj.spec if verb in ("add", "create") else ""
    return f"{verb} {name} {{ {spec} }}" if spec else f"{verb} {name}"
