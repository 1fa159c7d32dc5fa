"""The disruption controller: keeps every PodDisruptionBudget's status (currentHealthy, desiredHealthy,
disruptionsAllowed, expectedPods, the DisruptionAllowed condition) current as its pods change; evictions
(kemu.client.disruption) spend disruptionsAllowed between two syncs. Expected pods are the replicas the pods'
controllers want (Deployment via its ReplicaSet, ReplicaSet, StatefulSet, ReplicationController)."""
from __future__ import annotations

from kemu.api.selectors import selector_matches
from kemu.client import Client
from kemu.client.disruption import budget_status
from kemu.controllers.common import Controller, SharedInformers, controller_ref, key_of

SCALED = ("ReplicaSet", "StatefulSet", "ReplicationController")


class DisruptionController(Controller):
    KIND = "PodDisruptionBudget"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "disruption")
        self.pods = informers.get("Pod")
        self.pods.handlers.append(self._on_pod)

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        pod = new or old
        for pdb in self.own.items():
            if pdb["metadata"]["namespace"] == pod["metadata"]["namespace"]:
                self.queue.add(key_of(pdb))

    def sync(self, key: str) -> None:
        pdb = self.get_own(key)
        if pdb is None:
            return
        ns = pdb["metadata"]["namespace"]
        selector = pdb["spec"].get("selector") or {}
        pods = [p for p in self.pods.items() if p["metadata"]["namespace"] == ns
                and (selector == {} or selector_matches(selector, p["metadata"].get("labels") or {}))
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        expected = len(pods)
        plain = pdb["spec"].get("maxUnavailable") is None and isinstance(pdb["spec"].get("minAvailable", 1), int)
        if not plain:
            owners = {}
            for p in pods:
                ref = controller_ref(p)
                if ref and ref.get("kind") in SCALED:
                    owner = self.client.get(ref["kind"], ns, ref["name"])
                    if owner is not None:
                        owners[(ref["kind"], ref["name"])] = owner["spec"].get("replicas", 1)
            expected = sum(owners.values()) + sum(1 for p in pods if not controller_ref(p)
                                                   or controller_ref(p).get("kind") not in SCALED)
        status = budget_status(pdb, pods, expected)
        old = dict(pdb.get("status") or {})
        old_conditions = old.pop("conditions", None)
        old.pop("disruptedPods", None)
        new = {k: v for k, v in status.items() if k != "conditions"}
        if old == new and old_conditions and old_conditions[0].get("status") == status["conditions"][0]["status"]:
            return
        self.update_status(pdb, status)
