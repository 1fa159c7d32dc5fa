"""Applying rulesets: one atomic nftables transaction per sync.

``Transaction`` is a list of operations (knftables style) rendered to nft's text
syntax. ``LibNftBackend`` sends it through libnftables (one batch = one kernel
transaction: all or nothing). ``FakeNft`` applies the same operations to an
in-memory model with the kernel's checks (missing objects, busy chains/sets,
conflicting elements), atomically, and answers lookups for tests.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .ruleset import Chain, Ruleset, SetDef


class NftError(RuntimeError):
    """A transaction was rejected; nothing of it was applied."""


class Op(NamedTuple):
    """One operation: verb in add/flush/delete, kind in table/chain/rule/set/element."""

    verb: str
    kind: str
    name: str = ""
    arg: str | None = None          # chain hook spec, rule text, set spec
    key: str | None = None          # element key
    value: str | None = None        # element value (maps)
    is_map: bool = False
    items: tuple | list | None = None  # many elements at once: [(key, value|None), ...]

    def elements(self) -> list[tuple[str, str | None]]:
        """(key, value) pairs of an element op."""
        return list(self.items) if self.items is not None else [(self.key or "", self.value)]


@dataclass
class Transaction:
    """Operations on one table, applied atomically."""

    table: str
    family: str = "ip"
    ops: list[Op] = field(default_factory=list)

    def add(self, op: Op) -> None:
        self.ops.append(op)

    def __len__(self) -> int:
        """Number of operations, counting each element of a batched element op."""
        return sum(len(op.items) if op.items is not None else 1 for op in self.ops)

    def render(self) -> str:
        """nft script; consecutive element ops on one set are merged into one command."""
        t = f"{self.family} {self.table}"
        lines: list[str] = []
        i = 0
        ops = self.ops
        while i < len(ops):
            op = ops[i]
            if op.kind == "element":
                j = i
                items = []
                while j < len(ops) and ops[j].kind == "element" and ops[j].verb == op.verb and ops[j].name == op.name:
                    o = ops[j]
                    for k, v in o.elements():
                        items.append(f"{k} : {v}" if (o.verb == "add" and v is not None) else k)
                    j += 1
                if not items:
                    i = j
                    continue
                lines.append(f"{op.verb} element {t} {op.name} {{ {', '.join(items)} }}")
                i = j
                continue
            if op.kind == "table":
                lines.append(f"{op.verb} table {t}")
            elif op.kind == "chain":
                spec = f" {{ {op.arg} }}" if op.verb == "add" and op.arg else ""
                lines.append(f"{op.verb} chain {t} {op.name}{spec}")
            elif op.kind == "rule":
                lines.append(f"add rule {t} {op.name} {op.arg}")
            elif op.kind == "set":
                word = "map" if op.is_map else "set"
                spec = f" {{ {op.arg} }}" if op.verb == "add" else ""
                lines.append(f"{op.verb} {word} {t} {op.name}{spec}")
            i += 1
        return "\n".join(lines) + "\n"

    def counts(self) -> dict[str, int]:
        """How many operations of each kind."""
        out: dict[str, int] = {}
        for op in self.ops:
            n = len(op.items) if op.items is not None else 1
            out[f"{op.verb} {op.kind}"] = out.get(f"{op.verb} {op.kind}", 0) + n
        return out


class NftBackend(Protocol):
    """What the Proxier needs from nftables."""

    def run(self, tx: Transaction) -> None: ...
    def list_table(self, family: str, table: str) -> str: ...


class LibNftBackend:
    """Real nftables through the libnftables binding (acts on this process's netns)."""

    def __init__(self) -> None:
        import nftables  # Debian python3-nftables
        self.nft = nftables.Nftables()
        self.last_script = ""

    def run(self, tx: Transaction) -> None:
        script = tx.render()
        self.last_script = script
        rc, _out, err = self.nft.cmd(script)
        if rc != 0:
            raise NftError(err.strip()[:4000])

    def list_table(self, family: str, table: str) -> str:
        rc, out, err = self.nft.cmd(f"list table {family} {table}")
        if rc != 0:
            raise NftError(err.strip())
        return out


# ---------------------------------------------------------------- fake

_REF = re.compile(r"@([A-Za-z0-9_./:-]+)")
_JUMP = re.compile(r"\b(?:goto|jump) ([A-Za-z0-9_./:-]+)")
_NUMGEN_MAP = re.compile(r"numgen random mod (\d+) offset (\d+) map @(\S+)")
_DNAT_TO = re.compile(r"dnat to ([0-9.]+):(\d+)")
_SHARED_MAP = re.compile(r"dnat ip addr \. port to (ip daddr \. )?\w+ dport \. numgen random mod (\d+) map @(\S+)")


@dataclass
class _Table:
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, SetDef] = field(default_factory=dict)
    elements: dict[str, dict[str, str | None]] = field(default_factory=dict)


class FakeNft:
    """In-memory nftables with kernel-like checks; records every transaction."""

    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}
        self.transactions: list[Transaction] = []
        self.fail_next: str | None = None  # inject: next run() raises this

    # -- backend interface
    def run(self, tx: Transaction) -> None:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise NftError(msg)
        tx.render()  # must render
        tables = copy.deepcopy(self.tables)
        for op in tx.ops:
            self._apply(tables, f"{tx.family} {tx.table}", op)
        self.tables = tables
        self.transactions.append(tx)

    def list_table(self, family: str, table: str) -> str:
        t = self.tables.get(f"{family} {table}")
        if t is None:
            raise NftError(f"No such file or directory: table {family} {table}")
        return self._render(family, table, t)

    # -- model
    def _apply(self, tables: dict[str, _Table], tname: str, op: Op) -> None:
        def fail(msg: str) -> None:
            raise NftError(f"{op.verb} {op.kind} {op.name} {op.key or ''}: {msg}")
        if op.kind == "table":
            if op.verb == "add":
                tables.setdefault(tname, _Table())
            elif op.verb == "delete":
                if tname not in tables:
                    fail("No such file or directory")
                del tables[tname]
            elif op.verb == "flush":
                if tname not in tables:
                    fail("No such file or directory")
                for c in tables[tname].chains.values():
                    c.rules.clear()
                for e in tables[tname].elements.values():
                    e.clear()
            return
        t = tables.get(tname)
        if t is None:
            fail("No such file or directory (table)")
        if op.kind == "chain":
            c = t.chains.get(op.name)
            if op.verb == "add":
                if c is None:
                    t.chains[op.name] = Chain(op.name, [], op.arg)
                elif (c.hook or None) != (op.arg or None):
                    fail("Device or resource busy (chain exists with another hook)")
            elif c is None:
                fail("No such file or directory")
            elif op.verb == "flush":
                c.rules.clear()
            elif op.verb == "delete":
                if c.rules:
                    fail("Device or resource busy (chain not empty)")
                if self._chain_referenced(t, op.name):
                    fail("Device or resource busy (chain referenced)")
                del t.chains[op.name]
        elif op.kind == "rule":
            c = t.chains.get(op.name)
            if c is None:
                fail("No such file or directory (chain)")
            rule = op.arg or ""
            for ref in _REF.findall(rule):
                if ref not in t.sets:
                    fail(f"No such file or directory (set {ref})")
            for target in _JUMP.findall(rule):
                if target not in t.chains:
                    fail(f"No such file or directory (chain {target})")
            c.rules.append(rule)
        elif op.kind == "set":
            s = t.sets.get(op.name)
            if op.verb == "add":
                if s is None:
                    t.sets[op.name] = SetDef(op.name, op.arg or "", op.is_map)
                    t.elements[op.name] = {}
                elif s.spec != op.arg:
                    fail("File exists (set with another definition)")
            elif s is None:
                fail("No such file or directory")
            elif op.verb == "flush":
                t.elements[op.name].clear()
            elif op.verb == "delete":
                if any(op.name in _REF.findall(r) for c in t.chains.values() for r in c.rules):
                    fail("Device or resource busy (set referenced)")
                del t.sets[op.name]
                del t.elements[op.name]
        elif op.kind == "element":
            if op.name not in t.sets:
                fail("No such file or directory (set)")
            elems = t.elements[op.name]
            for key, value in op.elements():
                if op.verb == "add":
                    if key in elems and elems[key] != value:
                        fail(f"File exists (element {key} with another value)")
                    for target in _JUMP.findall(value or ""):
                        if target not in t.chains:
                            fail(f"No such file or directory (chain {target})")
                    elems[key] = value
                elif op.verb == "delete":
                    if key not in elems:
                        fail(f"No such file or directory (element {key})")
                    del elems[key]

    @staticmethod
    def _chain_referenced(t: _Table, name: str) -> bool:
        for c in t.chains.values():
            for r in c.rules:
                if name in _JUMP.findall(r):
                    return True
        for elems in t.elements.values():
            for v in elems.values():
                if v and name in _JUMP.findall(v):
                    return True
        return False

    @staticmethod
    def _render(family: str, table: str, t: _Table) -> str:
        out = [f"table {family} {table} {{"]
        for s in t.sets.values():
            out.append(f"\t{'map' if s.is_map else 'set'} {s.name} {{ {s.spec}")
            if t.elements.get(s.name):
                items = [k if v is None else f"{k} : {v}" for k, v in t.elements[s.name].items()]
                out.append("\t\telements = { " + ", ".join(items) + " }")
            out.append("\t}")
        for c in t.chains.values():
            out.append(f"\tchain {c.name} {{")
            if c.hook:
                out.append(f"\t\t{c.hook}")
            out.extend(f"\t\t{r}" for r in c.rules)
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    # -- queries for tests
    def table(self, table: str = "kemu-proxy", family: str = "ip") -> _Table:
        return self.tables[f"{family} {table}"]

    def has_table(self, table: str = "kemu-proxy", family: str = "ip") -> bool:
        return f"{family} {table}" in self.tables

    def service_verdict(self, daddr: str, proto: str, dport: int, table: str = "kemu-proxy") -> str | None:
        """Verdict the service-ips map (else no-endpoint-services) gives daddr . proto . dport."""
        t = self.table(table)
        k = f"{daddr} . {proto} . {dport}"
        return t.elements["service-ips"].get(k) or t.elements["no-endpoint-services"].get(k)

    def nodeport_verdict(self, proto: str, port: int, table: str = "kemu-proxy") -> str | None:
        """Verdict for a NodePort (else from no-endpoint-nodeports)."""
        t = self.table(table)
        k = f"{proto} . {port}"
        return t.elements["service-nodeports"].get(k) or t.elements["no-endpoint-nodeports"].get(k)

    def dnat_targets(self, verdict_or_chain: str | None, daddr: str | None = None, dport: int | None = None,
                     table: str = "kemu-proxy") -> set[str]:
        """Every ip:port a packet to daddr:dport sent to this verdict/chain may be DNATed to (follows goto/jump)."""
        if not verdict_or_chain:
            return set()
        t = self.table(table)
        start = verdict_or_chain.split()[-1]
        seen: set[str] = set()
        out: set[str] = set()
        todo = [start]
        while todo:
            name = todo.pop()
            if name in seen or name not in t.chains:
                continue
            seen.add(name)
            for r in t.chains[name].rules:
                m = _NUMGEN_MAP.search(r)
                if m:
                    n, off, emap = int(m.group(1)), int(m.group(2)), m.group(3)
                    for i in range(off, off + n):
                        v = t.elements[emap].get(str(i))
                        out.add(v.replace(" . ", ":") if v else f"<missing {emap}[{i}]>")
                m = _SHARED_MAP.search(r)
                if m:
                    n, emap = int(m.group(2)), m.group(3)
                    for i in range(n):
                        k = f"{daddr} . {dport} . {i}" if m.group(1) else f"{dport} . {i}"
                        v = t.elements[emap].get(k)
                        out.add(v.replace(" . ", ":") if v else f"<missing {emap}[{k}]>")
                m = _DNAT_TO.search(r)
                if m:
                    out.add(f"{m.group(1)}:{m.group(2)}")
                todo.extend(_JUMP.findall(r))
        return out

    def counts(self, table: str = "kemu-proxy") -> dict[str, int]:
        t = self.table(table)
        return {"chains": len(t.chains), "rules": sum(len(c.rules) for c in t.chains.values()),
                "sets": len(t.sets), "elements": sum(len(e) for e in t.elements.values())}


def full_transaction(rs: Ruleset, recreate: bool, stale_chains: tuple[str, ...] = (),
                     stale_sets: tuple[SetDef, ...] = ()) -> Transaction:
    """Transaction that makes the table equal ``rs``.

    recreate=True: delete and rebuild the table (first sync / repair after a failed
    resync). Otherwise flush-and-refill in place, keeping dynamic (affinity) sets' contents.
    """
    tx = Transaction(rs.table)
    tx.add(Op("add", "table"))
    if recreate:
        tx.add(Op("delete", "table"))
        tx.add(Op("add", "table"))
    for s in rs.sets.values():
        tx.add(Op("add", "set", s.name, s.spec, is_map=s.is_map))
    for c in rs.chains.values():
        tx.add(Op("add", "chain", c.name, c.hook))
    if not recreate:
        for c in rs.chains.values():
            tx.add(Op("flush", "chain", c.name))
        for s in rs.sets.values():
            if not s.dynamic:
                tx.add(Op("flush", "set", s.name, is_map=s.is_map))
    for c in rs.chains.values():
        for r in c.rules:
            tx.add(Op("add", "rule", c.name, r))
    for set_name, elems in rs.elements.items():
        if elems:
            tx.add(Op("add", "element", set_name, is_map=rs.sets[set_name].is_map, items=list(elems.items())))
    if not recreate:
        for name in stale_chains:
            tx.add(Op("add", "chain", name))
            tx.add(Op("flush", "chain", name))
        for name in stale_chains:
            tx.add(Op("delete", "chain", name))
        for s in stale_sets:
            tx.add(Op("add", "set", s.name, s.spec, is_map=s.is_map))
            tx.add(Op("delete", "set", s.name, is_map=s.is_map))
    return tx
