"""DaemonSet controller: one pod per eligible node (nodeSelector), bound directly with spec.nodeName, following
nodes as they join and leave; RollingUpdate replaces out-of-date pods maxUnavailable at a time."""
from __future__ import annotations

import logging

from kemu.client import Client
from kemu.controllers.common import (
    Controller,
    SharedInformers,
    delete_pod,
    pod_active,
    pod_available,
    pod_from_template,
    pod_ready_since,
    random_suffix,
)
from kemu.controllers.deployment import scaled_value, template_hash

log = logging.getLogger(__name__)
REVISION_HASH = "controller-revision-hash"


def node_eligible(ds: dict, node: dict) -> bool:
    """nodeSelector matches and the node is not being deleted (DaemonSet pods tolerate unschedulable)."""
    labels = node["metadata"].get("labels") or {}
    selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
    return not node["metadata"].get("deletionTimestamp") and all(labels.get(k) == v for k, v in selector.items())


def plan(ds: dict, nodes: list[str], pods_by_node: dict[str, list[dict]], current_hash: str,
         terminating: set[str] = frozenset(), now: float | None = None) -> tuple[list[str], list[dict]]:
    """(nodes needing a pod, pods to delete): extra pods, pods on ineligible nodes, failed pods, and out-of-date
    pods within the rolling update's maxUnavailable budget. A node whose pod is still terminating waits."""
    create, delete = [], []
    for node, pods in pods_by_node.items():
        if node not in nodes:
            delete += pods
    min_ready = ds["spec"].get("minReadySeconds") or 0
    strategy = ds["spec"].get("updateStrategy") or {}
    max_unavailable = scaled_value((strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(nodes),
                                   True) or 1
    unavailable, outdated = 0, []
    for node in nodes:
        pods = [p for p in pods_by_node.get(node, [])]
        failed = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
        delete += failed
        pods = sorted((p for p in pods if p not in failed),
                      key=lambda p: (p["metadata"]["labels"].get(REVISION_HASH) != current_hash,
                                     pod_ready_since(p) is None, p["metadata"].get("creationTimestamp", "")))
        if not pods:
            if node not in terminating:
                create.append(node)
            unavailable += 1
            continue
        delete += pods[1:]
        if not pod_available(pods[0], min_ready, now):
            unavailable += 1
        elif pods[0]["metadata"]["labels"].get(REVISION_HASH) != current_hash:
            outdated.append(pods[0])
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        delete += outdated[:max(max_unavailable - unavailable, 0)]
    return create, delete


class DaemonSetController(Controller):
    KIND = "DaemonSet"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "daemonset-controller")
        self.pods = self.watch_owned("Pod")
        self.nodes = informers.get("Node")
        self.nodes.handlers.append(self._on_node)

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        if old is not None and new is not None and old["metadata"].get("labels") == new["metadata"].get("labels"):
            return   # heartbeats do not change eligibility
        for ds in self.own.items():
            self.queue.add(f"{ds['metadata']['namespace']}/{ds['metadata']['name']}")

    def sync(self, key: str) -> None:
        ds = self.get_own(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        owned = self.owned(self.pods, ds)
        if not self.expectations.satisfied(key, owned):
            self.enqueue_after(key, self.expectations.remaining(key) + 0.1)
            return
        nodes = sorted(n["metadata"]["name"] for n in self.nodes.items() if node_eligible(ds, n))
        pods_by_node: dict[str, list[dict]] = {}
        for pod in owned:
            if not pod["metadata"].get("deletionTimestamp"):
                pods_by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
        current_hash = template_hash(ds["spec"]["template"])
        terminating = {p["spec"].get("nodeName") for p in owned if p["metadata"].get("deletionTimestamp")}
        create, delete = plan(ds, nodes, pods_by_node, current_hash, terminating)
        created = self.create_pods(ds, key, (
            pod_from_template(ds, ds["spec"]["template"], f"{ds['metadata']['name']}-{random_suffix()}",
                              {REVISION_HASH: current_hash, "pod-template-generation": "1"}, node_name=node)
            for node in create), stop_on_error=False)
        for pod in delete:
            delete_pod(self.client, pod)
            self.events.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        self.expectations.expect(key, created=created, deleted={p["metadata"]["name"] for p in delete})
        active = [p for p in owned if pod_active(p)]
        on_eligible = [p for p in active if p["spec"].get("nodeName") in nodes]
        min_ready = ds["spec"].get("minReadySeconds") or 0
        ready = [p for p in on_eligible if pod_ready_since(p) is not None]
        available = [p for p in on_eligible if pod_available(p, min_ready)]
        self.update_status(ds, {
            "desiredNumberScheduled": len(nodes),
            "currentNumberScheduled": len({p["spec"].get("nodeName") for p in on_eligible}),
            "numberMisscheduled": len({p["spec"].get("nodeName") for p in active} - set(nodes)),
            "numberReady": len(ready), "numberAvailable": len(available),
            "numberUnavailable": max(len(nodes) - len(available), 0),
            "updatedNumberScheduled": sum(1 for p in on_eligible
                                          if p["metadata"]["labels"].get(REVISION_HASH) == current_hash)})
        if len(ready) > len(available):
            self.enqueue_after(key, 1.0)
