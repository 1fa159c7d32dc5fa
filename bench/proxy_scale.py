#!/usr/bin/env python3
"""Service proxy scale benchmark (root; everything inside namespaces it creates).

Compares, in one run and one topology (kemu/testing/proxybed.py):
  kemu     - this proxy (proxy.Proxier via libnftables, one transaction per sync)
  kube     - kube-proxy's nftables layout: service-ips verdict map -> a chain per Service
             port with `numgen random mod N vmap {...}` -> a chain per endpoint (loaded with nft -f)
  linear   - iptables-style layout: one linear list of `ip daddr X tcp dport P goto svc`
             rules, each service chain a probability cascade of DNAT rules (nft -f)
Measures full load/sync time, one-Service change time, object counts, new-connection
latency (TCP connect to the last-created Service from a pod) at 10 and N Services,
and iperf3 throughput through a ClusterIP vs the pod IP.

Usage: python bench/proxy_scale.py [--sizes 1000,10000] [--kube-sizes 1000,2000,5000,10000] [--quick]
Full loads of the anchors use `nft -f` (wall clock incl. the nft process); one-Service
changes of all three go through libnftables in-process, so they compare like for like.
Prints a table and a final JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kemu.testing.proxybed import PY, Testbed  # noqa: E402

EPS_PER_SVC = 10
LISTEN_PORTS = list(range(9000, 9000 + EPS_PER_SVC))
CIDR = "10.244.0.0/16"

LISTENER = r'''
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(4096)
    while True:
        c, _ = s.accept(); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''

CONNECT = r'''
import json, socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lat, errors = [], 0
for _ in range(n):
    t = time.perf_counter()
    try:
        s = socket.create_connection((ip, port), timeout=1)
        lat.append(time.perf_counter() - t)
        s.close()
    except OSError:
        errors += 1
        if errors > 20:
            break
print(json.dumps({"lat": lat, "errors": errors}))
'''

LOADER = r'''
import json, sys, time, nftables
nft = nftables.Nftables()
out = []
for path in sys.argv[1:]:
    script = open(path).read()
    t = time.perf_counter()
    rc, _, err = nft.cmd(script)
    out.append({"s": time.perf_counter() - t, "rc": rc, "err": err[:300]})
print(json.dumps(out))
'''


def vip(i: int) -> str:
    return f"10.96.{i // 250}.{i % 250 + 1}"


def endpoints(pod_ips: list[str]) -> list[tuple[str, int]]:
    """10 real listeners: pods 2 and 3 on ports 9000-9009 (pod 1 is the client, so no hairpin)."""
    backends = pod_ips[1:]
    return [(backends[j % len(backends)], LISTEN_PORTS[j]) for j in range(EPS_PER_SVC)]


def k8s_objects(n: int, pod_ips: list[str], start: int = 0) -> list[dict]:
    eps = endpoints(pod_ips)
    objs = []
    for i in range(start, start + n):
        name = f"svc{i}"
        objs.append({"kind": "Service", "metadata": {"name": name, "namespace": "bench"},
                     "spec": {"type": "ClusterIP", "clusterIP": vip(i), "clusterIPs": [vip(i)],
                              "ports": [{"name": "p", "protocol": "TCP", "port": 80, "targetPort": "p"}]}})
        # one slice per endpoint port (ports differ per endpoint here)
        for j, (ip, port) in enumerate(eps):
            objs.append({"kind": "EndpointSlice",
                         "metadata": {"name": f"{name}-{j}", "namespace": "bench",
                                      "labels": {"kubernetes.io/service-name": name}},
                         "addressType": "IPv4",
                         "endpoints": [{"addresses": [ip], "nodeName": "node-1", "conditions": {"ready": True}}],
                         "ports": [{"name": "p", "port": port, "protocol": "TCP"}]})
    return objs


# ------------------------------------------------------------------ anchors (text for nft -f)

def kube_layout(n: int, pod_ips: list[str], table: str = "kube-bench") -> tuple[str, dict]:
    """kube-proxy nftables mode's layout (chains per service port and per endpoint)."""
    T = f"ip {table}"
    eps = endpoints(pod_ips)
    out = [f"add table {T}",
           f"add map {T} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}",
           f"add set {T} cluster-ips {{ type ipv4_addr ; }}",
           f"add chain {T} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
           f"add chain {T} nat-output {{ type nat hook output priority -100 ; }}",
           f"add chain {T} nat-postrouting {{ type nat hook postrouting priority 100 ; }}",
           f"add chain {T} services", f"add chain {T} masquerading", f"add chain {T} mark-for-masquerade",
           f"add rule {T} nat-prerouting jump services", f"add rule {T} nat-output jump services",
           f"add rule {T} nat-postrouting jump masquerading",
           f"add rule {T} mark-for-masquerade meta mark set meta mark | 0x4000",
           f"add rule {T} masquerading meta mark & 0x4000 == 0 return",
           f"add rule {T} masquerading meta mark set meta mark ^ 0x4000",
           f"add rule {T} masquerading masquerade fully-random",
           f"add rule {T} services ip daddr . meta l4proto . th dport vmap @service-ips"]
    chains = 9
    rules = 9
    for i in range(n):
        svc = f"service-{i:08X}-bench/svc{i}/tcp/p"
        out.append(f"add chain {T} {svc}")
        targets = []
        for ip, port in eps:
            ep = f"endpoint-{i:08X}-bench/svc{i}/tcp/p__{ip}/{port}"
            out.append(f"add chain {T} {ep}")
            out.append(f"add rule {T} {ep} ip saddr {ip} jump mark-for-masquerade")
            out.append(f"add rule {T} {ep} meta l4proto tcp dnat to {ip}:{port}")
            targets.append(ep)
        vm = ", ".join(f"{j} : goto {t}" for j, t in enumerate(targets))
        out.append(f"add rule {T} {svc} ip daddr {vip(i)} tcp dport 80 ip saddr != {CIDR} jump mark-for-masquerade")
        out.append(f"add rule {T} {svc} numgen random mod {len(targets)} vmap {{ {vm} }}")
        chains += 1 + len(targets)
        rules += 2 + 2 * len(targets)
    els = [f"{vip(i)} . tcp . 80 : goto service-{i:08X}-bench/svc{i}/tcp/p" for i in range(n)]
    out.append(f"add element {T} service-ips {{ {', '.join(els)} }}")
    out.append(f"add element {T} cluster-ips {{ {', '.join(vip(i) for i in range(n))} }}")
    return "\n".join(out) + "\n", {"chains": chains, "rules": rules, "elements": 2 * n + n * len(eps)}


def kube_change(i: int, pod_ips: list[str], table: str = "kube-bench") -> str:
    """One Service's endpoints replaced (kube-proxy style: flush+refill the service chain, swap endpoint chains)."""
    T = f"ip {table}"
    eps = endpoints(pod_ips)
    svc = f"service-{i:08X}-bench/svc{i}/tcp/p"
    old = [f"endpoint-{i:08X}-bench/svc{i}/tcp/p__{ip}/{port}" for ip, port in eps]
    new_eps = eps[1:] + [eps[0]]
    out, targets = [], []
    for k, (ip, port) in enumerate(new_eps):
        ep = f"endpoint-{i:08X}-bench/svc{i}/tcp/p__{ip}/{port}-v2"
        out += [f"add chain {T} {ep}", f"add rule {T} {ep} ip saddr {ip} jump mark-for-masquerade",
                f"add rule {T} {ep} meta l4proto tcp dnat to {ip}:{port}"]
        targets.append(ep)
    vm = ", ".join(f"{j} : goto {t}" for j, t in enumerate(targets))
    out += [f"flush chain {T} {svc}",
            f"add rule {T} {svc} ip daddr {vip(i)} tcp dport 80 ip saddr != {CIDR} jump mark-for-masquerade",
            f"add rule {T} {svc} numgen random mod {len(targets)} vmap {{ {vm} }}"]
    out += [f"flush chain {T} {c}" for c in old] + [f"delete chain {T} {c}" for c in old]
    return "\n".join(out) + "\n"


def linear_layout(n: int, pod_ips: list[str], table: str = "linear-bench") -> tuple[str, dict]:
    """iptables-style: a linear list of service rules, per-service probability-cascade DNAT."""
    T = f"ip {table}"
    eps = endpoints(pod_ips)
    out = [f"add table {T}",
           f"add chain {T} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
           f"add chain {T} nat-output {{ type nat hook output priority -100 ; }}",
           f"add chain {T} services",
           f"add rule {T} nat-prerouting jump services", f"add rule {T} nat-output jump services"]
    rules = 2
    for i in range(n):
        svc = f"svc-{i}"
        out.append(f"add chain {T} {svc}")
        for j, (ip, port) in enumerate(eps[:-1]):
            out.append(f"add rule {T} {svc} numgen random mod {len(eps) - j} 0 meta l4proto tcp dnat to {ip}:{port}")
        ip, port = eps[-1]
        out.append(f"add rule {T} {svc} meta l4proto tcp dnat to {ip}:{port}")
        rules += len(eps)
    for i in range(n):
        out.append(f"add rule {T} services ip daddr {vip(i)} tcp dport 80 goto svc-{i}")
        rules += 1
    return "\n".join(out) + "\n", {"chains": 4 + n, "rules": rules, "elements": 0}


def linear_change(i: int, pod_ips: list[str], table: str = "linear-bench") -> str:
    T = f"ip {table}"
    eps = endpoints(pod_ips)[::-1]
    out = [f"flush chain {T} svc-{i}"]
    for j, (ip, port) in enumerate(eps[:-1]):
        out.append(f"add rule {T} svc-{i} numgen random mod {len(eps) - j} 0 meta l4proto tcp dnat to {ip}:{port}")
    out.append(f"add rule {T} svc-{i} meta l4proto tcp dnat to {eps[-1][0]}:{eps[-1][1]}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ measuring

class Bench:
    def __init__(self, tb: Testbed, tmp: str) -> None:
        self.tb = tb
        self.tmp = tmp
        self.n_files = 0
        self.load_timeout = 900.0

    def nft_files(self, scripts: list[str]) -> list[dict]:
        """Load scripts in the node netns with `nft -f`, timing each (wall clock incl. the nft process)."""
        res = []
        for s in scripts:
            self.n_files += 1
            path = os.path.join(self.tmp, f"s{self.n_files}.nft")
            Path(path).write_text(s)
            t = time.perf_counter()
            try:
                r = self.tb.run(self.tb.node, "nft", "-f", path, timeout=self.load_timeout, check=False)
                res.append({"s": time.perf_counter() - t, "rc": r.returncode, "err": r.stderr[:300]})
            except subprocess.TimeoutExpired:
                res.append({"s": time.perf_counter() - t, "rc": -1, "err": f"timeout after {self.load_timeout}s"})
            os.unlink(path)
        return res

    def libnft_files(self, scripts: list[str]) -> list[dict]:
        """Apply scripts through libnftables in one process in the node netns (like the Proxier does)."""
        paths = []
        for sc in scripts:
            self.n_files += 1
            path = os.path.join(self.tmp, f"s{self.n_files}.nft")
            Path(path).write_text(sc)
            paths.append(path)
        r = self.tb.run(self.tb.node, PY, "-c", LOADER, *paths, timeout=300)
        for path in paths:
            os.unlink(path)
        return json.loads(r.stdout)

    def latency(self, ip: str, n: int = 1000) -> dict:
        r = self.tb.run(self.tb.pods[0], PY, "-c", CONNECT, ip, "80", str(n), timeout=300)
        d = json.loads(r.stdout)
        lat = sorted(d["lat"])
        if not lat:
            return {"p50_us": None, "p99_us": None, "errors": d["errors"]}
        return {"p50_us": round(lat[len(lat) // 2] * 1e6, 1),
                "p99_us": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6, 1),
                "errors": d["errors"]}

    def flush_conntrack(self) -> None:
        self.tb.run(self.tb.node, "conntrack", "-F", check=False)

    def drop_table(self, table: str) -> None:
        self.tb.run(self.tb.node, "nft", "delete", "table", "ip", table, check=False)


def run_kemu(b: Bench, sizes: list[int], lat_n: int) -> dict:
    tb = b.tb
    drv = tb.start_driver()
    out: dict = {}
    created = 0
    for n in [10] + sizes:
        objs = k8s_objects(n - created, tb.pod_ips, start=created)
        created = n
        drv.call("bulk", items=[["service" if o["kind"] == "Service" else "slice",
                                 f"bench/{o['metadata']['name']}", o] for o in objs])
        full = drv.call("full")
        assert full["kind"] == "full", full
        # one-Service changes: endpoints of one service replaced, and a new Service added
        change_times = []
        for k in range(6):
            i = (k * 7919 + 3) % n
            name = f"svc{i}"
            if k % 2 == 0:   # every endpoint moves to another port (same count)
                for j, (ip, port) in enumerate(endpoints(tb.pod_ips)):
                    drv.call("slice", key=f"bench/{name}-{j}", obj={
                        "kind": "EndpointSlice", "metadata": {"name": f"{name}-{j}", "namespace": "bench",
                                                              "labels": {"kubernetes.io/service-name": name}},
                        "addressType": "IPv4",
                        "endpoints": [{"addresses": [ip], "nodeName": "node-1", "conditions": {"ready": True}}],
                        "ports": [{"name": "p", "port": port + 100, "protocol": "TCP"}]})
            else:            # one endpoint goes away
                drv.call("slice", key=f"bench/{name}-{EPS_PER_SVC - 1}", obj=None)
            r = drv.call("sync")
            assert r["kind"] == "partial" and r["ops"] > 0, r
            change_times.append(r["duration_s"])
        # restore those services to real ports
        objs = k8s_objects(n, tb.pod_ips)
        drv.call("bulk", items=[["slice", f"bench/{o['metadata']['name']}", o] for o in objs if o["kind"] != "Service"
                                and int(o["metadata"]["name"].split("-")[0][3:]) in {(k * 7919 + 3) % n for k in range(6)}])
        drv.call("sync")
        new_objs = k8s_objects(1, tb.pod_ips, start=n + 1000)
        drv.call("bulk", items=[["service" if o["kind"] == "Service" else "slice",
                                 f"bench/{o['metadata']['name']}", o] for o in new_objs])
        add = drv.call("sync")
        for o in new_objs:
            drv.call("service" if o["kind"] == "Service" else "slice", key=f"bench/{o['metadata']['name']}", obj=None)
        drv.call("sync")
        b.flush_conntrack()
        lat = b.latency(vip(n - 1), lat_n)
        out[n] = {"full_sync_s": round(full["duration_s"], 3), "full_build_s": round(full["build_s"], 3),
                  "full_apply_s": round(full["apply_s"], 3),
                  "change_ms_median": round(statistics.median(change_times) * 1000, 1),
                  "change_ms_max": round(max(change_times) * 1000, 1),
                  "add_service_ms": round(add["duration_s"] * 1000, 1), "counts": full["counts"], "latency": lat}
        print(f"kemu   n={n:6d} full={full['duration_s']:.3f}s change={out[n]['change_ms_median']}ms "
              f"(max {out[n]['change_ms_max']}) add={out[n]['add_service_ms']}ms counts={full['counts']} lat={lat}",
              flush=True)
    out["_driver"] = drv
    return out


def run_anchor(b: Bench, name: str, layout, change, table: str, sizes: list[int], lat_n: int) -> dict:
    out: dict = {}
    for n in [10] + sizes:
        b.drop_table(table)
        text, counts = layout(n, b.tb.pod_ips, table)
        (load,) = b.nft_files([text])
        if load["rc"] != 0:
            out[n] = {"error": load["err"]}
            print(f"{name} n={n} FAILED {load['err']}", flush=True)
            continue
        # one-Service changes through libnftables in-process, as the Proxier applies its own
        changes = b.libnft_files([change((k * 7919 + 3) % n, b.tb.pod_ips, table) for k in range(5)])
        assert all(c["rc"] == 0 for c in changes), changes
        b.flush_conntrack()
        lat = b.latency(vip(n - 1), lat_n)
        out[n] = {"load_s": round(load["s"], 3), "change_ms_median": round(statistics.median(c["s"] for c in changes) * 1000, 1),
                  "counts": counts, "latency": lat}
        print(f"{name:6s} n={n:6d} load={load['s']:.3f}s change={out[n]['change_ms_median']}ms "
              f"counts={counts} lat={lat}", flush=True)
    b.drop_table(table)
    return out


def iperf(b: Bench, target: str, port: int = 5201, seconds: int = 3) -> float:
    tb = b.tb
    srv = tb.popen(tb.pods[1], "iperf3", "-s", "-1", "-B", tb.pod_ips[1], "-p", str(port),
                   stdout=open(os.devnull, "w"))
    time.sleep(0.3)
    r = tb.run(tb.pods[0], "iperf3", "-c", target, "-p", str(port), "-t", str(seconds), "-J", timeout=60)
    srv.wait(10)
    d = json.loads(r.stdout)
    return d["end"]["sum_received"]["bits_per_second"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--kube-sizes", default="1000,2000,5000,10000",
                    help="kube-proxy layout sizes (slow: ~3 min at 10k; a load over --kube-timeout is "
                         "abandoned and extrapolated from the smaller sizes)")
    ap.add_argument("--kube-timeout", type=float, default=360)
    ap.add_argument("--linear-sizes", default="1000,10000")
    ap.add_argument("--lat-n", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 2
    if a.quick:
        a.sizes, a.kube_sizes, a.linear_sizes, a.lat_n = "200", "200", "200", 200
    sizes = [int(x) for x in a.sizes.split(",")]
    kube_sizes = [int(x) for x in a.kube_sizes.split(",")]
    linear_sizes = [int(x) for x in a.linear_sizes.split(",")]
    t_start = time.monotonic()
    tb = Testbed(prefix="kemu-t-px-b")
    result: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="kemu-t-px-") as tmp:
            tb.up()
            lst = tb.popen(tb.pods[0], PY, "-c", LISTENER, *map(str, LISTEN_PORTS), stdout=-1, text=True)
            for pod in tb.pods[1:]:
                p = tb.popen(pod, PY, "-c", LISTENER, *map(str, LISTEN_PORTS), stdout=-1, text=True)
                assert p.stdout.readline().strip() == "ready"
            assert lst.stdout.readline().strip() == "ready"
            b = Bench(tb, tmp)
            kemu = run_kemu(b, sizes, a.lat_n)
            drv = kemu.pop("_driver")
            # throughput with the biggest ruleset in place: ClusterIP (svc -> pod2:5201) vs pod IP
            drv.call("bulk", items=[
                ["service", "bench/iperf", {"kind": "Service", "metadata": {"name": "iperf", "namespace": "bench"},
                                            "spec": {"clusterIP": "10.111.0.1", "clusterIPs": ["10.111.0.1"],
                                                     "ports": [{"name": "i", "protocol": "TCP", "port": 5201}]}}],
                ["slice", "bench/iperf-1", {"kind": "EndpointSlice", "metadata": {
                    "name": "iperf-1", "namespace": "bench", "labels": {"kubernetes.io/service-name": "iperf"}},
                    "addressType": "IPv4", "endpoints": [{"addresses": [tb.pod_ips[1]], "conditions": {"ready": True}}],
                    "ports": [{"name": "i", "port": 5201, "protocol": "TCP"}]}]])
            drv.call("sync")
            directs, vias = [], []
            for _ in range(5):   # interleaved, so machine noise hits both alike
                directs.append(iperf(b, tb.pod_ips[1]))
                vias.append(iperf(b, "10.111.0.1"))
            direct, via_svc = statistics.median(directs), statistics.median(vias)
            thr = {"direct_gbps": round(direct / 1e9, 2), "clusterip_gbps": round(via_svc / 1e9, 2),
                   "ratio": round(via_svc / direct, 3), "ratio_of_best": round(max(vias) / max(directs), 3),
                   "runs_direct_gbps": [round(x / 1e9, 2) for x in directs],
                   "runs_clusterip_gbps": [round(x / 1e9, 2) for x in vias]}
            print(f"iperf3 direct={thr['direct_gbps']} Gb/s via ClusterIP={thr['clusterip_gbps']} Gb/s "
                  f"ratio={thr['ratio']} (best/best {thr['ratio_of_best']})", flush=True)
            drv.call("close")
            b.load_timeout = a.kube_timeout
            kube = run_anchor(b, "kube", kube_layout, kube_change, "kube-bench", kube_sizes, a.lat_n)
            b.load_timeout = 900.0
            linear = run_anchor(b, "linear", linear_layout, linear_change, "linear-bench", linear_sizes, a.lat_n)
            result = {"kemu": kemu, "kube_proxy_layout": kube, "iptables_style_linear": linear, "throughput": thr}
            # kube-proxy layout extrapolated to the largest kemu size (fit t = a*n + b*n^2 on the two largest runs)
            ks = [n for n in kube_sizes if "load_s" in kube.get(n, {})]
            big = max(sizes)
            if len(ks) >= 2 and big not in ks:
                n1, n2 = ks[-2], ks[-1]
                t1, t2 = kube[n1]["load_s"], kube[n2]["load_s"]
                bq = (t2 / n2 - t1 / n1) / (n2 - n1)
                aq = t1 / n1 - bq * n1
                est = max(aq * big + bq * big * big, t2 * big / n2)
                result["kube_proxy_layout_extrapolated"] = {"n": big, "load_s_est": round(est, 1),
                                                            "method": f"a*n+b*n^2 fit on n={n1},{n2}"}
                print(f"kube   n={big:6d} load~{est:.1f}s (extrapolated from {n1},{n2})")
            ratios = {}
            for n in sizes:
                k = kemu[n]
                row = {}
                if n in kube and "load_s" in kube[n]:
                    row["kube_load_over_kemu_full"] = round(kube[n]["load_s"] / k["full_sync_s"], 1)
                elif "kube_proxy_layout_extrapolated" in result and result["kube_proxy_layout_extrapolated"]["n"] == n:
                    row["kube_load_est_over_kemu_full"] = round(
                        result["kube_proxy_layout_extrapolated"]["load_s_est"] / k["full_sync_s"], 1)
                if n in kube and "load_s" in kube[n]:
                    row["kube_change_over_kemu_change"] = round(kube[n]["change_ms_median"] / k["change_ms_median"], 1)
                    if kube[n]["latency"]["p50_us"] and k["latency"]["p50_us"]:
                        row["kube_p50_over_kemu_p50"] = round(kube[n]["latency"]["p50_us"] / k["latency"]["p50_us"], 2)
                if n in linear and "load_s" in linear[n]:
                    row["linear_change_over_kemu_change"] = round(linear[n]["change_ms_median"] / k["change_ms_median"], 1)
                    row["linear_load_over_kemu_full"] = round(linear[n]["load_s"] / k["full_sync_s"], 1)
                    if linear[n]["latency"]["p50_us"] and k["latency"]["p50_us"]:
                        row["linear_p50_over_kemu_p50"] = round(linear[n]["latency"]["p50_us"] / k["latency"]["p50_us"], 2)
                ratios[n] = row
            result["ratios"] = ratios
            result["elapsed_s"] = round(time.monotonic() - t_start, 1)
    finally:
        tb.down()
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
