"""Garbage collector: objects whose owners (ownerReferences) are all gone are deleted — background cascading
deletion, as upstream. Deleting a Deployment removes its ReplicaSets, whose pods then go the same way.

`kemu delete --cascade=orphan` is `delete_orphaning(client, owner)`: it marks the owner as being deleted (so its
controller stops adopting and creating), strips the owner's references from its dependents (what upstream's orphan
finalizer does), then deletes the owner; the dependents survive.
"""
from __future__ import annotations

import logging

from kemu.api.kinds import KINDS
from kemu.client import Client
from kemu.controllers.common import SharedInformers, delete_pod
from kemu.controllers.queue import WorkQueue

log = logging.getLogger(__name__)
DEPENDENT_KINDS = ("ReplicaSet", "Pod", "Job", "ControllerRevision", "PersistentVolumeClaim")
OWNER_KINDS = ("Deployment", "ReplicaSet", "ReplicationController", "DaemonSet", "Job", "CronJob", "StatefulSet",
               "Pod")


def delete_orphaning(client: Client, owner: dict) -> int:
    """Delete `owner` but keep its dependents; returns how many were orphaned."""
    from kemu.api.timeutil import now_rfc3339
    meta = owner["metadata"]

    def mark(live: dict) -> bool | None:
        if live["metadata"]["uid"] != meta["uid"]:
            return False
        live["metadata"].setdefault("deletionTimestamp", now_rfc3339())
        return None
    if client.mutate(owner["kind"], meta.get("namespace"), meta["name"], mark) is None:
        return 0
    count = orphan_dependents(client, owner)
    live = client.get(owner["kind"], meta.get("namespace"), meta["name"])
    if live is not None and live["metadata"]["uid"] == meta["uid"]:
        client.delete(owner["kind"], meta.get("namespace"), meta["name"])
    return count


def orphan_dependents(client: Client, owner: dict) -> int:
    """Remove `owner`'s ownerReferences from its dependents; returns how many were orphaned."""
    uid, ns = owner["metadata"]["uid"], owner["metadata"].get("namespace")
    count = 0
    for kind in DEPENDENT_KINDS:
        items, _ = client.list(kind, ns, where=lambda o: any(r.get("uid") == uid for r in
                                                             o["metadata"].get("ownerReferences") or []))
        for obj in items:
            def strip(live: dict) -> None:
                live["metadata"]["ownerReferences"] = [r for r in live["metadata"].get("ownerReferences") or []
                                                       if r.get("uid") != uid]
            if client.mutate(kind, ns, obj["metadata"]["name"], strip) is not None:
                count += 1
    return count


class GarbageCollector:
    def __init__(self, client: Client, informers: SharedInformers) -> None:
        self.client = client
        self.queue = WorkQueue("garbage-collector", self.sync)
        self.dependents = {kind: informers.get(kind) for kind in DEPENDENT_KINDS}
        for kind, inf in self.dependents.items():
            inf.handlers.append(lambda key, old, new, kind=kind: self._on_dependent(kind, new))
        for kind in OWNER_KINDS:
            informers.get(kind).handlers.append(self._on_owner)

    def start(self) -> None:
        self.queue.start()
        for kind, inf in self.dependents.items():
            for obj in inf.items():
                self._on_dependent(kind, obj)

    def _on_dependent(self, kind: str, obj: dict | None) -> None:
        if obj is not None and obj["metadata"].get("ownerReferences"):
            self.queue.add(f"{kind}/{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    def _on_owner(self, key: str, old: dict | None, new: dict | None) -> None:
        if new is not None or old is None:
            return
        uid = old["metadata"]["uid"]
        for kind, inf in self.dependents.items():
            for obj in inf.items():
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                    self._on_dependent(kind, obj)

    def _owner_exists(self, namespace: str, ref: dict) -> bool:
        kind = KINDS.get(ref.get("kind", ""))
        if kind is None:
            return True   # an owner kind kemu does not serve: never collect on its account
        live = self.client.get(kind, namespace, ref.get("name", ""))
        return live is not None and live["metadata"].get("uid") == ref.get("uid")

    def sync(self, key: str) -> None:
        kind, ns, name = key.split("/", 2)
        obj = self.client.get(kind, ns, name)   # live read: a stale cache must never cause a deletion
        refs = (obj or {}).get("metadata", {}).get("ownerReferences") or []
        if not refs:
            return
        dangling = [r for r in refs if not self._owner_exists(ns, r)]
        if not dangling:
            return
        if len(dangling) == len(refs):
            log.info("deleting %s: owner %s/%s is gone", key, dangling[0].get("kind"), dangling[0].get("name"))
            if kind == "Pod":
                delete_pod(self.client, obj)
            else:
                self.client.delete(kind, ns, name)
            return
        gone = {r.get("uid") for r in dangling}

        def strip(live: dict) -> None:
            live["metadata"]["ownerReferences"] = [r for r in live["metadata"].get("ownerReferences") or []
                                                   if r.get("uid") not in gone]
        self.client.mutate(kind, ns, name, strip)
