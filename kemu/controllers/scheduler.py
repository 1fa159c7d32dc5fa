"""A small scheduler: binds pods without spec.nodeName to a Ready, schedulable node that fits."""
from __future__ import annotations

import logging

from kemu.client import Client, now_rfc3339
from kemu.controllers.queue import WorkQueue
from kemu.events import EventRecorder
from kemu.informer import Informer

log = logging.getLogger(__name__)


def node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions")
               or [])


class Scheduler:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.events = EventRecorder(client, "default-scheduler")
        self.queue = WorkQueue("scheduler", self.schedule)
        self.pods = Informer(client, "Pod", self._on_pod)
        self.nodes = Informer(client, "Node", self._on_node)

    def start(self) -> None:
        self.queue.start()
        self.nodes.start()
        self.nodes.synced.wait(10)
        self.pods.start()

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None and not new["spec"].get("nodeName") and not new["metadata"].get("deletionTimestamp"):
            self.queue.add(key)

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        for pkey, pod in list(self.pods.cache.items()):   # a node change may make pending pods fit
            if not pod["spec"].get("nodeName"):
                self.queue.add(pkey)

    def _fits(self, pod: dict, node: dict) -> str | None:
        """None if `pod` can go on `node`, else the reason it cannot."""
        if not node_ready(node):
            return "node(s) were not ready"
        if node["spec"].get("unschedulable"):
            return "node(s) were unschedulable"
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (pod["spec"].get("nodeSelector") or {}).items()):
            return "node(s) didn't match Pod's node affinity/selector"
        return None

    def schedule(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        nodes = self.nodes.items()
        reasons: dict[str, int] = {}
        fitting = []
        for node in nodes:
            why = self._fits(pod, node)
            if why:
                reasons[why] = reasons.get(why, 0) + 1
            else:
                fitting.append(node)
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if not fitting:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            message = f"0/{len(nodes)} nodes are available: {detail or 'no nodes registered'}."
            self.events.record(pod, "Warning", "FailedScheduling", message)
            self._set_unschedulable(ns, name, message)
            return
        load = {n["metadata"]["name"]: 0 for n in fitting}
        for other in self.pods.items():
            if other["spec"].get("nodeName") in load:
                load[other["spec"]["nodeName"]] += 1
        target = min(sorted(load), key=lambda n: load[n])

        def bind(live: dict) -> bool | None:
            if live["spec"].get("nodeName") or live["metadata"]["uid"] != pod["metadata"]["uid"]:
                return False
            live["spec"]["nodeName"] = target
            conditions = [c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            live.setdefault("status", {})["conditions"] = conditions + [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}]
            return None
        if self.client.mutate("Pod", ns, name, bind):
            self.events.record(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {target}")

    def _set_unschedulable(self, ns: str, name: str, message: str) -> None:
        def mark(live: dict) -> None:
            conditions = [c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            live.setdefault("status", {})["conditions"] = conditions + [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                 "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}]
        self.client.mutate("Pod", ns, name, mark)
