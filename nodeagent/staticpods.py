"""Static pods: manifests in the node's `staticPodPath`, run by the agent without the store, and shown to the
cluster as mirror pods (kubelet's file source + mirror client).

A static pod is named `<name>-<nodeName>`; its uid is the hash of its manifest and node, so an edited file is a
new pod. Its mirror is a Pod object of the same name with the annotation `kubernetes.io/config.mirror: <hash>`:
deleting the mirror only makes the agent create it again; removing the file stops the pod and removes the mirror.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from typing import Callable

from kemu.api.defaults import apply_defaults
from kemu.api.manifests import documents
from kemu.api.meta import ManifestError
from kemu.api.validation import validate
from kemu.client import Client

log = logging.getLogger(__name__)
MIRROR = "kubernetes.io/config.mirror"
HASH = "kubernetes.io/config.hash"
SOURCE = "kubernetes.io/config.source"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class StaticPodError(ValueError):
    """A manifest in the static pod directory cannot be run; the message says which file and why."""


def parse_manifest(path: str, text: str, node_name: str) -> dict:
    """One static pod from a manifest file: defaults, validation, node-qualified name, hash uid."""
    try:
        docs = documents(text, path)      # refuses alias bombs and oversized documents, as `kemu apply` does
    except ManifestError as exc:
        raise StaticPodError(str(exc)) from None
    doc = docs[0] if len(docs) == 1 else None
    if not isinstance(doc, dict) or doc.get("kind") != "Pod":
        raise StaticPodError(f"{path}: a static pod manifest must be one object of kind Pod")
    pod = apply_defaults(copy.deepcopy(doc))
    meta = pod["metadata"]
    meta.setdefault("namespace", "default")
    problems = validate(pod)
    if problems:
        raise StaticPodError(f"{path}: {problems[0][0]}: {problems[0][1]}")
    meta["name"] = f"{meta['name']}-{node_name}"
    pod["spec"]["nodeName"] = node_name
    digest = hashlib.md5(json.dumps([doc, node_name, "file"], sort_keys=True).encode()).hexdigest()
    meta["uid"] = digest
    meta["annotations"] = dict(meta.get("annotations") or {}, **{HASH: digest, SOURCE: "file"})
    pod.pop("status", None)
    pod["status"] = {"phase": "Pending"}
    return pod


def load_dir(path: str, node_name: str) -> tuple[dict[str, dict], list[str]]:
    """Every static pod in `path` by uid, and one error line per manifest that could not be used."""
    pods: dict[str, dict] = {}
    errors: list[str] = []
    try:
        names = sorted(os.listdir(path))
    except FileNotFoundError:
        return pods, errors
    for name in names:
        full = os.path.join(path, name)
        if name.startswith(".") or not name.endswith(MANIFEST_SUFFIXES) or not os.path.isfile(full):
            continue
        try:
            with open(full) as f:
                pod = parse_manifest(full, f.read(), node_name)
        except (OSError, StaticPodError) as exc:
            errors.append(str(exc))
            continue
        pods[pod["metadata"]["uid"]] = pod
    return pods, errors


def mirror_pod(pod: dict, node_uid: str | None) -> dict:
    """The API object that shows a static pod to the cluster."""
    meta = pod["metadata"]
    mirror = {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                           "labels": dict(meta.get("labels") or {}),
                           "annotations": dict(meta.get("annotations") or {}, **{MIRROR: meta["uid"]})},
              "spec": copy.deepcopy(pod["spec"]), "status": {"phase": "Pending"}}
    if node_uid:
        mirror["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": pod["spec"]["nodeName"],
                                                  "uid": node_uid, "controller": True}]
    return mirror


def is_mirror(pod: dict | None) -> bool:
    return pod is not None and MIRROR in (pod["metadata"].get("annotations") or {})


class StaticPods:
    """Keeps the agent's static pod workers and their mirror pods in step with the manifest directory.

    It starts and stops pods through `start_pod` / `stop_pod` (the agent's workers), reads and writes mirrors with
    `client`, and `cached_pods` gives the pods the agent's informer holds (None until its first full list)."""

    def __init__(self, path: str, node_name: str, client: Client, start_pod: Callable[[dict], None],
                 stop_pod: Callable[[dict], None], cached_pods: Callable[[], list[dict] | None]) -> None:
        self.path = path
        self.node_name = node_name
        self.client = client
        self.start_pod = start_pod
        self.stop_pod = stop_pod
        self.cached_pods = cached_pods
        self.pods: dict[str, dict] = {}      # uid (hash) -> pod
        self._reported: set[str] = set()

    def sync(self) -> None:
        fresh, errors = load_dir(self.path, self.node_name) if self.path else ({}, [])
        for error in errors:
            if error not in self._reported:
                log.warning("static pod: %s", error)
        self._reported = set(errors)
        for uid in [u for u in self.pods if u not in fresh]:
            pod = self.pods.pop(uid)
            log.info("static pod %s removed from %s", pod["metadata"]["name"], self.path)
            self.stop_pod(pod)
            self._delete_mirror(pod)
        for uid, pod in fresh.items():
            if uid not in self.pods:
                self.pods[uid] = pod
                self.start_pod(pod)
            self._ensure_mirror(pod)
        self._delete_orphan_mirrors()

    def _delete_orphan_mirrors(self) -> None:
        """Mirrors on this node whose manifest is gone (e.g. removed while the agent was down)."""
        cached = self.cached_pods()
        if cached is None:
            return
        for live in cached:
            meta = live["metadata"]
            if is_mirror(live) and live["spec"].get("nodeName") == self.node_name \
                    and meta["annotations"][MIRROR] not in self.pods:
                log.info("deleting orphaned mirror pod %s/%s", meta["namespace"], meta["name"])
                self.client.delete("Pod", meta["namespace"], meta["name"])

    def _ensure_mirror(self, pod: dict) -> None:
        meta = pod["metadata"]
        live = self.client.get("Pod", meta["namespace"], meta["name"])
        if live is not None:
            if (live["metadata"].get("annotations") or {}).get(MIRROR) == meta["uid"] \
                    and not live["metadata"].get("deletionTimestamp"):
                return
            self.client.delete("Pod", meta["namespace"], meta["name"])   # stale, or deleted by a user
        node = self.client.get("Node", None, self.node_name)
        try:
            self.client.create(mirror_pod(pod, node["metadata"].get("uid") if node else None))
        except Exception as exc:   # e.g. created concurrently; the next sync looks again
            log.warning("creating mirror pod %s: %s", meta["name"], exc)

    def _delete_mirror(self, pod: dict) -> None:
        meta = pod["metadata"]
        live = self.client.get("Pod", meta["namespace"], meta["name"])
        if live is not None and (live["metadata"].get("annotations") or {}).get(MIRROR) == meta["uid"]:
            self.client.delete("Pod", meta["namespace"], meta["name"])
