"""Mininet-style small classes, one per kernel object, for building labs from network namespaces."""
from __future__ import annotations

import os
import subprocess

from pyroute2 import NetNS, netns

NETNS_DIR = "/var/run/netns"


class Namespace:
    """A named network namespace (`ip netns` compatible, under /run/netns)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def create(self) -> "Namespace":
        netns.create(self.name)
        with self.ipr() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return self

    def delete(self) -> None:
        if self.exists():
            netns.remove(self.name)

    def ipr(self) -> NetNS:
        return NetNS(self.name)

    def sysctl(self, settings: dict[str, str | int]) -> None:
        """Set per-netns sysctls, e.g. {"net.ipv4.ip_forward": 1}."""
        args = [f"{k}={v}" for k, v in settings.items()]
        subprocess.run(["nsenter", f"--net={self.path}", "sysctl", "-qw", *args], check=True)

    def enter_argv(self, argv: list[str]) -> list[str]:
        """argv that runs inside this namespace (network only: /sys and cgroups stay visible)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    @staticmethod
    def list(prefix: str) -> list[str]:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)) if os.path.isdir(NETNS_DIR) else []


class Bridge:
    """A Linux bridge inside a namespace, optionally with an address."""

    def __init__(self, ns: Namespace, name: str) -> None:
        self.ns, self.name = ns, name

    def create(self, address: str | None = None, prefixlen: int = 24) -> "Bridge":
        with self.ns.ipr() as ipr:
            ipr.link("add", ifname=self.name, kind="bridge")
            idx = ipr.link_lookup(ifname=self.name)[0]
            if address:
                ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
            ipr.link("set", index=idx, state="up")
        return self


class VethPair:
    """A veth whose ends are born in their namespaces (never in the root namespace)."""

    def __init__(self, ns_a: Namespace, name_a: str, ns_b: Namespace, name_b: str) -> None:
        self.a, self.name_a, self.b, self.name_b = ns_a, name_a, ns_b, name_b

    def create(self, bridge: Bridge | None = None, address_b: str | None = None, prefixlen: int = 24,
               gateway_b: str | None = None) -> "VethPair":
        with self.a.ipr() as ipr:
            ipr.link("add", ifname=self.name_a, kind="veth", peer={"ifname": self.name_b, "net_ns_fd": self.b.name})
            idx = ipr.link_lookup(ifname=self.name_a)[0]
            if bridge is not None:
                ipr.link("set", index=idx, master=ipr.link_lookup(ifname=bridge.name)[0])
            ipr.link("set", index=idx, state="up")
        with self.b.ipr() as ipr:
            idx = ipr.link_lookup(ifname=self.name_b)[0]
            if address_b:
                ipr.addr("add", index=idx, address=address_b, prefixlen=prefixlen)
            ipr.link("set", index=idx, state="up")
            if gateway_b:
                ipr.route("add", dst="0.0.0.0/0", gateway=gateway_b)
        return self


def add_route(ns: Namespace, dst: str, gateway: str) -> None:
    with ns.ipr() as ipr:
        ipr.route("replace", dst=dst, gateway=gateway)
