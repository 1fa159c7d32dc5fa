"""Deployment controller: one ReplicaSet per pod template (named `<deploy>-<template hash>`), rolled from old to
new by the RollingUpdate (maxSurge/maxUnavailable) or Recreate strategy, with revisions, pause, minReadySeconds
and progressDeadlineSeconds, as upstream's DeploymentController does."""
from __future__ import annotations

import copy
import json
import logging
import math
import time

from kemu.api.selectors import selector_matches
from kemu.api.timeutil import now_rfc3339, parse_time
from kemu.client import Client
from kemu.controllers.common import SAFE_ALPHABET, Controller, SharedInformers, controller_ref, owner_reference

log = logging.getLogger(__name__)
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"


# ---- pure logic (unit tested) ------------------------------------------------------------------------------------
def fnv32a(data: bytes) -> int:
    h = 0x811c9dc5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict, collision_count: int | None = None) -> str:
    """ComputeHash: FNV-32a over the canonical template (+ collisionCount), digits mapped to k8s' safe alphabet."""
    data = json.dumps(without_hash_label(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in str(fnv32a(data)).encode())


def without_hash_label(template: dict) -> dict:
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return out


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An IntOrString (3 or '25%') against `total`; percentages round up (surge) or down (unavailable)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    percent = int(str(value).rstrip("%")) * total / 100
    return math.ceil(percent) if round_up else math.floor(percent)


def resolve_fenceposts(max_surge, max_unavailable, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; both 0 would deadlock, so unavailable becomes 1 (upstream)."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def new_rs_target(desired: int, surge: int, total_replicas: int, new_replicas: int) -> int:
    """How many replicas the new ReplicaSet may have now (NewRSNewReplicas for RollingUpdate)."""
    if new_replicas >= desired:
        return desired
    max_total = desired + surge
    if total_replicas >= max_total:
        return new_replicas
    return new_replicas + min(max_total - total_replicas, desired - new_replicas)


def old_scale_down(desired: int, unavailable: int, new_spec: int, new_available: int,
                   olds: list[tuple[int, int]]) -> list[int]:
    """New spec.replicas for each old ReplicaSet (oldest first), given as (spec replicas, available replicas):
    first unhealthy pods go, then healthy ones while total availability stays >= desired - maxUnavailable."""
    total = new_spec + sum(s for s, _ in olds)
    min_available = desired - unavailable
    budget = total - min_available - (new_spec - new_available)
    result = [s for s, _ in olds]
    if budget <= 0 or not any(result):
        return result
    for i, (spec, available) in enumerate(olds):      # cleanupUnhealthyReplicas
        cut = min(budget, max(spec - available, 0))
        result[i] -= cut
        budget -= cut
    healthy = sum(min(a, r) for (_, a), r in zip(olds, result)) + new_available - min_available
    for i in range(len(result)):                        # scaleDownOldReplicaSetsForRollingUpdate
        if healthy <= 0:
            break
        cut = min(result[i], healthy)
        result[i] -= cut
        healthy -= cut
    return result


def revision_of(rs: dict) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def condition(conditions: list[dict], ctype: str) -> dict | None:
    return next((c for c in conditions if c["type"] == ctype), None)


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                  touch: bool = True) -> list[dict]:
    """Replace a condition; lastTransitionTime changes only with status, lastUpdateTime when `touch`."""
    now = now_rfc3339()
    old = condition(conditions, ctype)
    new = {"type": ctype, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": now if touch or old is None else old["lastUpdateTime"],
           "lastTransitionTime": old["lastTransitionTime"] if old and old["status"] == status else now}
    if old and {k: v for k, v in old.items() if k != "lastUpdateTime"} == \
            {k: v for k, v in new.items() if k != "lastUpdateTime"} and not touch:
        new = old
    return [c for c in conditions if c["type"] != ctype] + [new]


def _pods_of(rs: dict) -> int:
    """Pods an RS has or will have: a scaled-down RS counts until its pods are really going (so the surge bound
    holds for the pods users see, not just for spec.replicas)."""
    return max(rs["spec"]["replicas"], (rs.get("status") or {}).get("replicas", 0))


# ---- controller --------------------------------------------------------------------------------------------------
class DeploymentController(Controller):
    KIND = "Deployment"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "deployment-controller")
        self.replicasets = self.watch_owned("ReplicaSet", extra=self._orphan_rs)
        self.pods = informers.get("Pod")
        self.pods.handlers.append(self._on_pod)

    def _orphan_rs(self, rs: dict) -> None:
        for d in self.own.items():
            if d["metadata"]["namespace"] == rs["metadata"]["namespace"] and \
                    selector_matches(d["spec"].get("selector"), rs["metadata"].get("labels")):
                self.queue.add(f"{d['metadata']['namespace']}/{d['metadata']['name']}")

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        """Recreate waits for old pods to be gone: a deleted pod of an old RS wakes its Deployment."""
        if new is None and old is not None:
            ref = controller_ref(old)
            if ref and ref.get("kind") == "ReplicaSet":
                rs = self.replicasets.cache.get(f"/registry/replicasets/{old['metadata']['namespace']}/{ref['name']}")
                owner = controller_ref(rs) if rs else None
                if owner and owner.get("kind") == "Deployment":
                    self.queue.add(f"{old['metadata']['namespace']}/{owner['name']}")

    def claim_replicasets(self, d: dict) -> list[dict]:
        ns, uid = d["metadata"]["namespace"], d["metadata"]["uid"]
        out = []
        for rs in self.replicasets.items():
            if rs["metadata"]["namespace"] != ns:
                continue
            ref = controller_ref(rs)
            if ref and ref.get("uid") == uid:
                out.append(rs)
            elif ref is None and selector_matches(d["spec"]["selector"], rs["metadata"].get("labels")) and \
                    self.may_adopt(d):
                def adopt(live: dict) -> bool | None:
                    if controller_ref(live) is not None:
                        return False
                    live["metadata"].setdefault("ownerReferences", []).append(owner_reference(d))
                    return None
                adopted = self.client.mutate("ReplicaSet", ns, rs["metadata"]["name"], adopt)
                if adopted and (controller_ref(adopted) or {}).get("uid") == uid:
                    out.append(adopted)
        return out

    def sync(self, key: str) -> None:
        d = self.get_own(key)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return   # being deleted: neither adopt nor create (the garbage collector or orphaning is at work)
        spec = d["spec"]
        rss = self.claim_replicasets(d)
        template = without_hash_label(spec["template"])
        new_rs = next((rs for rs in rss if without_hash_label(rs["spec"]["template"]) == template), None)
        olds = sorted([rs for rs in rss if rs is not new_rs], key=lambda r: (revision_of(r),
                                                                              r["metadata"]["creationTimestamp"]))
        progressed = False
        if spec.get("paused"):
            self._sync_status(d, new_rs, olds, progressed)
            return
        desired = spec.get("replicas", 1)
        max_revision = max([revision_of(r) for r in olds] or [0])
        if new_rs is None:
            new_rs = self._create_rs(d, rss, max_revision + 1, olds)
            if new_rs is None:
                return
            progressed = True
        else:
            new_rs = self._sync_rs_meta(d, new_rs, max_revision)
        if spec["strategy"]["type"] == "Recreate":
            progressed |= self._recreate(d, new_rs, olds, desired)
        else:
            rolling = spec["strategy"].get("rollingUpdate") or {}
            surge, unavailable = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired)
            total = sum(_pods_of(r) for r in [new_rs, *olds])
            target = new_rs_target(desired, surge, total, new_rs["spec"]["replicas"])
            if target != new_rs["spec"]["replicas"]:
                new_rs = self._scale(new_rs, target, d) or new_rs
                progressed = True
            else:
                status = new_rs.get("status") or {}
                counts = old_scale_down(desired, unavailable, new_rs["spec"]["replicas"],
                                        status.get("availableReplicas", 0),
                                        [(r["spec"]["replicas"], (r.get("status") or {}).get("availableReplicas", 0))
                                         for r in olds])
                for rs, count in zip(olds, counts):
                    if count != rs["spec"]["replicas"]:
                        self._scale(rs, count, d)
                        progressed = True
        self._cleanup(d, olds)
        self._sync_status(d, new_rs, olds, progressed)

    def _create_rs(self, d: dict, rss: list[dict], revision: int, olds: list[dict]) -> dict | None:
        meta = d["metadata"]
        collisions = (d.get("status") or {}).get("collisionCount") or 0
        h = template_hash(d["spec"]["template"], collisions)
        template = copy.deepcopy(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        desired = d["spec"].get("replicas", 1)
        annotations = {REVISION: str(revision), DESIRED: str(desired)}
        if CHANGE_CAUSE in (meta.get("annotations") or {}):
            annotations[CHANGE_CAUSE] = meta["annotations"][CHANGE_CAUSE]
        active_olds = any(r["spec"]["replicas"] for r in olds)
        if d["spec"]["strategy"]["type"] == "Recreate":
            replicas = 0 if active_olds else desired
        else:
            rolling = d["spec"]["strategy"].get("rollingUpdate") or {}
            surge, _ = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired)
            replicas = new_rs_target(desired, surge, sum(_pods_of(r) for r in olds), 0)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
                           "labels": template["metadata"]["labels"], "annotations": annotations,
                           "ownerReferences": [owner_reference(d)]},
              "spec": {"replicas": replicas, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                       "selector": selector, "template": template}}
        try:
            created = self.client.create(rs)
        except Exception as exc:
            clash = self.client.get("ReplicaSet", meta["namespace"], rs["metadata"]["name"])
            if clash is not None and without_hash_label(clash["spec"]["template"]) != \
                    without_hash_label(template):   # a hash collision: bump collisionCount and retry
                def bump(live: dict) -> None:
                    live.setdefault("status", {})["collisionCount"] = collisions + 1
                self.client.mutate("Deployment", meta["namespace"], meta["name"], bump)
            log.warning("creating ReplicaSet for %s failed: %s", meta["name"], exc)
            self.enqueue_after(f"{meta['namespace']}/{meta['name']}", 0.5)
            return None
        self.events.record(d, "Normal", "ScalingReplicaSet",
                           f"Scaled up replica set {rs['metadata']['name']} to {replicas}")
        return created

    def _sync_rs_meta(self, d: dict, rs: dict, max_old_revision: int) -> dict:
        """The new RS carries the newest revision (an undo re-uses an old RS), the change-cause and
        minReadySeconds of its Deployment."""
        annotations = d["metadata"].get("annotations") or {}

        def mutate(live: dict) -> None:
            ann = live["metadata"].setdefault("annotations", {})
            if revision_of(live) <= max_old_revision:
                ann[REVISION] = str(max_old_revision + 1)
            if CHANGE_CAUSE in annotations:
                ann[CHANGE_CAUSE] = annotations[CHANGE_CAUSE]
            live["spec"]["minReadySeconds"] = d["spec"].get("minReadySeconds", 0)
        return self.client.mutate("ReplicaSet", rs["metadata"]["namespace"], rs["metadata"]["name"], mutate) or rs

    def _scale(self, rs: dict, replicas: int, d: dict) -> dict | None:
        old = rs["spec"]["replicas"]

        def mutate(live: dict) -> None:
            live["spec"]["replicas"] = replicas
            live["metadata"].setdefault("annotations", {})[DESIRED] = str(d["spec"].get("replicas", 1))
        out = self.client.mutate("ReplicaSet", rs["metadata"]["namespace"], rs["metadata"]["name"], mutate)
        verb = "up" if replicas > old else "down"
        self.events.record(d, "Normal", "ScalingReplicaSet",
                           f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {replicas}")
        return out

    def _recreate(self, d: dict, new_rs: dict, olds: list[dict], desired: int) -> bool:
        """Scale every old RS to 0, wait until their pods are gone, then scale the new RS up."""
        changed = False
        for rs in olds:
            if rs["spec"]["replicas"]:
                self._scale(rs, 0, d)
                changed = True
        if changed:
            return True
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        if any((controller_ref(p) or {}).get("uid") in old_uids and
               (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") for p in self.pods.items()):
            return False
        if new_rs["spec"]["replicas"] != desired:
            self._scale(new_rs, desired, d)
            return True
        return False

    def _cleanup(self, d: dict, olds: list[dict]) -> None:
        """Keep at most revisionHistoryLimit old, scaled-down ReplicaSets."""
        limit = d["spec"].get("revisionHistoryLimit", 10)
        idle = [rs for rs in olds if rs["spec"]["replicas"] == 0 and not (rs.get("status") or {}).get("replicas")]
        for rs in idle[:max(len(idle) - limit, 0)]:
            self.client.delete("ReplicaSet", rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _sync_status(self, d: dict, new_rs: dict | None, olds: list[dict], progressed: bool) -> None:
        spec, old_status = d["spec"], d.get("status") or {}
        rss = ([new_rs] if new_rs else []) + olds
        count = lambda field: sum((r.get("status") or {}).get(field, 0) for r in rss)  # noqa: E731
        desired = spec.get("replicas", 1)
        new_status = (new_rs or {}).get("status") or {}
        status = {"replicas": count("replicas"), "updatedReplicas": new_status.get("replicas", 0),
                  "readyReplicas": count("readyReplicas"), "availableReplicas": count("availableReplicas")}
        status["unavailableReplicas"] = max(sum(r["spec"]["replicas"] for r in rss) - status["availableReplicas"], 0)
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        if d["metadata"].get("generation"):      # kubectl rollout status waits for it (kemu.client.generation)
            status["observedGeneration"] = d["metadata"]["generation"]
        rolling = spec["strategy"].get("rollingUpdate") or {}
        _, unavailable = resolve_fenceposts(rolling.get("maxSurge"), rolling.get("maxUnavailable"), desired) \
            if spec["strategy"]["type"] == "RollingUpdate" else (0, 0)
        conditions = copy.deepcopy(old_status.get("conditions") or [])
        if status["availableReplicas"] >= desired - unavailable:
            conditions = set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                       "Deployment has minimum availability.", touch=False)
        else:
            conditions = set_condition(conditions, "Available", "False", "MinimumReplicasUnavailable",
                                       "Deployment does not have minimum availability.", touch=False)
        name = new_rs["metadata"]["name"] if new_rs else ""
        complete = new_rs is not None and status["updatedReplicas"] == desired and status["replicas"] == desired \
            and status["availableReplicas"] == desired and new_rs["spec"]["replicas"] == desired
        progressing = condition(conditions, "Progressing")
        deadline = spec.get("progressDeadlineSeconds")
        key = f"{d['metadata']['namespace']}/{d['metadata']['name']}"
        for field in ("updatedReplicas", "availableReplicas", "readyReplicas"):
            if status[field] > old_status.get(field, 0):
                progressed = True
        if spec.get("paused"):
            conditions = set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused",
                                       "Deployment is paused", touch=False)
        elif complete:
            conditions = set_condition(conditions, "Progressing", "True", "NewReplicaSetAvailable",
                                       f'ReplicaSet "{name}" has successfully progressed.',
                                       touch=progressing is None or progressing["reason"] != "NewReplicaSetAvailable")
        elif progressed or progressing is None or progressing["reason"] in ("NewReplicaSetAvailable",
                                                                            "DeploymentPaused"):
            reason = "DeploymentResumed" if progressing and progressing["reason"] == "DeploymentPaused" \
                else "NewReplicaSetCreated" if progressing is None else "ReplicaSetUpdated"
            conditions = set_condition(conditions, "Progressing", "True", reason,
                                       f'ReplicaSet "{name}" is progressing.')
            if deadline is not None:
                self.enqueue_after(key, deadline + 1)
        elif deadline is not None and progressing["status"] == "True":
            since = parse_time(progressing["lastUpdateTime"]) or time.time()
            if since + deadline <= time.time():
                conditions = set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded",
                                           f'ReplicaSet "{name}" has timed out progressing.')
                self.events.record(d, "Warning", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{name}" has timed out progressing.')
            else:
                self.enqueue_after(key, since + deadline - time.time() + 1)
        failure = next((c for r in rss for c in (r.get("status") or {}).get("conditions") or []
                        if c["type"] == "ReplicaFailure" and c["status"] == "True"), None)
        if failure:          # upstream: a ReplicaSet's ReplicaFailure (e.g. a quota) shows on the Deployment
            conditions = set_condition(conditions, "ReplicaFailure", "True", failure["reason"], failure["message"],
                                       touch=False)
        else:
            conditions = [c for c in conditions if c["type"] != "ReplicaFailure"]
        status["conditions"] = sorted(conditions, key=lambda c: c["type"])
        if new_rs is not None and (d["metadata"].get("annotations") or {}).get(REVISION) != \
                str(revision_of(new_rs)):
            revision = str(revision_of(new_rs))

            def annotate(live: dict) -> None:
                live["metadata"].setdefault("annotations", {})[REVISION] = revision
            self.client.mutate("Deployment", d["metadata"]["namespace"], d["metadata"]["name"], annotate)
            d = self.client.get("Deployment", d["metadata"]["namespace"], d["metadata"]["name"]) or d
        self.update_status(d, status)
