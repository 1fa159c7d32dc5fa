"""The NetworkPolicy enforcer's nftables ruleset as data (pure: no I/O).

One table ``inet kemu-netpol`` per node (docs/netpol.md). Layout:

* ``forward`` (filter hook forward, priority 0, after the proxy's DNAT) and ``input``:
  established/related and the node's own addresses pass; a packet from a local pod
  ``jump egress``, a packet to a local pod ``jump ingress``.
* ``egress``/``ingress``: ``ip saddr vmap @egress-pods`` / ``ip daddr vmap @ingress-pods``
  (local pod IP -> ``return`` when no policy isolates it, else ``goto eg-<h>``/``in-<h>``),
  then ``goto egress-unknown``/``ingress-unknown`` for a local pod IP the enforcer does not
  know yet (reject while some pending local pod is isolated in that direction, else return).
* ``in-<h>``/``eg-<h>``: one chain per *set of policies* that select a pod in that direction,
  shared by every pod the same policies select: the allow rules of each policy (``… return``)
  then ``goto reject-chain`` (TCP reset, else ICMP admin-prohibited).
* per policy and rule ``<pid>-<i|e><n>-…`` sets: ``pods`` (peer pod IPs) and ``named`` (resolved
  named ports: ``pod IP . proto . port``); ipBlocks (``ip saddr C ip saddr != E …``) and numbered
  ports (``meta l4proto tcp th dport 80-90``) are inline in the rules: every set costs each later
  libnftables command a cache read, so only pod-dependent things are sets.

A pod label change or a new pod is thus element updates only (plus a shared chain the
first time a new combination of policies selects a local pod).
"""
from __future__ import annotations

import hashlib
import json
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from kemu import nft

TABLE = "kemu-netpol"
FAMILY = "inet"
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
INGRESS, EGRESS = "ingress", "egress"
INGRESS_PODS, EGRESS_PODS = "ingress-pods", "egress-pods"
NODE_IPS = "node-ips"
UNKNOWN = {INGRESS: "ingress-unknown", EGRESS: "egress-unknown"}
REJECT = "reject-chain"
REJECT_RULE = f"goto {REJECT}"

Selector = Callable[[Mapping[str, str]], bool]
Element = tuple[str, str]          # (set name, key)


def _always(_labels: Mapping[str, str]) -> bool:
    return True


def label_selector(sel: dict | None) -> Selector:
    """A NetworkPolicy LabelSelector: absent or ``{}`` selects everything. Compiled to plain lookups (the hot path of
    every change); same semantics as kemu.api.selectors.selector_matches."""
    if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return _always
    match_labels = tuple((sel.get("matchLabels") or {}).items())
    exprs = tuple((e["key"], e["operator"], frozenset(e.get("values") or ())) for e in sel.get("matchExpressions") or ())

    def match(labels: Mapping[str, str]) -> bool:
        for k, v in match_labels:
            if labels.get(k) != v:
                return False
        for k, op, values in exprs:
            if op == "In":
                if labels.get(k) not in values:
                    return False
            elif op == "NotIn":
                if k in labels and labels[k] in values:
                    return False
            elif (k in labels) != (op == "Exists"):
                return False
        return True
    return match


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def short_hash(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


# ------------------------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class NetpolNode:
    """The node whose pods the table guards."""

    name: str
    node_ips: tuple[str, ...]
    pod_cidr: str
    table: str = TABLE


@dataclass(frozen=True)
class PodInfo:
    """What policy enforcement needs of a Pod."""

    key: str                                         # ns/name
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ip: str | None
    node: str | None
    ports: tuple[tuple[str, str, int], ...] = ()     # (name, proto, containerPort)
    active: bool = True                              # not hostNetwork, not Succeeded/Failed, not being deleted

    @cached_property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def named_port(self, name: str, proto: str) -> int | None:
        for n, p, port in self.ports:
            if n == name and p == proto:
                return port
        return None

    @property
    def enforceable(self) -> bool:
        """A pod that may be a peer or be guarded: active with an IP."""
        return self.active and bool(self.ip)


def pod_info(pod: dict) -> PodInfo:
    """The PodInfo of a Pod object."""
    md, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ports = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and isinstance(p.get("containerPort"), int):
                ports.append((p["name"], PROTOCOLS.get(p.get("protocol", "TCP"), "tcp"), p["containerPort"]))
    active = not spec.get("hostNetwork") and status.get("phase") not in ("Succeeded", "Failed") \
        and not md.get("deletionTimestamp")
    return PodInfo(f"{md.get('namespace', 'default')}/{md['name']}", md.get("namespace", "default"),
                   tuple(sorted((md.get("labels") or {}).items())), status.get("podIP") or None,
                   spec.get("nodeName"), tuple(ports), active)


# ------------------------------------------------------------------------------------------------ policies
@dataclass(frozen=True)
class Peer:
    """One ``from``/``to`` pod peer: ``ns`` None = the policy's own namespace."""

    ns: Selector | None
    pods: Selector
    key: str = ""          # canonical form: slots with the same peers share one ``peers-<hash>`` set


@dataclass
class Slot:
    """One ingress or egress rule of a policy, compiled."""

    direction: str
    prefix: str                       # set-name prefix, e.g. "p1a2b3c4d5-i0"
    any_peer: bool
    peers: tuple[Peer, ...] = ()
    blocks: tuple[tuple[str, tuple[str, ...]], ...] = ()   # ipBlock (cidr, excepts)
    any_port: bool = True
    ports: tuple[str, ...] = ()       # "meta l4proto tcp th dport 80", "meta l4proto udp th dport 1000-2000"
    named: tuple[tuple[str, str], ...] = ()   # (proto, name)

    @property
    def peer_field(self) -> str:
        return "ip saddr" if self.direction == INGRESS else "ip daddr"

    @property
    def numbered(self) -> bool:
        return self.any_port or bool(self.ports)

    @property
    def uses_pods_set(self) -> bool:
        return bool(self.peers) and (self.numbered or (self.direction == INGRESS and bool(self.named)))

    @property
    def pods_set(self) -> str:
        """The peer pods' IPs: shared by every slot (of any policy) with the same peers."""
        return "peers-" + short_hash("|".join(sorted(p.key for p in self.peers)), 12)

    def set_name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def sets(self) -> list[nft.Set]:
        out = []
        if self.uses_pods_set:
            out.append(nft.Set(self.pods_set, type="ipv4_addr"))
        if self.named:
            out.append(nft.Set(self.set_name("named"), type="ipv4_addr . inet_proto . inet_service"))
        return out

    def rules(self) -> list[str]:
        """Allow rules (``… return``) of this slot."""
        pf = self.peer_field
        port_matches = [""] if self.any_port else list(self.ports)
        if self.any_peer:
            peer_matches = [""]
        else:
            peer_matches = ([f"{pf} @{self.pods_set}"] if self.peers else []) + \
                [" ".join([f"{pf} {cidr}"] + [f"{pf} != {e}" for e in excepts]) for cidr, excepts in self.blocks]
        out: list[str] = []
        if self.numbered:
            out += [_join(m, pm, "return") for m in peer_matches for pm in port_matches]
        if self.named:
            named = f"ip daddr . meta l4proto . th dport @{self.set_name('named')}"
            if self.direction == EGRESS:   # the set holds the resolved peer pods themselves
                out.append(_join(named, "return"))
            else:
                out += [_join(m, named, "return") for m in peer_matches]
        return out

    def static_elements(self) -> list[Element]:
        return []

    def peer_matches(self, pod: PodInfo, pod_labels: Mapping[str, str], ns_labels: Mapping[str, str],
                     policy_ns: str) -> bool:
        for peer in self.peers:
            in_ns = peer.ns(ns_labels) if peer.ns is not None else pod.namespace == policy_ns
            if in_ns and peer.pods(pod_labels):
                return True
        return False


@dataclass
class CompiledPolicy:
    """A NetworkPolicy as the ruleset needs it (no pods involved)."""

    key: str
    namespace: str
    pid: str
    select: Selector
    types: frozenset[str]
    slots: list[Slot] = field(default_factory=list)

    @property
    def cluster_wide(self) -> bool:
        """Whether pods of other namespaces may contribute elements (namespaceSelector, or egress named ports to
        any peer)."""
        return any(p.ns is not None for s in self.slots for p in s.peers) or \
            any(s.direction == EGRESS and s.any_peer and s.named for s in self.slots)

    def sets(self) -> list[nft.Set]:
        return [s for slot in self.slots for s in slot.sets()]

    def static_elements(self) -> list[Element]:
        return [e for slot in self.slots for e in slot.static_elements()]

    def rules(self, direction: str) -> list[str]:
        return [r for slot in self.slots if slot.direction == direction for r in slot.rules()]

    def pod_elements(self, pod: PodInfo, ns_labels: Mapping[str, str], local: bool) -> frozenset[Element]:
        """Elements ``pod`` contributes to this policy's sets (peer IPs, resolved named ports)."""
        if not pod.enforceable:
            return frozenset()
        labels = pod.label_map
        selected = local and pod.namespace == self.namespace and self.select(labels)
        out: list[Element] = []
        for slot in self.slots:
            match = slot.any_peer or slot.peer_matches(pod, labels, ns_labels, self.namespace)
            if match and slot.uses_pods_set:
                out.append((slot.pods_set, pod.ip))
            if not slot.named:
                continue
            if slot.direction == INGRESS and not selected:
                continue
            if slot.direction == EGRESS and not match:
                continue
            for proto, name in slot.named:
                port = pod.named_port(name, proto)
                if port is not None:
                    out.append((slot.set_name("named"), f"{pod.ip} . {proto} . {port}"))
        return frozenset(out)

    def selects(self, pod: PodInfo) -> bool:
        return pod.namespace == self.namespace and self.select(pod.label_map)


def policy_types(spec: dict) -> frozenset[str]:
    """policyTypes, defaulted as the API server does."""
    types = spec.get("policyTypes")
    if not types:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return frozenset(t.lower() for t in types)


def _ports(ports: list[dict] | None) -> tuple[bool, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """(any port, numbered port matches (ranges merged), named ports) of a rule's ``ports``."""
    if not ports:
        return True, (), ()
    ranges: dict[str, list[tuple[int, int]]] = {}
    named: list[tuple[str, str]] = []
    for p in ports:
        proto = PROTOCOLS.get(p.get("protocol") or "TCP", "tcp")
        port = p.get("port")
        if isinstance(port, str) and not port.isdigit():
            named.append((proto, port))
            continue
        if port is None:
            ranges.setdefault(proto, []).append((0, 65535))
            continue
        lo = int(port)
        hi = int(p.get("endPort") or lo)
        ranges.setdefault(proto, []).append((lo, max(lo, hi)))
    elems: list[str] = []
    for proto in sorted(ranges):
        merged: list[list[int]] = []
        for lo, hi in sorted(ranges[proto]):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        elems += [f"meta l4proto {proto}" if (lo, hi) == (0, 65535) else
                  f"meta l4proto {proto} th dport {lo}" if lo == hi else
                  f"meta l4proto {proto} th dport {lo}-{hi}" for lo, hi in merged]
    return False, tuple(elems), tuple(sorted(set(named)))


def _blocks(blocks: Iterable[dict]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """IPv4 ipBlocks as (cidr, excepts) in canonical form (kemu is IPv4: v6 blocks match nothing here)."""
    out = []
    for b in blocks:
        net = ipaddress.ip_network(b["cidr"], strict=False)
        if net.version == 4:
            excepts = tuple(str(ipaddress.ip_network(e, strict=False)) for e in b.get("except") or [])
            out.append((str(net), excepts))
    return tuple(out)


def compile_policy(policy: dict) -> CompiledPolicy:
    """A NetworkPolicy object (validated, defaulted) → CompiledPolicy."""
    md, spec = policy["metadata"], policy.get("spec") or {}
    ns = md.get("namespace", "default")
    key = f"{ns}/{md['name']}"
    pid = "p" + short_hash(key)
    cp = CompiledPolicy(key, ns, pid, label_selector(spec.get("podSelector")), policy_types(spec))
    for direction, field_, peers_field in ((INGRESS, "ingress", "from"), (EGRESS, "egress", "to")):
        if direction not in cp.types:
            continue
        for i, rule in enumerate(spec.get(field_) or []):
            rule = rule or {}
            raw_peers = rule.get(peers_field)
            any_port, ports, named = _ports(rule.get("ports"))
            slot = Slot(direction, f"{pid}-{direction[0]}{i}", any_peer=not raw_peers, any_port=any_port,
                        ports=ports, named=named)
            if raw_peers:
                peers, blocks = [], []
                for p in raw_peers:
                    if p.get("ipBlock"):
                        blocks.append(p["ipBlock"])
                        continue
                    ns_sel = label_selector(p["namespaceSelector"]) if "namespaceSelector" in p else None
                    key = json.dumps([p["namespaceSelector"] if "namespaceSelector" in p else f"ns:{ns}",
                                      p.get("podSelector") or {}], sort_keys=True)
                    peers.append(Peer(ns_sel, label_selector(p.get("podSelector")), key))
                slot.peers, slot.blocks = tuple(peers), _blocks(blocks)
            cp.slots.append(slot)
    return cp


# ------------------------------------------------------------------------------------------------ chains
def set_chain_name(direction: str, pids: Iterable[str]) -> str:
    """The chain shared by local pods that exactly the policies ``pids`` select in ``direction``."""
    return f"{'in' if direction == INGRESS else 'eg'}-{short_hash(','.join(sorted(pids)))}"


def set_chain_rules(direction: str, policies: Iterable[CompiledPolicy]) -> list[str]:
    """OR of every policy's allow rules, then reject."""
    return [r for cp in sorted(policies, key=lambda c: c.pid) for r in cp.rules(direction)] + [REJECT_RULE]


def pod_verdict(direction: str, pids: frozenset[str]) -> str:
    """The ingress-pods/egress-pods map value of a local pod."""
    return f"goto {set_chain_name(direction, pids)}" if pids else "return"


def unknown_rules(isolated: bool) -> list[str]:
    """Rules of ingress-unknown/egress-unknown: reject while some pending local pod is isolated."""
    return [REJECT_RULE] if isolated else []


BASE_CHAINS = {"forward": ("filter", "forward", 0), "input": ("filter", "input", 0)}


def skeleton(node: NetpolNode) -> tuple[dict[str, nft.Set], dict[str, list[str]], dict[str, dict[str, str | None]]]:
    """The fixed part: (sets, chains → rules, elements)."""
    cidr = node.pod_cidr
    sets = {NODE_IPS: nft.Set(NODE_IPS, type="ipv4_addr"),
            INGRESS_PODS: nft.Map(INGRESS_PODS, type="ipv4_addr : verdict"),
            EGRESS_PODS: nft.Map(EGRESS_PODS, type="ipv4_addr : verdict")}
    gateway = str(ipaddress.ip_network(cidr, strict=False)[1])
    elements: dict[str, dict[str, str | None]] = {
        NODE_IPS: {ip: None for ip in (*node.node_ips, gateway)}, INGRESS_PODS: {}, EGRESS_PODS: {}}
    chains = {
        "forward": ["ct state established,related accept", f"ip saddr @{NODE_IPS} accept",
                    f"ip saddr {cidr} jump egress", f"ip daddr {cidr} jump ingress"],
        "input": ["ct state established,related accept", f"ip saddr @{NODE_IPS} accept",
                  f"ip saddr {cidr} jump egress"],
        "egress": [f"ip saddr vmap @{EGRESS_PODS}", f"goto {UNKNOWN[EGRESS]}"],
        "ingress": [f"ip daddr vmap @{INGRESS_PODS}", f"goto {UNKNOWN[INGRESS]}"],
        UNKNOWN[EGRESS]: [],
        UNKNOWN[INGRESS]: [],
        # a TCP reset of a bridged, DNATed connection leaves without NAT reversal (br_netfilter sends it directly),
        # so the client would ignore it: those get ICMP admin-prohibited, which conntrack un-NATs (still fails fast)
        REJECT: ["meta l4proto tcp ct status & dnat == 0 reject with tcp reset",
                 "reject with icmpx type admin-prohibited"],
    }
    return sets, chains, elements


def chain_object(name: str) -> nft.Chain:
    if name in BASE_CHAINS:
        type_, hook, prio = BASE_CHAINS[name]
        return nft.Chain(name, type=type_, hook=hook, priority=prio, policy="accept")
    return nft.Chain(name)


# ------------------------------------------------------------------------------------------------ the whole table
@dataclass
class Ruleset:
    """The complete desired state of the table."""

    table: str
    sets: dict[str, nft.Set] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)
    elements: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {"chains": len(self.chains), "rules": sum(len(r) for r in self.chains.values()),
                "sets": len(self.sets), "elements": sum(len(e) for e in self.elements.values())}


def pending_isolation(node: NetpolNode, pods: Iterable[PodInfo], policies: Iterable[CompiledPolicy]) -> dict[str, bool]:
    """Per direction: is some local pod without a known IP yet selected by a policy of that direction?"""
    pending = [p for p in pods if p.node == node.name and p.active and not p.ip]
    pols = list(policies)
    return {d: any(cp.selects(p) and d in cp.types for p in pending for cp in pols) for d in (INGRESS, EGRESS)}


def build_ruleset(node: NetpolNode, policies: Iterable[dict], pods: Iterable[dict],
                  namespaces: Iterable[dict]) -> Ruleset:
    """Full desired state from scratch (the enforcer keeps the same state incrementally)."""
    compiled = sorted((compile_policy(p) for p in policies), key=lambda c: c.pid)
    infos = [pod_info(p) for p in pods]
    ns_labels = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in namespaces}
    sets, chains, elements = skeleton(node)
    rs = Ruleset(node.table, sets, chains, elements)
    for cp in compiled:
        for s in cp.sets():
            rs.sets[s.name] = s
            rs.elements.setdefault(s.name, {})
        for set_name, key in cp.static_elements():
            rs.elements[set_name][key] = None
    by_pid = {cp.pid: cp for cp in compiled}
    for pod in infos:
        local = pod.node == node.name
        for cp in compiled:
            for set_name, key in cp.pod_elements(pod, ns_labels.get(pod.namespace, {}), local):
                rs.elements[set_name][key] = None
        if local and pod.enforceable:
            for d, pods_map in ((INGRESS, INGRESS_PODS), (EGRESS, EGRESS_PODS)):
                pids = frozenset(cp.pid for cp in compiled if d in cp.types and cp.selects(pod))
                rs.elements[pods_map][pod.ip] = pod_verdict(d, pids)
                if pids:
                    rs.chains[set_chain_name(d, pids)] = set_chain_rules(d, (by_pid[p] for p in pids))
    for d, isolated in pending_isolation(node, infos, compiled).items():
        rs.chains[UNKNOWN[d]] = unknown_rules(isolated)
    return rs


def full_transaction(rs: Ruleset, recreate: bool = True) -> nft.Transaction:
    """Delete and recreate the table as ``rs`` in one transaction."""
    tx = nft.Transaction(FAMILY, rs.table)
    tx.add(nft.Table())
    if recreate:
        tx.delete(nft.Table())
        tx.add(nft.Table())
    for s in rs.sets.values():
        tx.add(s)
    for name in rs.chains:
        tx.add(chain_object(name))
    for name, rules in rs.chains.items():
        for r in rules:
            tx.add(nft.Rule(name, r))
    for set_name, elems in rs.elements.items():
        if elems:
            tx.add(nft.Elements(set_name, sorted(elems.items())))
    return tx
