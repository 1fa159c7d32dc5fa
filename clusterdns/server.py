"""`kemu dns --node-config F`: the node-local cluster DNS server (NodeLocal DNSCache style).

It runs inside the node's network namespace, listens on the node's lab IP port 53 (UDP and TCP), keeps the zone in
step with the store through informers, and adds its own address to the selectorless `kube-system/kube-dns`
Service's Endpoints, so pods reach it at 10.96.0.10 through the proxy like any Service.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
import time

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from clusterdns.metrics import METRICS_PORT, DNSMetrics
from clusterdns.zone import Zone, answer, build_zone
from kemu.api.network import CLUSTER_DNS_IP, CLUSTER_DOMAIN
from kemu.api.nodeconfig import NodeConfig
from kemu.client import Client
from kemu.client.daemon import start_daemon
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer

log = logging.getLogger("dns")
DNS_PORTS = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]


def kube_dns_service(cluster_ip: str = CLUSTER_DNS_IP) -> dict:
    """The selectorless kube-dns Service (its Endpoints list each node's DNS server)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "KemuDNS"}},
            "spec": {"clusterIP": cluster_ip, "ports": [dict(p, targetPort=53) for p in DNS_PORTS]}}


def register_endpoint(client: Client, node_name: str, ip: str, present: bool = True) -> None:
    """Add (or remove) this node's server in the kube-dns Endpoints; creates Service and Endpoints if missing."""
    if present and client.get("Service", "kube-system", "kube-dns") is None:
        try:
            client.create(kube_dns_service())
        except Exception as exc:   # another node made it first
            log.info("kube-dns Service: %s", exc)

    def edit(ep: dict) -> None:
        subsets = ep.get("subsets") or [{"ports": DNS_PORTS}]
        addresses = [a for a in subsets[0].get("addresses") or [] if a.get("ip") != ip]
        if present:
            addresses.append({"ip": ip, "nodeName": node_name})
        addresses.sort(key=lambda a: a["ip"])
        ep["subsets"] = [{"addresses": addresses, "ports": DNS_PORTS}] if addresses else []
    for _ in range(20):
        if client.mutate("Endpoints", "kube-system", "kube-dns", edit) is not None or not present:
            return
        ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "namespace": "kube-system",
                                                                    "labels": {"k8s-app": "kube-dns"}}}
        edit(ep)
        try:
            client.create(ep)
            return
        except Exception:
            time.sleep(0.05)


class ZoneCache:
    """The current zone, rebuilt (at most every `interval`) after Services, EndpointSlices or Pods change."""

    def __init__(self, client: Client, domain: str, interval: float = 0.05) -> None:
        self.domain = domain
        self.interval = interval
        self.zone: Zone = build_zone([], [], [], domain)
        self.answers: dict[tuple[bytes, int | None], bytes] = {}   # query minus ID → response minus ID, per zone
        self._changed = threading.Event()
        self.informers = [Informer(client, kind, self._on_change) for kind in ("Service", "EndpointSlice", "Pod")]
        self.events = EventRecorder(client, "cluster-dns")
        self.skipped: dict[str, str] = {}      # uid → why an object has no records
        self.rebuilds = 0

    def _on_change(self, key: str, old: dict | None, new: dict | None) -> None:
        if key.startswith("/registry/pods/") and old is not None and new is not None and \
                (old.get("status") or {}).get("podIP") == (new.get("status") or {}).get("podIP") and \
                old["metadata"].get("deletionTimestamp") == new["metadata"].get("deletionTimestamp") and \
                old["spec"].get("hostname") == new["spec"].get("hostname"):
            return   # status churn that changes no record
        self._changed.set()

    def start(self) -> None:
        for inf in self.informers:
            inf.start()
        for inf in self.informers:
            inf.synced.wait(10)
        self.rebuild()
        threading.Thread(target=self._loop, name="zone-rebuild", daemon=True).start()

    def rebuild(self) -> None:
        services, slices, pods = (inf.items() for inf in self.informers)
        failed: dict[str, str] = {}

        def left_out(obj: dict, exc: Exception) -> None:   # reported once per object and reason
            uid, reason = obj["metadata"].get("uid", ""), f"{type(exc).__name__}: {exc}"
            failed[uid] = reason
            if self.skipped.get(uid) != reason:
                log.error("%s %s: no DNS records (%s)", obj.get("kind"), obj["metadata"].get("name"), reason)
                self.events.record(obj, "Warning", "DNSRecordsFailed", f"cluster DNS left it out: {reason}")
        zone = build_zone(services, slices, pods, self.domain, left_out)
        self.zone, self.answers, self.skipped = zone, {}, failed
        self.rebuilds += 1

    def _loop(self) -> None:
        while True:
            self._changed.wait()
            time.sleep(self.interval)
            self._changed.clear()
            try:
                self.rebuild()
            except Exception:
                log.exception("rebuilding the zone failed")


def respond(cache: ZoneCache, wire: bytes, max_size: int | None) -> bytes | None:
    """Wire response to a wire query (None for garbage we cannot even parse a header of). Answers are cached
    per zone version by the query's bytes after the ID, as CoreDNS's cache does."""
    key = (wire[2:], max_size)
    answers = cache.answers      # the dict of the current zone (a rebuild swaps in a fresh one)
    hit = answers.get(key)
    if hit is not None:
        return wire[:2] + hit
    try:
        query = dns.message.from_wire(wire)
    except dns.message.ShortHeader:
        return None
    except Exception:
        if len(wire) < 12:
            return None
        header = bytearray(wire[:12])
        header[2] |= 0x80                       # QR
        header[3] = (header[3] & 0xF0) | dns.rcode.FORMERR
        return bytes(header[:4]) + b"\0" * 8
    out = _render(answer(cache.zone, query), query, max_size)
    if len(answers) < 10000:
        answers[key] = out[2:]
    return out


def _render(response: dns.message.Message, query: dns.message.Message, max_size: int | None) -> bytes:
    if max_size is None:
        return response.to_wire()
    limit = max(query.payload, 512) if query.edns >= 0 else 512
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.additional.clear()
        response.authority.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        sock.settimeout(10)
        try:
            while True:
                head = _recv_exact(sock, 2)
                if head is None:
                    return
                wire = _recv_exact(sock, struct.unpack("!H", head)[0])
                if wire is None:
                    return
                start = time.perf_counter()
                out = respond(self.server.cache, wire, None)
                self.server.metrics.observe(wire, out, "tcp", time.perf_counter() - start)
                if out is None:
                    return
                sock.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class DNSServer:
    def __init__(self, client: Client, address: str, port: int = 53, domain: str = CLUSTER_DOMAIN) -> None:
        self.cache = ZoneCache(client, domain)
        self.address, self.port = address, port
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, port))
        self.tcp = _TCPServer((address, port), _TCPHandler)
        self.tcp.cache = self.cache
        self.metrics = DNSMetrics(f"dns://{address}:{port}")
        self.tcp.metrics = self.metrics

    def start(self) -> "DNSServer":
        self.cache.start()
        threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True).start()
        threading.Thread(target=self.tcp.serve_forever, args=(0.05,), name="dns-tcp", daemon=True).start()
        return self

    def _serve_udp(self) -> None:
        while True:
            try:
                wire, peer = self.udp.recvfrom(4096)
                start = time.perf_counter()
                out = respond(self.cache, wire, 512)
                self.metrics.observe(wire, out, "udp", time.perf_counter() - start)
                if out is not None:
                    self.udp.sendto(out, peer)
            except OSError:
                if self.udp.fileno() < 0:
                    return
            except Exception:
                log.exception("answering a query failed")

    def stop(self) -> None:
        self.tcp.shutdown()
        self.udp.close()


def main(config: NodeConfig, port: int = 53) -> None:
    """Serve the cluster domain for one node until SIGTERM."""
    client, stop = start_daemon(config)
    server = DNSServer(client, config.node_ip, port, config.cluster_domain).start()
    log.info("serving %s on %s:%d (udp, tcp)", config.cluster_domain, config.node_ip, port)
    try:
        server.metrics.serve(config.node_ip, METRICS_PORT)
    except OSError as exc:
        log.warning("metrics not served: %s", exc)
    register_endpoint(client, config.node_name, config.node_ip)
    stop.wait()
    try:
        register_endpoint(client, config.node_name, config.node_ip, present=False)
    finally:
        server.stop()
