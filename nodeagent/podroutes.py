"""Pod CIDRs of a node that joins through the API: the agent's side of node IPAM, and host-gw routes.

- `wait_pod_cidr`: a node whose config has no pod CIDR (a VM that joined with only an API address and a
  credential) registers its Node without `spec.podCIDR` and waits until the node IPAM controller
  (kemu.controllers.nodeipam) sets it, as kubelet waits for its podCIDR before the pod network is ready.
- `PodRoutes`: a route to every other Node's `spec.podCIDR` via its InternalIP, when that address is on one of this
  node's own subnets (flannel's host-gw backend, from the Node objects): what a lab programs for its own nodes, for
  nodes the lab does not know (NodeConfig.pod_routes = "host-gw"). It changes routes only in the network namespace
  the agent runs in (a lab node's, or a host-mode node's own).
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time

from pyroute2 import IPRoute

from kemu.client.informer import Informer

log = logging.getLogger("nodeagent.podroutes")
RESYNC_SECONDS = 30.0       # routes vanish with a link going down; re-assert them this often


def wait_pod_cidr(client, node_name: str, labels: dict[str, str], timeout: float | None = None) -> str:
    """Register Node `node_name` (if it does not exist) and return its spec.podCIDR once it is set."""
    if client.get("Node", None, node_name) is None:
        try:
            client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node_name, "labels": labels}})
        except Exception as exc:      # created meanwhile (a restart racing itself): read it below
            log.info("registering %s: %s", node_name, exc)
    deadline = None if timeout is None else time.monotonic() + timeout
    said = 0.0
    while True:
        node = client.get("Node", None, node_name) or {}
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            log.info("node %s: pod CIDR %s", node_name, cidr)
            return cidr
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"node {node_name}: no spec.podCIDR after {timeout:.0f}s (is the controller-manager "
                               "with node IPAM running?)")
        if time.monotonic() - said > 10:
            log.info("node %s: waiting for the node IPAM controller to set spec.podCIDR", node_name)
            said = time.monotonic()
        time.sleep(0.05)


def _peer(node: dict | None) -> tuple[str, str] | None:
    """(pod CIDR, InternalIP) of a Node, if it has both."""
    if not node:
        return None
    cidr = (node.get("spec") or {}).get("podCIDR")
    ip = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
               if a.get("type") == "InternalIP"), None)
    return (cidr, ip) if cidr and ip else None


class PodRoutes:
    """Keeps `<peer podCIDR> via <peer InternalIP>` for every other Node on a directly connected subnet."""

    def __init__(self, client, node_name: str, node_ip: str) -> None:
        self.node_name, self.node_ip = node_name, node_ip
        self.informer = Informer(client, "Node", self._on_node)
        self.applied: dict[str, tuple[str, str]] = {}      # node name → (cidr, gateway) routed
        self._wake = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> "PodRoutes":
        self.informer.start()
        threading.Thread(target=self._loop, name="pod-routes", daemon=True).start()
        return self

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        if _peer(old) != _peer(new):
            self._wake.set()

    def _local_networks(self, ipr: IPRoute) -> list[ipaddress.IPv4Network]:
        nets = []
        for addr in ipr.get_addr(family=2):
            ip = addr.get_attr("IFA_ADDRESS")
            if ip:
                nets.append(ipaddress.ip_interface(f"{ip}/{addr['prefixlen']}").network)
        return nets

    def desired(self, ipr: IPRoute) -> dict[str, tuple[str, str]]:
        local = self._local_networks(ipr)
        out = {}
        for node in self.informer.items():
            name, peer = node["metadata"]["name"], _peer(node)
            if name == self.node_name or peer is None or peer[1] == self.node_ip:
                continue
            if any(ipaddress.ip_address(peer[1]) in net and net.prefixlen < 32 for net in local):
                out[name] = peer
        return out

    def sync(self) -> None:
        with self._lock, IPRoute() as ipr:
            want = self.desired(ipr)
            for name, (cidr, gateway) in list(self.applied.items()):
                if want.get(name) != (cidr, gateway):
                    try:
                        ipr.route("del", dst=cidr, gateway=gateway)
                    except Exception:     # already gone (the link went down)
                        pass
                    del self.applied[name]
            for name, (cidr, gateway) in want.items():
                try:
                    ipr.route("replace", dst=cidr, gateway=gateway)
                except Exception as exc:
                    log.warning("route %s via %s (node %s): %s", cidr, gateway, name, exc)
                    continue
                if self.applied.get(name) != (cidr, gateway):
                    log.info("route %s via %s (node %s)", cidr, gateway, name)
                self.applied[name] = (cidr, gateway)

    def _loop(self) -> None:
        self.informer.synced.wait()
        while True:
            try:
                self.sync()
            except Exception:
                log.exception("pod route sync failed")
            self._wake.wait(RESYNC_SECONDS)
            self._wake.clear()
