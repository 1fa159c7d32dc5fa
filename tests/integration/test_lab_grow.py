"""A running lab grows by a node (`kemu lab add-node`): a DaemonSet follows it there, the new node's pods are routed
from the others, a Service picks up the new endpoint; and it follows the node leaving (its Node object deleted)."""
from __future__ import annotations

import ipaddress
import time

import pytest

from kemu.lab import LB_POOL, Lab

pytestmark = pytest.mark.root

ECHO = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: echo}
spec:
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: echo
        image: kemu/agnhost
        args: ["netexec", "--http-port=8080"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: http}]
"""


def ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def echo_pods(kemu_lab) -> dict[str, dict]:
    """node name → the DaemonSet's live pod there."""
    pods, _ = kemu_lab.client.list("Pod", "default", where=lambda p: (p["metadata"].get("labels") or {})
                                   .get("app") == "echo" and not p["metadata"].get("deletionTimestamp"))
    return {p["spec"].get("nodeName"): p for p in pods}


@pytest.mark.parametrize("shape", [
    pytest.param("sqlite-host-gw", marks=pytest.mark.kemu_lab(nodes=1)),
    pytest.param("etcd-vxlan", marks=pytest.mark.kemu_lab(nodes=1, store="etcd", pod_network="vxlan")),
])
def test_daemonset_follows_a_node_joining_and_leaving(kemu_lab, shape):
    kemu_lab.apply(ECHO)
    pods = kemu_lab.wait("the DaemonSet pod on node1",
                         lambda: (p := echo_pods(kemu_lab)) and ready(p.get("node1", {})) and p)
    assert list(pods) == ["node1"]
    kemu_lab.wait_endpoints("echo", 1)

    started = time.monotonic()
    out = kemu_lab.kemu("lab", "add-node", "--name", kemu_lab.name).stdout
    joined = time.monotonic() - started
    assert out.startswith(f"node2 joined lab {kemu_lab.name}")
    lab = Lab(kemu_lab.name)                       # lab.json as `add-node` left it
    assert lab.state.nodes == ["node1", "node2"]
    assert {f"node2-{d}" for d in ("agent", "proxy", "dns")} <= set(lab.state.daemons)
    cidr1, cidr2 = lab.state.pod_cidrs["node1"], lab.state.pod_cidrs["node2"]
    assert cidr1 != cidr2
    node2 = kemu_lab.get("Node", "node2", namespace=None)
    assert node2["spec"]["podCIDR"] == cidr2
    assert kemu_lab.host_exec("node2", ["ip", "-4", "-o", "addr", "show", "eth1"]).split()[3] == "192.168.56.12/24"
    via = "dev kemu.1" if shape.endswith("vxlan") else "via 192.168.56.12 dev eth1"   # node1's way to node2's pods
    assert via in kemu_lab.host_exec("node1", ["ip", "-4", "route", "show", cidr2])
    assert cidr1 in kemu_lab.host_exec("node2", ["ip", "-4", "route", "show", cidr1])
    lb_route = kemu_lab.host_exec("client", ["ip", "-4", "route", "show", LB_POOL])   # ECMP over both nodes now
    assert "via 192.168.56.11" in lb_route and "via 192.168.56.12" in lb_route

    pod2 = kemu_lab.wait("a Ready DaemonSet pod on node2",
                         lambda: ready(p := echo_pods(kemu_lab).get("node2", {})) and p, timeout=15)
    ready_after = time.monotonic() - started
    assert pod2["spec"]["nodeName"] == "node2"
    ip2 = pod2["status"]["podIP"]
    assert ipaddress.ip_address(ip2) in ipaddress.ip_network(cidr2)
    pod1 = echo_pods(kemu_lab)["node1"]
    # node1 → node2 by pod IP, and the pod sees node1's pod IP as source (routed, not NATed)
    assert kemu_lab.wait_http(pod1["metadata"]["name"], f"http://{ip2}:8080/hostname") == pod2["metadata"]["name"]
    assert kemu_lab.http(pod1["metadata"]["name"], f"http://{ip2}:8080/clientip").rsplit(":", 1)[0] == \
        pod1["status"]["podIP"]
    # and back: node2 → node1
    assert kemu_lab.wait_http(pod2["metadata"]["name"], f"http://{pod1['status']['podIP']}:8080/hostname") == \
        pod1["metadata"]["name"]
    assert kemu_lab.wait_endpoints("echo", 2) == sorted([pod1["status"]["podIP"], ip2])
    print(f"add-node took {joined:.2f}s; DaemonSet pod Ready on node2 {ready_after:.2f}s after add-node started")

    # leaving: the Node object goes away, the DaemonSet deletes its pod there and the Service drops it
    kemu_lab.kemu("delete", "node", "node2")
    kemu_lab.wait("the DaemonSet pod on node2 to be deleted", lambda: "node2" not in echo_pods(kemu_lab), timeout=15)
    kemu_lab.wait_endpoints("echo", 1, timeout=15)
    assert list(echo_pods(kemu_lab)) == ["node1"]
    with open(f"{lab.dir}/logs/node2-agent.log") as f:
        assert "Traceback" not in f.read()
