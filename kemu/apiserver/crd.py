"""Serving CustomResourceDefinitions: the API server's CRD controller (upstream's naming and establishing
controllers and the CRD finalizer), and what the other API-server modules need of a custom kind: its OpenAPI
schema, its autoscaling/v1 Scale, and the conversion of its objects between served versions (strategy None).

The controller watches CRDs (an Informer); for each it checks the names, registers the custom Kind with
kemu.api.kinds.register (so discovery, path resolution, admission, tables and OpenAPI serve it), and reports
`status.acceptedNames`, `storedVersions` and the conditions NamesAccepted and Established. A deleted CRD's kind is
unregistered and its objects deleted. Registry changes run on the server's event loop, where requests read it.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Callable

from kemu.api.crds import CustomResource, from_crd, get_path, set_path
from kemu.api.kinds import KINDS, Kind, register, unregister
from kemu.api.timeutil import now_rfc3339
from kemu.client import Client
from kemu.client.informer import Informer
from kemu.store import Store

log = logging.getLogger(__name__)
CRD = "CustomResourceDefinition"
NAME_FIELDS = (("plural", "PluralConflict"), ("singular", "SingularConflict"), ("kind", "KindConflict"),
               ("listKind", "ListKindConflict"))


def custom_kind(custom: CustomResource) -> Kind:
    """The Kind a CRD defines (its apiVersion: the storage version)."""
    return Kind(custom.kind, f"{custom.group}/{custom.storage.name}", custom.plural, custom.short_names,
                custom.namespaced, custom)


def accepted_names(crd: dict) -> dict:
    names = crd["spec"]["names"]
    return {k: names[k] for k in ("plural", "singular", "kind", "listKind", "shortNames", "categories") if k in names}


class CRDController:
    """Keeps the served custom kinds in step with the CRDs in the store."""

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.client = Client(store)
        self.loop = loop
        self.informer = Informer(self.client, CRD, self._changed)
        self.kinds: dict[str, str] = {}           # CRD name -> the kind name it registered
        self.lock = threading.Lock()
        self.stopped = False

    def start(self, timeout: float = 10.0) -> None:
        """Start watching; returns once the CRDs in the store are served."""
        self.informer.start()
        self.informer.synced.wait(timeout)

    def stop(self) -> None:
        """Stop watching and serving: the custom kinds are unregistered (events still in flight are ignored)."""
        self.informer.stop()
        with self.lock:
            self.stopped = True
            for kind in list(self.kinds.values()):
                unregister(kind)
            self.kinds.clear()

    def _on_loop(self, fn: Callable[[], None]) -> None:
        """Run a registry change where requests read the registry (the event loop), and wait for it."""
        if self.loop is None or not self.loop.is_running():
            fn()
            return

        async def run() -> None:
            fn()
        asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def _changed(self, key: str, old: dict | None, new: dict | None) -> None:
        with self.lock:
            if self.stopped:
                return
            if new is None:
                if old is not None:
                    self._remove(old)
            else:
                self._serve(new)

    # ---- serving -----------------------------------------------------------------------------------------------
    def _conflict(self, crd: dict) -> tuple[str, str] | None:
        """(reason, message) when a name is taken: within the group as upstream; a kind name by any kind, since
        kemu knows kinds by name."""
        names, group, me = crd["spec"]["names"], crd["spec"]["group"], crd["metadata"]["name"]
        kind = KINDS.get(names["kind"])
        if kind is not None and (kind.custom is None or kind.custom.crd_name != me):
            return "KindConflict", f'"{names["kind"]}" is already in use by {kind.plural}.{kind.group or "core"}'
        for other in KINDS.values():
            custom = other.custom
            if custom is None or custom.crd_name == me or custom.group != group:
                continue
            taken = {custom.plural, custom.singular, custom.kind, custom.list_kind, *custom.short_names}
            for field, reason in NAME_FIELDS:
                if names.get(field) in taken:
                    return reason, f'"{names[field]}" is already in use'
            for short in names.get("shortNames") or []:
                if short in taken:
                    return "ShortNamesConflict", f'"{short}" is already in use'
        return None

    def _serve(self, crd: dict) -> None:
        name = crd["metadata"]["name"]
        try:
            custom = from_crd(crd)
        except (KeyError, TypeError, StopIteration) as exc:    # stored before validation knew better
            log.warning("CRD %s cannot be served: %s", name, exc)
            return
        conflict = self._conflict(crd)
        previous = self.kinds.get(name)

        def apply() -> None:
            if previous and (conflict or previous != custom.kind):
                unregister(previous)
                self.kinds.pop(name, None)
            if conflict is None:
                register(custom_kind(custom))
                self.kinds[name] = custom.kind
        self._on_loop(apply)
        self._report(crd, custom, conflict)

    def _report(self, crd: dict, custom: CustomResource, conflict: tuple[str, str] | None) -> None:
        """Write status.acceptedNames, storedVersions and the NamesAccepted/Established conditions if they
        changed."""
        now = now_rfc3339()
        if conflict:
            wanted = [("NamesAccepted", "False", *conflict),
                      ("Established", "False", "NotAccepted", "not all names are accepted")]
        else:
            wanted = [("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                      ("Established", "True", "InitialNamesAccepted", "the initial names have been accepted")]

        def update(live: dict) -> bool | None:
            if live["metadata"].get("uid") != crd["metadata"].get("uid"):
                return False
            status = live.setdefault("status", {})
            old = {c.get("type"): c for c in status.get("conditions") or []}
            conditions = []
            for ctype, value, reason, message in wanted:
                prev = old.get(ctype) or {}
                since = prev.get("lastTransitionTime") if prev.get("status") == value else None
                conditions.append({"type": ctype, "status": value, "lastTransitionTime": since or now,
                                   "reason": reason, "message": message})
            status["conditions"] = conditions
            status["acceptedNames"] = accepted_names(live) if not conflict else status.get("acceptedNames") or \
                {"plural": "", "kind": ""}
            stored = status.get("storedVersions") or []
            if custom.storage.name not in stored:
                status["storedVersions"] = stored + [custom.storage.name]
            return None
        try:
            self.client.mutate(CRD, None, crd["metadata"]["name"], update)
        except Exception:       # the next event retries
            log.exception("status of CRD %s", crd["metadata"]["name"])

    def _remove(self, crd: dict) -> None:
        """A deleted CRD: its kind is no longer served and its objects are deleted (upstream's CRD finalizer)."""
        name = crd["metadata"]["name"]
        kind_name = self.kinds.get(name)
        kind = KINDS.get(kind_name) if kind_name else None
        if kind is None or kind.custom is None:
            return

        def apply() -> None:
            unregister(kind_name)
            self.kinds.pop(name, None)
        self._on_loop(apply)
        items, _ = self.client.list(kind)
        for obj in items:
            self.client.delete(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        log.info("CRD %s deleted: %d %s removed", name, len(items), kind.plural)


# ---- what other API-server modules need of a custom kind -------------------------------------------------------
def convert(obj: dict, api_version: str) -> dict:
    """`obj` at another served version: conversion strategy None rewrites apiVersion only."""
    if obj.get("apiVersion") == api_version or "apiVersion" not in obj:
        return obj
    return {**obj, "apiVersion": api_version}


def convert_answer(answer: object, api_version: str) -> object:
    """An object or a list of objects (as the API answers them) at `api_version`."""
    if not isinstance(answer, dict) or answer.get("kind") in ("Status", "Table", "Scale"):
        return answer
    out = convert(answer, api_version)
    if isinstance(out.get("items"), list):
        out["items"] = [convert(o, api_version) if isinstance(o, dict) else o for o in out["items"]]
    return out


def custom_scale(obj: dict, custom: CustomResource) -> tuple[int, int, str]:
    """(spec replicas, status replicas, selector) of a custom object, from its scale subresource's paths."""
    scale = custom.version(obj.get("apiVersion")).scale or {}
    spec = get_path(obj, scale.get("specReplicasPath", ".spec.replicas"))
    status = get_path(obj, scale.get("statusReplicasPath", ".status.replicas"))
    selector = get_path(obj, scale["labelSelectorPath"]) if scale.get("labelSelectorPath") else ""
    return (spec if isinstance(spec, int) else 0, status if isinstance(status, int) else 0,
            selector if isinstance(selector, str) else "")


def with_replicas(obj: dict, custom: CustomResource, replicas: int) -> dict:
    """A copy of the custom object with `replicas` at its specReplicasPath."""
    scale = custom.version(obj.get("apiVersion")).scale or {}
    return set_path(obj, scale.get("specReplicasPath", ".spec.replicas"), replicas)


def openapi_schema(kind: Kind, version: str, object_meta: dict) -> dict:
    """The OpenAPI v3 schema of a custom kind at `version` (the CRD's structural schema with apiVersion, kind and
    metadata as upstream adds them); `object_meta` is the reference to ObjectMeta in the same document."""
    custom = kind.custom
    schema = copy.deepcopy(custom.version(f"{custom.group}/{version}").schema or
                           {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": "APIVersion defines the versioned schema of this "
                           "representation of an object."}
    props["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource this "
                     "object represents."}
    props["metadata"] = {"allOf": [object_meta], "default": {}, "description": "Standard object's metadata."}
    schema["x-kubernetes-group-version-kind"] = [{"group": custom.group, "kind": custom.kind, "version": version}]
    return schema
