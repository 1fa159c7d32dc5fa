"""Scheduler filters and scoring, drain's pod selection, pod CIDR allocation: pure logic, no root."""
from __future__ import annotations

import pytest

from kemu.api.network import CLUSTER_CIDR, NODE_CIDR_PREFIX
from kemu.cli.cluster import drain_plan
from kemu.controllers.scheduler import NodeUsage, Scheduler, pod_requests, tolerates
from kemu.store import SQLiteStore
from kemu.store.allocator import allocate_pod_cidr


def node(name: str, cpu: str = "2", memory: str = "4Gi", pods: str = "110", **spec) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name: str, cpu: str | None = None, memory: str | None = None, host_port: int | None = None,
        tolerations: list | None = None, owner: str | None = None, on: str | None = None) -> dict:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container = {"name": "c", "resources": {"requests": requests} if requests else {}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    meta = {"name": name, "namespace": "default", "uid": name}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "o", "controller": True}]
    return {"metadata": meta, "spec": {"containers": [container], "tolerations": tolerations or [],
                                       **({"nodeName": on} if on else {})}, "status": {"phase": "Running"}}


def usage(n: dict, *pods: dict) -> NodeUsage:
    u = NodeUsage(n)
    for p in pods:
        u.add(p)
    return u


def test_requests_limits_and_init_containers():
    p = pod("a", cpu="250m", memory="64Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"limits": {"cpu": "1"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"memory": "1Gi"}}}]
    assert pod_requests(p) == {"cpu": 1250, "memory": 2**30}


def test_filter_reasons_are_kube_schedulers():
    s = Scheduler.__new__(Scheduler)
    big = pod("big", cpu="3")
    assert s.filter(big, node("n1"), usage(node("n1"))) == ["Insufficient cpu"]
    assert s.filter(pod("m", memory="3Gi"), node("n1"), usage(node("n1"), pod("x", memory="2Gi"))) == \
        ["Insufficient memory"]
    assert s.filter(pod("p"), node("n1", pods="1"), usage(node("n1", pods="1"), pod("x"))) == ["Too many pods"]
    assert s.filter(pod("h", host_port=80), node("n1"), usage(node("n1"), pod("x", host_port=80))) == \
        ["node(s) didn't have free ports for the requested pod ports"]
    assert s.filter(pod("h", host_port=81), node("n1"), usage(node("n1"), pod("x", host_port=80))) == []
    cordoned = node("n1", unschedulable=True)
    assert s.filter(pod("a"), cordoned, usage(cordoned)) == ["node(s) were unschedulable"]
    tolerant = pod("t", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                      "effect": "NoSchedule"}])
    assert s.filter(tolerant, cordoned, usage(cordoned)) == []
    tainted = node("n1", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
    assert s.filter(pod("a"), tainted, usage(tainted)) == \
        ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]


def test_tolerations_match_like_upstream():
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates([{"key": "k", "value": "v"}], taint)
    assert tolerates([{"operator": "Exists"}], taint)
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}], taint)


def test_least_requested_prefers_the_emptier_node_even_for_best_effort_pods():
    n = node("n")
    assert usage(n).score(pod("a")) > usage(n, pod("x")).score(pod("a"))
    assert usage(n, pod("x", cpu="100m")).score(pod("a")) > usage(n, pod("y", cpu="1")).score(pod("a"))


def test_drain_skips_daemonset_and_mirror_pods_and_refuses_without_ignore_daemonsets():
    mirror = pod("static", on="n1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    pods = [pod("web", on="n1", owner="ReplicaSet"), pod("ds", on="n1", owner="DaemonSet"), mirror,
            pod("elsewhere", on="n2")]
    evict, problems = drain_plan(pods, "n1", ignore_daemonsets=False)
    assert [p["metadata"]["name"] for p in evict] == ["web"]
    assert problems == ["cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): default/ds"]
    assert drain_plan(pods, "n1", ignore_daemonsets=True)[1] == []


def test_pod_cidrs_are_allocated_once_and_kept(tmp_path):
    store = SQLiteStore(str(tmp_path / "s.db"))
    first = [allocate_pod_cidr(store, f"node{i}", CLUSTER_CIDR, NODE_CIDR_PREFIX) for i in (1, 2, 3)]
    assert first == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    assert allocate_pod_cidr(store, "node2", CLUSTER_CIDR, NODE_CIDR_PREFIX) == "10.244.2.0/24"
    with pytest.raises(RuntimeError, match="no free /24"):
        allocate_pod_cidr(store, "node9", "10.244.0.0/23", NODE_CIDR_PREFIX)
