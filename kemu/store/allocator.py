"""Range allocation by compare-and-swap: one key per claimed value, `<prefix><value>` → owner.

This is how the cluster hands out what must never be given twice — ClusterIPs and NodePorts (claimed in the same
transaction as the Service), pod CIDRs per node, LoadBalancer addresses: two concurrent claims of one value race on
the key's creation, and exactly one wins (the apiserver's allocators keep bitmaps; a key per value needs no lock).
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from kemu.store.base import Compare, Delete, Put, Store

REGISTRY_RANGES = "/registry/ranges/"


class RangeFull(RuntimeError):
    """No value of the range is free."""


class RangeAllocator:
    """The claimed values of one range under `prefix` (e.g. `/registry/ranges/podcidrs/`)."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def key(self, value: str) -> str:
        return self.prefix + value.replace("/", "-")     # a CIDR's slash would start a key level

    def owners(self) -> dict[str, str]:
        """key suffix → owner, for every claimed value."""
        kvs, _ = self.store.range(self.prefix)
        return {kv.key[len(self.prefix):]: kv.value.decode() for kv in kvs}

    def is_free(self, value: str) -> bool:
        return self.store.get(self.key(value)) is None

    def claim(self, value: str, owner: str) -> bool:
        """Take `value` for `owner`; False if someone holds it."""
        key = self.key(value)
        return self.store.txn([Compare(key, 0)], [Put(key, owner.encode())]).succeeded

    def claim_first(self, candidates: Iterable[str], owner: str) -> str | None:
        """The first candidate this call could claim, or None when every one is taken."""
        taken = set(self.owners())
        for value in candidates:
            if self.key(value)[len(self.prefix):] not in taken and self.claim(value, owner):
                return value
        return None

    def release(self, value: str) -> None:
        self.store.txn([], [Delete(self.key(value))])

    def release_owner(self, owner: str) -> None:
        """Free everything `owner` holds."""
        kvs, _ = self.store.range(self.prefix)
        for kv in kvs:
            if kv.value.decode() == owner:
                self.store.delete(kv.key, expect_mod_revision=kv.mod_revision)


POD_CIDRS = REGISTRY_RANGES + "podcidrs/"


def allocate_pod_cidr(store: Store, node: str, cluster_cidr: str, prefixlen: int) -> str:
    """The pod CIDR of `node`: the one it owns, else the lowest free subnet (the first, .0, is kept unused).

    A node asking again (agent restart, lab restart of a node) gets the CIDR it already owns.
    """
    cidrs = RangeAllocator(store, POD_CIDRS)
    subnets = [str(s) for s in list(ipaddress.ip_network(cluster_cidr).subnets(new_prefix=prefixlen))[1:]]
    for _ in range(len(subnets) + 10):
        mine = [suffix.replace("-", "/") for suffix, owner in cidrs.owners().items() if owner == node]
        if mine:
            return mine[0]
        got = cidrs.claim_first(subnets, node)
        if got is not None:
            return got
        if not any(cidrs.is_free(s) for s in subnets):
            raise RangeFull(f"no free /{prefixlen} left in {cluster_cidr} for node {node}")
    raise RangeFull(f"pod CIDR allocation for {node} kept conflicting")
