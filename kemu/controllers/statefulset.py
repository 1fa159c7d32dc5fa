"""StatefulSet controller (upstream's StatefulSetController): pods `<sts>-0..N-1` with stable identities (hostname =
pod name, subdomain = serviceName) and one claim per volumeClaimTemplate and ordinal (`<template>-<sts>-<ordinal>`),
which outlives its pod, so a replaced pod gets its data back.

OrderedReady creates ordinal n only once 0..n-1 are Running and Ready (and available after minReadySeconds) and
removes the highest ordinal first, one at a time; Parallel creates and removes them all at once. Revisions are
ControllerRevisions `<sts>-<hash>` (the template hash of deployment.py, as the DaemonSet's) holding the pod
template; pods carry `controller-revision-hash`. RollingUpdate replaces pods from the highest ordinal down to
`partition`, at most `maxUnavailable` (default 1) unavailable at once; OnDelete replaces a pod only when the user
deletes it. persistentVolumeClaimRetentionPolicy: claims are Retained, or owned by their pod (whenScaled: Delete,
removed with a condemned pod) or by the StatefulSet (whenDeleted: Delete) so the garbage collector removes them.
"""
from __future__ import annotations

import copy
import logging
import re

from kemu.api.selectors import selector_matches
from kemu.client import Client
from kemu.controllers.common import (
    Controller,
    SharedInformers,
    delete_pod,
    owner_reference,
    pod_active,
    pod_available,
    pod_from_template,
    pod_ready_since,
)
from kemu.controllers.daemonset import REVISION_HASH
from kemu.controllers.deployment import scaled_value, template_hash

log = logging.getLogger(__name__)
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


# ---- pure helpers (unit tested) ----------------------------------------------------------------------------------
def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    """The ordinal of `<sts>-<n>`, None for any other name."""
    m = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(m.group(1)) if m else None


def claim_name(template: dict, sts: dict, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{sts['metadata']['name']}-{ordinal}"


def running_and_ready(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready_since(pod) is not None


def revision_name(sts: dict, template: dict, collisions: int = 0) -> str:
    return f"{sts['metadata']['name']}-{template_hash(template, collisions)}"


def identity_pod(sts: dict, template: dict, ordinal: int, revision: str) -> dict:
    """Pod `ordinal` of `sts` from `template` (a revision's): name, hostname/subdomain, labels, claims."""
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod = pod_from_template(sts, template, name, {REVISION_HASH: revision, POD_NAME_LABEL: name,
                                                  POD_INDEX_LABEL: str(ordinal)})
    spec = pod["spec"]
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claims = {t["metadata"]["name"]: claim_name(t, sts, ordinal) for t in sts["spec"].get("volumeClaimTemplates")
              or []}
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    spec["volumes"] = volumes + [{"name": t, "persistentVolumeClaim": {"claimName": c}} for t, c in claims.items()]
    return pod


def rolling_deletions(sts: dict, pods: dict[int, dict], update_revision: str) -> list[dict]:
    """Pods RollingUpdate deletes now: out-of-date pods from the highest ordinal down to `partition`, so that at
    most maxUnavailable (default 1) of the replicas are unavailable; none while any replica is missing."""
    replicas = sts["spec"].get("replicas", 1)
    rolling = (sts["spec"].get("updateStrategy") or {}).get("rollingUpdate") or {}
    partition = rolling.get("partition") or 0
    budget = max(scaled_value(rolling.get("maxUnavailable", 1), replicas, False), 1)
    min_ready = sts["spec"].get("minReadySeconds") or 0
    unavailable = sum(1 for i in range(replicas) if i not in pods or pods[i]["metadata"].get("deletionTimestamp")
                      or not pod_available(pods[i], min_ready))
    out = []
    for i in range(replicas - 1, partition - 1, -1):
        pod = pods.get(i)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            continue
        if pod["metadata"]["labels"].get(REVISION_HASH) != update_revision:
            if pod_available(pod, min_ready):
                if unavailable >= budget:
                    break
                unavailable += 1
            out.append(pod)
    return out


# ---- controller --------------------------------------------------------------------------------------------------
class StatefulSetController(Controller):
    KIND = "StatefulSet"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "statefulset-controller")
        self.pods = self.watch_owned("Pod")
        self.revisions = self.watch_owned("ControllerRevision")
        self.claims = informers.get("PersistentVolumeClaim")

    # ---- revisions ------------------------------------------------------------------------------------------------
    def _revisions(self, sts: dict) -> tuple[dict, dict, list[dict]]:
        """(current, update, all) ControllerRevisions; the update revision is created (or, after an undo,
        re-numbered as the newest) here."""
        owned = sorted(self.owned(self.revisions, sts), key=lambda r: r.get("revision", 0))
        template = sts["spec"]["template"]
        update = next((r for r in owned if (r.get("data") or {}).get("spec", {}).get("template") == template), None)
        newest = max([r.get("revision", 0) for r in owned] or [0])
        if update is None:
            collisions = (sts.get("status") or {}).get("collisionCount") or 0
            update = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                      "metadata": {"name": revision_name(sts, template, collisions),
                                   "namespace": sts["metadata"]["namespace"],
                                   "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                                   "ownerReferences": [owner_reference(sts)]},
                      "data": {"spec": {"template": copy.deepcopy(template), "$patch": "replace"}},
                      "revision": newest + 1}
            try:
                update = self.client.create(update)
            except Exception:   # a name clash with another template: bump collisionCount, as upstream
                def bump(live: dict) -> None:
                    live.setdefault("status", {})["collisionCount"] = collisions + 1
                self.client.mutate("StatefulSet", sts["metadata"]["namespace"], sts["metadata"]["name"], bump)
                raise
            owned.append(update)
        elif update.get("revision", 0) < newest:          # rolled back to an old template: it is the newest now

            def renumber(live: dict) -> None:
                live["revision"] = newest + 1
            update = self.client.mutate("ControllerRevision", sts["metadata"]["namespace"],
                                        update["metadata"]["name"], renumber) or update
            owned = [update if r["metadata"]["name"] == update["metadata"]["name"] else r for r in owned]
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in owned if r["metadata"]["name"] == current_name), update)
        return current, update, owned

    # ---- claims ---------------------------------------------------------------------------------------------------
    def _ensure_claims(self, sts: dict, ordinal: int) -> bool:
        """Create the pod's missing claims (FailedCreate on errors); False while one cannot be made."""
        ns = sts["metadata"]["namespace"]
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        for template in sts["spec"].get("volumeClaimTemplates") or []:
            name = claim_name(template, sts, ordinal)
            live = self.claims.cache.get(f"/registry/persistentvolumeclaims/{ns}/{name}") or \
                self.client.get("PersistentVolumeClaim", ns, name)
            if live is not None:
                if live["metadata"].get("deletionTimestamp"):
                    return False     # upstream: the pod waits until the old claim is gone
                continue
            meta = copy.deepcopy(template.get("metadata") or {})
            labels = {**(meta.get("labels") or {}),
                      **((sts["spec"].get("selector") or {}).get("matchLabels") or {})}
            claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": name, "namespace": ns, "labels": labels,
                                  **({"annotations": meta["annotations"]} if meta.get("annotations") else {})},
                     "spec": copy.deepcopy(template["spec"])}
            if policy.get("whenDeleted") == "Delete":
                claim["metadata"]["ownerReferences"] = [dict(owner_reference(sts), controller=True)]
            try:
                self.client.create(claim)
            except Exception as exc:
                self.events.record(sts, "Warning", "FailedCreate",
                                   f"create Claim {name} for Pod {sts['metadata']['name']}-{ordinal} in "
                                   f"StatefulSet {sts['metadata']['name']} failed error: {exc}")
                self.enqueue_after(f"{ns}/{sts['metadata']['name']}", 1.0)
                return False
            self.events.record(sts, "Normal", "SuccessfulCreate",
                               f"create Claim {name} Pod {sts['metadata']['name']}-{ordinal} in StatefulSet "
                               f"{sts['metadata']['name']} success")
        return True

    def _release_claims(self, sts: dict, pod: dict, ordinal: int) -> None:
        """whenScaled: Delete — a condemned pod owns its claims, so they go with it."""
        if ((sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}).get("whenScaled")) != "Delete":
            return
        ref = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}
        for template in sts["spec"].get("volumeClaimTemplates") or []:
            def own(live: dict) -> bool | None:
                refs = live["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == ref["uid"] for r in refs):
                    return False
                live["metadata"]["ownerReferences"] = [r for r in refs if r.get("kind") != "StatefulSet"] + [ref]
                return None
            self.client.mutate("PersistentVolumeClaim", sts["metadata"]["namespace"],
                               claim_name(template, sts, ordinal), own)

    # ---- sync -----------------------------------------------------------------------------------------------------
    def sync(self, key: str) -> None:
        sts = self.get_own(key)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        owned = self.owned(self.pods, sts)
        if not self.expectations.satisfied(key, owned):
            self.enqueue_after(key, self.expectations.remaining(key) + 0.1)
            return
        current, update, revisions = self._revisions(sts)
        name = sts["metadata"]["name"]
        replicas = sts["spec"].get("replicas", 1)
        ordered = sts["spec"].get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        strategy = sts["spec"].get("updateStrategy") or {}
        partition = ((strategy.get("rollingUpdate") or {}).get("partition") or 0) \
            if strategy.get("type", "RollingUpdate") == "RollingUpdate" else 0
        min_ready = sts["spec"].get("minReadySeconds") or 0
        pods: dict[int, dict] = {}
        condemned: list[tuple[int, dict]] = []
        for pod in owned:
            ordinal = ordinal_of(name, pod["metadata"]["name"])
            if ordinal is None or not selector_matches(sts["spec"]["selector"], pod["metadata"].get("labels")):
                continue
            (pods.__setitem__(ordinal, pod) if ordinal < replicas else condemned.append((ordinal, pod)))
        created: set[str] = set()
        deleted: set[str] = set()
        waiting = False
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if pod is not None and (pod.get("status") or {}).get("phase") == "Failed" and \
                    not pod["metadata"].get("deletionTimestamp"):
                delete_pod(self.client, pod)          # a failed replica is replaced under the same name
                deleted.add(pod["metadata"]["name"])
                self.events.record(sts, "Warning", "RecreatingFailedPod",
                                   f"StatefulSet {sts['metadata']['namespace']}/{name} is recreating failed Pod "
                                   f"{pod['metadata']['name']}")
                waiting = True
                if ordered:
                    break
                continue
            if pod is None:
                if not self._ensure_claims(sts, ordinal):
                    waiting = True
                    if ordered:
                        break
                    continue
                revision = current if ordinal < partition else update
                new = identity_pod(sts, revision["data"]["spec"]["template"], ordinal, revision["metadata"]["name"])
                created |= self.create_pods(sts, key, [new])
                waiting = True
                if ordered:
                    break
                continue
            if ordered and (pod["metadata"].get("deletionTimestamp") or not running_and_ready(pod) or
                            not pod_available(pod, min_ready)):
                waiting = True
                if min_ready and running_and_ready(pod):
                    self.enqueue_after(key, min_ready)
                break
        if not waiting or not ordered:
            victims = sorted(condemned, key=lambda c: -c[0])
            if ordered:
                if any(p["metadata"].get("deletionTimestamp") for _, p in victims):
                    victims = []
                victims = victims[:1]
            for ordinal, pod in victims:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                self._release_claims(sts, pod, ordinal)
                delete_pod(self.client, pod)
                deleted.add(pod["metadata"]["name"])
                self.events.record(sts, "Normal", "SuccessfulDelete",
                                   f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful")
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and not waiting and not condemned:
            for pod in rolling_deletions(sts, pods, update["metadata"]["name"]):
                delete_pod(self.client, pod)
                deleted.add(pod["metadata"]["name"])
                self.events.record(sts, "Normal", "SuccessfulDelete",
                                   f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful")
        self.expectations.expect(key, created=created, deleted=deleted)
        self._status(sts, owned, current, update, revisions, min_ready)

    def _status(self, sts: dict, owned: list[dict], current: dict, update: dict, revisions: list[dict],
                min_ready: int) -> None:
        """Counts as upstream; the rollout is complete (currentRevision := updateRevision) once every replica
        runs the update revision and is ready."""
        live = [p for p in owned if pod_active(p)]
        rev = lambda p: p["metadata"]["labels"].get(REVISION_HASH)  # noqa: E731
        cur, upd = current["metadata"]["name"], update["metadata"]["name"]
        replicas = sts["spec"].get("replicas", 1)
        status = {"replicas": len(live),
                  "readyReplicas": sum(1 for p in live if running_and_ready(p)),
                  "availableReplicas": sum(1 for p in live if running_and_ready(p) and pod_available(p, min_ready)),
                  "currentReplicas": sum(1 for p in live if rev(p) == cur),
                  "updatedReplicas": sum(1 for p in live if rev(p) == upd),
                  "currentRevision": cur, "updateRevision": upd,
                  "collisionCount": (sts.get("status") or {}).get("collisionCount") or 0}
        if sts["metadata"].get("generation"):
            status["observedGeneration"] = sts["metadata"]["generation"]
        if status["updatedReplicas"] == replicas and status["readyReplicas"] == replicas and \
                status["replicas"] == replicas:
            status["currentRevision"], status["currentReplicas"] = upd, status["updatedReplicas"]
        self.update_status(sts, status)
        if min_ready and status["readyReplicas"] > status["availableReplicas"]:
            self.enqueue_after(f"{sts['metadata']['namespace']}/{sts['metadata']['name']}", 1.0)
        # revisionHistoryLimit: keep that many revisions besides the live ones
        keep = {status["currentRevision"], upd} | {rev(p) for p in owned}
        history = [r for r in revisions if r["metadata"]["name"] not in keep]
        for r in history[:max(len(history) - sts["spec"].get("revisionHistoryLimit", 10), 0)]:
            self.client.delete("ControllerRevision", r["metadata"]["namespace"], r["metadata"]["name"])
