#!/usr/bin/env python3
"""The ingress controller's cost and speed, in one lab run:

1. requests/s and p99 latency through the ingress (nginx on the node's :80, Host header routing) against the same
   backend's ClusterIP directly (kube-proxy's DNAT), both from node1's network namespace, with the same bounded
   keep-alive load (threads x requests). Goal: ingress >= 80 % of direct throughput.
2. time from an Ingress change to the first request it serves, measured from the lab's `client` host, with 10 and
   1,000 rules already in place. Goal: <= 1 s at 1,000 rules.

Run as root: .venv/bin/python bench/ingress.py [--threads 4] [--requests 500] [--changes 3]
Prints figures and a final JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kemu.lab import node_ip  # noqa: E402
from kemu.testing import LabHandle  # noqa: E402

BACKEND = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: registry.k8s.io/e2e-test-images/agnhost:2.45
        args: ["netexec", "--http-port=8080"]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.bench
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
"""
LOAD = r"""
import http.client, json, sys, threading, time
host, port, vhost, threads, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
lat, fails = [], [0]
def worker():
    conn = http.client.HTTPConnection(host, port, timeout=5)
    for _ in range(n):
        t = time.perf_counter()
        try:
            conn.request("GET", "/hostname", headers={"Host": vhost})
            r = conn.getresponse(); r.read()
            if r.status != 200: fails[0] += 1
        except Exception:
            fails[0] += 1; conn.close(); conn = http.client.HTTPConnection(host, port, timeout=5)
        lat.append(time.perf_counter() - t)
begin = time.perf_counter()
ts = [threading.Thread(target=worker) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
took = time.perf_counter() - begin
lat.sort()
print(json.dumps({"rps": len(lat) / took, "p50_ms": lat[len(lat) // 2] * 1e3,
                  "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1e3, "failed": fails[0], "requests": len(lat)}))
"""
POLL = r"""
import sys, time, urllib.request
url, vhost, deadline = sys.argv[1], sys.argv[2], time.time() + float(sys.argv[3])
while time.time() < deadline:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": vhost}), timeout=1) as r:
            if r.status == 200:
                print(time.time()); break
    except Exception:
        pass
    time.sleep(0.005)
"""


def ingress(name: str, hosts: list[str]) -> dict:
    rules = [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "web", "port": {"number": 80}}}}]}} for h in hosts]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": "default"},
            "spec": {"rules": rules}}


def load(lab: LabHandle, host: str, port: int, vhost: str, threads: int, requests: int) -> dict:
    argv = lab.lab.exec_argv("node1", [sys.executable, "-c", LOAD, host, str(port), vhost, str(threads),
                                       str(requests)])
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=600).stdout)


def change_latency(lab: LabHandle, rules: int, changes: int) -> list[float]:
    """Seconds from applying a new Ingress host to its first 200 at node1, with `rules` hosts already served."""
    lab.client.apply([ingress("bulk", [f"h{i}.bench" for i in range(rules)])])
    poll = lab.lab.exec_argv("client", [sys.executable, "-c", POLL, f"http://{node_ip(1)}/hostname",
                                        f"h{rules - 1}.bench", "60"])
    subprocess.run(poll, check=True, capture_output=True, timeout=90)      # the bulk rules are live
    out = []
    for k in range(changes):
        vhost = f"probe{rules}-{k}.bench"
        poller = subprocess.Popen(lab.lab.exec_argv("client", [sys.executable, "-c", POLL,
                                                               f"http://{node_ip(1)}/hostname", vhost, "30"]),
                                  stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)                       # the poller is up and getting 404s
        began = time.time()
        lab.client.apply([ingress("probe", [vhost])])
        served, _ = poller.communicate(timeout=60)
        out.append(float(served) - began if served.strip() else float("inf"))
    lab.client.delete("Ingress", "default", "bulk")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--requests", type=int, default=500, help="per thread")
    ap.add_argument("--changes", type=int, default=3)
    args = ap.parse_args()
    lab = LabHandle("bench-ing")
    try:
        lab.up(1)
        lab.apply(BACKEND)
        lab.wait_endpoints("web", 2)
        cluster_ip = lab.get("Service", "web")["spec"]["clusterIP"]
        subprocess.run(lab.lab.exec_argv("client", [sys.executable, "-c", POLL, f"http://{node_ip(1)}/hostname",
                                                    "web.bench", "60"]), check=True, capture_output=True)
        load(lab, node_ip(1), 80, "web.bench", args.threads, 50)                   # warm both paths
        load(lab, cluster_ip, 80, "web", args.threads, 50)
        direct = load(lab, cluster_ip, 80, "web", args.threads, args.requests)
        via = load(lab, node_ip(1), 80, "web.bench", args.threads, args.requests)
        ratio = via["rps"] / direct["rps"]
        print(f"direct ClusterIP: {direct['rps']:.0f} req/s, p50 {direct['p50_ms']:.2f} ms, p99 "
              f"{direct['p99_ms']:.2f} ms, {direct['failed']} failed")
        print(f"through ingress:  {via['rps']:.0f} req/s, p50 {via['p50_ms']:.2f} ms, p99 {via['p99_ms']:.2f} ms, "
              f"{via['failed']} failed -> {ratio:.0%} of direct (goal >= 80 %)")
        changes = {}
        for rules in (10, 1000):
            took = change_latency(lab, rules, args.changes)
            changes[rules] = took
            print(f"Ingress change -> served with {rules} rules: " + ", ".join(f"{t * 1000:.0f} ms" for t in took)
                  + (" (goal <= 1 s)" if rules == 1000 else ""))
        result = {"threads": args.threads, "requests_per_thread": args.requests,
                  "direct_rps": round(direct["rps"]), "direct_p99_ms": round(direct["p99_ms"], 2),
                  "ingress_rps": round(via["rps"]), "ingress_p99_ms": round(via["p99_ms"], 2),
                  "ratio": round(ratio, 3), "failed": direct["failed"] + via["failed"],
                  "change_s": {str(k): [round(t, 3) for t in v] for k, v in changes.items()}}
        print(json.dumps(result))
    finally:
        left = lab.down()
        if left:
            print(f"lab left behind: {left}", file=sys.stderr)


if __name__ == "__main__":
    main()
