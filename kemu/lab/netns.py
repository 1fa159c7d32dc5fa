"""Mininet-style small classes, one per kernel object, for building labs from network namespaces.

The one netns toolkit: the lab, the CNI test bed and the proxy test bed build their topologies
with it. Commands run inside a namespace through ``nsenter --net=`` (never ``ip netns exec``: it
remounts /sys and hides /sys/fs/cgroup); in-process entry is ``runtime.linux.setns``. The CNI
plugin keeps its own netlink/setns code (cni/netlink.py, cni/netns.py): its start-up is its latency.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess

from pyroute2 import NetlinkError, NetNS, netns
from pyroute2 import config as pyroute2_config

from kemu.nft import Chain, NftCliBackend, Rule, Table, Transaction

NETNS_DIR = "/var/run/netns"
# NetNS talks to a forked helper; its 2 s default answer timeout fails lab setup on a loaded machine
pyroute2_config.default_communicate_timeout = max(pyroute2_config.default_communicate_timeout, 30)


class Namespace:
    """A named network namespace (`ip netns` compatible, under /run/netns)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    def create(self) -> "Namespace":
        """Create it with ``lo`` up (removed again if that fails)."""
        netns.create(self.name)
        try:
            with self.ipr() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        except BaseException:
            self.delete()
            raise
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

    def run(self, *argv: str, input: bytes | str | None = None, check: bool = True, timeout: float | None = None,
            text: bool = False) -> subprocess.CompletedProcess:
        """Run ``argv`` in this namespace and wait; output captured."""
        return subprocess.run(self.enter_argv(list(argv)), input=input, capture_output=True, check=check,
                              timeout=timeout, text=text)

    def popen(self, *argv: str, **kw) -> subprocess.Popen:
        """Start ``argv`` in this namespace (Popen keywords pass through); the caller reaps it."""
        return subprocess.Popen(self.enter_argv(list(argv)), **kw)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``ip -n <name> args`` (the ip tool's own view of the namespace)."""
        return subprocess.run(["ip", "-n", self.name, *args], capture_output=True, check=check)

    def ipj(self, *args: str) -> list:
        """``ip -j`` output, decoded."""
        out = subprocess.run(["ip", "-j", "-n", self.name, *args], capture_output=True, check=True).stdout
        return json.loads(out or b"[]")

    def links(self) -> dict[str, dict]:
        """Interfaces by name (``ip -d link show``)."""
        return {link["ifname"]: link for link in self.ipj("-d", "link", "show")}

    def addrs(self, dev: str) -> list[str]:
        """IPv4 addresses of ``dev`` as "a.b.c.d/len"."""
        return [f"{a['local']}/{a['prefixlen']}" for link in self.ipj("addr", "show", "dev", dev)
                for a in link.get("addr_info", []) if a["family"] == "inet"]

    def routes(self) -> list[dict]:
        return self.ipj("route", "show")

    def nft(self) -> NftCliBackend:
        """An nftables backend acting in this namespace (the ``nft`` program through nsenter)."""
        return NftCliBackend(self.enter_argv(["nft"]))

    def nft_tables(self) -> list[str]:
        """``family name`` lines of ``nft list tables``."""
        out = self.run("nft", "list", "tables", text=True).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

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
               gateway_b: str | None = None, address_a: str | None = None, hairpin: bool = False) -> "VethPair":
        """Both ends up; end a optionally a port of ``bridge`` (``hairpin``: frames may leave by the port they
        came in, like a CNI bridge's hairpinMode) and/or addressed; end b optionally addressed with a default
        route via ``gateway_b``."""
        with self.a.ipr() as ipr:
            ipr.link("add", ifname=self.name_a, kind="veth", peer={"ifname": self.name_b, "net_ns_fd": self.b.name})
            idx = ipr.link_lookup(ifname=self.name_a)[0]
            if bridge is not None:
                ipr.link("set", index=idx, master=ipr.link_lookup(ifname=bridge.name)[0])
                if hairpin:
                    ipr.brport("set", index=idx, mode=1)   # IFLA_BRPORT_MODE = BRIDGE_MODE_HAIRPIN
            if address_a:
                ipr.addr("add", index=idx, address=address_a, prefixlen=prefixlen)
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


def set_link(ns: Namespace, ifname: str, up: bool) -> None:
    """Bring an interface up or down (a "cut cable")."""
    with ns.ipr() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up" if up else "down")


def link_is_up(ns: Namespace, ifname: str) -> bool:
    with ns.ipr() as ipr:
        return ipr.get_links(ipr.link_lookup(ifname=ifname)[0])[0].get("state") == "up"


class Vxlan:
    """A flannel-style VXLAN device (no learning): peers are programmed statically as FDB + ARP + route entries."""

    def __init__(self, ns: Namespace, name: str = "kemu.1", vni: int = 1, port: int = 8472) -> None:
        self.ns, self.name, self.vni, self.port = ns, name, vni, port

    def exists(self) -> bool:
        with self.ns.ipr() as ipr:
            return bool(ipr.link_lookup(ifname=self.name))

    def create(self, local_ip: str, underlay: str, mac: str, address: str, mtu: int = 1450) -> "Vxlan":
        with self.ns.ipr() as ipr:
            ipr.link("add", ifname=self.name, kind="vxlan", vxlan_id=self.vni, vxlan_port=self.port,
                     vxlan_local=local_ip, vxlan_link=ipr.link_lookup(ifname=underlay)[0], vxlan_learning=0,
                     address=mac, mtu=mtu)
            idx = ipr.link_lookup(ifname=self.name)[0]
            ipr.addr("add", index=idx, address=address, prefixlen=32)
            ipr.link("set", index=idx, state="up")
        return self

    def add_peer(self, pod_cidr: str, vtep_ip: str, vtep_mac: str, node_ip: str) -> None:
        """Reach `pod_cidr` through the peer VTEP (vtep_ip/vtep_mac) living on the host at `node_ip`."""
        from pyroute2.netlink.rtnl import ndmsg
        with self.ns.ipr() as ipr:
            idx = ipr.link_lookup(ifname=self.name)[0]
            try:   # pyroute2's fdb "replace" is refused by vxlan (EOPNOTSUPP); the entry never changes anyway
                ipr.fdb("add", ifindex=idx, lladdr=vtep_mac, dst=node_ip)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            ipr.neigh("replace", dst=vtep_ip, lladdr=vtep_mac, ifindex=idx, state=ndmsg.states["permanent"])
            ipr.route("replace", dst=pod_cidr, gateway=vtep_ip, oif=idx, flags=4)   # RTNH_F_ONLINK


def keep_pod_sources(ns: Namespace, cluster_cidr: str, local_cidr: str) -> None:
    """Pod → remote pod traffic keeps its pod source IP: an identity SNAT that runs before the CNI plugin's ipMasq
    (which only exempts the node's own pod CIDR), so no later masquerade applies. Hairpin traffic (local
    destinations) is left to the proxy. Table ``ip kemu-podnet``, rewritten whole (idempotent)."""
    chain = Chain("postrouting", type="nat", hook="postrouting", priority="srcnat - 1", policy="accept")
    tx = Transaction("ip", "kemu-podnet")
    tx.add(Table())
    tx.flush(Table())
    tx.add(chain)
    tx.add(Rule(chain.name, f"ip saddr {local_cidr} ip daddr {cluster_cidr} ip daddr != {local_cidr} "
                            "snat to ip saddr"))
    ns.nft().run(tx)


def add_multipath_route(ns: Namespace, dst: str, gateways: list[str]) -> None:
    """An ECMP route to `dst` spread over `gateways` (a single gateway is a plain route)."""
    with ns.ipr() as ipr:
        if len(gateways) == 1:
            ipr.route("replace", dst=dst, gateway=gateways[0])
        else:
            ipr.route("replace", dst=dst, multipath=[{"gateway": gw} for gw in gateways])
