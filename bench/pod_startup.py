#!/usr/bin/env python3
"""Pod start-up latency on one node: apply → Running with a pod IP, for 1 pod (repeated) and 100 pods at once,
plus the node agent's RSS and idle CPU with 100 pods running. Prints figures and a final JSON line.

Run as root: .venv/bin/python bench/pod_startup.py [--single 20] [--batch 100] [--idle-seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kemu.lab import Lab  # noqa: E402


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "startup"}},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "command": ["sleep", "infinity"]}]}}


def running_with_ip(p: dict | None) -> bool:
    status = (p or {}).get("status") or {}
    return status.get("phase") == "Running" and bool(status.get("podIP"))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def wait_all(client, names: list[str], start: float, from_revision: int, timeout: float = 120) -> dict[str, float]:
    """Latency of each pod from `start` until it is first seen Running with an IP (watching the store)."""
    seen: dict[str, float] = {}
    watcher = client.store.watch("/registry/pods/default/", from_revision)
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(names) and time.monotonic() < deadline:
            for ev in watcher.next_batch(timeout=0.5):
                if ev.type != "PUT":
                    continue
                obj = json.loads(ev.value)
                name = obj["metadata"]["name"]
                if name in names and name not in seen and running_with_ip(obj):
                    seen[name] = time.monotonic() - start
    finally:
        watcher.close()
    missing = set(names) - set(seen)
    if missing:
        raise SystemExit(f"pods not Running after {timeout}s: {sorted(missing)[:5]}")
    return seen


def delete_all(client, names: list[str]) -> None:
    for name in names:
        client.mutate("Pod", "default", name, lambda o: o["metadata"].update(
            deletionTimestamp="2000-01-01T00:00:00Z", deletionGracePeriodSeconds=0))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(client.get("Pod", "default", n) for n in names):
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=20, help="repetitions of the one-pod measurement")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--node-transport", choices=["store", "api"], default="store",
                    help="the node's daemons on the store in-process (default) or through the API server")
    args = ap.parse_args()
    lab = Lab("bench-ps")
    lab.down()
    lab.up(1, node_transport=args.node_transport)
    try:
        client = lab.client()
        singles = []
        for i in range(args.single):
            name = f"single-{i}"
            rev = client.store.revision() + 1
            start = time.monotonic()
            client.apply([pod(name)])
            singles.append(wait_all(client, [name], start, rev)[name])
            delete_all(client, [name])
        names = [f"batch-{i}" for i in range(args.batch)]
        rev = client.store.revision() + 1
        start = time.monotonic()
        client.apply([pod(n) for n in names])
        batch = wait_all(client, names, start, rev)
        all_running = max(batch.values())
        agent = psutil.Process(lab.state.daemons["node1-agent"]["pid"])
        time.sleep(2)
        agent.cpu_percent(None)
        time.sleep(args.idle_seconds)
        idle_cpu = agent.cpu_percent(None)
        rss_mb = agent.memory_info().rss / 2**20
    finally:
        left = lab.down()
    result = {
        "single_p50_ms": round(statistics.median(singles) * 1000, 1),
        "single_p95_ms": round(percentile(singles, 95) * 1000, 1),
        "batch_pods": args.batch,
        "batch_p50_s": round(statistics.median(batch.values()), 3),
        "batch_p95_s": round(percentile(list(batch.values()), 95), 3),
        "batch_all_running_s": round(all_running, 3),
        "agent_rss_mb_at_batch": round(rss_mb, 1),
        "agent_idle_cpu_percent_at_batch": round(idle_cpu, 2),
        "leftovers": len(left),
    }
    print(f"1 pod (x{args.single}): p50 {result['single_p50_ms']} ms, p95 {result['single_p95_ms']} ms "
          "(goal p50 <= 150 ms)")
    print(f"{args.batch} pods at once: p50 {result['batch_p50_s']} s, p95 {result['batch_p95_s']} s, all Running in "
          f"{result['batch_all_running_s']} s (goal <= 10 s)")
    print(f"node agent with {args.batch} pods: RSS {result['agent_rss_mb_at_batch']} MB (goal <= 80), idle CPU "
          f"{result['agent_idle_cpu_percent_at_batch']} % of one core (goal <= 2)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
