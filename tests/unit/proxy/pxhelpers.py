"""Builders for Kubernetes-shaped Service / EndpointSlice dicts."""
from __future__ import annotations

from kemu.nft import FakeNft
from proxy.inspect import ProxyTableView
from proxy.proxier import Proxier
from proxy.ruleset import ProxyNode

NODE = ProxyNode(name="node-1", node_ips=["192.168.56.11", "10.244.1.1"], cluster_cidr="10.244.0.0/16")


def make_service(name: str, cluster_ip: str = "10.96.0.10", ports=None, ns: str = "default",
                 type_: str = "ClusterIP", **spec) -> dict:
    ports = ports if ports is not None else [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    s = {"type": type_, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports}
    status = spec.pop("status", {})
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": s, "status": status}


def make_slice(service: str, endpoints, ports=None, ns: str = "default", name: str | None = None) -> dict:
    """endpoints: list of (ip, node, ready) or ip strings."""
    eps = []
    for e in endpoints:
        ip, node, ready = (e, "node-1", True) if isinstance(e, str) else e
        eps.append({"addresses": [ip], "nodeName": node,
                    "conditions": {"ready": ready, "serving": ready, "terminating": False}})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class Harness:
    """A Proxier on a FakeNft, with conntrack calls recorded; ``px`` reads its table by the proxy's layout."""

    def __init__(self, node: ProxyNode = NODE) -> None:
        self.nft = FakeNft()
        self.px = ProxyTableView(self.nft, node.table)
        self.conntrack_calls: list[list[str]] = []
        self.proxier = Proxier(node, self.nft, conntrack=self.conntrack_calls.append)

    def apply(self, *objs) -> None:
        for o in objs:
            key = f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}"
            if o["kind"] == "Service":
                self.proxier.on_service(o, key)
            else:
                self.proxier.on_endpoint_slice(o, key)

    def sync(self):
        r = self.proxier.sync()
        assert r.kind in ("full", "partial", "noop"), r
        return r

    def targets(self, ip: str, port: int, proto: str = "tcp") -> set[str]:
        return self.px.dnat_targets(self.px.service_verdict(ip, proto, port), ip, port)

    def nodeport_targets(self, port: int, proto: str = "tcp") -> set[str]:
        return self.px.dnat_targets(self.px.nodeport_verdict(proto, port), None, port)

    def listing(self) -> str:
        return self.nft.list_table("ip", "kemu-proxy")
