"""The node agent's Prometheus metrics, as kubelet serves them on its port: `/metrics` (kubelet_* names, one
registry per agent) and `/metrics/resource` (the resource metrics endpoint: node, pod and container CPU seconds
and working-set bytes read from the cgroups; the names metrics-server reads)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

# kubelet's pod start SLI buckets (seconds)
START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200,
                 1800, 2700, 3600)


class AgentMetrics:
    """kubelet_running_pods, kubelet_running_containers{container_state}, kubelet_node_name{node},
    kubelet_pod_start_duration_seconds. `pods` returns the pods the agent runs."""

    def __init__(self, node_name: str, pods: Callable[[], list[dict]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pods = pods
        Gauge("kubelet_node_name", "The node's name. The count is always 1.", ["node"], registry=r) \
            .labels(node=node_name).set(1)
        Gauge("kubelet_running_pods", "Number of pods that have a running pod sandbox", registry=r) \
            .set_function(lambda: sum(1 for p in self.pods() if _phase(p) == "Running"))
        self.containers = Gauge("kubelet_running_containers", "Number of containers currently running",
                                ["container_state"], registry=r)
        self.pod_start = Histogram("kubelet_pod_start_duration_seconds",
                                   "Duration in seconds from kubelet seeing a pod for the first time to the pod "
                                   "starting to run", buckets=START_BUCKETS, registry=r)

    def text(self) -> str:
        counts = {"running": 0, "exited": 0, "created": 0}
        for pod in self.pods():
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                state = status.get("state") or {}
                key = "running" if "running" in state else "exited" if "terminated" in state else "created"
                counts[key] += 1
        for state, n in counts.items():
            self.containers.labels(container_state=state).set(n)
        return generate_latest(self.registry).decode()


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "")


class _ResourceCollector:
    """One scrape of the resource metrics endpoint, from a Summary (stats/v1alpha1) document."""

    def __init__(self, summary: dict) -> None:
        self.summary = summary

    def collect(self):
        node = self.summary.get("node") or {}
        ncpu = CounterMetricFamily("node_cpu_usage_seconds", "Cumulative cpu time consumed by the node in core-seconds")
        nmem = GaugeMetricFamily("node_memory_working_set_bytes", "Current working set of the node in bytes")
        ncpu.add_metric([], (node.get("cpu") or {}).get("usageCoreNanoSeconds", 0) / 1e9)
        nmem.add_metric([], (node.get("memory") or {}).get("workingSetBytes", 0))
        pcpu = CounterMetricFamily("pod_cpu_usage_seconds", "Cumulative cpu time consumed by the pod in core-seconds",
                                   labels=["namespace", "pod"])
        pmem = GaugeMetricFamily("pod_memory_working_set_bytes", "Current working set of the pod in bytes",
                                 labels=["namespace", "pod"])
        ccpu = CounterMetricFamily("container_cpu_usage_seconds", "Cumulative cpu time consumed by the container in "
                                   "core-seconds", labels=["container", "namespace", "pod"])
        cmem = GaugeMetricFamily("container_memory_working_set_bytes", "Current working set of the container in "
                                 "bytes", labels=["container", "namespace", "pod"])
        for pod in self.summary.get("pods") or []:
            ref = pod["podRef"]
            labels = [ref["namespace"], ref["name"]]
            pcpu.add_metric(labels, (pod.get("cpu") or {}).get("usageCoreNanoSeconds", 0) / 1e9)
            pmem.add_metric(labels, (pod.get("memory") or {}).get("workingSetBytes", 0))
            for c in pod.get("containers") or []:
                clabels = [c["name"], *labels]
                ccpu.add_metric(clabels, (c.get("cpu") or {}).get("usageCoreNanoSeconds", 0) / 1e9)
                cmem.add_metric(clabels, (c.get("memory") or {}).get("workingSetBytes", 0))
        scrape = GaugeMetricFamily("scrape_error", "1 if there was an error while getting container metrics, 0 "
                                   "otherwise")
        scrape.add_metric([], 0)
        return [ncpu, nmem, pcpu, pmem, ccpu, cmem, scrape]


def resource_metrics_text(summary: dict) -> str:
    """The `/metrics/resource` exposition of `summary`."""
    registry = CollectorRegistry()
    registry.register(_ResourceCollector(summary))
    return generate_latest(registry).decode()
