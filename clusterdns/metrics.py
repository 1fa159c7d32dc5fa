"""The cluster DNS server's Prometheus metrics, CoreDNS's names (its prometheus plugin on :9153):
coredns_dns_requests_total, coredns_dns_responses_total, coredns_dns_request_duration_seconds; one registry per
server."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from kemu.client.daemon import serve_metrics

METRICS_PORT = 9153          # CoreDNS's prometheus plugin
ZONE = "."
# CoreDNS's duration buckets: prometheus.ExponentialBuckets(0.00025, 2, 16)
DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
QTYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV", 255: "ANY"}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def query_type(wire: bytes) -> str:
    """The first question's type as CoreDNS labels it (`other` for types it does not name), from the wire."""
    i = 12
    try:
        while wire[i]:
            if wire[i] & 0xC0:
                i += 1
                break
            i += wire[i] + 1
        qtype = int.from_bytes(wire[i + 1:i + 3], "big")
    except IndexError:
        return "other"
    return QTYPES.get(qtype, "other")


class DNSMetrics:
    def __init__(self, server: str, registry: CollectorRegistry | None = None) -> None:
        self.server = server
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and "
                                "family.", ["server", "zone", "view", "proto", "family", "type"], registry=r)
        self.responses = Counter("coredns_dns_responses_total", "Counter of response status codes.",
                                 ["server", "zone", "view", "rcode", "plugin"], registry=r)
        self.duration = Histogram("coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each "
                                  "request took per zone.", ["server", "zone", "view", "type"],
                                  buckets=DURATION_BUCKETS, registry=r)

    def observe(self, wire: bytes, out: bytes | None, proto: str, seconds: float) -> None:
        """One query (`wire`) and its answer (`out`, None: dropped)."""
        qtype = query_type(wire)
        self.requests.labels(self.server, ZONE, "", proto, "1", qtype).inc()
        self.duration.labels(self.server, ZONE, "", qtype).observe(seconds)
        if out is not None and len(out) >= 4:
            self.responses.labels(self.server, ZONE, "", RCODES.get(out[3] & 0x0F, str(out[3] & 0x0F)), "").inc()

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def serve(self, addr: str, port: int = METRICS_PORT) -> None:
        serve_metrics(self.registry, port, addr)
