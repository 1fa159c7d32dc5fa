"""The LoadBalancer controller (the cloud-provider / MetalLB role): gives each `type: LoadBalancer` Service an
address from a pool and writes it to `status.loadBalancer.ingress`; the proxies then DNAT it like a ClusterIP.

Addresses are claimed with compare-and-swap keys `/registry/ranges/loadbalancerips/<ip>` (as the apiserver's
allocators do) and released when the Service is deleted or stops being a LoadBalancer. In a lab the pool is routed
from the `client` host to the nodes (ECMP, like MetalLB's BGP mode): see kemu/lab/__init__.py.
"""
from __future__ import annotations

import ipaddress
import logging

from kemu.api.network import LB_POOL
from kemu.client import Client, Conflict
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue
from kemu.store.allocator import REGISTRY_RANGES, RangeAllocator

log = logging.getLogger(__name__)
LB_IPS = REGISTRY_RANGES + "loadbalancerips/"


class LoadBalancerController:
    def __init__(self, client: Client, pool: str = LB_POOL) -> None:
        self.client = client
        self.addresses = RangeAllocator(client.store, LB_IPS)
        self.pool = ipaddress.ip_network(pool)
        self.events = EventRecorder(client, "service-lb-controller")
        self.queue = WorkQueue("loadbalancer", self.sync, self._sync_failed)
        self.services = Informer(client, "Service", lambda key, old, new: self.queue.add(key))

    def _sync_failed(self, key: str, exc: Exception) -> None:
        svc = self.services.cache.get(key)
        if svc is not None:
            self.events.record(svc, "Warning", "SyncLoadBalancerFailed", f"Error syncing load balancer: {exc}")

    def start(self) -> None:
        self.queue.start()
        self.services.start()
        self.services.synced.wait(10)
        self.queue.add("gc")

    def _owned(self) -> dict[str, str]:
        """ip -> service key, for every claimed address."""
        return self.addresses.owners()

    def sync(self, key: str) -> None:
        owned = self._owned()
        if key == "gc" or key not in self.services.cache:
            released = False
            for ip, owner in owned.items():   # release what deleted (or no longer LoadBalancer) Services held
                svc = self.services.cache.get(owner)
                if svc is None or svc["spec"].get("type") != "LoadBalancer":
                    self.addresses.release(ip)
                    released = True
            if released or key == "gc":
                self._retry_waiting()
            return
        svc = self.services.cache[key]
        mine = sorted(ip for ip, owner in owned.items() if owner == key)
        if svc["spec"].get("type") != "LoadBalancer":
            for ip in mine:
                self.addresses.release(ip)
            if mine:
                self._retry_waiting()
            if (svc.get("status") or {}).get("loadBalancer", {}).get("ingress"):
                self._set_ingress(svc, [])
            return
        if not mine:
            ip = self._claim(svc, key, set(owned))
            if ip is None:
                return
            mine = [ip]
        current = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        if current != mine[:1]:
            self._set_ingress(svc, mine[:1])

    def _retry_waiting(self) -> None:
        """Addresses were freed: LoadBalancer Services still without one get another try."""
        for key, svc in list(self.services.cache.items()):
            if svc["spec"].get("type") == "LoadBalancer" and not (svc.get("status") or {}).get(
                    "loadBalancer", {}).get("ingress"):
                self.queue.add(key)

    def _claim(self, svc: dict, key: str, taken: set[str]) -> str | None:
        wanted = svc["spec"].get("loadBalancerIP")
        candidates = [wanted] if wanted else [str(ip) for ip in self.pool.hosts()]
        if not wanted or ipaddress.ip_address(wanted) in self.pool:
            ip = self.addresses.claim_first((c for c in candidates if c not in taken), key)
            if ip is not None:
                return ip
        message = (f"spec.loadBalancerIP {wanted} is taken or outside the pool {self.pool}" if wanted
                   else f"no free address in the pool {self.pool}")
        self.events.record(svc, "Warning", "AllocationFailed", message)
        return None

    def _set_ingress(self, svc: dict, ips: list[str]) -> None:
        def mutate(live: dict) -> None:
            live.setdefault("status", {})["loadBalancer"] = {"ingress": [{"ip": ip, "ipMode": "VIP"} for ip in ips]}
        try:
            self.client.mutate("Service", svc["metadata"]["namespace"], svc["metadata"]["name"], mutate)
        except Conflict:
            self.queue.add(f"/registry/services/{svc['metadata']['namespace']}/{svc['metadata']['name']}")
        if ips:
            self.events.record(svc, "Normal", "IPAllocated", f"Assigned IP [\"{ips[0]}\"]")
