#!/usr/bin/env python3
"""StatefulSet start-up on one node: time from apply to N Ready replicas, each with its own volume, with
podManagementPolicy OrderedReady and Parallel, for each built-in class (`standard`: directories, `ext4`: ext4 on a
loop device), and the provisioner's own time per volume (mkdir / image + mkfs.ext4). Prints figures and a final JSON line.
Goal: 10 OrderedReady replicas with volumes Ready in <= 5 s on one node.

Run as root: .venv/bin/python bench/statefulset.py [--replicas 10]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kemu.lab import Lab  # noqa: E402


def statefulset(name: str, replicas: int, policy: str, sc: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": name,
                     "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                                      {"name": "c", "command": ["sleep", "infinity"],
                                       "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "storageClassName": sc, "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "8Mi"}}}}]}}


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def run(client, name: str, replicas: int, policy: str, sc: str, timeout: float = 120) -> dict:
    start = time.time()
    client.create(statefulset(name, replicas, policy, sc))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods, _ = client.list("Pod", "default", where=lambda p: p["metadata"]["name"].startswith(name + "-"))
        if len([p for p in pods if ready(p)]) >= replicas:
            break
        time.sleep(0.02)
    else:
        raise SystemExit(f"{name}: not {replicas} Ready replicas within {timeout}s")
    elapsed = time.time() - start
    return {"policy": policy, "class": sc, "replicas": replicas, "seconds_to_all_ready": round(elapsed, 2)}


def provision_times(sc: str, count: int = 10) -> list[float]:
    """In-process provisioner cost per volume (ms), without the API round trips."""
    from kemu.controllers import provisioner
    root = f"/run/kemu/bench-storage-{uuid.uuid4().hex[:6]}"
    out = []
    try:
        for i in range(count):
            claim = {"metadata": {"name": f"c{i}", "namespace": "default"}}
            t = time.perf_counter()
            made = provisioner.provision(provisioner.LOCAL_PATH if sc == "standard" else provisioner.EXT4_LOOP,
                                         f"pvc-bench-{i}", claim, "node1", 8 << 20, root=root)
            out.append((time.perf_counter() - t) * 1000)
            assert made.path.startswith(root)
    finally:
        import shutil
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, default=10)
    args = parser.parse_args()
    lab = Lab(f"bsts{uuid.uuid4().hex[:4]}")
    results = []
    try:
        lab.up(1)
        client = lab.client()
        deadline = time.monotonic() + 20
        while client.get("StorageClass", None, "standard") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        for sc in ("standard", "ext4"):
            for policy in ("OrderedReady", "Parallel"):
                name = f"{policy.lower()[:5]}-{sc[:3]}"
                r = run(client, name, args.replicas, policy, sc)
                results.append(r)
                print(f"{args.replicas} replicas, {policy:12} class {sc:8}: all Ready in "
                      f"{r['seconds_to_all_ready']:.2f} s", flush=True)
                client.delete("StatefulSet", "default", name)
        for sc in ("standard", "ext4"):
            ms = provision_times(sc)
            results.append({"class": sc, "provision_ms_median": round(statistics.median(ms), 1),
                            "provision_ms_max": round(max(ms), 1)})
            print(f"provisioner, class {sc:8}: {statistics.median(ms):.1f} ms median per volume "
                  f"(max {max(ms):.1f} ms)")
    finally:
        left = lab.down()
        if left:
            print("left behind:", left, file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
