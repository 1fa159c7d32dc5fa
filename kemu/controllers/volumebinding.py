"""PersistentVolume controller (upstream's PersistentVolumeController, the protection controllers and a built-in
dynamic provisioner): binds claims to volumes, provisions volumes for classes with a kemu provisioner, reclaims
released volumes, and holds claims in use (kubernetes.io/pvc-protection) and bound volumes
(kubernetes.io/pv-protection) until nothing uses them.

Binding: a claim binds a pre-bound volume (spec.volumeName / claimRef), else the smallest Available volume of its
class with its access modes, volumeMode, enough capacity and labels matching its selector; for a
WaitForFirstConsumer class only once the scheduler has chosen a node (`volume.kubernetes.io/selected-node`) and only
to a volume that node can reach; with no such volume, a class with a kemu provisioner gets a new one on that node
(Immediate classes: on a Ready node now). Claim and volume go Pending → Bound; a volume whose claim is gone is
Released, then deleted with its data (reclaimPolicy Delete) or kept (Retain).
"""
from __future__ import annotations

import logging

from kemu.client import Client
from kemu.controllers import provisioner
from kemu.controllers.common import Controller, SharedInformers, key_of
from kemu.controllers.scheduler import node_ready
from kemu.controllers.volumematch import (
    SELECTED_NODE,
    best_volume,
    claim_names,
    claim_request,
    volume_fits_node,
    volume_matches,
)

log = logging.getLogger(__name__)
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
PROVISIONER_ANN = "volume.kubernetes.io/storage-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"


# ---- controller --------------------------------------------------------------------------------------------------
class PersistentVolumeController(Controller):
    """Keys: `<ns>/<claim>` for claims, `/<volume>` for (cluster-scoped) volumes."""

    KIND = "PersistentVolumeClaim"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__(client, informers, "persistentvolume-controller")
        self.volumes = informers.get("PersistentVolume")
        self.volumes.handlers.append(self._on_volume)
        self.classes = informers.get("StorageClass")
        self.classes.handlers.append(lambda key, old, new: [self.queue.add(key_of(c)) for c in self.own.items()
                                                            if (c.get("status") or {}).get("phase") != "Bound"])
        self.own.handlers.append(self._on_claim_gone)
        self.nodes = informers.get("Node")
        self.pods = informers.get("Pod")
        self.pods.handlers.append(self._on_pod)

    def start(self) -> None:
        for sc in provisioner.DEFAULT_CLASSES:     # kind's `standard` (the default) and kemu's size-limited `ext4`
            if self.client.get("StorageClass", None, sc["metadata"]["name"]) is None:
                try:
                    self.client.create(sc)
                except Exception as exc:   # another controller-manager made it first
                    log.info("StorageClass %s: %s", sc["metadata"]["name"], exc)
        super().start()
        for pv in self.volumes.items():
            self.queue.add(key_of(pv))

    def _on_volume(self, key: str, old: dict | None, new: dict | None) -> None:
        obj = new or old
        self.queue.add(key_of(obj))
        ref = (obj.get("spec") or {}).get("claimRef")
        if ref and ref.get("name"):
            self.queue.add(f"{ref.get('namespace')}/{ref['name']}")

    def _on_claim_gone(self, key: str, old: dict | None, new: dict | None) -> None:
        """A deleted claim releases its volume."""
        if new is None and old is not None and (old.get("spec") or {}).get("volumeName"):
            self.queue.add(f"/{old['spec']['volumeName']}")

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        """A pod that stops using claims may release a claim being deleted (pvc-protection)."""
        if new is not None and (old is None or _pod_done(new) == _pod_done(old)):
            return
        pod = new or old
        for name in claim_names(pod):
            self.queue.add(f"{pod['metadata']['namespace']}/{name}")

    def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        if ns:
            self.sync_claim(ns, name)
        else:
            self.sync_volume(name)

    # ---- claims ----------------------------------------------------------------------------------------------------
    def sync_claim(self, ns: str, name: str) -> None:
        claim = self.client.get("PersistentVolumeClaim", ns, name)
        if claim is None:
            return
        meta = claim["metadata"]
        if meta.get("deletionTimestamp"):
            self._release_protection(claim)
            return
        if PVC_PROTECTION not in (meta.get("finalizers") or []):
            claim = self._mutate_claim(claim, lambda c: c["metadata"].setdefault("finalizers", []).append(
                PVC_PROTECTION)) or claim
        spec = claim["spec"]
        if spec.get("volumeName") and (claim.get("status") or {}).get("phase") == "Bound":
            pv = self.client.get("PersistentVolume", None, spec["volumeName"])
            if pv is None or (pv["spec"].get("claimRef") or {}).get("uid") != meta["uid"]:
                self._mutate_claim(claim, lambda c: c.setdefault("status", {}).update(phase="Lost"))
                self.events.record(claim, "Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. "
                                                                  "Data on the volume is lost!")
            return
        sc = self.client.get("StorageClass", None, spec["storageClassName"]) if spec.get("storageClassName") \
            else None
        if spec.get("volumeName"):
            pv = self.client.get("PersistentVolume", None, spec["volumeName"])
            if pv is not None and volume_matches(pv, claim):
                self._bind(claim, pv)
            else:
                self.events.record(claim, "Warning", "FailedBinding",
                                   f"volume \"{spec['volumeName']}\" not available for this claim")
            return
        wait = sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer"
        selected = (meta.get("annotations") or {}).get(SELECTED_NODE)
        node = next((n for n in self.nodes.items() if n["metadata"]["name"] == selected), None) if selected else None
        if wait and node is None:
            self.events.record(claim, "Normal", "WaitForFirstConsumer",
                               "waiting for first consumer to be created before binding")
            return
        pv = best_volume(self.volumes.items(), claim, node)
        if pv is not None:
            self._bind(claim, pv)
            return
        if sc is None or sc.get("provisioner") not in provisioner.PROVISIONERS:
            self.events.record(claim, "Normal", "FailedBinding",
                               "no persistent volumes available for this claim and no storage class is set"
                               if sc is None else f"waiting for a volume to be created by "
                                                  f"\"{sc.get('provisioner')}\" or manually")
            return
        if node is None:
            local = [pv for pv in self.volumes.items() if pv["spec"].get("nodeAffinity")]
            ready = sorted((n for n in self.nodes.items() if node_ready(n)), key=lambda n: (   # spread volumes
                sum(1 for pv in local if volume_fits_node(pv, n)), n["metadata"]["name"]))
            if not ready:
                self.events.record(claim, "Warning", "ProvisioningFailed", "no Ready node to provision on")
                self.enqueue_after(key_of(claim), 2.0)
                return
            node = ready[0]
        self._provision(claim, sc, node["metadata"]["name"])

    def _provision(self, claim: dict, sc: dict, node: str) -> None:
        meta = claim["metadata"]
        pv_name = f"pvc-{meta['uid']}"
        self.events.record(claim, "Normal", "Provisioning",
                           f'External provisioner is provisioning volume for claim "{meta["namespace"]}/'
                           f'{meta["name"]}"')
        existing = self.client.get("PersistentVolume", None, pv_name)
        if existing is None:
            try:
                made = provisioner.provision(sc["provisioner"], pv_name, claim, node, claim_request(claim))
            except (provisioner.ProvisionError, OSError) as exc:
                self.events.record(claim, "Warning", "ProvisioningFailed",
                                   f'failed to provision volume with StorageClass "{sc["metadata"]["name"]}": {exc}')
                self.enqueue_after(key_of(claim), 5.0)
                return
            storage = claim["spec"]["resources"]["requests"]["storage"]
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": pv_name, "annotations": {PROVISIONED_BY: sc["provisioner"]},
                               "finalizers": [PV_PROTECTION]},
                  "spec": {"capacity": {"storage": storage}, "accessModes": list(claim["spec"]["accessModes"]),
                           "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy", "Delete"),
                           "storageClassName": sc["metadata"]["name"],
                           "volumeMode": claim["spec"].get("volumeMode", "Filesystem"),
                           "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                        "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                           "nodeAffinity": provisioner.node_affinity(node), **made.source}}
            try:
                existing = self.client.create(pv)
            except Exception as exc:
                provisioner.delete(pv)
                self.events.record(claim, "Warning", "ProvisioningFailed", f"creating PersistentVolume: {exc}")
                self.enqueue_after(key_of(claim), 2.0)
                return
            self.events.record(claim, "Normal", "ProvisioningSucceeded",
                               f"Successfully provisioned volume {pv_name}")
        self._bind(claim, existing)

    def _bind(self, claim: dict, pv: dict) -> None:
        """Volume first (claimRef, Bound), then the claim (volumeName, Bound, capacity), as upstream."""
        meta = claim["metadata"]
        ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
               "name": meta["name"], "uid": meta["uid"]}

        def bind_volume(live: dict) -> bool | None:
            old = live["spec"].get("claimRef")
            if old and old.get("uid") not in (None, meta["uid"]):
                return False
            if not old:
                live["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
            live["spec"]["claimRef"] = {**(old or {}), **ref}
            live.setdefault("status", {})["phase"] = "Bound"
            if PV_PROTECTION not in (live["metadata"].get("finalizers") or []):
                live["metadata"].setdefault("finalizers", []).append(PV_PROTECTION)
            return None
        bound = self.client.mutate("PersistentVolume", None, pv["metadata"]["name"], bind_volume)
        if bound is None or (bound["spec"].get("claimRef") or {}).get("uid") != meta["uid"]:
            self.enqueue_after(key_of(claim), 0.5)
            return

        def bind_claim(live: dict) -> bool | None:
            if live["metadata"]["uid"] != meta["uid"]:
                return False
            ann = live["metadata"].setdefault("annotations", {})
            ann[BIND_COMPLETED] = "yes"
            if not live["spec"].get("volumeName"):
                ann[BOUND_BY_CONTROLLER] = "yes"
            if pv["metadata"].get("annotations", {}).get(PROVISIONED_BY):
                ann[PROVISIONER_ANN] = pv["metadata"]["annotations"][PROVISIONED_BY]
            live["spec"]["volumeName"] = pv["metadata"]["name"]
            live["status"] = {"phase": "Bound", "accessModes": list(bound["spec"].get("accessModes") or []),
                              "capacity": dict(bound["spec"].get("capacity") or {})}
            return None
        self._mutate_claim(claim, bind_claim)

    def _release_protection(self, claim: dict) -> None:
        """pvc-protection: a claim being deleted goes once no pod that may still run uses it."""
        meta = claim["metadata"]
        users = [p["metadata"]["name"] for p in self.pods.items() if p["metadata"]["namespace"] == meta["namespace"]
                 and meta["name"] in claim_names(p) and not _pod_done(p)]
        if users:
            return          # the pod informer wakes us when they go
        if PVC_PROTECTION in (meta.get("finalizers") or []):
            def drop(live: dict) -> bool | None:
                if live["metadata"]["uid"] != meta["uid"]:
                    return False
                live["metadata"]["finalizers"] = [f for f in live["metadata"].get("finalizers") or []
                                                  if f != PVC_PROTECTION]
                return None
            claim = self._mutate_claim(claim, drop) or claim
        if not claim["metadata"].get("finalizers"):
            self.client.delete("PersistentVolumeClaim", meta["namespace"], meta["name"])

    def _mutate_claim(self, claim: dict, fn) -> dict | None:
        return self.client.mutate("PersistentVolumeClaim", claim["metadata"]["namespace"],
                                  claim["metadata"]["name"], fn)

    # ---- volumes ---------------------------------------------------------------------------------------------------
    def sync_volume(self, name: str) -> None:
        pv = self.client.get("PersistentVolume", None, name)
        if pv is None:
            return
        ref = pv["spec"].get("claimRef")
        claim = self.client.get("PersistentVolumeClaim", ref.get("namespace"), ref["name"]) \
            if ref and ref.get("name") else None
        claim_alive = claim is not None and (not ref.get("uid") or claim["metadata"]["uid"] == ref["uid"])
        phase = (pv.get("status") or {}).get("phase")
        if pv["metadata"].get("deletionTimestamp"):
            if not (claim_alive and phase == "Bound"):
                self._drop_finalizer(pv)
            return
        if PV_PROTECTION not in (pv["metadata"].get("finalizers") or []):
            pv = self.client.mutate("PersistentVolume", None, name, lambda v: v["metadata"].setdefault(
                "finalizers", []).append(PV_PROTECTION)) or pv
        if not ref:
            if phase != "Available":
                self._set_phase(pv, "Available")
            return
        if claim_alive:
            if phase not in ("Bound",) and ref.get("uid") and (claim.get("spec") or {}).get("volumeName") == name:
                self._set_phase(pv, "Bound")
            elif phase not in ("Bound", "Available") and not ref.get("uid"):
                self._set_phase(pv, "Available")
            return
        if not ref.get("uid"):           # pre-bound to a claim that does not exist yet
            if phase != "Available":
                self._set_phase(pv, "Available")
            return
        if phase != "Released" and phase != "Failed":
            pv = self._set_phase(pv, "Released") or pv
            self.events.record(pv, "Normal", "VolumeReleased", f"claim {ref.get('namespace')}/{ref['name']} was "
                                                               "deleted")
        if pv["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            return                        # Retain: the data stays until an administrator deletes the volume
        if (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) in provisioner.PROVISIONERS:
            try:
                provisioner.delete(pv)
            except (provisioner.ProvisionError, OSError) as exc:
                self._set_phase(pv, "Failed", str(exc))
                self.events.record(pv, "Warning", "VolumeFailedDelete", str(exc))
                return
            self.client.delete("PersistentVolume", None, name)
            self._drop_finalizer(pv)
        else:
            message = f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'
            self._set_phase(pv, "Failed", message)
            self.events.record(pv, "Warning", "VolumeFailedDelete", message)

    def _set_phase(self, pv: dict, phase: str, message: str = "") -> dict | None:
        def mutate(live: dict) -> None:
            live["status"] = {"phase": phase, **({"message": message} if message else {})}
        return self.client.mutate("PersistentVolume", None, pv["metadata"]["name"], mutate)

    def _drop_finalizer(self, pv: dict) -> None:
        def drop(live: dict) -> bool | None:
            if live["metadata"]["uid"] != pv["metadata"]["uid"]:
                return False
            live["metadata"]["finalizers"] = [f for f in live["metadata"].get("finalizers") or []
                                              if f != PV_PROTECTION]
            return None
        live = self.client.mutate("PersistentVolume", None, pv["metadata"]["name"], drop)
        if live is not None and live["metadata"].get("deletionTimestamp") and not live["metadata"].get("finalizers"):
            self.client.delete("PersistentVolume", None, pv["metadata"]["name"])


def _pod_done(pod: dict) -> bool:
    """A pod that no longer uses its volumes: finished (Succeeded/Failed)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
