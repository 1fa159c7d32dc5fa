"""Read the enforcer's table back: the verdict for a new connection, evaluated over a ``FakeNft`` table.

Understands exactly the rule forms ``netpol.ruleset`` writes (a test oracle and a debugging aid, not nft).
"""
from __future__ import annotations

import ipaddress
import re

from kemu.nft import FakeNft
from netpol.ruleset import FAMILY, TABLE

_MATCH = re.compile(r"^(ip saddr|ip daddr|meta l4proto|th dport|ip daddr \. meta l4proto \. th dport) "
                    r"(@[\w.-]+|!= [\d./]+|!= @[\w.-]+|\d[\d./-]*|tcp|udp|sctp) ")
_VMAP = re.compile(r"^(ip saddr|ip daddr) vmap @([\w.-]+)$")


class NetpolTableView:
    """Questions about one node's ``inet kemu-netpol`` table in a FakeNft."""

    def __init__(self, fake: FakeNft, table: str = TABLE) -> None:
        self.t = fake.table(FAMILY, table)

    def verdict(self, src: str, dst: str, proto: str = "tcp", port: int = 80, hook: str = "forward") -> str:
        """"accept" or "reject" for the first packet of a connection src → dst:port/proto."""
        pkt = {"ip saddr": src, "ip daddr": dst, "proto": proto, "port": port}
        result = self._run(hook, pkt, depth=0)
        return "reject" if result == "reject" else "accept"

    def _run(self, chain: str, pkt: dict, depth: int) -> str:
        """"accept"/"reject"/"return" (fell off or returned)."""
        if depth > 16:
            raise RuntimeError("chain recursion too deep")
        if chain == "reject-chain":
            return "reject"
        for rule in self.t.chains[chain].rules:
            if rule.startswith("ct state established,related"):
                continue          # a new connection
            rest, ok = rule, True
            while ok and (m := _MATCH.match(rest)):
                ok = self._matches(m.group(1), m.group(2), pkt)
                rest = rest[m.end():]
            if not ok:
                continue
            if vm := _VMAP.match(rest):
                value = self.t.elements[vm.group(2)].get(pkt[vm.group(1)])
                if value is None:
                    continue
                rest = value
            verb, _, target = rest.partition(" ")
            if verb in ("accept", "return"):
                return verb
            if verb == "reject":
                return "reject"
            if verb == "goto":
                return self._run(target, pkt, depth + 1)
            if verb == "jump":
                res = self._run(target, pkt, depth + 1)
                if res != "return":
                    return res
                continue
            raise ValueError(f"rule not understood: {rule!r}")
        return "return"

    def _matches(self, field: str, arg: str, pkt: dict) -> bool:
        if field in ("ip saddr", "ip daddr"):
            value = pkt[field]
            if arg.startswith("!= @"):
                return not self._in_set(arg[4:], value)
            if arg.startswith("@"):
                return self._in_set(arg[1:], value)
            if arg.startswith("!= "):
                return ipaddress.ip_address(value) not in ipaddress.ip_network(arg[3:])
            return ipaddress.ip_address(value) in ipaddress.ip_network(arg)
        if field == "meta l4proto":
            return pkt["proto"] == arg
        if field == "th dport":
            lo, _, hi = arg.partition("-")
            return int(lo) <= pkt["port"] <= int(hi or lo)
        return self._in_set(arg[1:], f"{pkt['ip daddr']} . {pkt['proto']} . {pkt['port']}")

    def _in_set(self, name: str, key: str) -> bool:
        elems = self.t.elements[name]
        if key in elems:
            return True
        if "interval" not in self.t.sets[name].flags:
            return False
        for e in elems:
            if "/" in e and " . " not in e:
                if ipaddress.ip_address(key) in ipaddress.ip_network(e):
                    return True
            elif " . " in e and "-" in e:
                proto, rng = e.split(" . ")
                kproto, kport = key.split(" . ")
                lo, hi = (int(x) for x in rng.split("-"))
                if proto == kproto and lo <= int(kport) <= hi:
                    return True
        return False


def describe_policy(policy: dict, pods: list[dict], policies: list[dict]) -> list[tuple[str, str]]:
    """`kemu describe networkpolicy` facts: the pods it selects and the nftables objects that enforce it."""
    from netpol.ruleset import EGRESS, INGRESS, compile_policy, pod_info, set_chain_name
    cp = compile_policy(policy)
    others = [compile_policy(p) for p in policies]
    out: list[tuple[str, str]] = [("Policy types", ", ".join(sorted(t.capitalize() for t in cp.types)))]
    chains: dict[str, set[str]] = {}
    for info in sorted((pod_info(p) for p in pods), key=lambda i: i.key):
        if not (info.enforceable and cp.selects(info)):
            continue
        out.append(("Selects", f"{info.key} {info.ip} on {info.node}"))
        for direction in (INGRESS, EGRESS):
            if direction in cp.types:
                pids = frozenset(o.pid for o in others if direction in o.types and o.selects(info))
                chains.setdefault(info.node or "?", set()).add(set_chain_name(direction, pids))
    out.append(("nft table", f"inet {TABLE} (every node)"))
    for s in cp.sets():
        out.append(("nft set", f"{s.name} {{ {s.spec} }}"))
    for node, names in sorted(chains.items()):
        out.append((f"nft chains ({node})", ", ".join(sorted(names))))
    return out
