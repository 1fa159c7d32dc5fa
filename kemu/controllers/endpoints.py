"""Endpoints and EndpointSlice controllers: ready pods matching a Service's selector become its endpoints;
a selectorless Service's hand-written Endpoints are mirrored into an EndpointSlice (as upstream mirrors them)."""
from __future__ import annotations

import hashlib
import logging

from kemu.api.selectors import selector_matches
from kemu.client import Client, Conflict
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.controllers.queue import WorkQueue

log = logging.getLogger(__name__)
MANAGED_BY = "endpointslice-controller.k8s.io"
MIRRORED_BY = "endpointslicemirroring-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"


def pod_ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions")
               or [])


def resolve_port(pod: dict, target, protocol: str) -> int | None:
    """A Service targetPort (number or container port name) for this pod."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for port in c.get("ports") or []:
            if port.get("name") == target and port.get("protocol", "TCP") == protocol:
                return port["containerPort"]
    return None


def desired_slices(svc: dict, pods: list[dict]) -> list[dict]:
    """The EndpointSlices for a selector Service: one per distinct resolved port set."""
    spec = svc["spec"]
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    groups: dict[tuple, list[dict]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        ports = []
        for sp in spec.get("ports") or []:
            number = resolve_port(pod, sp.get("targetPort", sp["port"]), sp.get("protocol", "TCP"))
            if number is not None:
                ports.append((sp.get("name", ""), number, sp.get("protocol", "TCP")))
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        ready = pod_ready(pod) and not terminating
        groups.setdefault(tuple(ports), []).append({
            "addresses": [status["podIP"]],
            "conditions": {"ready": ready or (spec.get("publishNotReadyAddresses", False) and not terminating),
                           "serving": pod_ready(pod), "terminating": terminating},
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                          "uid": pod["metadata"]["uid"]}})
    if not groups:
        groups[()] = []
    slices = []
    for ports, endpoints in groups.items():
        digest = hashlib.sha1(repr(ports).encode()).hexdigest()[:5]
        slices.append(_slice(svc, f"{name}-{digest}", MANAGED_BY, endpoints,
                             [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]))
    return slices


def _slice(svc: dict, name: str, manager: str, endpoints: list[dict], ports: list[dict]) -> dict:
    meta = svc["metadata"]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {SERVICE_NAME: meta["name"], "endpointslice.kubernetes.io/managed-by": manager},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": meta["name"],
                                              "uid": meta.get("uid"), "controller": True,
                                              "blockOwnerDeletion": True}]},
            "endpoints": endpoints, "ports": ports}


def endpoints_from_slices(svc: dict, slices: list[dict]) -> dict:
    """The legacy v1 Endpoints view of the slices (what `kubectl get endpoints` shows)."""
    subsets = []
    for es in slices:
        ready = [_address(e) for e in es["endpoints"] if e["conditions"].get("ready")]
        not_ready = [_address(e) for e in es["endpoints"] if not e["conditions"].get("ready")]
        if ready or not_ready:
            subset: dict = {"ports": es["ports"]}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
    meta = svc["metadata"]
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                         "labels": {"endpoints.kubernetes.io/managed-by": "endpoint-controller"}},
            "subsets": subsets}


def _address(e: dict) -> dict:
    return {"ip": e["addresses"][0], **({"nodeName": e["nodeName"]} if e.get("nodeName") else {}),
            **({"targetRef": e["targetRef"]} if e.get("targetRef") else {})}


def mirrored_slice(svc: dict, endpoints: dict) -> dict:
    out = []
    ports: list[dict] = []
    for subset in endpoints.get("subsets") or []:
        ports = [{"name": p.get("name", ""), "port": p["port"], "protocol": p.get("protocol", "TCP")}
                 for p in subset.get("ports") or []]
        for ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
            for a in subset.get(field) or []:
                out.append({"addresses": [a["ip"]], "conditions": {"ready": ready, "serving": ready,
                                                                    "terminating": False},
                            **({"nodeName": a["nodeName"]} if a.get("nodeName") else {})})
    return _slice(svc, f"{svc['metadata']['name']}-mirror", MIRRORED_BY, out, ports)


class EndpointsController:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.events = EventRecorder(client, "endpoint-controller")
        self.queue = WorkQueue("endpoints", self.sync, self._sync_failed)
        self.services = Informer(client, "Service", self._on_service)
        self.pods = Informer(client, "Pod", self._on_pod)
        self.endpoints = Informer(client, "Endpoints", self._on_endpoints)
        self.slices = Informer(client, "EndpointSlice")

    def _sync_failed(self, key: str, exc: Exception) -> None:
        svc = self.services.cache.get(f"/registry/services/{key}")
        if svc is not None:
            self.events.record(svc, "Warning", "FailedToUpdateEndpoint", f"Failed to update endpoint {key}: {exc}")

    def start(self) -> None:
        for inf in (self.services, self.pods, self.endpoints, self.slices):
            inf.start()
        for inf in (self.services, self.pods, self.endpoints, self.slices):
            inf.synced.wait(10)
        self.queue.start()
        for svc in self.services.items():
            self.queue.add(f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")

    def _on_service(self, key: str, old: dict | None, new: dict | None) -> None:
        obj = new or old
        self.queue.add(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    def _on_pod(self, key: str, old: dict | None, new: dict | None) -> None:
        for pod in (old, new):
            if pod is None:
                continue
            for svc in self.services.items():
                try:
                    matches = svc["metadata"]["namespace"] == pod["metadata"]["namespace"] and selector_matches(
                        svc["spec"].get("selector"), pod["metadata"].get("labels"))
                except Exception:     # a Service it cannot read: its own sync reports it; the others go on
                    matches = True
                if matches:
                    self.queue.add(f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")

    def _on_endpoints(self, key: str, old: dict | None, new: dict | None) -> None:
        obj = new or old
        self.queue.add(f"{obj['metadata']['namespace']}/{obj['metadata']['name']}")

    def sync(self, key: str) -> None:
        ns, name = key.split("/", 1)
        svc = self.services.cache.get(f"/registry/services/{ns}/{name}")
        current = [s for s in self.slices.items() if s["metadata"]["namespace"] == ns
                   and (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == name]
        if svc is None or svc["spec"].get("type") == "ExternalName":
            for s in current:
                self.client.delete("EndpointSlice", ns, s["metadata"]["name"])
            ep = self.endpoints.cache.get(f"/registry/endpoints/{ns}/{name}")
            if ep is not None and (ep["metadata"].get("labels") or {}).get("endpoints.kubernetes.io/managed-by"):
                self.client.delete("Endpoints", ns, name)
            return
        if svc["spec"].get("selector"):
            pods = [p for p in self.pods.items() if p["metadata"]["namespace"] == ns
                    and selector_matches(svc["spec"]["selector"], p["metadata"].get("labels"))]
            wanted = desired_slices(svc, pods)
            self._put(endpoints_from_slices(svc, wanted))
        else:
            ep = self.endpoints.cache.get(f"/registry/endpoints/{ns}/{name}")
            wanted = [mirrored_slice(svc, ep)] if ep else []
        names = {s["metadata"]["name"] for s in wanted}
        for s in current:
            if s["metadata"]["name"] not in names:
                self.client.delete("EndpointSlice", ns, s["metadata"]["name"])
        for s in wanted:
            self._put(s)

    def _put(self, obj: dict) -> None:
        """Write obj if it differs from the stored one (compare on the fields we own)."""
        kind, meta = obj["kind"], obj["metadata"]
        live = self.client.get(kind, meta["namespace"], meta["name"])
        owned = {k: v for k, v in obj.items() if k != "metadata"}
        if live is not None and {k: live.get(k) for k in owned} == owned and \
                live["metadata"].get("labels") == meta.get("labels"):
            return
        try:
            if live is None:
                self.client.create(obj)
            else:
                live.update(owned)
                live["metadata"]["labels"] = meta.get("labels")
                live["metadata"]["ownerReferences"] = meta.get("ownerReferences")
                self.client.update(live)
        except Conflict:
            self.queue.add(f"{meta['namespace']}/{meta['labels'].get(SERVICE_NAME, meta['name'])}")
