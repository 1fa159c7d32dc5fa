"""Node lifecycle controller: notices nodes whose agent stopped posting status, as kube-controller-manager's does.

A node's heartbeat is *observed* locally (when its Ready condition's lastHeartbeatTime last changed, by this
process's monotonic clock), so clock skew between machines does not matter. After `grace_period` without a new
heartbeat the node's conditions become Unknown ("Kubelet stopped posting node status."), it gets the
node.kubernetes.io/unreachable:NoExecute taint, and every pod on it gets Ready=False so it leaves Service endpoints.
Judgement is suspended while the controller itself cannot reach the store. A node reporting Ready=False gets
node.kubernetes.io/not-ready:NoExecute. When the node is Ready again the taints go; its agent rewrites its pods'
status. Pods are evicted after the 300 s default toleration by kemu/controllers/tainteviction.py.
"""
from __future__ import annotations

import logging
import threading
import time

from kemu.api.timeutil import now_rfc3339
from kemu.client import Client
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer

log = logging.getLogger(__name__)
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


def ready_condition(node: dict) -> dict:
    return next((c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), {})


class NodeLifecycleController:
    def __init__(self, client: Client, grace_period: float = 40.0, period: float | None = None) -> None:
        self.client = client
        self.grace_period = grace_period
        self.period = period or min(5.0, max(grace_period / 8, 0.2))   # node-monitor-period
        self.events = EventRecorder(client, "node-controller")
        self.nodes = Informer(client, "Node", self._on_node)
        self.pods = Informer(client, "Pod")
        self._seen: dict[str, tuple[str | None, float]] = {}   # node → (last heartbeat value, when observed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reachable_since: float | None = None

    def start(self) -> None:
        self.nodes.start()
        self.pods.start()
        self.nodes.synced.wait(10)
        self.pods.synced.wait(10)
        threading.Thread(target=self._run, name="node-lifecycle", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        with self._lock:
            if new is None:
                self._seen.pop(key.rsplit("/", 1)[-1], None)
                return
            name = new["metadata"]["name"]
            beat = ready_condition(new).get("lastHeartbeatTime")
            if name not in self._seen or self._seen[name][0] != beat:
                self._seen[name] = (beat, time.monotonic())

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.monitor()
            except Exception:
                log.exception("node lifecycle: monitor pass failed")

    def _store_reachable_since(self) -> float:
        """Since when this controller has been reading the store without trouble: while the store is down, no
        node could post status, so nobody is judged before having had a full grace period after it returns."""
        started = time.monotonic()
        try:
            self.client.store.revision()
        except Exception:
            self._reachable_since = None
            raise
        now = time.monotonic()
        if self._reachable_since is None or now - started > 1.0:
            self._reachable_since = now
        return self._reachable_since

    def monitor(self) -> None:
        reachable_since = self._store_reachable_since()
        now = time.monotonic()
        for node in self.nodes.items():
            name = node["metadata"]["name"]
            with self._lock:
                _, seen_at = self._seen.get(name, (None, now))
            seen_at = max(seen_at, reachable_since)
            status = ready_condition(node).get("status")
            if now - seen_at > self.grace_period:
                if status != "Unknown":
                    self._mark_unknown(name)
                    self.events.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
                self._set_taint(name, UNREACHABLE)
                self._mark_pods_not_ready(name)
            elif status == "False":
                self._set_taint(name, NOT_READY)
                self._mark_pods_not_ready(name)
            elif status == "True":
                self._set_taint(name, None)

    def _mark_unknown(self, name: str) -> None:
        log.info("node %s: no status for %.1fs; marking it Unknown", name, self.grace_period)

        def mark(node: dict) -> None:
            stamp = now_rfc3339()
            for c in (node.get("status") or {}).get("conditions") or []:
                if c["status"] != "Unknown":
                    c.update(status="Unknown", reason="NodeStatusUnknown", lastTransitionTime=stamp,
                             message="Kubelet stopped posting node status.")
        self.client.mutate("Node", None, name, mark)

    def _set_taint(self, name: str, key: str | None) -> None:
        """Make the node's NoExecute lifecycle taint `key` (None: no lifecycle taint)."""
        def mutate(node: dict) -> bool | None:
            taints = node["spec"].get("taints") or []
            keep = [t for t in taints if t["key"] not in (UNREACHABLE, NOT_READY) or
                    (t["key"] == key and t.get("effect") == "NoExecute")]
            if key and not any(t["key"] == key for t in keep):
                keep.append({"key": key, "effect": "NoExecute", "timeAdded": now_rfc3339()})
            if keep == taints:
                return False
            if keep:
                node["spec"]["taints"] = keep
            else:
                node["spec"].pop("taints", None)
            return None
        node = self.nodes.cache.get(f"/registry/nodes/{name}")
        taints = (node or {}).get("spec", {}).get("taints") or []
        lifecycle = [t["key"] for t in taints if t["key"] in (UNREACHABLE, NOT_READY)]
        if lifecycle != ([key] if key else []):
            self.client.mutate("Node", None, name, mutate)

    def _mark_pods_not_ready(self, name: str) -> None:
        """Pods on a lost node are not Ready (their agent cannot say otherwise): out of every Service."""
        for pod in self.pods.items():
            if pod["spec"].get("nodeName") != name:
                continue
            ready = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
            if ready is None or ready["status"] == "False":
                continue

            def mark(live: dict) -> bool | None:
                for c in (live.get("status") or {}).get("conditions") or []:
                    if c["type"] == "Ready" and c["status"] != "False":
                        c.update(status="False", lastTransitionTime=now_rfc3339(), reason="NodeNotReady",
                                 message=f"node {name} is not ready")
                        return None
                return False
            meta = pod["metadata"]
            log.info("node %s lost: marking pod %s/%s not Ready", name, meta["namespace"], meta["name"])
            self.client.mutate("Pod", meta["namespace"], meta["name"], mark)
