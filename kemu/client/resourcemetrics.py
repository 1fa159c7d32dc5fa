"""The resource metrics pipeline as metrics-server runs it: node agents' Summary API (`/stats/summary`) →
`metrics.k8s.io/v1beta1` PodMetrics and NodeMetrics. Pure conversions plus `scrape_summaries`, which reads every
Ready node's summary through a NodeClient; the API server (kemu.apiserver.metrics), the HPA controller and
`kemu top` all use it, so they see the same numbers.

CPU is `usageNanoCores` (a rate over the agent's sampling window), memory the working set, as metrics-server
reports them; a pod whose containers have no CPU rate yet is left out (metrics-server: "metrics not available
yet")."""
from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kemu.api.kinds import Kind

log = logging.getLogger(__name__)
METRICS_API = "metrics.k8s.io/v1beta1"
METRICS_KINDS: dict[str, Kind] = {k.name: k for k in [       # served by the API server, never stored
    Kind("PodMetrics", METRICS_API, "pods"),
    Kind("NodeMetrics", METRICS_API, "nodes", namespaced=False),
]}
WINDOW = "15s"        # metrics-server's default --metric-resolution


def cpu_quantity(nano_cores: int) -> str:
    """metrics-server's CPU quantity: nanocores as `123456n` (kubectl top shows millicores)."""
    return f"{int(nano_cores)}n"


def memory_quantity(value: int) -> str:
    """Bytes as metrics-server prints them: Ki units."""
    return f"{int(value) // 1024}Ki"


def pod_metrics(summary: dict) -> list[dict]:
    """The PodMetrics of one node's summary (pods with a CPU rate for every container)."""
    out = []
    for pod in summary.get("pods") or []:
        containers = []
        for c in pod.get("containers") or []:
            nano = (c.get("cpu") or {}).get("usageNanoCores")
            if nano is None:
                break
            containers.append({"name": c["name"], "usage": {
                "cpu": cpu_quantity(nano), "memory": memory_quantity((c.get("memory") or {})
                                                                     .get("workingSetBytes", 0))}})
        else:
            if not containers:
                continue
            ref = pod["podRef"]
            stamp = (pod.get("cpu") or {}).get("time") or (pod["containers"][0].get("cpu") or {}).get("time")
            out.append({"kind": "PodMetrics", "apiVersion": METRICS_API,
                        "metadata": {"name": ref["name"], "namespace": ref["namespace"],
                                     "creationTimestamp": stamp, "labels": ref.get("labels") or {}},
                        "timestamp": stamp, "window": WINDOW, "containers": containers})
    return out


def node_metrics(summary: dict) -> dict | None:
    """The NodeMetrics of one node's summary (None until the node has a CPU rate)."""
    node = summary.get("node") or {}
    nano = (node.get("cpu") or {}).get("usageNanoCores")
    if nano is None:
        return None
    stamp = node["cpu"].get("time")
    return {"kind": "NodeMetrics", "apiVersion": METRICS_API,
            "metadata": {"name": node.get("nodeName", ""), "creationTimestamp": stamp},
            "timestamp": stamp, "window": WINDOW,
            "usage": {"cpu": cpu_quantity(nano),
                      "memory": memory_quantity((node.get("memory") or {}).get("workingSetBytes", 0))}}


def node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def scrape_summaries(nodes: list[dict], fetch: Callable[[dict], dict], workers: int = 8) -> dict[str, dict]:
    """node name → its summary, for every Ready node that answered (`fetch(node)` reads one node's
    /stats/summary; a node that fails is logged and left out, as metrics-server does)."""
    ready = [n for n in nodes if node_ready(n)]

    def one(node: dict) -> tuple[str, dict | None]:
        try:
            return node["metadata"]["name"], fetch(node)
        except Exception as exc:     # noqa: BLE001 - one node down must not hide the others
            log.warning("scraping node %s failed: %s", node["metadata"]["name"], exc)
            return node["metadata"]["name"], None
    if not ready:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(ready))) as pool:
        return {name: s for name, s in pool.map(one, ready) if s is not None}


def millicores(quantity: str) -> int:
    """A metrics CPU quantity (`123456n`, `250m`, `1`) in millicores, rounded down."""
    from kemu.api.quantity import parse_quantity
    return int(parse_quantity(quantity) * 1000)


def node_fetcher(tls, connect) -> Callable[[dict], dict]:
    """A `fetch` for scrape_summaries: the node's /stats/summary through a NodeClient (`tls`: ClientTLS,
    `connect`: where sockets start)."""
    from kemu.client.nodeclient import NodeClient, node_endpoint

    def fetch(node: dict) -> dict:
        host, port = node_endpoint(node)
        return NodeClient(node["metadata"]["name"], host, port, tls, connect, timeout=5.0).get_json("/stats/summary")
    return fetch


def pod_usage(summaries: dict[str, dict], namespace: str) -> dict[str, dict[str, float]]:
    """pod name → {"cpu": millicores, "memory": bytes, "<container>/cpu": ..., "<container>/memory": ...} of the
    pods of `namespace` that have metrics (what the HPA controller reads from the metrics API)."""
    out: dict[str, dict[str, float]] = {}
    for summary in summaries.values():
        for m in pod_metrics(summary):
            if m["metadata"]["namespace"] != namespace:
                continue
            usage: dict[str, float] = {"cpu": 0.0, "memory": 0.0}
            for c in m["containers"]:
                cpu = millicores(c["usage"]["cpu"])
                mem = float(int(c["usage"]["memory"][:-2]) * 1024)
                usage["cpu"] += cpu
                usage["memory"] += mem
                usage[f"{c['name']}/cpu"] = cpu
                usage[f"{c['name']}/memory"] = mem
            out[m["metadata"]["name"]] = usage
    return out


class PodMetricsSource:
    """The HPA controller's metrics client: scrapes the nodes that run the given pods."""

    def __init__(self, client, fetch: Callable[[dict], dict]) -> None:
        self.client, self.fetch = client, fetch

    def __call__(self, namespace: str, pods: list[dict]) -> dict[str, dict[str, float]]:
        wanted = {p["spec"].get("nodeName") for p in pods} - {None, ""}
        nodes = [n for n in self.client.list("Node")[0] if n["metadata"]["name"] in wanted]
        return pod_usage(scrape_summaries(nodes, self.fetch), namespace)
