"""The node IPAM controller (kube-controller-manager's `--allocate-node-cidrs`): a Node that registers without
`spec.podCIDR` gets the next free /24 of the cluster CIDR, claimed with a compare-and-swap allocation key
(kemu.store.allocator.allocate_pod_cidr; the same keys a lab claims for its own nodes before they start), so a
node that joined through the API server needs nothing but its credential to get a pod network."""
from __future__ import annotations

import logging

from kemu.api.network import CLUSTER_CIDR, NODE_CIDR_PREFIX
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue
from kemu.store.allocator import allocate_pod_cidr

log = logging.getLogger(__name__)


class NodeIpamController:
    def __init__(self, client: Client, cluster_cidr: str = CLUSTER_CIDR, prefixlen: int = NODE_CIDR_PREFIX) -> None:
        self.client, self.cluster_cidr, self.prefixlen = client, cluster_cidr, prefixlen
        self.queue = WorkQueue("nodeipam", self.sync)
        self.nodes = Informer(client, "Node", self._on_node)

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None and not (new.get("spec") or {}).get("podCIDR"):
            self.queue.add(new["metadata"]["name"])

    def start(self) -> None:
        self.queue.start()
        self.nodes.start()

    def sync(self, name: str) -> None:
        node = self.client.get("Node", None, name)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return
        cidr = allocate_pod_cidr(self.client.store, name, self.cluster_cidr, self.prefixlen)

        def assign(obj: dict) -> bool | None:
            spec = obj.setdefault("spec", {})
            if spec.get("podCIDR"):
                return False
            spec["podCIDR"], spec["podCIDRs"] = cidr, [cidr]
            return None
        if self.client.mutate("Node", None, name, assign) is not None:
            log.info("node %s: pod CIDR %s", name, cidr)
