"""An in-memory nftables for tests (knftables' fake.go): it knows no component's layout.

``FakeNft.run`` applies a transaction's operations with the kernel's checks (missing
table/chain/set, busy chains and sets, conflicting elements, dangling ``@set`` and
``goto``/``jump`` references), all or nothing, and records it. Generic queries read
the result: ``list_table``, ``table``, ``rules``, ``elements``, ``chain_names``, ``counts``.
Rule handles are not modelled (operations that name one are rejected).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from .objects import Chain, Element, Elements, Rule, Set, Table
from .transaction import NftError, Op, Transaction

SET_REF = re.compile(r"@([A-Za-z_][A-Za-z0-9_./:-]*)(?![A-Za-z0-9_./:,-])")   # not raw payload @th,0,16
CHAIN_REF = re.compile(r"\b(?:goto|jump) ([A-Za-z0-9_./:-]+)")


@dataclass
class FakeChain:
    """A chain and its rules as nft text."""

    chain: Chain
    rules: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.chain.name


@dataclass
class FakeTable:
    """One table: chains, set/map definitions and their elements (key -> value, None in sets)."""

    family: str
    name: str
    table: Table = field(default_factory=Table)
    chains: dict[str, FakeChain] = field(default_factory=dict)
    sets: dict[str, Set] = field(default_factory=dict)
    elements: dict[str, dict[str, str | None]] = field(default_factory=dict)
    element_options: dict[str, dict[str, str]] = field(default_factory=dict)   # timeout/comment text


class FakeNft:
    """In-memory nftables with kernel-like checks; records every applied transaction."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], FakeTable] = {}
        self.transactions: list[Transaction] = []
        self.fail_next: str | None = None   # inject: the next run() raises NftError(fail_next)

    # ------------------------------------------------------------ backend interface
    def run(self, tx: Transaction) -> None:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise NftError(msg)
        tx.render()   # must render
        key = (tx.family, tx.table)
        work = copy.deepcopy(self.tables.get(key))
        for op in tx.ops:
            work = self._apply(work, tx, op)
        if work is None:
            self.tables.pop(key, None)
        else:
            self.tables[key] = work
        self.transactions.append(tx)

    def list_table(self, family: str, table: str) -> str:
        """The table in ``nft list table`` shape (sets and maps, then chains)."""
        t = self.table(family, table)
        out = [f"table {family} {table} {{"]
        if t.table.comment:
            out.append(f'\tcomment "{t.table.comment}"')
        for s in t.sets.values():
            out.append(f"\t{s.kind} {s.name} {{ {s.spec}")
            elems = t.elements.get(s.name)
            if elems:
                opts = t.element_options.get(s.name, {})
                items = [k + opts.get(k, "") + ("" if v is None else f" : {v}") for k, v in elems.items()]
                out.append("\t\telements = { " + ", ".join(items) + " }")
            out.append("\t}")
        for c in t.chains.values():
            out.append(f"\tchain {c.name} {{")
            if c.chain.spec:
                out.append(f"\t\t{c.chain.spec}")
            out.extend(f"\t\t{r}" for r in c.rules)
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    def chain_names(self, family: str, table: str) -> set[str] | None:
        t = self.tables.get((family, table))
        return (set(t.chains) or None) if t else None

    # ------------------------------------------------------------ generic queries
    def has_table(self, family: str, table: str) -> bool:
        return (family, table) in self.tables

    def table(self, family: str, table: str) -> FakeTable:
        t = self.tables.get((family, table))
        if t is None:
            raise NftError(f"No such file or directory: table {family} {table}")
        return t

    def rules(self, family: str, table: str, chain: str) -> list[str]:
        return self.table(family, table).chains[chain].rules

    def elements(self, family: str, table: str, set_name: str) -> dict[str, str | None]:
        return self.table(family, table).elements[set_name]

    def counts(self, family: str, table: str) -> dict[str, int]:
        """Numbers of chains, rules, sets (and maps) and elements of a table."""
        t = self.table(family, table)
        return {"chains": len(t.chains), "rules": sum(len(c.rules) for c in t.chains.values()),
                "sets": len(t.sets), "elements": sum(len(e) for e in t.elements.values())}

    # ------------------------------------------------------------ the model
    def _apply(self, t: FakeTable | None, tx: Transaction, op: Op) -> FakeTable | None:
        verb, obj = op

        def fail(msg: str) -> None:
            what = getattr(obj, "name", None) or getattr(obj, "chain", None) or getattr(obj, "set", "")
            raise NftError(f"{verb} {obj.kind} {tx.family} {tx.table} {what}: {msg}")
        if isinstance(obj, Table):
            if verb in ("add", "create"):
                if t is not None and verb == "create":
                    fail("File exists")
                if t is None:
                    return FakeTable(tx.family, tx.table, obj)
                if obj.comment is not None:
                    t.table = obj
                return t
            if t is None:
                fail("No such file or directory")
            if verb == "delete":
                return None
            for c in t.chains.values():   # flush
                c.rules.clear()
            for e in t.elements.values():
                e.clear()
            t.element_options.clear()
            return t
        if t is None:
            fail("No such file or directory (table)")
        if isinstance(obj, Chain):
            self._chain(t, verb, obj, fail)
        elif isinstance(obj, Rule):
            self._rule(t, verb, obj, fail)
        elif isinstance(obj, Set):
            self._set(t, verb, obj, fail)
        else:
            self._element(t, verb, obj, fail)
        return t

    @staticmethod
    def _chain(t: FakeTable, verb: str, obj: Chain, fail) -> None:
        c = t.chains.get(obj.name)
        if verb in ("add", "create"):
            if c is None:
                t.chains[obj.name] = FakeChain(obj)
            elif verb == "create":
                fail("File exists")
            elif (c.chain.type, c.chain.hook, c.chain.priority, c.chain.device) != \
                    (obj.type, obj.hook, obj.priority, obj.device):
                fail("Device or resource busy (chain exists with another hook)")
            elif obj.policy is not None or obj.comment is not None:
                c.chain = obj
            return
        if c is None:
            fail("No such file or directory")
        if verb == "flush":
            c.rules.clear()
            return
        if c.rules:
            fail("Device or resource busy (chain not empty)")
        if _chain_referenced(t, obj.name):
            fail("Device or resource busy (chain referenced)")
        del t.chains[obj.name]

    @staticmethod
    def _rule(t: FakeTable, verb: str, obj: Rule, fail) -> None:
        c = t.chains.get(obj.chain)
        if c is None:
            fail("No such file or directory (chain)")
        if obj.handle is not None:
            fail("rule handles are not modelled by the fake")
        for ref in SET_REF.findall(obj.rule):
            if ref not in t.sets:
                fail(f"No such file or directory (set {ref})")
        for target in CHAIN_REF.findall(obj.rule):
            if target not in t.chains:
                fail(f"No such file or directory (chain {target})")
        if verb == "insert":
            c.rules.insert(0, obj.text)
        else:
            c.rules.append(obj.text)

    @staticmethod
    def _set(t: FakeTable, verb: str, obj: Set, fail) -> None:
        s = t.sets.get(obj.name)
        if verb in ("add", "create"):
            if s is None:
                t.sets[obj.name] = obj
                t.elements[obj.name] = {}
            elif verb == "create" or s != obj:
                fail("File exists" + ("" if verb == "create" else f" ({s.kind} with another definition)"))
            return
        if s is None or s.is_map != obj.is_map:
            fail("No such file or directory")
        if verb == "flush":
            t.elements[obj.name].clear()
            t.element_options.pop(obj.name, None)
            return
        if any(obj.name in SET_REF.findall(r) for c in t.chains.values() for r in c.rules):
            fail("Device or resource busy (set referenced)")
        del t.sets[obj.name]
        del t.elements[obj.name]
        t.element_options.pop(obj.name, None)

    @staticmethod
    def _element(t: FakeTable, verb: str, obj: Element | Elements, fail) -> None:
        s = t.sets.get(obj.set)
        if s is None:
            fail("No such file or directory (set)")
        elems = t.elements[obj.set]
        if isinstance(obj, Elements):
            items, opts = obj.items, ""
        else:
            items, opts = [(obj.key, obj.value)], obj.text(with_value=False)[len(obj.key):]
        for key, value in items:
            if verb == "delete":
                if key not in elems:
                    fail(f"No such file or directory (element {key})")
                del elems[key]
                t.element_options.get(obj.set, {}).pop(key, None)
                continue
            if opts and " timeout " in f"{opts} " and "timeout" not in s.flags:
                fail(f"Invalid argument (element {key}: timeout on a set without flags timeout)")
            if (value is not None) != s.is_map:
                fail(f"Invalid argument (element {key}: {'a map element needs' if s.is_map else 'a set has no'} value)")
            if key in elems and (verb == "create" or elems[key] != value):
                fail(f"File exists (element {key}" + ("" if verb == "create" else " with another value") + ")")
            for target in CHAIN_REF.findall(value or ""):
                if target not in t.chains:
                    fail(f"No such file or directory (chain {target})")
            elems[key] = value
            if opts:
                t.element_options.setdefault(obj.set, {})[key] = opts


def _chain_referenced(t: FakeTable, name: str) -> bool:
    """Whether a rule or a verdict-map element jumps/goes to chain ``name``."""
    for c in t.chains.values():
        for r in c.rules:
            if name in CHAIN_REF.findall(r):
                return True
    for elems in t.elements.values():
        for v in elems.values():
            if v and name in CHAIN_REF.findall(v):
                return True
    return False

