"""The service proxy's nftables ruleset as data (pure: no I/O).

Layout (see docs/proxy.md): one table ``ip kemu-proxy`` with a fixed skeleton of
base chains and maps. An ordinary Service port adds NO chains and NO rules, only
map elements:

* ``service-ips``: ``clusterIP . tcp . 80 : goto svc-tcp-n3`` where ``svc-tcp-n3`` is a
  chain shared by every TCP service port with 3 endpoints, holding one rule
  ``dnat ip addr . port to ip daddr . tcp dport . numgen random mod 3 map @service-endpoints-tcp``;
* ``service-endpoints-tcp``: ``clusterIP . 80 . i : endpoint-ip . port`` for i < 3
  (NodePorts likewise through ``np-tcp-nN`` and ``nodeport-endpoints-tcp``).

A one-Service change is thus a handful of element adds/deletes (plus a shared chain
when an endpoint count appears for the first time).

Services with session affinity or externalTrafficPolicy=Local (rare) get their own
chains: ``svc-<hash>-ns/name/proto/port`` with one
``dnat … numgen random mod N offset O map @endpoints-<proto>-SS`` rule over a block of a
sharded map, ``ext-…``/``svc-local-…`` chains, and for affinity kube-proxy's
per-endpoint chains with ``update @aff-… { ip saddr }`` sets. Anonymous per-rule maps
are avoided on the common path: the kernel names each one by scanning all sets of the
table (O(n^2) overall), and binding a rule to a map walks the map.
"""
from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from typing import Callable, Iterable

from kemu import nft
from kemu.api.network import SERVICE_CIDR

MASQ_MARK = 0x4000
ENDPOINT_SHARDS = {"tcp": 64, "udp": 16, "sctp": 4}  # endpoint map shards per protocol
DEFAULT_AFFINITY_TIMEOUT = 10800
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}

# Shared maps/sets of the skeleton: name -> nft spec
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
CLUSTER_IPS = "cluster-ips"
HAIRPIN = "hairpin"


def service_endpoints_map(proto: str) -> str:
    """Shared map: frontend ip . port . index -> endpoint ip . port."""
    return f"service-endpoints-{proto}"


def nodeport_endpoints_map(proto: str) -> str:
    """Shared map: nodePort . index -> endpoint ip . port."""
    return f"nodeport-endpoints-{proto}"


def shared_chains(proto: str, n: int, kind: str) -> dict[str, Chain]:
    """The chains shared by every Service port with ``n`` endpoints (kind: svc, ext, np)."""
    svc = f"svc-{proto}-n{n}"
    chains = {svc: Chain(svc, [f"meta l4proto {proto} dnat ip addr . port to ip daddr . {proto} dport . "
                               f"numgen random mod {n} map @{service_endpoints_map(proto)}"])}
    if kind == "ext":
        ext = f"ext-{proto}-n{n}"
        chains[ext] = Chain(ext, ["jump mark-for-masquerade", f"goto {svc}"])
        return chains
    if kind == "np":
        np_ = f"np-{proto}-n{n}"
        return {np_: Chain(np_, ["jump mark-for-masquerade",
                                 f"meta l4proto {proto} dnat ip addr . port to {proto} dport . "
                                 f"numgen random mod {n} map @{nodeport_endpoints_map(proto)}"])}
    return chains


def endpoint_map_name(proto: str, shard: int) -> str:
    """Name of endpoint map shard ``shard`` for ``proto`` (the map's typeof binds a protocol)."""
    return f"endpoints-{proto}-{shard:02d}"


@dataclass
class ProxyNode:
    """The node the proxy programs."""

    name: str
    node_ips: list[str]
    cluster_cidr: str
    service_cidr: str = SERVICE_CIDR
    table: str = "kemu-proxy"
    nodeport_addresses: list[str] | None = None


@dataclass
class Chain:
    """A chain of the proxy's table and its rules (nft syntax); a base chain names its hook."""

    name: str
    rules: list[str] = field(default_factory=list)
    hook: tuple[str, str, int] | None = None  # (type, hook, priority), e.g. ("nat", "prerouting", -100)

    def definition(self) -> nft.Chain:
        """The toolkit object that creates this chain."""
        if self.hook is None:
            return nft.Chain(self.name)
        type_, hook, priority = self.hook
        return nft.Chain(self.name, type=type_, hook=hook, priority=priority)


@dataclass
class Fragment:
    """Everything one Service contributes to the ruleset."""

    key: str
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, nft.Set] = field(default_factory=dict)   # and nft.Map
    elements: dict[tuple[str, str], str | None] = field(default_factory=dict)  # (set, key) -> value
    shared_chains: dict[str, Chain] = field(default_factory=dict)  # "svc-tcp-n3" etc., refcounted
    blocks: list[tuple[str, int, int]] = field(default_factory=list)  # (endpoint map, offset, size)
    udp_ports: list["UdpPort"] = field(default_factory=list)


@dataclass(frozen=True)
class UdpPort:
    """What conntrack cleanup needs to know about one UDP service port."""

    frontends: tuple[str, ...]
    node_port: int | None
    endpoint_ips: frozenset[str]


@dataclass
class Ruleset:
    """The complete desired state of the table."""

    table: str
    chains: dict[str, Chain] = field(default_factory=dict)
    sets: dict[str, nft.Set] = field(default_factory=dict)   # and nft.Map
    elements: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def add_fragment(self, frag: Fragment) -> None:
        """Merge a Service's fragment (first writer of an element key wins)."""
        self.chains.update(frag.shared_chains)
        self.chains.update(frag.chains)
        self.sets.update(frag.sets)
        for (set_name, key), value in frag.elements.items():
            self.elements.setdefault(set_name, {}).setdefault(key, value)

    def counts(self) -> dict[str, int]:
        """Numbers of chains, rules, sets and elements."""
        return {
            "chains": len(self.chains),
            "rules": sum(len(c.rules) for c in self.chains.values()),
            "sets": len(self.sets),
            "elements": sum(len(e) for e in self.elements.values()),
        }


Allocator = Callable[[str, int], int]  # (endpoint map, block size) -> offset


class SequentialAllocator:
    """Hands out endpoint-map offsets per shard; freed blocks are reused by size."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}
        self.free: dict[tuple[str, int], list[int]] = {}

    def __call__(self, shard: str, size: int) -> int:
        reuse = self.free.get((shard, size))
        if reuse:
            return reuse.pop()
        offset = self.next.get(shard, 0)
        self.next[shard] = offset + size
        return offset

    def release(self, shard: str, offset: int, size: int) -> None:
        """Give a block back."""
        self.free.setdefault((shard, size), []).append(offset)


def short_hash(text: str, n: int = 8) -> str:
    """Stable short identifier (kube-proxy style chain-name prefix)."""
    return hashlib.sha256(text.encode()).hexdigest()[:n].upper()


def shard_of(name: str, proto: str) -> int:
    """Endpoint-map shard for a chain."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % ENDPOINT_SHARDS[proto]


def base_ruleset(node: ProxyNode) -> Ruleset:
    """The fixed skeleton: base chains, dispatch maps, endpoint map shards."""
    rs = Ruleset(table=node.table)
    key3 = "ipv4_addr . inet_proto . inet_service : verdict"
    key2 = "inet_proto . inet_service : verdict"
    for sd in (
        nft.Map(SERVICE_IPS, type=key3),
        nft.Map(SERVICE_NODEPORTS, type=key2),
        nft.Map(NO_ENDPOINT_SERVICES, type=key3),
        nft.Map(NO_ENDPOINT_NODEPORTS, type=key2),
        nft.Set(CLUSTER_IPS, type="ipv4_addr"),
        nft.Set(HAIRPIN, type="ipv4_addr . ipv4_addr"),
    ):
        rs.sets[sd.name] = sd
    for proto in PROTOCOLS.values():
        name = service_endpoints_map(proto)
        rs.sets[name] = nft.Map(name, typeof=f"ip daddr . {proto} dport . numgen random mod 1 : "
                                             f"ip daddr . {proto} dport")
        name = nodeport_endpoints_map(proto)
        rs.sets[name] = nft.Map(name, typeof=f"{proto} dport . numgen random mod 1 : ip daddr . {proto} dport")
    for proto, shards in ENDPOINT_SHARDS.items():
        for shard in range(shards):
            name = endpoint_map_name(proto, shard)
            rs.sets[name] = nft.Map(name, typeof=f"numgen random mod 1 : ip daddr . {proto} dport")
    for name in rs.sets:
        rs.elements[name] = {}

    if node.nodeport_addresses:
        local = "ip daddr { " + ", ".join(node.nodeport_addresses) + " }"
    else:
        local = "fib daddr type local ip daddr != 127.0.0.0/8"
    cidr = node.cluster_cidr
    mark = f"meta mark set meta mark | {MASQ_MARK:#x}"
    chains = [
        Chain("nat-prerouting", ["jump services"], ("nat", "prerouting", -100)),
        Chain("nat-output", ["jump services"], ("nat", "output", -100)),
        Chain("nat-postrouting", ["jump masquerading"], ("nat", "postrouting", 100)),
        Chain("filter-input", ["ct state new jump nodeport-endpoints-check",
                               "ct state new jump service-endpoints-check"],
              ("filter", "input", -10)),
        Chain("filter-forward", ["ct state new jump service-endpoints-check",
                                 "ct state new jump cluster-ips-check"],
              ("filter", "forward", -10)),
        Chain("filter-output", ["ct state new jump service-endpoints-check",
                                "ct state new jump cluster-ips-check"],
              ("filter", "output", -10)),
        Chain("services", [
            f"ip daddr @{CLUSTER_IPS} ip saddr != {cidr} {mark}",
            f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
            f"{local} meta l4proto . th dport vmap @{SERVICE_NODEPORTS}",
        ]),
        Chain("service-endpoints-check", [f"ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"]),
        Chain("nodeport-endpoints-check", [f"{local} meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"]),
        Chain("cluster-ips-check", [f"ip daddr @{CLUSTER_IPS} goto reject-chain",
                                    f"ip daddr {node.service_cidr} drop"]),
        Chain("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"]),
        Chain("mark-for-masquerade", [mark]),
        Chain("masquerading", [
            f"ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade fully-random",
            f"meta mark & {MASQ_MARK:#x} == 0 return",
            f"meta mark set meta mark ^ {MASQ_MARK:#x}",
            "masquerade fully-random",
        ]),
    ]
    for c in chains:
        rs.chains[c.name] = c
    return rs


@dataclass(frozen=True)
class Endpoint:
    """One resolved backend of a service port."""

    ip: str
    port: int
    node: str | None


def _ready_endpoints(slices: Iterable[dict], port_name: str, protocol: str,
                     publish_not_ready: bool) -> list[Endpoint]:
    """Endpoints for one service port: ready ones, else serving+terminating ones."""
    ready: dict[tuple[str, int], Endpoint] = {}
    fallback: dict[tuple[str, int], Endpoint] = {}
    for es in slices:
        if es.get("addressType", "IPv4") != "IPv4":
            continue
        port = None
        for p in es.get("ports") or ():
            if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol:
                port = p.get("port")
        if port is None:
            continue
        port = int(port)
        for ep in es.get("endpoints") or ():
            cond = ep.get("conditions")
            is_ready = cond.get("ready") is not False if cond else True  # nil means ready
            if is_ready or publish_not_ready:
                target = ready
            elif cond.get("serving") is True and cond.get("terminating") is True:
                target = fallback
            else:
                continue
            node = ep.get("nodeName")
            for ip in ep.get("addresses") or ():
                target[(ip, port)] = Endpoint(ip, port, node)
    chosen = ready or fallback
    return sorted(chosen.values(), key=_endpoint_order)


def _endpoint_order(e: Endpoint) -> tuple[bytes, int]:
    return socket.inet_aton(e.ip), e.port


def _frontend_ips(svc: dict) -> tuple[list[str], list[str]]:
    """(cluster IPs, external IPs incl. LoadBalancer ingress) of a Service, IPv4 only."""
    spec = svc.get("spec") or {}
    cluster = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    external = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            if ing.get("ip"):
                external.append(ing["ip"])

    def v4(ips: list[str]) -> list[str]:
        out = []
        for ip in ips:
            if _is_ipv4(ip) and ip not in out:
                out.append(ip)
        return out
    return v4(cluster), v4(external)


def _is_ipv4(ip: str) -> bool:
    parts = ip.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def service_key(svc: dict) -> str:
    """"ns/name" of an object."""
    md = svc.get("metadata") or {}
    return f"{md.get('namespace', 'default')}/{md.get('name')}"


def build_fragment(svc: dict, slices: list[dict], node: ProxyNode, alloc: Allocator) -> Fragment:
    """Chains, sets and map elements for one Service (empty for headless/ExternalName)."""
    key = service_key(svc)
    frag = Fragment(key=key)
    spec = svc.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    cluster_ips, external_ips = _frontend_ips(svc)
    if stype == "ExternalName" or not cluster_ips:
        return frag
    node_ports_on = stype in ("NodePort", "LoadBalancer")
    affinity = spec.get("sessionAffinity") == "ClientIP"
    timeout = int((((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
                   .get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT))
    etp_local = spec.get("externalTrafficPolicy") == "Local" and (node_ports_on or external_ips)
    itp_local = spec.get("internalTrafficPolicy") == "Local"
    publish = bool(spec.get("publishNotReadyAddresses"))
    ns, name = key.split("/", 1)

    for cip in cluster_ips:
        frag.elements[(CLUSTER_IPS, cip)] = None

    for sp in spec.get("ports") or []:
        proto_k8s = sp.get("protocol", "TCP")
        proto = PROTOCOLS.get(proto_k8s)
        if proto is None:
            continue
        pname = sp.get("name") or ""
        port = int(sp["port"])
        node_port = int(sp["nodePort"]) if node_ports_on and sp.get("nodePort") else None
        eps = _ready_endpoints(slices, pname, proto_k8s, publish)
        local_eps = [e for e in eps if e.node == node.name]
        ident = f"{ns}/{name}/{proto}/{pname or port}"
        h = short_hash(ident)
        readable = f"{ns}/{name}/{proto}/{pname or port}"[:200]
        svc_chain = f"svc-{h}-{readable}"
        local_chain = f"svc-local-{h}-{readable}"
        ext_chain = f"ext-{h}-{readable}"
        has_external = bool(external_ips) or node_port is not None

        for e in eps:
            frag.elements[(HAIRPIN, f"{e.ip} . {e.ip}")] = None
        if not (affinity or etp_local):
            _fast_path(frag, proto, port, node_port, cluster_ips, external_ips,
                       local_eps if itp_local else eps, eps)
            if proto == "udp":
                frag.udp_ports.append(UdpPort(
                    frontends=tuple(cluster_ips + external_ips), node_port=node_port,
                    endpoint_ips=frozenset(e.ip for e in eps)))
            continue

        def endpoint_chain(chain: str, chosen: list[Endpoint]) -> None:
            frag.chains[chain] = Chain(chain, _dnat_rules(frag, chain, chosen, proto, affinity, timeout, alloc))

        # internal (ClusterIP) path
        internal_eps = local_eps if itp_local else eps
        for cip in cluster_ips:
            k = f"{cip} . {proto} . {port}"
            if internal_eps:
                frag.elements[(SERVICE_IPS, k)] = f"goto {svc_chain if not itp_local else local_chain}"
            else:
                frag.elements[(NO_ENDPOINT_SERVICES, k)] = "drop" if eps else "goto reject-chain"
        if eps and not itp_local:
            endpoint_chain(svc_chain, eps)
        if local_eps and (itp_local or etp_local):
            endpoint_chain(local_chain, local_eps)
        # external path: NodePort, externalIPs, LoadBalancer ingress
        if has_external:
            ext_keys = [(SERVICE_IPS, f"{ip} . {proto} . {port}") for ip in external_ips]
            if node_port is not None:
                ext_keys.append((SERVICE_NODEPORTS, f"{proto} . {node_port}"))
            if not eps:
                for set_name, k in ext_keys:
                    no_ep = NO_ENDPOINT_NODEPORTS if set_name == SERVICE_NODEPORTS else NO_ENDPOINT_SERVICES
                    frag.elements[(no_ep, k)] = "goto reject-chain"
            else:
                if etp_local:
                    if svc_chain not in frag.chains:
                        endpoint_chain(svc_chain, eps)
                    rules = [f"ip saddr {node.cluster_cidr} goto {svc_chain}",
                             "fib saddr type local jump mark-for-masquerade",
                             f"fib saddr type local goto {svc_chain}",
                             f"goto {local_chain}" if local_eps else "drop"]
                else:
                    if svc_chain not in frag.chains:
                        endpoint_chain(svc_chain, eps)
                    rules = ["jump mark-for-masquerade", f"goto {svc_chain}"]
                frag.chains[ext_chain] = Chain(ext_chain, rules)
                for set_name, k in ext_keys:
                    frag.elements[(set_name, k)] = f"goto {ext_chain}"
        if proto == "udp":
            frag.udp_ports.append(UdpPort(
                frontends=tuple(cluster_ips + external_ips), node_port=node_port,
                endpoint_ips=frozenset(e.ip for e in eps)))
    return frag


def _fast_path(frag: Fragment, proto: str, port: int, node_port: int | None, cluster_ips: list[str],
               external_ips: list[str], internal_eps: list[Endpoint], eps: list[Endpoint]) -> None:
    """Ordinary Service port: only map elements, pointing at chains shared by endpoint count."""
    emap = service_endpoints_map(proto)
    for cip in cluster_ips:
        k = f"{cip} . {proto} . {port}"
        if internal_eps:
            n = len(internal_eps)
            frag.shared_chains.update(shared_chains(proto, n, "svc"))
            frag.elements[(SERVICE_IPS, k)] = f"goto svc-{proto}-n{n}"
            for i, e in enumerate(internal_eps):
                frag.elements[(emap, f"{cip} . {port} . {i}")] = f"{e.ip} . {e.port}"
        else:
            frag.elements[(NO_ENDPOINT_SERVICES, k)] = "drop" if eps else "goto reject-chain"
    n = len(eps)
    for ip in external_ips:
        k = f"{ip} . {proto} . {port}"
        if eps:
            frag.shared_chains.update(shared_chains(proto, n, "ext"))
            frag.elements[(SERVICE_IPS, k)] = f"goto ext-{proto}-n{n}"
            for i, e in enumerate(eps):
                frag.elements[(emap, f"{ip} . {port} . {i}")] = f"{e.ip} . {e.port}"
        else:
            frag.elements[(NO_ENDPOINT_SERVICES, k)] = "goto reject-chain"
    if node_port is not None:
        k = f"{proto} . {node_port}"
        if eps:
            frag.shared_chains.update(shared_chains(proto, n, "np"))
            frag.elements[(SERVICE_NODEPORTS, k)] = f"goto np-{proto}-n{n}"
            for i, e in enumerate(eps):
                frag.elements[(nodeport_endpoints_map(proto), f"{node_port} . {i}")] = f"{e.ip} . {e.port}"
        else:
            frag.elements[(NO_ENDPOINT_NODEPORTS, k)] = "goto reject-chain"


def _dnat_rules(frag: Fragment, chain: str, eps: list[Endpoint], proto: str, affinity: bool,
                timeout: int, alloc: Allocator) -> list[str]:
    """Rules of a service chain: one map-driven DNAT, or kube-proxy style affinity chains."""
    if not affinity:
        shard = shard_of(chain, proto)
        emap = endpoint_map_name(proto, shard)
        offset = alloc(emap, len(eps))
        frag.blocks.append((emap, offset, len(eps)))
        for i, e in enumerate(eps):
            frag.elements[(emap, str(offset + i))] = f"{e.ip} . {e.port}"
        return [f"meta l4proto {proto} dnat ip addr . port to numgen random mod {len(eps)} "
                f"offset {offset} map @{emap}"]
    rules, targets = [], []
    tag = short_hash(chain)
    for e in eps:
        eid = short_hash(f"{chain}|{e.ip}:{e.port}")
        set_name = f"aff-{tag}-{eid}"
        ep_chain = f"sep-{tag}-{eid}-{e.ip}/{e.port}"
        frag.sets[set_name] = nft.Set(set_name, type="ipv4_addr", flags=("dynamic", "timeout"), timeout=timeout)
        frag.chains[ep_chain] = Chain(ep_chain, [
            f"update @{set_name} {{ ip saddr }}",
            f"meta l4proto {proto} dnat to {e.ip}:{e.port}",
        ])
        rules.append(f"ip saddr @{set_name} goto {ep_chain}")
        targets.append(ep_chain)
    vmap = ", ".join(f"{i} : goto {t}" for i, t in enumerate(targets))
    rules.append(f"numgen random mod {len(targets)} vmap {{ {vmap} }}")
    return rules


def slices_by_service(slices: Iterable[dict]) -> dict[str, list[dict]]:
    """Group EndpointSlices by "ns/service-name"."""
    out: dict[str, list[dict]] = {}
    for es in slices:
        md = es.get("metadata") or {}
        svc = (md.get("labels") or {}).get("kubernetes.io/service-name")
        if svc:
            out.setdefault(f"{md.get('namespace', 'default')}/{svc}", []).append(es)
    return out


def build_ruleset(services: list[dict], slices: list[dict], node: ProxyNode) -> Ruleset:
    """Full desired state for ``services`` and their ``slices``."""
    rs = base_ruleset(node)
    alloc = SequentialAllocator()
    grouped = slices_by_service(slices)
    for svc in sorted(services, key=service_key):
        rs.add_fragment(build_fragment(svc, grouped.get(service_key(svc), []), node, alloc))
    return rs


def full_transaction(rs: Ruleset, recreate: bool, stale_chains: tuple[str, ...] = (),
                     stale_sets: tuple[nft.Set, ...] = ()) -> nft.Transaction:
    """Transaction that makes the table equal ``rs``.

    recreate=True: delete and rebuild the table (first sync / repair after a failed
    resync). Otherwise flush-and-refill in place, keeping dynamic (affinity) sets' contents.
    """
    tx = nft.Transaction("ip", rs.table)
    tx.add(nft.Table())
    if recreate:
        tx.delete(nft.Table())
        tx.add(nft.Table())
    for s in rs.sets.values():
        tx.add(s)
    for c in rs.chains.values():
        tx.add(c.definition())
    if not recreate:
        for c in rs.chains.values():
            tx.flush(nft.Chain(c.name))
        for s in rs.sets.values():
            if not s.dynamic:
                tx.flush(s)
    for c in rs.chains.values():
        for r in c.rules:
            tx.add(nft.Rule(c.name, r))
    for set_name, elems in rs.elements.items():
        if elems:
            tx.add(nft.Elements(set_name, list(elems.items())))
    if not recreate:
        for name in stale_chains:
            tx.add(nft.Chain(name))
            tx.flush(nft.Chain(name))
        for name in stale_chains:
            tx.delete(nft.Chain(name))
        for s in stale_sets:
            tx.add(s)
            tx.delete(s)
    return tx
