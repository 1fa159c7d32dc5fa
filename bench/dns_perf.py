#!/usr/bin/env python3
"""Cluster DNS benchmark (root; everything inside a lab it creates and removes).

Brings up a lab, starts the node DNS server (`kemu dns`, unless the lab already runs it), creates a Deployment
behind a Service and a client pod, then runs a dnsperf-style loop from inside the pod: a window of outstanding
UDP queries to 10.96.0.10 (through the proxy, as pods resolve), mixing A queries for the Service FQDN, a headless
name and a name that does not exist. Reports queries/s, latency percentiles and the time for an answer to follow
a change (Service created → resolvable).

Usage: python bench/dns_perf.py [--seconds 10] [--window 8] [--lab dnsbench]
Prints a table and a final JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from kemu.testing import LabHandle  # noqa: E402

PY = sys.executable
MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: kemu/agnhost, args: ["netexec", "--http-port=8080"]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: perf}
spec:
  containers: [{name: shell, command: ["sleep", "infinity"]}]
"""
# runs inside the pod: a window of in-flight queries on one UDP socket; dnspython builds and parses messages
LOOP = r'''
import json, socket, sys, time, dns.message, dns.rcode
seconds, window = float(sys.argv[1]), int(sys.argv[2])
names = ["web.default.svc.cluster.local.", "web-headless.default.svc.cluster.local.",
         "nothing.default.svc.cluster.local."]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.connect(("10.96.0.10", 53))
sock.settimeout(1.0)
sent, lat, errors, lost, i = {}, [], 0, 0, 0
end = time.monotonic() + seconds
def send():
    global i
    q = dns.message.make_query(names[i % len(names)], "A")
    sent[q.id] = time.monotonic()
    sock.send(q.to_wire())
    i += 1
while time.monotonic() < end:
    while len(sent) < window:
        send()
    try:
        r = dns.message.from_wire(sock.recv(4096))
    except socket.timeout:
        lost += len(sent); sent.clear(); continue
    t0 = sent.pop(r.id, None)
    if t0 is None:
        continue
    lat.append(time.monotonic() - t0)
    if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        errors += 1
print(json.dumps({"lat": lat, "errors": errors, "lost": lost, "seconds": seconds}))
'''


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(int(p / 100 * len(values)), len(values) - 1)] if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--window", type=int, default=8, help="outstanding queries")
    ap.add_argument("--lab", default="dnsbench")
    args = ap.parse_args()
    from dnshelpers import resolve, start_dns
    lab = LabHandle(args.lab)
    try:
        lab.up(1)
        start_dns(lab)
        lab.apply(MANIFEST)
        lab.wait_pod("perf", ready=True)
        lab.wait_endpoints("web", 3)
        lab.wait("web to resolve", lambda: resolve(lab, "perf", "web") != ["NXDOMAIN"], timeout=20)
        results = {}
        for window in sorted({1, args.window}):
            out = lab.kemu("exec", "perf", "--", PY, "-c", LOOP, str(args.seconds), str(window),
                           timeout=args.seconds + 60).stdout
            data = json.loads(out.strip().splitlines()[-1])
            lat = data["lat"]
            results[f"window{window}"] = {
                "queries": len(lat), "qps": round(len(lat) / data["seconds"]),
                "p50_ms": round(pct(lat, 50) * 1000, 3), "p99_ms": round(pct(lat, 99) * 1000, 3),
                "max_ms": round(max(lat) * 1000, 3), "errors": data["errors"], "lost": data["lost"]}
        # how long until a new Service answers (informer → zone rebuild), seen from the pod
        started = time.monotonic()
        lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: fresh}\nspec:\n  ports: [{port: 80}]\n")
        lab.wait("fresh to resolve", lambda: resolve(lab, "perf", "fresh.default.svc.cluster.local.")
                 not in (["NXDOMAIN"],), timeout=20, interval=0.01)
        results["new_service_visible_s"] = round(time.monotonic() - started, 3)
    finally:
        left = lab.down()
    print(f"{'window':>8} {'queries':>9} {'qps':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
          f"{'lost':>5}")
    for key, r in results.items():
        if key.startswith("window"):
            print(f"{key[6:]:>8} {r['queries']:>9} {r['qps']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8} "
                  f"{r['max_ms']:>8} {r['errors']:>7} {r['lost']:>5}")
    print(f"new Service resolvable from a pod after {results['new_service_visible_s']}s (incl. kemu apply and "
          "one exec)")
    if left:
        print(f"lab {args.lab} left behind: {left}", file=sys.stderr)
    print(json.dumps({"bench": "dns_perf", **results}))
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
