#!/usr/bin/env python3
"""Metrics and scheduling costs. Prints figures and a final JSON line.

1. Metrics collection at 100 pods: the node agent's stats sampler (one Summary every SAMPLE_SECONDS) and a
   `/stats/summary` and `/metrics/resource` scrape, over 100 pods × 1 container whose usage is read from
   cgroup-v2-shaped files (cpu.stat, memory.current, memory.stat) in a temporary tree — the same reads per pod as
   the agent does on a node. The agent's CPU "with" is the sampler's cost per second; "without" is zero by
   construction (nothing is read when nothing samples or scrapes).
2. Scheduler throughput: pods bound per second with 1,000 pending pods over 10 Ready nodes, through the real
   scheduler loop (informers, work queue, compare-and-swap binds into a SQLite store); with and without required
   pod anti-affinity (100 groups of 10 pods, each group one per node), and today's committed scheduler (git HEAD)
   as the baseline in the same run.

Run: .venv/bin/python bench/metrics.py [--pods 1000] [--nodes 10] [--metrics-pods 100]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- 1. metrics collection ---------------------------------------------------------------------------------------
class FileRuntime:
    """A PodRuntime stand-in whose usage() reads cgroup-v2-shaped files, as runtime.cgroups does."""

    def __init__(self, top: str) -> None:
        self.top = top

    def usage(self, config, containers: list[str]) -> dict:
        def read(path: str) -> dict:
            with open(os.path.join(path, "cpu.stat")) as f:
                usec = int(f.readline().split()[1])
            with open(os.path.join(path, "memory.current")) as f:
                current = int(f.read())
            with open(os.path.join(path, "memory.stat")) as f:
                inactive = next(int(line.split()[1]) for line in f if line.startswith("inactive_file"))
            return {"cpu_seconds": usec / 1e6, "memory_working_set_bytes": max(current - inactive, 0)}
        pod_dir = os.path.join(self.top, config)
        return dict(read(pod_dir), containers={c: read(os.path.join(pod_dir, c)) for c in containers})


def metrics_cost(pods: int, rounds: int = 20) -> dict:
    from kemu.api.nodeconfig import NodeConfig
    from nodeagent import server as node_server
    from nodeagent.metrics import resource_metrics_text
    with tempfile.TemporaryDirectory() as top:
        objects = []
        for i in range(pods):
            for sub in ("", "c"):
                d = os.path.join(top, f"pod{i}", sub)
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "cpu.stat"), "w") as f:
                    f.write(f"usage_usec {1000 * i}\nuser_usec 0\nsystem_usec 0\n")
                with open(os.path.join(d, "memory.current"), "w") as f:
                    f.write(str(50 << 20))
                with open(os.path.join(d, "memory.stat"), "w") as f:
                    f.write("anon 1\nfile 2\ninactive_file 4096\n")
            objects.append({"metadata": {"name": f"p{i}", "namespace": "default", "uid": f"u{i}"},
                            "spec": {"containers": [{"name": "c"}]}, "status": {"startTime": "2026-01-01T00:00:00Z"}})
        srv = node_server.NodeServer(NodeConfig(node_name="bench", state_dir=top, store_url="", node_ip="127.0.0.1",
                                                 pod_cidr="10.0.0.0/24"), FileRuntime(top), lambda: objects)
        srv._sandbox_config = lambda pod: f"pod{pod['metadata']['name'][1:]}"
        srv.summary()
        start = time.process_time()
        for _ in range(rounds):
            summary = srv.summary()
        per_summary = (time.process_time() - start) / rounds
        start = time.process_time()
        for _ in range(rounds):
            resource_metrics_text(srv.summary())
        per_resource = (time.process_time() - start) / rounds
        assert len(summary["pods"]) == pods
    return {"pods": pods, "summary_ms": per_summary * 1000, "resource_scrape_ms": per_resource * 1000,
            "sampler_cpu_percent_with": per_summary / node_server.SAMPLE_SECONDS * 100,
            "sampler_cpu_percent_without": 0.0, "sample_seconds": node_server.SAMPLE_SECONDS}


# ---- 2. scheduler throughput --------------------------------------------------------------------------------------
def _baseline_scheduler():
    """The scheduler as committed (git HEAD), loaded beside today's."""
    source = subprocess.run(["git", "-C", ROOT, "show", "HEAD:kemu/controllers/scheduler.py"], capture_output=True,
                            text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("kemu.controllers.scheduler_head", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, "scheduler@HEAD", "exec"), module.__dict__)
    return module.Scheduler


def _node(i: int) -> dict:
    name = f"node{i}"
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name}}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "500"}}}


def _pod(i: int, anti: bool) -> dict:
    group = f"g{i // 10}"
    spec = {"containers": [{"name": "c", "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    if anti:
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"group": group}}, "topologyKey": "kubernetes.io/hostname"}]}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "default",
                                                            "labels": {"group": group}}, "spec": spec}


def scheduler_throughput(scheduler_cls, pods: int, nodes: int, anti: bool, timeout: float = 600) -> dict:
    from kemu.client import Client
    from kemu.store.sqlite import SQLiteStore
    with tempfile.TemporaryDirectory() as d:
        client = Client(SQLiteStore(os.path.join(d, "store.db")))
        client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
        client.apply([_node(i) for i in range(1, nodes + 1)])
        for start in range(0, pods, 100):
            client.apply([_pod(i, anti) for i in range(start, min(start + 100, pods))])
        sched = scheduler_cls(client)
        t0 = time.monotonic()
        sched.start()
        bound = 0
        while time.monotonic() - t0 < timeout:
            items, _ = client.list("Pod", "default")
            bound = sum(1 for p in items if p["spec"].get("nodeName"))
            if bound == pods:
                break
            time.sleep(0.2)
        took = time.monotonic() - t0
        items, _ = client.list("Pod", "default")
        spread_ok = True
        if anti:
            seen = set()
            for p in items:
                key = (p["metadata"]["labels"]["group"], p["spec"].get("nodeName"))
                spread_ok &= key not in seen
                seen.add(key)
        return {"anti_affinity": anti, "bound": bound, "seconds": took, "pods_per_second": bound / took,
                "constraints_respected": spread_ok}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--metrics-pods", type=int, default=100)
    args = ap.parse_args()
    out = {"metrics": metrics_cost(args.metrics_pods)}
    m = out["metrics"]
    print(f"metrics, {m['pods']} pods: summary {m['summary_ms']:.1f} ms CPU, /metrics/resource "
          f"{m['resource_scrape_ms']:.1f} ms; agent sampler CPU {m['sampler_cpu_percent_with']:.2f} % with, "
          f"0 % without (every {m['sample_seconds']:.0f} s)")
    from kemu.controllers.scheduler import Scheduler
    runs = [("baseline (HEAD)", _baseline_scheduler(), False), ("today", Scheduler, False),
            ("today, anti-affinity", Scheduler, True)]
    out["scheduler"] = {}
    for label, cls, anti in runs:
        r = scheduler_throughput(cls, args.pods, args.nodes, anti)
        out["scheduler"][label] = r
        print(f"scheduler {label}: {r['bound']}/{args.pods} pods bound over {args.nodes} nodes in {r['seconds']:.1f} s "
              f"= {r['pods_per_second']:.1f} pods/s" + ("" if not anti else
                                                       f"; anti-affinity respected: {r['constraints_respected']}"))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
