"""The proxy's Prometheus metrics: kube-proxy's names and types, one registry per Proxier (served on :10249)."""
from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from kemu.client.daemon import serve_metrics

METRICS_PORT = 10249   # kube-proxy's metrics port
# kube-proxy's sync duration buckets: prometheus.ExponentialBuckets(0.001, 2, 15)
DURATION_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
OBJECT_KINDS = ("chains", "rules", "sets", "elements")


class ProxyMetrics:
    """kubeproxy_sync_proxy_rules_* metrics plus kemu_proxy_nftables_objects, in their own registry."""

    def __init__(self, pending: Callable[[], int], registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sync_duration = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                                       "SyncProxyRules latency in seconds", buckets=DURATION_BUCKETS, registry=r)
        self.durations = {
            "full": Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                              "SyncProxyRules latency in seconds for full resyncs", buckets=DURATION_BUCKETS,
                              registry=r),
            "partial": Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                 "SyncProxyRules latency in seconds for partial resyncs", buckets=DURATION_BUCKETS,
                                 registry=r)}
        self.last_sync = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                               "The last time proxy rules were successfully synced", registry=r)
        self.sync_failures = Counter("kubeproxy_sync_proxy_rules_nftables_sync_failures",
                                     "Number of failed nftables transactions", registry=r)
        self.service_changes = Counter("kubeproxy_sync_proxy_rules_service_changes",
                                       "Cumulative proxy rules Service changes", registry=r)
        self.endpoint_changes = Counter("kubeproxy_sync_proxy_rules_endpoint_changes",
                                        "Cumulative proxy rules EndpointSlice changes", registry=r)
        self.changes_pending = Gauge("kubeproxy_sync_proxy_rules_service_changes_pending",
                                     "Pending proxy rules Service changes", registry=r)
        self.changes_pending.set_function(pending)
        self.objects = Gauge("kemu_proxy_nftables_objects", "Objects in the proxy's nftables table", ["kind"],
                             registry=r)
        for kind in OBJECT_KINDS:
            self.objects.labels(kind=kind)

    def synced(self, kind: str, seconds: float, counts: dict[str, int]) -> None:
        """Record a successful sync ("full" or "partial") and the table's object counts after it."""
        self.sync_duration.observe(seconds)
        self.durations[kind].observe(seconds)
        self.last_sync.set_to_current_time()
        for k in OBJECT_KINDS:
            self.objects.labels(kind=k).set(counts.get(k, 0))

    def text(self) -> str:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry).decode()

    def serve(self, port: int = METRICS_PORT, addr: str = "0.0.0.0") -> None:
        """Serve /metrics from a daemon thread (in the node's network namespace)."""
        serve_metrics(self.registry, port, addr)
