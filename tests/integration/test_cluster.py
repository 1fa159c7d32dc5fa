"""Multi-node clusters on the real kernel with a real etcd: pod CIDRs, pod traffic across nodes without NAT (host-gw
and VXLAN), Services spanning nodes, scheduling, node failure and etcd outage."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
import uuid

import pytest

from kemu.testing import LabHandle, require_root

pytestmark = pytest.mark.root
GRACE = 4.0   # node-monitor-grace-period of these labs


def agnhost(name: str, node: str | None = None, labels: dict | None = None, extra: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"]}],
                  "terminationGracePeriodSeconds": 1}
    if node:
        spec["nodeName"] = node
    spec.update(extra or {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {"app": "web"}},
            "spec": spec}


def lab_up(*flags: str) -> LabHandle:
    require_root()
    handle = LabHandle(f"c{uuid.uuid4().hex[:7]}")
    try:
        handle.claim()
        handle.kemu("lab", "up", *flags)
    except BaseException:
        handle.down()
        raise
    handle.lab = type(handle.lab)(handle.name)
    handle.client = handle.lab.client()
    return handle


def lab_down(handle: LabHandle) -> None:
    left = handle.down()
    assert not left, f"lab {handle.name} left behind: {'; '.join(left)}"


@pytest.fixture(scope="module", params=["etcd", "sqlite"])
def cluster(request):
    """One 3-node lab per store backend, shared by the tests of this module (each leaves it as it found it)."""
    handle = lab_up("--nodes", "3", "--store", request.param, "--node-monitor-grace-period", f"{GRACE}s")
    try:
        handle.apply([agnhost(f"w{i}") for i in (1, 2, 3)] + [{
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}])
        for i in (1, 2, 3):
            handle.wait_pod(f"w{i}", ready=True)
        handle.wait_endpoints("web", 3)
        yield handle
    finally:
        lab_down(handle)


def pod_ip(lab: LabHandle, name: str) -> str:
    return lab.get("Pod", name)["status"]["podIP"]


def pod_on(lab: LabHandle, node: str) -> dict:
    pods, _ = lab.client.list("Pod", "default", where=lambda p: p["spec"].get("nodeName") == node
                              and p["metadata"]["name"].startswith("w"))
    return pods[0]


def node_status(lab: LabHandle, node: str) -> str:
    obj = lab.get("Node", node, namespace="")
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def answers(lab: LabHandle, host: str, url: str, want: set[str], timeout: float = 20) -> set[str]:
    """Hostnames that answer `url` from lab host `host`, asking until all of `want` answered (or timeout)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not want <= seen and time.monotonic() < deadline:
        out = lab.host_exec(host, ["sh", "-c", f"for i in $(seq 12); do curl -s -m 1 {url}; echo; done"], check=False)
        seen |= {line.strip() for line in out.splitlines() if line.strip()}
    return seen


# ---- addressing and placement --------------------------------------------------------------------------------------
def test_nodes_get_distinct_pod_cidrs_allocated_in_the_store_and_pods_spread(cluster):
    nodes = {n: cluster.get("Node", n, namespace="") for n in ("node1", "node2", "node3")}
    cidrs = {n: ipaddress.ip_network(obj["spec"]["podCIDR"]) for n, obj in nodes.items()}
    assert len(set(cidrs.values())) == 3 and all(c.prefixlen == 24 for c in cidrs.values())
    assert all(c.subnet_of(ipaddress.ip_network("10.244.0.0/16")) for c in cidrs.values())
    keys, _ = cluster.client.store.range("/registry/ranges/podcidrs/")
    assert {kv.value.decode(): kv.key.rsplit("/", 1)[1].replace("-", "/") for kv in keys} == \
        {n: str(c) for n, c in cidrs.items()}
    # the scheduler spread the three replicas, one per node, and each got an IP from its node's CIDR
    placed = {p: cluster.get("Pod", p)["spec"]["nodeName"] for p in ("w1", "w2", "w3")}
    assert sorted(placed.values()) == ["node1", "node2", "node3"]
    for p, node in placed.items():
        assert ipaddress.ip_address(pod_ip(cluster, p)) in cidrs[node]
    if cluster.lab.state.store == "etcd":   # the CLI reaches etcd through a unix socket, never over IP
        assert cluster.lab.store_url.startswith("etcd+unix:///run/kemu/labs/")
        listening = subprocess.run(["ss", "-Htln"], capture_output=True, text=True).stdout
        assert ":2379 " not in listening, "etcd must not listen in the root namespace"


def test_pod_to_pod_across_nodes_keeps_the_pod_source_ip(cluster):
    a, b = pod_on(cluster, "node1")["metadata"]["name"], pod_on(cluster, "node3")["metadata"]["name"]
    seen = cluster.wait_http(a, f"http://{pod_ip(cluster, b)}:8080/clientip")
    assert seen.split(":")[0] == pod_ip(cluster, a)
    back = cluster.wait_http(b, f"http://{pod_ip(cluster, a)}:8080/clientip")
    assert back.split(":")[0] == pod_ip(cluster, b)


def test_service_endpoints_on_all_nodes_answer_from_every_node_and_from_the_client(cluster):
    svc = cluster.get("Service", "web")
    everyone = {"w1", "w2", "w3"}
    for node in ("node1", "node2", "node3"):
        assert answers(cluster, node, f"http://{svc['spec']['clusterIP']}/hostname", everyone) == everyone
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert answers(cluster, "client", f"http://192.168.56.12:{node_port}/hostname", everyone) == everyone


def test_scheduler_filters_and_explains_why_a_pod_is_pending(cluster):
    cluster.kemu("cordon", "node1")
    try:
        cluster.apply([agnhost("huge", extra={"containers": [{
            "name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"],
            "resources": {"requests": {"cpu": "1000"}}}]})])
        cluster.apply([agnhost(f"hp{i}", labels={"app": "hp"}, extra={"containers": [{
            "name": "web", "image": "kemu/agnhost", "args": ["netexec", "--http-port=8080"],
            "ports": [{"containerPort": 8080, "hostPort": 18080}]}]}) for i in (1, 2, 3)])

        def message(pod: str) -> str | None:
            conds = (cluster.get("Pod", pod).get("status") or {}).get("conditions") or []
            return next((c.get("message") for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"),
                        None)
        huge = cluster.wait("huge to be unschedulable", lambda: message("huge"), timeout=10)
        assert huge == "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were unschedulable."
        placed = cluster.wait("two hostPort pods placed", lambda: sorted(
            n for n in (cluster.get("Pod", f"hp{i}")["spec"].get("nodeName") for i in (1, 2, 3)) if n), timeout=10)
        assert placed == ["node2", "node3"]
        third = cluster.wait("the third hostPort pod to be unschedulable", lambda: next(
            (m for m in (message(f"hp{i}") for i in (1, 2, 3)) if m), None), timeout=10)
        assert "2 node(s) didn't have free ports for the requested pod ports" in third
        assert "FailedScheduling" in cluster.kemu("describe", "pod", "huge").stdout
    finally:
        cluster.kemu("delete", "pod", "huge", "--force", check=False)
        for i in (1, 2, 3):
            cluster.kemu("delete", "pod", f"hp{i}", "--force", check=False)
        cluster.kemu("uncordon", "node1")
    assert not cluster.get("Node", "node1", namespace="")["spec"].get("unschedulable")


def test_drain_cordons_and_evicts_the_nodes_pods(cluster):
    cluster.apply([agnhost("drained", node="node2", labels={"app": "other"})])
    cluster.wait_pod("drained", ready=True)
    try:
        out = cluster.kemu("drain", "node2", "--ignore-daemonsets", "--grace-period", "1").stdout
        assert "node/node2 cordoned" in out and "pod/drained evicted" in out and "node/node2 drained" in out
        assert cluster.get("Pod", "drained") is None
        assert cluster.get("Node", "node2", namespace="")["spec"].get("unschedulable") is True
        assert not [p for p in cluster.client.list("Pod")[0] if p["spec"].get("nodeName") == "node2"]
    finally:
        cluster.kemu("uncordon", "node2")
    # drain also evicted node2's web replica; put one back there for the tests that follow
    names = {p["metadata"]["name"] for p in cluster.client.list("Pod", "default")[0]}
    for i in (1, 2, 3):
        if f"w{i}" not in names:
            cluster.apply([agnhost(f"w{i}", node="node2")])
            cluster.wait_pod(f"w{i}", ready=True)
    cluster.wait_endpoints("web", 3)


# ---- failures ------------------------------------------------------------------------------------------------------
def nft_endpoints(lab: LabHandle, node: str) -> str:
    return lab.host_exec(node, ["nft", "list", "table", "ip", "kemu-proxy"])


def test_a_node_whose_agent_dies_goes_unknown_and_leaves_the_endpoints_then_comes_back(cluster):
    victim = pod_on(cluster, "node3")
    ip, uid = victim["status"]["podIP"], victim["metadata"]["uid"]
    pid = cluster.container_pid(victim["metadata"]["name"])
    assert ip in nft_endpoints(cluster, "node2")
    stopped = time.monotonic()
    cluster.kemu("lab", "stop", "node3")
    cluster.wait("node3 Unknown", lambda: node_status(cluster, "node3") == "Unknown", timeout=GRACE + 5)
    cluster.wait("node3's endpoint gone from node2's ruleset", lambda: ip not in nft_endpoints(cluster, "node2"),
                 timeout=5, interval=0.2)
    gone_after = time.monotonic() - stopped
    assert GRACE - 1 < gone_after < GRACE + 5, gone_after
    taints = cluster.get("Node", "node3", namespace="")["spec"].get("taints") or []
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}.items() <= taints[0].items()
    # the pod itself kept running all along
    assert cluster.container_pid(victim["metadata"]["name"]) == pid
    cluster.kemu("lab", "start", "node3")
    cluster.wait("node3 Ready", lambda: node_status(cluster, "node3") == "True", timeout=10)
    cluster.wait_endpoints("web", 3, timeout=10)
    cluster.wait("endpoint back on node2", lambda: ip in nft_endpoints(cluster, "node2"), timeout=5, interval=0.2)
    again = cluster.get("Pod", victim["metadata"]["name"])
    assert (again["metadata"]["uid"], again["status"]["podIP"]) == (uid, ip)
    assert cluster.container_pid(victim["metadata"]["name"]) == pid, "the agent re-adopted the running pod"
    ipam_dir = f"{cluster.lab.dir}/nodes/node3/cni/networks/kemu"

    def allocated_match_pods() -> bool:
        on_node3 = cluster.client.list("Pod", where=lambda p: p["spec"].get("nodeName") == "node3")[0]
        ips = sorted(p["status"].get("podIP", "") for p in on_node3)
        return sorted(re.findall(r"10\.244\.\d+\.\d+", " ".join(os.listdir(ipam_dir)))) == ips
    cluster.wait("node3's IPAM to hold exactly its pods' IPs (no duplicates)", allocated_match_pods, timeout=10)
    assert not cluster.get("Node", "node3", namespace="")["spec"].get("taints")


def test_a_node_with_a_cut_link_goes_unknown_and_recovers(cluster):
    if cluster.lab.state.store != "etcd":
        pytest.skip("every node opens the SQLite file directly: a cut link does not cut a node off the store")
    cluster.kemu("lab", "stop", "node2", "--cut-link")
    try:
        cluster.wait("node2 Unknown", lambda: node_status(cluster, "node2") == "Unknown", timeout=GRACE + 5)
        cluster.wait_endpoints("web", 2, timeout=5)
    finally:
        cluster.kemu("lab", "start", "node2")
    cluster.wait("node2 Ready", lambda: node_status(cluster, "node2") == "True", timeout=15)
    cluster.wait_endpoints("web", 3, timeout=10)
    a = pod_on(cluster, "node1")["metadata"]["name"]
    b = pod_on(cluster, "node2")["metadata"]["name"]
    assert cluster.wait_http(a, f"http://{pod_ip(cluster, b)}:8080/hostname") == b


def test_pods_keep_serving_while_etcd_is_down_and_new_pods_run_after(cluster):
    if cluster.lab.state.store != "etcd":
        pytest.skip("the lab runs no etcd")
    svc = cluster.get("Service", "web")
    url = f"http://192.168.56.11:{svc['spec']['ports'][0]['nodePort']}/hostname"
    cluster.kemu("lab", "stop", "etcd")
    try:
        down_at = time.monotonic()
        served = set()
        while time.monotonic() - down_at < 10:
            served |= answers(cluster, "client", url, {"w1", "w2", "w3"}, timeout=1)
        assert served == {"w1", "w2", "w3"}, "every replica kept serving through NodePort while etcd was down"
    finally:
        cluster.kemu("lab", "start", "etcd")
    cluster.apply([agnhost("after-outage", labels={"app": "late"})])
    pod = cluster.wait_pod("after-outage", ready=True, timeout=20)
    assert pod["spec"]["nodeName"] in ("node1", "node2", "node3")
    assert all(node_status(cluster, n) == "True" for n in ("node1", "node2", "node3")), \
        "an etcd outage must not make nodes Unknown"


def test_leftovers_name_the_etcd_process_and_socket(cluster):
    if cluster.lab.state.store != "etcd":
        pytest.skip("the lab runs no etcd")
    lab = type(cluster.lab)(cluster.name)      # fresh state: `lab start etcd` gave etcd a new PID
    left = lab.leftovers()
    assert any(item.startswith("etcd socket ") for item in left)
    etcd_pid = lab.state.daemons["etcd"]["pid"]
    assert f"process {etcd_pid}" in left


# ---- VXLAN ---------------------------------------------------------------------------------------------------------
def test_vxlan_overlay_carries_pod_traffic_between_nodes_without_nat():
    lab = lab_up("--nodes", "3", "--pod-network", "vxlan")
    try:
        link = lab.host_exec("node1", ["ip", "-d", "-j", "link", "show", "kemu.1"])
        info = json.loads(link)[0]["linkinfo"]
        assert info["info_kind"] == "vxlan"
        assert (info["info_data"]["id"], info["info_data"]["port"], info["info_data"].get("learning")) == \
            (1, 8472, False)
        node3_cidr = lab.get("Node", "node3", namespace="")["spec"]["podCIDR"]
        assert "dev kemu.1" in lab.host_exec("node1", ["ip", "route", "show", node3_cidr])
        lab.apply([agnhost("a", node="node1"), agnhost("b", node="node3")])
        a, b = lab.wait_pod("a", ready=True), lab.wait_pod("b", ready=True)
        seen = lab.wait_http("a", f"http://{b['status']['podIP']}:8080/clientip")
        assert seen.split(":")[0] == a["status"]["podIP"]
        fdb = lab.host_exec("node1", ["bridge", "fdb", "show", "dev", "kemu.1"])
        assert "dst 192.168.56.13" in fdb and "dst 192.168.56.12" in fdb
    finally:
        lab_down(lab)
