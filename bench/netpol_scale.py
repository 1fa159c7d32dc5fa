#!/usr/bin/env python3
"""NetworkPolicy enforcer scale benchmark (root; everything inside network namespaces it creates and removes).

Topology: a node netns `kemu-bnp-<pid>-node` (bridge kemu0 10.244.0.1/16, bridge-nf-call-iptables=1) with two real
pod netns on it (`-a` 10.244.0.12, `-b` 10.244.0.11, a TCP listener in b). The enforcer (netpol.Enforcer on
libnftables, in-process: this process's main thread enters the node netns) is fed N namespaces x 100 pods
(10k pod IPs, all local to the node: the worst case for its maps) and 10 policies per namespace:
  p0 default-deny ingress; p1..p8 `app=k` ingress from `app=k+1` on port 80 / named port http / 8000-8100;
  p9 `app=9` egress to namespaces `team=<t>` on UDP 53 and to 10.0.0.0/8 except 10.96.0.0/12.
Real pods: b is app=1 (selected by p0+p1), a is app=2 (allowed to b by p1).

Measures
  full load      build (Python) + one transaction (libnftables) for 1k policies / 10k pod IPs
  change         event -> transaction committed, for a pod relabel (a: app=2 <-> app=3, flips a->b) and a policy
                 update (p1's port 80 <-> 81); every change is verified by a real TCP connect a->b (refused/accepted)
  connect        TCP connect a->b (Python client, allowed path) with no table, 0 policies, 1k policies

Usage: python bench/netpol_scale.py [--namespaces 100] [--changes 200] [--connects 2000] [--quick]
Prints a table and a final JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kemu.api.defaults import apply_defaults  # noqa: E402
from kemu.lab.netns import Bridge, Namespace, VethPair  # noqa: E402
from kemu.nft import LibNftBackend  # noqa: E402
from netpol.enforcer import Enforcer  # noqa: E402
from netpol.ruleset import FAMILY, NetpolNode  # noqa: E402
from runtime.linux import setns  # noqa: E402

PODS_PER_NS = 100
POD_CIDR = "10.244.0.0/16"
B_INDEX, A_INDEX = 1, 2          # ns0 pods: b app=1, a app=2
PORT = 80


def pod_ip(i: int) -> str:
    n = 10 + i
    return f"10.244.{n // 256}.{n % 256}"


def pod(ns: int, j: int, app: int | None = None) -> dict:
    i = ns * PODS_PER_NS + j
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{j}", "namespace": f"ns{ns}", "labels": {"app": str(j % 10 if app is None else app)}},
            "spec": {"nodeName": "bench", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 80, "protocol": "TCP"}]}]},
            "status": {"podIP": pod_ip(i), "phase": "Running"}}


def namespace(ns: int) -> dict:
    return apply_defaults({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": f"ns{ns}", "labels": {"team": f"t{ns % 7}"}}})


def policies(ns: int, p1_port: int = PORT) -> list[dict]:
    out = [{"podSelector": {}}]
    for k in range(1, 9):
        ports = [{"port": p1_port if k == 1 else 80}] if k % 3 == 1 else \
            [{"port": "http"}] if k % 3 == 2 else [{"port": 8000, "endPort": 8100}]
        out.append({"podSelector": {"matchLabels": {"app": str(k)}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": str(k + 1)}}}], "ports": ports}]})
    out.append({"podSelector": {"matchLabels": {"app": "9"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": f"t{ns % 7}"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}]},
                           {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}]}]})
    return [apply_defaults({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": f"pol{k}", "namespace": f"ns{ns}"}, "spec": spec})
            for k, spec in enumerate(out)]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


class Bed:
    """Node netns with a bridge and pods a, b (real veths); this process's main thread lives in the node netns."""

    def __init__(self) -> None:
        prefix = f"kemu-bnp-{os.getpid()}-"
        self.node, self.a, self.b = (Namespace(prefix + n) for n in ("node", "a", "b"))
        self.listener: socket.socket | None = None

    def up(self) -> None:
        for ns in (self.node, self.a, self.b):
            ns.create()
        self.node.sysctl({"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1})
        br = Bridge(self.node, "kemu0").create("10.244.0.1", 16)
        VethPair(self.node, "veth-a", self.a, "eth0").create(br, pod_ip(A_INDEX), 16, "10.244.0.1")
        VethPair(self.node, "veth-b", self.b, "eth0").create(br, pod_ip(B_INDEX), 16, "10.244.0.1")
        self.listener = self.socket_in(self.b, 1)[0]
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("0.0.0.0", PORT))
        self.listener.listen(4096)
        threading.Thread(target=self._accept, daemon=True).start()
        setns(self.node.path, "net")          # the enforcer's libnftables now talks to the node netns

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            conn.close()

    @staticmethod
    def socket_in(ns: Namespace, n: int) -> list[socket.socket]:
        """n TCP sockets made inside ``ns`` by a short-lived thread (the caller's thread keeps its netns)."""
        out: list[socket.socket] = []

        def make() -> None:
            setns(ns.path, "net")
            out.extend(socket.socket() for _ in range(n))
        t = threading.Thread(target=make)
        t.start()
        t.join()
        return out

    def connect_ab(self, n: int = 1) -> tuple[list[float], int]:
        """n connects a → b: (latencies of successes, failures)."""
        lat, fails = [], 0
        for s in self.socket_in(self.a, n):
            s.settimeout(1.0)
            t = time.perf_counter()
            try:
                s.connect((pod_ip(B_INDEX), PORT))
                lat.append(time.perf_counter() - t)
            except OSError:
                fails += 1
            finally:
                s.close()
        return lat, fails

    def down(self) -> None:
        if self.listener:
            self.listener.close()
        for ns in (self.a, self.b, self.node):
            if ns.exists():
                ns.delete()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--connects", type=int, default=2000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.namespaces, args.changes, args.connects = 10, 40, 300
    if os.geteuid() != 0:
        print("netpol_scale: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    bed = Bed()
    res: dict = {"namespaces": args.namespaces, "pods": args.namespaces * PODS_PER_NS,
                 "policies": args.namespaces * 10}
    try:
        bed.up()
        lat, fails = bed.connect_ab(args.connects)
        res["connect_no_table_us"] = {"p50": pct(lat, .5) * 1e6, "p99": pct(lat, .99) * 1e6, "fails": fails}

        backend = LibNftBackend()
        node = NetpolNode("bench", ("192.168.56.11",), POD_CIDR, table="kemu-netpol")
        enf = Enforcer(node, backend)
        for ns in range(args.namespaces):
            enf.on_namespace(f"ns{ns}", namespace(ns))
            for j in range(PODS_PER_NS):
                enf.on_pod(f"ns{ns}/p{j}", pod(ns, j))
        enf.sync()
        lat, fails = bed.connect_ab(args.connects)
        res["connect_0_policies_us"] = {"p50": pct(lat, .5) * 1e6, "p99": pct(lat, .99) * 1e6, "fails": fails}

        # full load: feed 1k policies, then one recreate of the table
        t0 = time.perf_counter()
        for ns in range(args.namespaces):
            for p in policies(ns):
                enf.on_policy(f"ns{ns}/{p['metadata']['name']}", p)
        t_model = time.perf_counter() - t0
        t1 = time.perf_counter()
        full = enf.full_sync()
        t_apply = time.perf_counter() - t1
        assert full.kind == "full", full
        res["full_load_s"] = {"model": t_model, "apply": t_apply, "total": t_model + t_apply, "ops": full.ops,
                              **enf.counts()}
        _, fails = bed.connect_ab(1)
        assert fails == 0, "a (app=2) may reach b (app=1) under p1"

        lat, fails = bed.connect_ab(args.connects)
        res["connect_1k_policies_us"] = {"p50": pct(lat, .5) * 1e6, "p99": pct(lat, .99) * 1e6, "fails": fails}

        # changes, each verified by a real connect
        relabel, policy_change, wrong = [], [], 0
        for i in range(args.changes):
            app = 3 if i % 2 == 0 else 2          # app=3: not allowed by p1
            t = time.perf_counter()
            enf.on_pod(f"ns0/p{A_INDEX}", pod(0, A_INDEX, app))
            r = enf.sync()
            relabel.append(time.perf_counter() - t)
            assert r.kind == "partial", r
            _, fails = bed.connect_ab(1)
            wrong += (fails == 1) != (app == 3)
        for i in range(args.changes):
            port = 81 if i % 2 == 0 else PORT     # p1 allowing port 81 only: a -> b:80 refused
            t = time.perf_counter()
            enf.on_policy("ns0/pol1", policies(0, p1_port=port)[1])
            r = enf.sync()
            policy_change.append(time.perf_counter() - t)
            assert r.kind == "partial", r
            _, fails = bed.connect_ab(1)
            wrong += (fails == 1) != (port == 81)
        res["relabel_ms"] = {"p50": pct(relabel, .5) * 1e3, "p99": pct(relabel, .99) * 1e3,
                             "max": max(relabel) * 1e3}
        res["policy_change_ms"] = {"p50": pct(policy_change, .5) * 1e3, "p99": pct(policy_change, .99) * 1e3,
                                   "max": max(policy_change) * 1e3}
        res["changes_verified"] = 2 * args.changes - wrong
        res["changes_wrong"] = wrong
        res["connect_added_us_p50"] = res["connect_1k_policies_us"]["p50"] - res["connect_no_table_us"]["p50"]
        backend.run(__import__("kemu.nft", fromlist=["Transaction"]).Transaction(FAMILY, node.table)
                    .add(__import__("kemu.nft", fromlist=["Table"]).Table())
                    .delete(__import__("kemu.nft", fromlist=["Table"]).Table()))
    finally:
        bed.down()
    f = res["full_load_s"]
    print(f"pods {res['pods']}, policies {res['policies']}: chains {f['chains']} rules {f['rules']} sets {f['sets']} "
          f"elements {f['elements']}")
    print(f"full load: model {f['model']:.3f} s + apply {f['apply']:.3f} s = {f['total']:.3f} s ({f['ops']} ops)")
    for k in ("relabel_ms", "policy_change_ms"):
        print(f"{k[:-3]:>14}: p50 {res[k]['p50']:.2f} ms  p99 {res[k]['p99']:.2f} ms  max {res[k]['max']:.2f} ms")
    print(f"changes verified by a real connect: {res['changes_verified']}/{2 * args.changes}")
    for k in ("connect_no_table_us", "connect_0_policies_us", "connect_1k_policies_us"):
        print(f"{k[:-3]:>22}: p50 {res[k]['p50']:.1f} us  p99 {res[k]['p99']:.1f} us  fails {res[k]['fails']}")
    print(f"added per new connection (p50, 1k policies vs no table): {res['connect_added_us_p50']:.1f} us")
    print(json.dumps(res))
    return 0 if res["changes_wrong"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
