"""NetworkPolicy in a real lab: upstream's e2e model (test/e2e/network/netpol) on real packets.

Namespaces x, y, z; pods a, b, c in each (label pod=<name>), two containers each serving TCP and UDP on 80 and 81
(`kemu agnhost netexec`), named ports serve-<port>-<proto>, a Service s-<ns>-<pod> per pod. A probe is a connection
from a socket created inside the source pod's network namespace to the destination's Service ClusterIP (so policies
are judged after the proxy's DNAT), 1 s timeout, all pairs in parallel; the whole reachability matrix is compared
with the expected truth table (self-probes ignored, as upstream).
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import selectors
import socket
import threading
import time
import uuid

import pytest

from kemu.testing import LabHandle, require_root
from runtime.linux import setns

pytestmark = pytest.mark.root

NS = ("x", "y", "z")
PODS = ("a", "b", "c")
ALL = [f"{ns}/{p}" for ns in NS for p in PODS]
TIMEOUT = 1.0


# ------------------------------------------------------------------------------------------------ the model
def manifests(nodes: int) -> list[dict]:
    objs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NS]
    for i, key in enumerate(ALL):
        ns, name = key.split("/")
        containers = [{"name": f"cont-{port}", "image": "kemu/agnhost",
                       "args": ["netexec", f"--http-port={port}", f"--udp-port={port}"],
                       "ports": [{"name": f"serve-{port}-tcp", "containerPort": port, "protocol": "TCP"},
                                 {"name": f"serve-{port}-udp", "containerPort": port, "protocol": "UDP"}]}
                      for port in (80, 81)]
        spec: dict = {"containers": containers}
        if nodes > 1:
            spec["nodeName"] = f"node{1 + i % nodes}"
        objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns,
                                                                     "labels": {"pod": name}}, "spec": spec})
        objs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s-{ns}-{name}", "namespace": ns},
                     "spec": {"selector": {"pod": name},
                              "ports": [{"name": f"serve-{p}-{proto.lower()}", "port": p, "protocol": proto}
                                        for p in (80, 81) for proto in ("TCP", "UDP")]}})
    return objs


class Model:
    """A lab with the 9 pods, their Services and the source netns of each pod."""

    def __init__(self, handle: LabHandle) -> None:
        self.h = handle
        self.client = handle.client
        self.client.apply(manifests(len(handle.lab.state.nodes)), source="test")
        self.svc_ip: dict[str, str] = {}
        self.netns: dict[str, str] = {}
        for key in ALL:
            ns, name = key.split("/")
            handle.wait_pod(name, namespace=ns, ready=True, timeout=60)
            handle.wait_endpoints(f"s-{ns}-{name}", 1, namespace=ns, timeout=30)
            self.svc_ip[key] = self.client.get("Service", ns, f"s-{ns}-{name}")["spec"]["clusterIP"]
            uid = self.client.get("Pod", ns, name)["metadata"]["uid"]
            paths = glob.glob(os.path.join(handle.lab.dir, "nodes", "*", "pods", f"{ns}_{name}_{uid}", "netns"))
            assert paths, f"no sandbox netns for {key}"
            self.netns[key] = paths[0]

    def policy(self, name: str, spec: dict, ns: str = "x") -> None:
        self.client.apply([{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                            "metadata": {"name": name, "namespace": ns}, "spec": spec}], source="test")

    def clear(self) -> None:
        for ns in NS:
            for p in self.client.list("NetworkPolicy", ns)[0]:
                self.client.delete("NetworkPolicy", ns, p["metadata"]["name"])

    def relabel(self, key: str, labels: dict) -> None:
        ns, name = key.split("/")
        self.client.mutate("Pod", ns, name, lambda pod: pod["metadata"].__setitem__("labels", labels) or pod)

    # -------------------------------------------------------------------------------------------- probing
    def probe(self, port: int = 80, proto: str = "tcp") -> tuple[dict[tuple[str, str], bool], list[float]]:
        """Every src → dst's Service in 8 rounds of 9 parallel probes (one per destination per round: netexec's
        listen backlog is small); returns (results, seconds each refused probe took)."""
        results: dict[tuple[str, str], bool] = {}
        refused: list[float] = []
        for r in range(1, len(ALL)):
            got, slow = self._probe_round([(s, ALL[(i + r) % len(ALL)]) for i, s in enumerate(ALL)], port, proto)
            results.update(got)
            refused += slow
        return results, refused

    def _probe_round(self, pairs: list[tuple[str, str]], port: int, proto: str) \
            -> tuple[dict[tuple[str, str], bool], list[float]]:
        socks: dict[tuple[str, str], socket.socket] = {}

        def make(src: str) -> None:   # a short-lived thread enters the pod's netns; the test's threads never do
            setns(self.netns[src], "net")
            for s, d in pairs:
                if s == src:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
                    sock.setblocking(False)
                    socks[(s, d)] = sock
        threads = [threading.Thread(target=make, args=(src,)) for src in ALL]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sel = selectors.DefaultSelector()
        start = time.monotonic()
        results: dict[tuple[str, str], bool] = {}
        refused: list[float] = []
        try:
            for (s, d), sock in socks.items():
                if proto == "tcp":
                    rc = sock.connect_ex((self.svc_ip[d], port))
                    if rc not in (0, errno.EINPROGRESS):    # refused already within connect()
                        results[(s, d)] = False
                        refused.append(time.monotonic() - start)
                        continue
                    sel.register(sock, selectors.EVENT_WRITE, (s, d))
                else:
                    sock.connect((self.svc_ip[d], port))
                    sock.send(b"hostname")
                    sel.register(sock, selectors.EVENT_READ, (s, d))
            while len(results) < len(socks) and time.monotonic() - start < TIMEOUT:
                for key, _ev in sel.select(TIMEOUT - (time.monotonic() - start)):
                    pair, sock = key.data, key.fileobj
                    if proto == "tcp":
                        ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    else:
                        try:
                            ok = bool(sock.recv(512))
                        except OSError:
                            ok = False
                    results[pair] = ok
                    if not ok:
                        refused.append(time.monotonic() - start)
                    sel.unregister(sock)
            for pair in socks:
                results.setdefault(pair, False)      # timed out
        finally:
            sel.close()
            for sock in socks.values():
                sock.close()
        return results, refused

    def check(self, expected: "Reachability", port: int = 80, proto: str = "tcp", tries: int = 10) -> list[float]:
        """Probe until the matrix equals the truth table (policies propagate in ms; pods may still settle)."""
        for _ in range(tries):
            got, refused = self.probe(port, proto)
            wrong = sorted(f"{s}->{d}: got {'ok' if v else 'denied'}" for (s, d), v in got.items()
                           if v != expected.allowed(s, d))
            if not wrong:
                return refused
            time.sleep(0.2)
        raise AssertionError(f"{proto}/{port}: {len(wrong)} wrong of {len(got)}:\n" + "\n".join(wrong))


class Reachability:
    """The expected truth table, built as upstream's: start from all-true and take away."""

    def __init__(self, default: bool = True) -> None:
        self.m = {(s, d): default for s in ALL for d in ALL}

    def allowed(self, s: str, d: str) -> bool:
        return self.m[(s, d)]

    def ingress(self, dst: str, value: bool, srcs: list[str] | None = None) -> "Reachability":
        for s in srcs or ALL:
            self.m[(s, dst)] = value
        return self

    def egress(self, src: str, value: bool, dsts: list[str] | None = None) -> "Reachability":
        for d in dsts or ALL:
            self.m[(src, d)] = value
        return self

    def set(self, s: str, d: str, value: bool) -> "Reachability":
        self.m[(s, d)] = value
        return self


def in_ns(ns: str) -> list[str]:
    return [k for k in ALL if k.startswith(f"{ns}/")]


# ------------------------------------------------------------------------------------------------ fixtures
@contextlib.contextmanager
def lab_model(nodes: int, **options):
    require_root()
    handle = LabHandle(f"t{uuid.uuid4().hex[:8]}")
    try:
        handle.up(nodes, **options)
        yield Model(handle)
    finally:
        left = handle.down()
    if left:
        pytest.fail(f"lab {handle.name} left behind: {'; '.join(left)}")


@pytest.fixture(scope="module")
def one_node():
    with lab_model(1) as m:
        yield m


@pytest.fixture
def m(one_node):
    yield one_node
    one_node.clear()


# ------------------------------------------------------------------------------------------------ cases
def test_no_policy_all_reachable_then_default_deny_ingress_rejects_fast(m):
    m.check(Reachability())
    m.policy("deny-ingress", {"podSelector": {}})
    refused = m.check(Reachability().ingress("x/a", False).ingress("x/b", False).ingress("x/c", False))
    assert refused and max(refused) < 0.5, f"denied connections are reset at once, not timed out: {max(refused)}"


def test_deny_all_ingress_and_egress(m):
    m.policy("deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    r = Reachability()
    for k in in_ns("x"):
        r.ingress(k, False).egress(k, False)
    m.check(r)


def test_allow_by_pod_selector(m):
    m.policy("allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    m.check(Reachability().ingress("x/a", False).set("x/b", "x/a", True))


def test_allow_by_namespace_selector_match_labels_and_expressions(m):
    m.policy("allow-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"namespaceSelector": {
                             "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]})
    r = Reachability().ingress("x/a", False)
    for k in in_ns("y"):
        r.set(k, "x/a", True)
    m.check(r)
    m.policy("allow-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                             {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["y"]}]}}]}]})
    r = Reachability()
    for k in in_ns("y"):
        r.set(k, "x/a", False)
    m.check(r)


def test_and_vs_or_peers(m):
    ns_y = {"matchLabels": {"kubernetes.io/metadata.name": "y"}}
    m.policy("peers", {"podSelector": {"matchLabels": {"pod": "a"}},
                       "ingress": [{"from": [{"namespaceSelector": ns_y, "podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    m.check(Reachability().ingress("x/a", False).set("y/b", "x/a", True))
    m.policy("peers", {"podSelector": {"matchLabels": {"pod": "a"}},
                       "ingress": [{"from": [{"namespaceSelector": ns_y}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    r = Reachability().ingress("x/a", False).set("x/b", "x/a", True)
    for k in in_ns("y"):
        r.set(k, "x/a", True)
    m.check(r)


def test_port_named_port_and_end_port(m):
    m.policy("port-81", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 81}]}]})
    m.check(Reachability().ingress("x/a", False), port=80)
    m.check(Reachability(), port=81)
    m.policy("port-81", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]})
    m.check(Reachability(), port=80)
    m.check(Reachability().ingress("x/a", False), port=81)
    m.policy("port-81", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"ports": [{"port": 70, "endPort": 80}]}]})
    m.check(Reachability(), port=80)
    m.check(Reachability().ingress("x/a", False), port=81)


def test_egress_on_the_client_side(m):
    m.policy("egress-y", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                          "egress": [{"to": [{"namespaceSelector": {
                              "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]})
    r = Reachability().egress("x/a", False)
    for k in in_ns("y"):
        r.set("x/a", k, True)
    m.check(r)


def test_stacked_policies_updated_policy_and_deletion_restores(m):
    m.policy("deny", {"podSelector": {}})
    m.policy("allow", {"podSelector": {"matchLabels": {"pod": "a"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    r = Reachability().ingress("x/a", False).ingress("x/b", False).ingress("x/c", False).set("x/b", "x/a", True)
    m.check(r)
    m.policy("allow", {"podSelector": {"matchLabels": {"pod": "a"}},
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "c"}}}]}]})
    r.set("x/b", "x/a", False).set("x/c", "x/a", True)
    m.check(r)
    m.client.delete("NetworkPolicy", "x", "deny")
    m.client.delete("NetworkPolicy", "x", "allow")
    m.check(Reachability())


def test_ip_block_with_except(m):
    yb = m.client.get("Pod", "y", "b")["status"]["podIP"]
    m.policy("cidr", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": [f"{yb}/32"]}}]}]})
    m.check(Reachability().set("x/a", "y/b", False))


def test_relabelled_pod(m):
    m.policy("allow-friends", {"podSelector": {"matchLabels": {"pod": "a"}},
                               "ingress": [{"from": [{"podSelector": {"matchLabels": {"friend": "yes"}}}]}]})
    m.check(Reachability().ingress("x/a", False))
    m.relabel("x/c", {"pod": "c", "friend": "yes"})      # pod=c stays: its Service still selects it
    try:
        m.check(Reachability().ingress("x/a", False).set("x/c", "x/a", True))
    finally:
        m.relabel("x/c", {"pod": "c"})
    m.check(Reachability().ingress("x/a", False))


def test_udp_default_deny_and_udp_port(m):
    m.policy("udp", {"podSelector": {"matchLabels": {"pod": "a"}},
                     "ingress": [{"ports": [{"protocol": "UDP", "port": 81}]}]})
    m.check(Reachability().ingress("x/a", False), port=80, proto="udp")
    m.check(Reachability(), port=81, proto="udp")


def test_describe_shows_selected_pods_and_nft_objects(m):
    m.policy("allow-b", {"podSelector": {"matchLabels": {"pod": "a"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    out = m.h.kemu("describe", "networkpolicy", "allow-b", "-n", "x").stdout
    assert "x/a" in out and "inet kemu-netpol" in out and "peers-" in out and "in-" in out, out


# ------------------------------------------------------------------------------------------------ two nodes
@pytest.mark.parametrize("pod_network", ["host-gw", "vxlan"])
def test_cross_node_same_answers(pod_network):
    with lab_model(2, pod_network=pod_network) as m:
        nodes = {k: m.client.get("Pod", *k.split("/"))["spec"]["nodeName"] for k in ALL}
        assert len(set(nodes.values())) == 2
        m.policy("deny", {"podSelector": {}})
        m.policy("allow-y", {"podSelector": {"matchLabels": {"pod": "a"}},
                             "ingress": [{"from": [{"namespaceSelector": {
                                 "matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]})
        m.policy("egress-z", {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"],
                              "egress": [{"to": [{"namespaceSelector": {
                                  "matchLabels": {"kubernetes.io/metadata.name": "z"}}}]}]}, ns="y")
        r = Reachability().ingress("x/a", False).ingress("x/b", False).ingress("x/c", False)
        for k in in_ns("y"):
            r.set(k, "x/a", True)
        r.egress("y/b", False)
        for k in in_ns("z"):
            r.set("y/b", k, True)
        m.check(r)
