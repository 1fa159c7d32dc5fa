"""Node IPAM: each node gets one /24 of the cluster CIDR, once, by compare-and-swap on an allocation key
(`/registry/ranges/podcidrs/<cidr>` → node name), the way the apiserver allocates ClusterIPs. A node asking again
(agent restart, lab restart of a node) gets the CIDR it already owns."""
from __future__ import annotations

import ipaddress

from kemu.api.meta import REGISTRY
from kemu.store import Compare, Put, Store

POD_CIDRS = REGISTRY + "ranges/podcidrs/"


class CIDRExhausted(RuntimeError):
    pass


def allocate_pod_cidr(store: Store, node: str, cluster_cidr: str = "10.244.0.0/16", prefixlen: int = 24) -> str:
    """The pod CIDR of `node`: the one it owns, else the lowest free subnet (the first, .0, is kept unused)."""
    subnets = list(ipaddress.ip_network(cluster_cidr).subnets(new_prefix=prefixlen))[1:]
    for _ in range(len(subnets) + 10):
        kvs, _ = store.range(POD_CIDRS)
        owners = {kv.key[len(POD_CIDRS):].replace("-", "/"): kv.value.decode() for kv in kvs}
        mine = [cidr for cidr, owner in owners.items() if owner == node]
        if mine:
            return mine[0]
        free = next((str(s) for s in subnets if str(s) not in owners), None)
        if free is None:
            raise CIDRExhausted(f"no free /{prefixlen} left in {cluster_cidr} for node {node}")
        key = POD_CIDRS + free.replace("/", "-")
        if store.txn([Compare(key, 0)], [Put(key, node.encode())]).succeeded:
            return free
    raise CIDRExhausted(f"pod CIDR allocation for {node} kept conflicting")


def release_pod_cidr(store: Store, node: str) -> None:
    """Free what `node` owns (when the Node is removed for good)."""
    kvs, _ = store.range(POD_CIDRS)
    for kv in kvs:
        if kv.value.decode() == node:
            store.delete(kv.key, expect_mod_revision=kv.mod_revision)
