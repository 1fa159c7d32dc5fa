"""NoExecute taint eviction (kube-controller-manager's taint-eviction-controller): a pod on a node with a NoExecute
taint it does not tolerate is deleted at once; one it tolerates for `tolerationSeconds` is deleted that long after
the taint was added (the smallest of its matching tolerations). The node lifecycle taints (not-ready,
unreachable) count as tolerated for 300 s by pods that do not say otherwise: what upstream's
DefaultTolerationSeconds admission plugin writes into every pod. `eviction_delay` is the pure decision."""
from __future__ import annotations

import time

from kemu.api.timeutil import parse_time, rfc3339
from kemu.client import Client
from kemu.controllers.common import Controller, SharedInformers, delete_pod
from kemu.controllers.placement import _tolerates

NOT_READY, UNREACHABLE = "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300


def eviction_delay(pod: dict, taints: list[dict], now: float) -> float | None:
    """Seconds until `pod` must be evicted for the node's NoExecute `taints` (0: now; None: never)."""
    tolerations = list(pod["spec"].get("tolerations") or [])
    for key in (NOT_READY, UNREACHABLE):
        if not any(t.get("key") == key or (t.get("operator") == "Exists" and not t.get("key")) for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    delay: float | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if t.get("effect") in (None, "", "NoExecute") and _tolerates([t], taint)]
        if not matching:
            return 0.0
        bounded = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if len(bounded) < len(matching):
            continue                       # one matching toleration without a bound: tolerated forever
        added = parse_time(taint.get("timeAdded")) or now
        left = max(added + max(min(bounded), 0) - now, 0.0)
        delay = left if delay is None else min(delay, left)
    return delay


class TaintEvictionController(Controller):
    KIND = "Node"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "taint-eviction-controller")
        self.pods = informers.get("Pod")
        self.pods.handlers.append(self._on_pod)
        self.first_seen: dict[tuple[str, str, str], float] = {}

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None and new["spec"].get("nodeName"):
            self.queue.add(f"/{new['spec']['nodeName']}")

    def get_node(self, name: str) -> dict | None:
        return self.own.cache.get(f"/registry/nodes/{name}")

    def sync(self, key: str) -> None:
        name = key.rsplit("/", 1)[-1]
        node = self.get_node(name)
        if node is None:
            return
        taints = [t for t in node["spec"].get("taints") or [] if t.get("effect") == "NoExecute"]
        now = time.time()
        seen = {(t["key"], t.get("value", "")) for t in taints}
        for gone in [k for k in self.first_seen if k[0] == name and k[1:] not in seen]:
            del self.first_seen[gone]
        if not taints:
            return
        stamped = []
        for t in taints:       # a taint without timeAdded counts from when this controller first saw it
            if not t.get("timeAdded"):
                since = self.first_seen.setdefault((name, t["key"], t.get("value", "")), now)
                t = dict(t, timeAdded=rfc3339(since))
            stamped.append(t)
        taints = stamped
        soonest = None
        for pod in self.pods.items():
            if pod["spec"].get("nodeName") != name or pod["metadata"].get("deletionTimestamp") or \
                    (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            delay = eviction_delay(pod, taints, now)
            if delay is None:
                continue
            if delay <= 0:
                meta = pod["metadata"]
                self.events.record(pod, "Normal", "TaintManagerEviction",
                                   f"Marking for deletion Pod {meta['namespace']}/{meta['name']}")
                delete_pod(self.client, pod)
            else:
                soonest = delay if soonest is None else min(soonest, delay)
        if soonest is not None:
            self.enqueue_after(key, soonest + 0.05)
