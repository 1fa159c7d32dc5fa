"""ReplicaSet controller: keeps `replicas` active pods matching the selector, adopting orphans that match and
releasing owned pods that no longer match, replacing failed or deleted ones (upstream's ReplicaSetController)."""
from __future__ import annotations

import logging

from kemu.api.selectors import selector_matches
from kemu.api.timeutil import now_rfc3339, parse_time
from kemu.client import Client
from kemu.controllers.common import (
    Controller,
    SharedInformers,
    controller_ref,
    delete_pod,
    owner_reference,
    pod_active,
    pod_available,
    pod_from_template,
    pod_ready_since,
    random_suffix,
)

log = logging.getLogger(__name__)
BURST = 50   # pods created or deleted per sync at most (upstream's slow-start batches)


def deletion_rank(pod: dict) -> tuple:
    """Sort key: pods that should go first when scaling down come first (upstream's ActivePodsWithRanks):
    unscheduled < scheduled, Pending < Running, not ready < ready, ready more recently, more restarts, newer."""
    status = pod.get("status") or {}
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", "Pending"), 0)
    since = pod_ready_since(pod)
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (1 if pod["spec"].get("nodeName") else 0, phase, 0 if since is None else 1, -(since or 0), -restarts,
            -created)


def replicaset_status(rs: dict, pods: list[dict], now: float | None = None) -> dict:
    """Counts over the RS's active pods, as `kubectl get rs` shows them."""
    min_ready = rs["spec"].get("minReadySeconds") or 0
    labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
    status = {"replicas": len(pods),
              "fullyLabeledReplicas": sum(1 for p in pods if labels.items() <= (p["metadata"].get("labels") or {})
                                          .items()),
              "readyReplicas": sum(1 for p in pods if pod_ready_since(p) is not None),
              "availableReplicas": sum(1 for p in pods if pod_available(p, min_ready, now))}
    if rs.get("metadata", {}).get("generation"):
        status["observedGeneration"] = rs["metadata"]["generation"]
    return status


class ReplicaSetController(Controller):
    KIND = "ReplicaSet"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "replication-controller" if self.KIND == "ReplicationController"
                         else "replicaset-controller")
        self.pods = self.watch_owned("Pod", extra=self._orphan_pod)

    def _orphan_pod(self, pod: dict) -> None:
        """A pod without a controller may be adopted by any RS whose selector matches it."""
        ns = pod["metadata"]["namespace"]
        for rs in self.own.items():
            if rs["metadata"]["namespace"] == ns and selector_matches(self.selector(rs),
                                                                      pod["metadata"].get("labels")):
                self.queue.add(f"{ns}/{rs['metadata']['name']}")

    @staticmethod
    def selector(rs: dict) -> dict:
        """The owner's LabelSelector (a ReplicationController's plain map is read as matchLabels)."""
        return rs["spec"].get("selector") or {}

    def claim_pods(self, rs: dict) -> list[dict]:
        """Owned pods that still match, plus adopted orphans that match; owned pods that stopped matching are
        released (their ownerReference removed), as upstream's PodControllerRefManager does."""
        ns, uid = rs["metadata"]["namespace"], rs["metadata"]["uid"]
        selector = self.selector(rs)
        claimed = []
        for pod in self.pods.items():
            if pod["metadata"]["namespace"] != ns:
                continue
            ref = controller_ref(pod)
            matches = selector_matches(selector, pod["metadata"].get("labels"))
            if ref and ref.get("uid") == uid:
                if matches:
                    claimed.append(pod)
                elif not pod["metadata"].get("deletionTimestamp"):
                    self._set_owner(pod, rs, adopt=False)
            elif ref is None and matches and pod_active(pod) and self.may_adopt(rs):
                if self._set_owner(pod, rs, adopt=True):
                    claimed.append(pod)
        return claimed

    def _set_owner(self, pod: dict, rs: dict, adopt: bool) -> bool:
        uid = rs["metadata"]["uid"]

        def mutate(live: dict) -> bool | None:
            refs = [r for r in live["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if adopt:
                if controller_ref(live) is not None:
                    return False
                refs.append(owner_reference(rs))
            live["metadata"]["ownerReferences"] = refs
            return None
        done = self.client.mutate("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"], mutate)
        if done is not None:
            log.info("%s pod %s %s %s", "adopted" if adopt else "released", pod["metadata"]["name"],
                     "into" if adopt else "from", rs["metadata"]["name"])
        return done is not None and controller_ref(done) is not None and controller_ref(done)["uid"] == uid

    def sync(self, key: str) -> None:
        rs = self.get_own(key)
        if rs is None:
            return   # the garbage collector removes the pods of a deleted ReplicaSet
        pods = self.claim_pods(rs)
        if not self.expectations.satisfied(key, [p for p in self.pods.items()
                                                 if p["metadata"]["namespace"] == key.split("/")[0]]):
            self.enqueue_after(key, self.expectations.remaining(key) + 0.1)
            return
        for pod in pods:
            if (pod.get("status") or {}).get("phase") == "Failed" and not pod["metadata"].get("deletionTimestamp"):
                delete_pod(self.client, pod)   # replaced below; upstream leaves these to the pod GC
        active = [p for p in pods if pod_active(p)]
        want = rs["spec"].get("replicas", 1)
        if rs["metadata"].get("deletionTimestamp"):
            want = len(active)
        diff = want - len(active)
        if diff > 0:
            self._create(rs, key, min(diff, BURST))
        elif diff < 0:
            doomed = sorted(active, key=deletion_rank)[:min(-diff, BURST)]
            self.expectations.expect(key, deleted={p["metadata"]["name"] for p in doomed})
            for pod in doomed:
                delete_pod(self.client, pod)
                self.events.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        status = replicaset_status(rs, active)
        failure = self.create_errors.get(key) if diff > 0 else None
        if failure:          # upstream's ReplicaFailure condition (e.g. a quota refused the pods)
            old = next((c for c in (rs.get("status") or {}).get("conditions") or []
                        if c.get("type") == "ReplicaFailure"), {})
            status["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                     "message": failure,
                                     "lastTransitionTime": old.get("lastTransitionTime") or now_rfc3339()}]
        self.update_status(rs, status)
        min_ready = rs["spec"].get("minReadySeconds") or 0
        if min_ready and status["readyReplicas"] > status["availableReplicas"]:
            self.enqueue_after(key, 1.0)

    def _create(self, rs: dict, key: str, count: int) -> None:
        prefix = rs["metadata"].get("generateName") or rs["metadata"]["name"] + "-"
        created = self.create_pods(rs, key, (pod_from_template(rs, rs["spec"]["template"], prefix + random_suffix())
                                             for _ in range(count)))
        self.expectations.expect(key, created=created)
