"""A tiny node topology made of network namespaces, for the proxy's root tests and bench.

    client netns (192.168.56.100) --veth-- node netns eth1 192.168.56.11
                                           node netns bridge kemu0 10.244.1.1/24
                                             +-- pod1 10.244.1.11, pod2 .12, pod3 .13 (veths)

Everything lives in namespaces named ``<prefix>…``; veth pairs are created with
their peer directly in the target namespace; nothing is added to the root
namespace. Default routes point only at addresses inside the topology. Built with the
netns toolkit (kemu/lab/netns.py); commands enter namespaces with nsenter --net=.
``down()`` kills every process it started (by pid) and deletes the namespaces.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from kemu.lab.netns import Bridge, Namespace, VethPair, add_route

REPO = str(Path(__file__).resolve().parent.parent)
PY = sys.executable

POD_SERVER = r'''
import socket, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
name = sys.argv[1]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        if self.path.startswith("/clientip"):
            body = f"{self.client_address[0]}:{self.client_address[1]}"
        else:
            body = name
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 5353))
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(name.encode(), addr)
threading.Thread(target=udp, daemon=True).start()
srv = ThreadingHTTPServer(("0.0.0.0", 8080), H)
srv.daemon_threads = True
print("ready", flush=True)
srv.serve_forever()
'''

HTTP_CLIENT = r'''
import json, sys, time, urllib.request, urllib.error
url, n = sys.argv[1], int(sys.argv[2])
out = []
for _ in range(n):
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            out.append({"body": r.read().decode(), "t": time.monotonic() - t})
    except Exception as e:
        reason = getattr(e, "reason", e)
        out.append({"error": type(reason).__name__, "t": time.monotonic() - t})
print(json.dumps(out))
'''


class Testbed:
    """Namespaces, links and processes of one test topology."""

    __test__ = False  # not a pytest class

    def __init__(self, prefix: str = "kemu-t-px-", pods: int = 3) -> None:
        self.tag = prefix + secrets.token_hex(2)
        self.node = f"{self.tag}-node"
        self.client = f"{self.tag}-client"
        self.pods = [f"{self.tag}-pod{i + 1}" for i in range(pods)]
        self.pod_ips = [f"10.244.1.{11 + i}" for i in range(pods)]
        self.node_ips = ["192.168.56.11", "10.244.1.1"]
        self.client_ip = "192.168.56.100"
        self.procs: list[subprocess.Popen] = []
        self.created: list[str] = []

    # -- plumbing
    def run(self, ns: str, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command in a namespace (text output)."""
        return Namespace(ns).run(*args, timeout=timeout, check=check, text=True)

    def popen(self, ns: str, *args: str, **kw) -> subprocess.Popen:
        """Start a tracked process in a namespace (killed by down())."""
        p = Namespace(ns).popen(*args, **kw)
        self.procs.append(p)
        return p

    def up(self) -> "Testbed":
        made: dict[str, Namespace] = {}
        for name in [self.node, self.client, *self.pods]:
            made[name] = Namespace(name).create()
            self.created.append(name)
        node, client = made[self.node], made[self.client]
        node.sysctl({"net.ipv4.ip_forward": 1})
        bridge = Bridge(node, "kemu0").create("10.244.1.1", 24)
        for i, (pod, pip) in enumerate(zip(self.pods, self.pod_ips)):
            # like a CNI bridge with hairpinMode: with br_netfilter loaded, a pod reaching itself
            # through a Service is DNATed while bridged and must go back out of its own port
            VethPair(node, f"vpod{i + 1}", made[pod], "eth0").create(bridge, pip, 24, gateway_b="10.244.1.1",
                                                                       hairpin=True)
        VethPair(node, "eth1", client, "eth0").create(address_a="192.168.56.11", address_b=self.client_ip)
        # unknown destinations (e.g. a ClusterIP nobody DNATs) leave towards the client, which drops them
        add_route(node, "0.0.0.0/0", self.client_ip)
        return self

    def start_pod_servers(self) -> None:
        """HTTP :8080 (/hostname, /clientip) and UDP :5353 name-echo in every pod."""
        for pod in self.pods:
            name = pod.rsplit("-", 1)[1]
            p = self.popen(pod, PY, "-c", POD_SERVER, name, stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"

    def http(self, ns: str, url: str, n: int = 1, timeout: float = 120) -> list[dict]:
        """n fresh HTTP GETs from a namespace: [{"body"|"error", "t"}]."""
        r = self.run(ns, PY, "-c", HTTP_CLIENT, url, str(n), timeout=timeout)
        return json.loads(r.stdout)

    def start_driver(self, node_name: str = "node-1") -> "Driver":
        spec = {"name": node_name, "node_ips": self.node_ips, "cluster_cidr": "10.244.0.0/16"}
        env = dict(os.environ, PYTHONPATH=REPO)
        p = self.popen(self.node, PY, "-m", "kemu.testing.proxydriver", json.dumps(spec), stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
        return Driver(p)

    def down(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(3)
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        self.procs.clear()
        for ns in reversed(self.created):
            Namespace(ns).delete()
        self.created.clear()


class Driver:
    """Client of kemu.testing.proxydriver running in the node namespace."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc

    def call(self, op: str, **kw) -> object:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("proxy driver exited")
        out = json.loads(line)
        if not out["ok"]:
            raise RuntimeError(out["error"])
        return out["result"]

    def apply(self, *objs: dict) -> None:
        items = []
        for o in objs:
            key = f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}"
            items.append(["service" if o["kind"] == "Service" else "slice", key, o])
        self.call("bulk", items=items)

    def delete(self, kind: str, key: str) -> None:
        self.call(kind, key=key, obj=None)

    def sync(self) -> dict:
        r = self.call("sync")
        assert isinstance(r, dict) and r["kind"] in ("full", "partial", "noop"), r
        return r


def wait_until(pred, timeout: float = 5.0, step: float = 0.05) -> bool:
    """Poll pred() until true or timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return bool(pred())


def service(name: str, cluster_ip: str, ports: list[dict] | None = None, type_: str = "ClusterIP",
            **spec) -> dict:
    """A Service dict."""
    ports = ports or [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    s = {"type": type_, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": s}


def endpoint_slice(svc: str, ips: list[str], ports: list[dict] | None = None, node: str = "node-1") -> dict:
    """An EndpointSlice dict with ready endpoints on ``node``."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-x1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": True, "serving": True, "terminating": False}} for ip in ips],
            "ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}]}
