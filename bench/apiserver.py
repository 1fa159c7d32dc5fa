#!/usr/bin/env python3
"""API server latency and throughput, over TLS with client certificates, against a server on 127.0.0.1 with a
throwaway SQLite store (nothing of a lab is needed; the server is stopped and its files removed at the end).

    .venv/bin/python bench/apiserver.py [--pods 1000] [--gets 500] [--creates 400] [--watch-writes 40]

Figures: GET one object p50/p99; LIST of N pods as JSON and as a Table; creates per second with 1 and 8
concurrent clients; watch latency (store write → event at the watcher) p50/p99 with 1 and 100 watchers;
`kubectl get pods` wall time at 100 pods against `kemu get pods` on the same store. Last line of output is JSON.
Goals: GET p50 ≤ 5 ms, LIST 1k ≤ 100 ms, ≥ 500 creates/s with 8 clients, watch p99 ≤ 50 ms with 100 watchers.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import aiohttp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kemu.apiserver.kubeconfig import admin_kubeconfig, write  # noqa: E402
from kemu.client import Client  # noqa: E402
from kemu.lab.pki import LabPKI  # noqa: E402
from kemu.store import SQLiteStore  # noqa: E402
from kemu.testing.k8sbins import kubectl_path  # noqa: E402

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000


def pod(name: str, ns: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": "b"}},
            "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "kemu/agnhost", "args": ["pause"]}]},
            "status": {"phase": "Running", "podIP": "10.244.1.2"}}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


class Bench:
    def __init__(self, tmp: str) -> None:
        self.tmp = tmp
        self.db = os.path.join(tmp, "store.db")
        pki = LabPKI(os.path.join(tmp, "pki"))
        self.ca = pki.ensure_ca().cert
        self.serving = pki.issue("apiserver", "kube-apiserver", ip_addresses=("127.0.0.1",), server=True)
        self.admin = pki.issue("admin", "kubernetes-admin", ("system:masters",), client=True)
        self.proc: subprocess.Popen | None = None
        self.base = ""

    def start(self) -> None:
        ready = os.path.join(self.tmp, "ready.json")
        self.proc = subprocess.Popen([sys.executable, "-m", "kemu.apiserver", "--store", f"sqlite://{self.db}",
                                      "--listen", "127.0.0.1:0", "--tls-cert", self.serving.cert, "--tls-key",
                                      self.serving.key, "--client-ca", self.ca, "--ready-file", ready],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(ready):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        with open(ready) as f:
            self.base = f"https://127.0.0.1:{json.load(f)['ports'][0]}"
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        write(self.kubeconfig, admin_kubeconfig("bench", self.base, self.ca, self.admin.cert, self.admin.key))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(self.admin.cert, self.admin.key)
        return ctx

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl(), limit=200))


async def timed_gets(http: aiohttp.ClientSession, url: str, n: int, headers: dict | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        out.append(time.perf_counter() - t0)
    return out


async def creates(b: Bench, workers: int, total: int, tag: str) -> float:
    async with b.session() as http:
        url = f"{b.base}/api/v1/namespaces/default/configmaps"

        async def worker(w: int) -> None:
            for i in range(total // workers):
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{tag}-{w}-{i}"},
                        "data": {"k": "v"}}
                async with http.post(url, json=body) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(workers)))
        return (total // workers * workers) / (time.perf_counter() - t0)


async def watch_latency(b: Bench, client: Client, watchers: int, writes: int) -> list[float]:
    """Store write (Client, no HTTP) → the event line at every watcher."""
    arrived: dict[str, list[float]] = {}
    rev = client.store.revision()
    async with b.session() as http:
        url = f"{b.base}/api/v1/namespaces/lat/configmaps?watch=1&resourceVersion={rev}"
        streams = [await http.get(url) for _ in range(watchers)]

        async def reader(resp: aiohttp.ClientResponse) -> None:
            async for line in resp.content:
                name = json.loads(line)["object"]["metadata"]["name"]
                arrived.setdefault(name, []).append(time.perf_counter())
        tasks = [asyncio.create_task(reader(r)) for r in streams]
        sent: dict[str, float] = {}
        await asyncio.sleep(0.3)
        for i in range(writes):
            name = f"w{watchers}-{i}"
            sent[name] = time.perf_counter()
            await asyncio.to_thread(client.create, {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": name, "namespace": "lat"}})
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(len(arrived.get(n, [])) < watchers for n in sent):
            await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        for r in streams:
            r.close()
    return [t - sent[n] for n in sent for t in arrived.get(n, [])]


def wall(argv: list[str], env: dict, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def run(args: argparse.Namespace, b: Bench) -> dict:
    store = SQLiteStore(b.db)
    client = Client(store)
    client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                  for n in ("default", "lat", "hundred")])
    for start in range(0, args.pods, 200):
        client.apply([pod(f"p{i:05d}") for i in range(start, min(start + 200, args.pods))])
    client.apply([pod(f"h{i:03d}", "hundred") for i in range(100)])
    res: dict = {}
    async with b.session() as http:
        one = f"{b.base}/api/v1/namespaces/default/pods/p00000"
        await timed_gets(http, one, 20)
        gets = await timed_gets(http, one, args.gets)
        res["get_p50_ms"], res["get_p99_ms"] = pct(gets, 50), pct(gets, 99)
        lst = f"{b.base}/api/v1/namespaces/default/pods"
        res["list_json_p50_ms"] = pct(await timed_gets(http, lst, 10), 50)
        res["list_table_p50_ms"] = pct(await timed_gets(http, lst, 10, {"Accept": TABLE}), 50)
    res["creates_per_s_1"] = await creates(b, 1, args.creates // 2, "one")
    res["creates_per_s_8"] = await creates(b, 8, args.creates, "eight")
    for w in (1, 100):
        lat = await watch_latency(b, client, w, args.watch_writes)
        res[f"watch_{w}_p50_ms"], res[f"watch_{w}_p99_ms"] = pct(lat, 50), pct(lat, 99)
        res[f"watch_{w}_events"] = len(lat)
    kubectl = kubectl_path()
    env = dict(os.environ, KUBECONFIG=b.kubeconfig, KUBECACHEDIR=os.path.join(b.tmp, "cache"))
    if kubectl:
        subprocess.run([kubectl, "get", "pods", "-n", "hundred"], env=env, capture_output=True)   # warm the cache
        res["kubectl_get_pods_100_s"] = wall([kubectl, "get", "pods", "-n", "hundred"], env)
    kemu = os.path.join(os.path.dirname(sys.executable), "kemu")
    res["kemu_get_pods_100_s"] = wall([kemu, "--store", f"sqlite://{b.db}", "get", "pods", "-n", "hundred"], env)
    store.close()
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--gets", type=int, default=500)
    p.add_argument("--creates", type=int, default=400)
    p.add_argument("--watch-writes", type=int, default=40)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="kemu-bench-apiserver-")
    b = Bench(tmp)
    try:
        b.start()
        res = asyncio.run(run(args, b))
    finally:
        b.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"kemu API server benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}, {platform.node()}: {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite store, TLS")
    goals = {"get_p50_ms": ("≤", 5), "list_json_p50_ms": ("≤", 100), "creates_per_s_8": ("≥", 500),
             "watch_100_p99_ms": ("≤", 50)}
    for key, value in res.items():
        goal = goals.get(key)
        mark = ""
        if goal:
            ok = value <= goal[1] if goal[0] == "≤" else value >= goal[1]
            mark = f"   goal {goal[0]} {goal[1]}: {'met' if ok else 'MISSED'}"
        print(f"  {key:<24}{value:10.1f}{mark}")
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), **{k: round(v, 2) for k, v in
                                                                                     res.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
