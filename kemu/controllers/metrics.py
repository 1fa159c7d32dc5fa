"""kube-controller-manager's Prometheus metrics: client-go's workqueue metrics for every WorkQueue (labelled by
queue name) and the HPA's, in one process-wide registry served on :10257 (kube-controller-manager's port)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kemu.client.daemon import serve_metrics

METRICS_PORT = 10257
REGISTRY = CollectorRegistry()
# client-go's workqueue buckets: prometheus.ExponentialBuckets(10e-9, 10, 12)
QUEUE_BUCKETS = tuple(10e-9 * 10 ** i for i in range(12))

adds = Counter("workqueue_adds_total", "Total number of adds handled by workqueue", ["name"], registry=REGISTRY)
depth = Gauge("workqueue_depth", "Current depth of workqueue", ["name"], registry=REGISTRY)
retries = Counter("workqueue_retries_total", "Total number of retries handled by workqueue", ["name"],
                  registry=REGISTRY)
queue_duration = Histogram("workqueue_queue_duration_seconds", "How long in seconds an item stays in workqueue "
                           "before being requested.", ["name"], buckets=QUEUE_BUCKETS, registry=REGISTRY)
work_duration = Histogram("workqueue_work_duration_seconds", "How long in seconds processing an item from "
                          "workqueue takes.", ["name"], buckets=QUEUE_BUCKETS, registry=REGISTRY)
hpa_reconciliations = Counter("horizontal_pod_autoscaler_controller_reconciliations_total",
                              "Number of reconciliations of HPA controller.", ["action", "error"],
                              registry=REGISTRY)
hpa_reconciliation_duration = Histogram("horizontal_pod_autoscaler_controller_reconciliation_duration_seconds",
                                        "The time(seconds) that the HPA controller takes to reconcile once.",
                                        ["action", "error"], registry=REGISTRY)


def text() -> str:
    return generate_latest(REGISTRY).decode()


def serve(addr: str = "0.0.0.0", port: int = METRICS_PORT) -> None:
    serve_metrics(REGISTRY, port, addr)
