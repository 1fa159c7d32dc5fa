"""A small scheduler: binds pods without spec.nodeName to a node that fits, preferring the least requested one.

Filters (kube-scheduler plugin in brackets): node Ready, spec.unschedulable [NodeUnschedulable], nodeSelector
[NodeAffinity], untolerated NoSchedule/NoExecute taints [TaintToleration], free hostPorts [NodePorts], requests vs
allocatable for cpu, memory and the pod count [NodeResourcesFit], claims' volumes [VolumeBinding: a bound volume's
node affinity; an unbound WaitForFirstConsumer claim needs a matching volume the node reaches or a provisioner —
the chosen node is written to the claim (`volume.kubernetes.io/selected-node`) and the pod is bound once the
PersistentVolume controller has bound its claims]. Score: least requested cpu+memory, counting
pods without requests as 100m/200Mi as upstream does, so best-effort pods spread too. A bind is remembered
("assumed") until the informer shows it, so a burst of pods does not pile onto one node.
"""
from __future__ import annotations

import logging
import threading

from kemu.api.quantity import bytes_of, cpu_millis
from kemu.api.timeutil import now_rfc3339
from kemu.client import Client
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.controllers.placement import (NODE_AFFINITY, Placement, needs_placement, node_affinity_fits,
                                       node_affinity_score, prefer_no_schedule_count)
from kemu.controllers.preemption import may_preempt, preempt
from kemu.controllers.queue import WorkQueue
from kemu.controllers.volumematch import SELECTED_NODE, best_volume, claim_names, volume_fits_node

log = logging.getLogger(__name__)
DEFAULT_MILLI_CPU = 100               # what the scorer assumes for a container without requests
DEFAULT_MEMORY = 200 * 1024 * 1024
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"


def node_ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (node.get("status") or {}).get("conditions")
               or [])


def pod_requests(pod: dict) -> dict[str, int]:
    """Effective requests (cpu in millicores, memory in bytes): sum over containers, at least any init container's;
    a resource with a limit but no request requests its limit."""
    def of(container: dict) -> dict[str, int]:
        res = container.get("resources") or {}
        req = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {"cpu": cpu_millis(req["cpu"]) if "cpu" in req else 0,
                "memory": bytes_of(req["memory"]) if "memory" in req else 0}
    total = {"cpu": 0, "memory": 0}
    for c in pod["spec"]["containers"]:
        for k, v in of(c).items():
            total[k] += v
    for c in pod["spec"].get("initContainers") or []:
        for k, v in of(c).items():
            total[k] = max(total[k], v)
    return total


def host_ports(pod: dict) -> set[tuple[str, str, int]]:
    return {(p.get("hostIP") or "0.0.0.0", p.get("protocol", "TCP"), p["hostPort"])
            for c in pod["spec"]["containers"] for p in c.get("ports") or [] if p.get("hostPort")}


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint["key"]:
                return True
        elif t.get("key") == taint["key"] and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _ports_conflict(wanted: set[tuple[str, str, int]], used: set[tuple[str, str, int]]) -> bool:
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if proto == uproto and port == uport and (ip == uip or "0.0.0.0" in (ip, uip)):
                return True
    return False


class NodeUsage:
    """What the pods bound to one node use of it."""

    def __init__(self, node: dict) -> None:
        alloc = (node.get("status") or {}).get("allocatable") or {}
        self.allocatable = {"cpu": cpu_millis(alloc.get("cpu", "0")), "memory": bytes_of(alloc.get("memory", "0")),
                            "pods": int(alloc.get("pods", 110))}
        self.requested = {"cpu": 0, "memory": 0}
        self.nonzero = {"cpu": 0, "memory": 0}
        self.pods = 0
        self.ports: set[tuple[str, str, int]] = set()
        self.placed: list[dict] = []          # the pods themselves (inter-pod affinity, spread)

    def add(self, pod: dict) -> None:
        req = pod_requests(pod)
        for k in ("cpu", "memory"):
            self.requested[k] += req[k]
        self.nonzero["cpu"] += req["cpu"] or DEFAULT_MILLI_CPU
        self.nonzero["memory"] += req["memory"] or DEFAULT_MEMORY
        self.pods += 1
        self.ports |= host_ports(pod)
        self.placed.append(pod)

    def misfit(self, pod: dict) -> list[str]:
        """Why `pod` does not fit in what is left (empty when it fits)."""
        reasons = []
        if self.pods + 1 > self.allocatable["pods"]:
            reasons.append("Too many pods")
        req = pod_requests(pod)
        for k in ("cpu", "memory"):
            if req[k] and self.requested[k] + req[k] > self.allocatable[k]:
                reasons.append(f"Insufficient {k}")
        if _ports_conflict(host_ports(pod), self.ports):
            reasons.append("node(s) didn't have free ports for the requested pod ports")
        return reasons

    def score(self, pod: dict) -> float:
        """LeastAllocated: the mean free fraction of cpu and memory after placing the pod (higher is better)."""
        req = pod_requests(pod)
        free = []
        for k, default in (("cpu", DEFAULT_MILLI_CPU), ("memory", DEFAULT_MEMORY)):
            cap = self.allocatable[k]
            used = self.nonzero[k] + (req[k] or default)
            free.append(max(cap - used, 0) / cap if cap else 0.0)
        return sum(free) / len(free)


class Scheduler:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.events = EventRecorder(client, "default-scheduler")
        self.queue = WorkQueue("scheduler", self.schedule, self._schedule_failed)
        self.pods = Informer(client, "Pod", self._on_pod)
        self.nodes = Informer(client, "Node", self._on_node)
        self.claims = Informer(client, "PersistentVolumeClaim", self._on_claim)
        self.volumes = Informer(client, "PersistentVolume", lambda key, old, new: self._requeue_pending()
                                if new is not None and old is None else None)
        self.classes = Informer(client, "StorageClass")
        self._assumed: dict[str, tuple[str, dict]] = {}   # pod key → (node, pod) bound but not yet seen bound
        self._lock = threading.Lock()

    def _schedule_failed(self, key: str, exc: Exception) -> None:
        """Scheduling this pod raised: say so on the pod (the queue retries it with back-off; others go on)."""
        pod = self.pods.cache.get(key)
        if pod is not None:
            self.events.record(pod, "Warning", "FailedScheduling", f"Error scheduling pod: {exc}")

    def start(self) -> None:
        self.queue.start()
        self.nodes.start()
        self.nodes.synced.wait(10)
        for informer in (self.claims, self.volumes, self.classes):
            informer.start()
        for informer in (self.claims, self.volumes, self.classes):
            informer.synced.wait(10)
        self.pods.start()

    def _requeue_pending(self) -> None:
        for pkey, pod in list(self.pods.cache.items()):
            if not pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp"):
                self.queue.add(pkey)

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is None or new["spec"].get("nodeName"):
            with self._lock:
                self._assumed.pop(key, None)
        if new is not None and not new["spec"].get("nodeName") and not new["metadata"].get("deletionTimestamp"):
            self.queue.add(key)
        elif old is not None and old["spec"].get("nodeName") and (new is None or _terminal(new)):
            self._requeue_pending()        # resources or ports were freed

    def _on_node(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None and (old is None or old.get("spec") != new.get("spec") or
                                node_ready(old) != node_ready(new) or
                                old["status"].get("allocatable") != new["status"].get("allocatable")):
            self._requeue_pending()        # a node change may make pending pods fit

    def _on_claim(self, key: str, old: dict | None, new: dict | None) -> None:
        """A claim that was bound (or created) may let the pods that use it go on."""
        claim = new or old
        ns, name = claim["metadata"]["namespace"], claim["metadata"]["name"]
        for pkey, pod in list(self.pods.cache.items()):
            if pod["metadata"]["namespace"] == ns and not pod["spec"].get("nodeName") and \
                    name in claim_names(pod):
                self.queue.add(pkey)

    def _pod_claims(self, pod: dict) -> tuple[list[dict], str | None]:
        """The pod's claims, or why it cannot be scheduled at all (a missing, deleted or unbound Immediate
        claim), worded as kube-scheduler's VolumeBinding plugin."""
        ns, claims = pod["metadata"]["namespace"], []
        for name in claim_names(pod):
            claim = self.claims.cache.get(f"/registry/persistentvolumeclaims/{ns}/{name}")
            if claim is None:
                return [], f'persistentvolumeclaim "{name}" not found'
            if claim["metadata"].get("deletionTimestamp"):
                return [], f'persistentvolumeclaim "{name}" is being deleted'
            if not _bound(claim) and self._binding_mode(claim) != "WaitForFirstConsumer":
                return [], "pod has unbound immediate PersistentVolumeClaims"
            claims.append(claim)
        return claims, None

    def _binding_mode(self, claim: dict) -> str:
        sc = self.classes.cache.get(f"/registry/storageclasses/{claim['spec'].get('storageClassName') or ''}")
        return (sc or {}).get("volumeBindingMode", "Immediate")

    def _volume_misfit(self, claims: list[dict], node: dict) -> list[str]:
        volumes = self.volumes.items()
        for claim in claims:
            if _bound(claim):
                pv = self.volumes.cache.get(f"/registry/persistentvolumes/{claim['spec']['volumeName']}")
                if pv is not None and not volume_fits_node(pv, node):
                    return ["node(s) had volume node affinity conflict"]
                continue
            sc = self.classes.cache.get(f"/registry/storageclasses/{claim['spec'].get('storageClassName') or ''}")
            if best_volume(volumes, claim, node) is None and \
                    (sc or {}).get("provisioner", "kubernetes.io/no-provisioner") == "kubernetes.io/no-provisioner":
                return ["node(s) didn't find available persistent volumes to bind"]
        return []

    def usage(self) -> dict[str, NodeUsage]:
        usage = {}
        for n in self.nodes.items():
            try:
                usage[n["metadata"]["name"]] = NodeUsage(n)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:   # skip it: a node it cannot read
                log.warning("node %s: unreadable allocatable (%s); not scheduling onto it", n["metadata"]["name"], exc)
        with self._lock:
            assumed = dict(self._assumed)
        bound = {}
        for pod in self.pods.items():
            key = f"/registry/pods/{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            node = pod["spec"].get("nodeName") or (assumed.get(key) or (None,))[0]
            if node and not _terminal(pod):
                bound[key] = (node, pod)
        for key, (node, pod) in assumed.items():
            bound.setdefault(key, (node, pod))
        for node, pod in bound.values():
            if node in usage:
                try:
                    usage[node].add(pod)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:   # one bad pod: count the others
                    log.warning("pod %s: unreadable requests (%s); not counted", pod["metadata"].get("name"), exc)
        return usage

    def filter(self, pod: dict, node: dict, usage: NodeUsage) -> list[str]:
        """The reasons `pod` cannot go on `node` (empty if it can), worded as kube-scheduler words them."""
        if not node_ready(node):
            return ["node(s) were not ready"]
        tolerations = pod["spec"].get("tolerations") or []
        if node["spec"].get("unschedulable") and not tolerates(
                tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}):
            return ["node(s) were unschedulable"]
        if not node_affinity_fits(pod, node):           # nodeSelector and required node affinity
            return [NODE_AFFINITY]
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
                return [f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"]
        return usage.misfit(pod)

    def schedule(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is None or pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        with self._lock:
            if key in self._assumed and self._assumed[key][1]["metadata"]["uid"] == pod["metadata"]["uid"]:
                return
        claims, problem = self._pod_claims(pod)
        unbound = [c for c in claims if not _bound(c)]
        if any((c["metadata"].get("annotations") or {}).get(SELECTED_NODE) for c in unbound):
            return     # a node was chosen for its claims: bound once they are (the claim informer requeues)
        nodes = self.nodes.items()
        usage = self.usage()
        reasons: dict[str, int] = {}
        fitting = []
        nodes = [n for n in nodes if n["metadata"]["name"] in usage]
        placement = Placement(pod, nodes, [(n, p) for n, u in usage.items() for p in u.placed]) \
            if needs_placement(pod, usage.values()) else None
        for node in nodes:
            why = [problem] if problem else \
                self.filter(pod, node, usage[node["metadata"]["name"]]) or self._volume_misfit(claims, node)
            if not why and placement is not None and (inter := placement.misfit(node)):
                why = [inter]
            for r in why:
                reasons[r] = reasons.get(r, 0) + 1
            if not why:
                fitting.append(node["metadata"]["name"])
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if not fitting:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            message = f"0/{len(nodes)} nodes are available: {detail or 'no nodes registered'}."
            self.events.record(pod, "Warning", "FailedScheduling", message)
            self._set_unschedulable(ns, name, message)
            if not problem and may_preempt(pod):          # PriorityClass: evict lower-priority pods
                preempt(self, pod, nodes, usage)
            return
        by_name = {n["metadata"]["name"]: n for n in nodes}
        target = max(sorted(fitting), key=lambda n: (
            usage[n].score(pod) * 100 + node_affinity_score(pod, by_name[n]) -
            100 * prefer_no_schedule_count(pod, by_name[n]) + (placement.score(by_name[n]) if placement else 0),
            -usage[n].pods))
        if unbound:       # WaitForFirstConsumer: provision or bind on the chosen node first (PreBind)
            for claim in unbound:
                def select(live: dict) -> bool | None:
                    if _bound(live):
                        return False
                    live["metadata"].setdefault("annotations", {})[SELECTED_NODE] = target
                    return None
                self.client.mutate("PersistentVolumeClaim", ns, claim["metadata"]["name"], select)
            self.queue_after(key, 1.0)    # in case the claims were bound before this pass could see them
            return

        def bind(live: dict) -> bool | None:
            if live["spec"].get("nodeName") or live["metadata"]["uid"] != pod["metadata"]["uid"]:
                return False
            live["spec"]["nodeName"] = target
            conditions = [c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            live.setdefault("status", {})["conditions"] = conditions + [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}]
            return None
        with self._lock:
            self._assumed[key] = (target, pod)
        bound = self.client.mutate("Pod", ns, name, bind)
        if bound and bound["spec"].get("nodeName") == target:
            self.events.record(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {target}")
        else:
            with self._lock:
                self._assumed.pop(key, None)

    def queue_after(self, key: str, delay: float) -> None:
        timer = threading.Timer(delay, self.queue.add, args=(key,))
        timer.daemon = True
        timer.start()

    def _set_unschedulable(self, ns: str, name: str, message: str) -> None:
        def mark(live: dict) -> None:
            conditions = [c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            old = next((c for c in (live.get("status") or {}).get("conditions") or [] if c["type"] == "PodScheduled"),
                       {})
            live.setdefault("status", {})["phase"] = live["status"].get("phase") or "Pending"
            live["status"]["conditions"] = conditions + [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                 "lastProbeTime": None, "lastTransitionTime": old.get("lastTransitionTime") if
                 old.get("message") == message else now_rfc3339()}]
        self.client.mutate("Pod", ns, name, mark)


def _bound(claim: dict) -> bool:
    return bool(claim["spec"].get("volumeName")) and (claim.get("status") or {}).get("phase") == "Bound"


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
