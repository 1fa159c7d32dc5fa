"""Time from `kemu lab up --nodes N` to every node Ready and a 3-replica workload serving through its ClusterIP
from a pod; plus store write latency (etcd over its unix socket vs SQLite). Goal: <= 5 s for 3 nodes.

    sudo .venv/bin/python bench/lab_up.py [--nodes 3] [--store etcd|sqlite] [--pod-network host-gw|vxlan]

Prints one line per phase and a final JSON line. The lab is always removed.
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
import uuid

KEMU = os.path.join(os.path.dirname(sys.executable), "kemu")
WORKLOAD = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, command: ["sleep", "infinity"]}]
  terminationGracePeriodSeconds: 1
""" + "".join(f"""---
apiVersion: v1
kind: Pod
metadata: {{name: web{i}, labels: {{app: web}}}}
spec:
  containers: [{{name: web, image: kemu/agnhost, args: ["netexec", "--http-port=8080"]}}]
  terminationGracePeriodSeconds: 1
""" for i in (1, 2, 3))


def kemu(lab: str, *args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([KEMU, "--lab", lab, *args], input=input, capture_output=True, text=True)
    if check and proc.returncode:
        raise SystemExit(f"kemu {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def write_latency(store, n: int = 300) -> dict:
    """p50/p99 (ms) of a pod-status-sized compare-and-swap update, the agent's hot path."""
    from kemu.store import Compare, Put
    key, value = f"/bench/{uuid.uuid4().hex}", b"x" * 2048
    rev = store.put(key, value).revision
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        rev = store.txn([Compare(key, rev)], [Put(key, value)]).revision
        samples.append((time.perf_counter() - t) * 1000)
    store.delete(key)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(samples[int(n * 0.99) - 1], 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--store", choices=["etcd", "sqlite"])
    p.add_argument("--pod-network", default="host-gw")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (labs are network namespaces)")
    from kemu.lab import Lab
    from kemu.store import SQLiteStore
    lab = f"bench{uuid.uuid4().hex[:6]}"
    figures: dict = {"nodes": args.nodes, "pod_network": args.pod_network}
    flags = ["--nodes", str(args.nodes), "--pod-network", args.pod_network] + (
        ["--store", args.store] if args.store else [])
    t0 = time.monotonic()
    try:
        kemu(lab, "lab", "up", *flags)
        figures["nodes_ready_s"] = round(time.monotonic() - t0, 3)
        print(f"lab up, {args.nodes} nodes Ready:        {figures['nodes_ready_s']:.2f} s")
        kemu(lab, "apply", "-f", "-", input=WORKLOAD)
        handle = Lab(lab)
        client = handle.client()
        figures["store"] = handle.state.store

        def ready() -> list[dict]:
            pods, _ = client.list("Pod", "default")
            return [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                           for c in (p.get("status") or {}).get("conditions") or [])]
        while len(ready()) < 4:
            time.sleep(0.02)
        figures["pods_ready_s"] = round(time.monotonic() - t0, 3)
        placed = sorted({p["spec"]["nodeName"] for p in ready() if p["metadata"]["name"].startswith("web")})
        print(f"3 replicas + client Ready ({', '.join(placed)}): {figures['pods_ready_s']:.2f} s")
        ip = client.get("Service", "default", "web")["spec"]["clusterIP"]
        seen: set[str] = set()
        loop = f"for i in 1 2 3 4 5 6 7 8 9; do curl -s -m 1 http://{ip}/hostname; echo; done"
        while seen != {"web1", "web2", "web3"} and time.monotonic() - t0 < 60:
            out = kemu(lab, "exec", "client", "--", "sh", "-c", loop, check=False)
            seen |= {line for line in out.split() if line.startswith("web")}
        figures["serving_s"] = round(time.monotonic() - t0, 3)
        print(f"all 3 replicas answer via ClusterIP:     {figures['serving_s']:.2f} s   (goal <= 5 s)")
        figures["write_latency"] = {handle.state.store: write_latency(client.store)}
        with tempfile.TemporaryDirectory() as tmp:
            figures["write_latency"]["sqlite-local"] = write_latency(SQLiteStore(os.path.join(tmp, "s.db")))
        for name, lat in figures["write_latency"].items():
            print(f"CAS write latency, {name:13s}         p50 {lat['p50_ms']:.2f} ms  p99 {lat['p99_ms']:.2f} ms")
    finally:
        t = time.monotonic()
        left = Lab(lab).down()
        figures["down_s"] = round(time.monotonic() - t, 3)
        if left:
            print(f"LEFT BEHIND: {left}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
