"""`kemu ingress`: the node's ingress controller (ingress-nginx's role, one per node, like its DaemonSet with
hostNetwork). Informers on Ingresses, IngressClasses, Gateway API kinds, Services, EndpointSlices, Secrets,
Namespaces and Nodes feed one loop: after each burst of changes the route table is rebuilt (ingress/routes.py),
rendered (ingress/nginxconf.py), checked with `nginx -t` and, if it changed, applied with a graceful reload.
Endpoint changes are reloads too (ingress-nginx avoids them with a Lua balancer; nginx without Lua reloads).

One controller (the one on the first Node by name) writes status — Ingress `status.loadBalancer`, Gateway and
HTTPRoute conditions — and events, so that N nodes do not write N times.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from kemu.api.nodeconfig import NodeConfig
from kemu.api.timeutil import now_rfc3339
from kemu.client import AlreadyExists, Conflict, NotFound
from kemu.client.daemon import start_daemon
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from ingress import nginxconf, routes
from ingress.nginx import Nginx

log = logging.getLogger("kemu.ingress")
DEBOUNCE = 0.03                # seconds of quiet before a rebuild (bursts of endpoint changes: one reload)
WATCHED = {"ingresses": "Ingress", "ingress_classes": "IngressClass", "services": "Service",
           "slices": "EndpointSlice", "secrets": "Secret", "gateway_classes": "GatewayClass", "gateways": "Gateway",
           "routes": "HTTPRoute", "namespaces": "Namespace"}
DEFAULT_CLASSES = [
    {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
     "metadata": {"name": routes.INGRESS_CLASS, "annotations": {routes.DEFAULT_CLASS_ANNOTATION: "true"},
                  "labels": {"app.kubernetes.io/name": "ingress-nginx"}},
     "spec": {"controller": routes.INGRESS_CONTROLLER}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "nginx"},
     "spec": {"controllerName": routes.GATEWAY_CONTROLLER}},
]


def paths_for(config: NodeConfig) -> tuple[str, str]:
    """(nginx directory, access log) of a node: <node state>/ingress/ and <lab>/logs/<node>-ingress-access.log."""
    lab_logs = os.path.join(os.path.dirname(os.path.dirname(config.state_dir)), "logs")
    access = os.path.join(lab_logs, f"{config.node_name}-ingress-access.log") if os.path.isdir(lab_logs) \
        else os.path.join(config.state_dir, "ingress", "access.log")
    return os.path.join(config.state_dir, "ingress"), access


def snapshot(informers: dict[str, Informer]) -> routes.Cluster:
    cluster = routes.Cluster()
    for attr, inf in informers.items():
        if attr == "nodes":
            continue
        setattr(cluster, attr, {routes._key(o): o for o in inf.items()})
    return cluster


def _condition(ctype: str, ok: bool, reason: str, message: str, generation: int, old: list[dict]) -> dict:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status and \
        prev.get("lastTransitionTime") else now_rfc3339()
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": since}


def _same(a: list[dict], b: list[dict]) -> bool:
    """Conditions equal but for their transition times."""
    strip = lambda cs: [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in cs or []]   # noqa: E731
    return strip(a) == strip(b)


class Controller:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.changed = threading.Event()
        self.client, self.stop = start_daemon(config, on_stop=self.changed.set)
        directory, access = paths_for(config)
        self.nginx = Nginx(directory, access)
        self.events = EventRecorder(self.client, "ingress-nginx-controller", config.node_name)
        self.reported: set[tuple] = set()
        self.informers = {attr: Informer(self.client, kind, lambda *_: self.changed.set())
                          for attr, kind in WATCHED.items()}
        self.informers["nodes"] = Informer(self.client, "Node", lambda *_: self.changed.set())
        self.last_text = ""

    def ensure_classes(self) -> None:
        for obj in DEFAULT_CLASSES:
            if self.client.get(obj["kind"], None, obj["metadata"]["name"]) is None:
                try:
                    self.client.create(dict(obj))
                except (AlreadyExists, Conflict):
                    pass

    def leader(self) -> bool:
        names = sorted(n["metadata"]["name"] for n in self.informers["nodes"].items())
        return not names or names[0] == self.config.node_name

    def addresses(self) -> list[str]:
        ips = []
        for node in self.informers["nodes"].items():
            for addr in (node.get("status") or {}).get("addresses") or []:
                if addr.get("type") == "InternalIP":
                    ips.append(addr["address"])
        return sorted(set(ips), key=lambda ip: tuple(int(p) for p in ip.split("."))) or [self.config.node_ip]

    def run(self) -> None:
        self.nginx.prepare()
        for inf in self.informers.values():
            inf.start()
        for inf in self.informers.values():
            inf.synced.wait(10)
        try:
            self.ensure_classes()
        except Exception:       # the API may refuse a node's credential: the classes are then the admin's job
            log.exception("could not create the default IngressClass / GatewayClass")
        self.changed.set()
        try:
            while not self.stop.is_set():
                if not self.changed.wait(30):
                    continue
                time.sleep(DEBOUNCE)
                self.changed.clear()
                if self.stop.is_set():
                    break
                try:
                    self.sync()
                except Exception:
                    log.exception("sync failed; retrying")
                    self.stop.wait(1)
                    self.changed.set()
        finally:
            self.nginx.stop()

    def sync(self) -> None:
        start = time.monotonic()
        table = routes.build(snapshot(self.informers))
        text = nginxconf.render(table, self.nginx.paths)
        if text != self.last_text or not self.nginx.running():
            problem = self.nginx.apply(text, table.certificates,
                                       lambda key: nginxconf.cert_file(self.nginx.paths["certs"], key))
            if not problem:
                self.last_text = text
                log.info("configuration applied (%d servers, %d upstreams) in %.0f ms", len(table.servers),
                         len(table.upstreams), (time.monotonic() - start) * 1000)
            elif self.leader():
                for key in table.ingresses:
                    ns, name = key.split("/")
                    ing = self.client.get("Ingress", ns, name)
                    if ing is not None:
                        self._event(ing, "Warning", "RELOAD", f"nginx rejected the configuration: {problem}")
        if self.leader():
            self.write_status(table)

    def _event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        mark = (obj["metadata"].get("uid"), reason, message)
        if mark not in self.reported:
            self.reported.add(mark)
            self.events.record(obj, type_, reason, message)

    # ---- status ---------------------------------------------------------------------------------------------
    def write_status(self, table: routes.RouteTable) -> None:
        ips = self.addresses()
        problems: dict[tuple[str, str, str], list[routes.Problem]] = {}
        for p in table.problems:
            problems.setdefault((p.kind, p.namespace, p.name), []).append(p)
        for key in table.ingresses:
            ns, name = key.split("/")
            mine = problems.get(("Ingress", ns, name), [])
            self._ingress_status(ns, name, ips, mine)
        for key, facts in table.gateways.items():
            ns, name = key.split("/")
            self._gateway_status(ns, name, ips, facts)
        for key, parents in table.routes.items():
            ns, name = key.split("/")
            self._route_status(ns, name, parents)
        for cls in self.informers["gateway_classes"].items():
            if (cls.get("spec") or {}).get("controllerName") == routes.GATEWAY_CONTROLLER:
                self._class_status(cls)

    def _mutate_status(self, kind: str, ns: str | None, name: str, fn) -> None:
        try:
            self.client.mutate(kind, ns, name, fn)
        except (Conflict, NotFound) as exc:
            log.info("status of %s %s/%s not written: %s", kind, ns, name, exc)

    def _ingress_status(self, ns: str, name: str, ips: list[str], mine: list[routes.Problem]) -> None:
        obj = next((i for i in self.informers["ingresses"].items()
                    if i["metadata"]["namespace"] == ns and i["metadata"]["name"] == name), None)
        for p in mine:
            if obj is not None:
                self._event(obj, "Warning", p.reason, p.message)

        def fn(ing: dict) -> bool:
            status = ing.setdefault("status", {})
            before = repr(status)
            status["loadBalancer"] = {"ingress": [{"ip": ip} for ip in ips]}
            gen = ing["metadata"].get("generation", 1)
            old = status.get("conditions") or []
            ok = not mine
            cond = _condition("ResolvedRefs", ok, "ResolvedRefs" if ok else mine[0].reason,
                              "all Services and Secrets resolved" if ok else "; ".join(p.message for p in mine),
                              gen, old)
            if not _same(old, [cond]):
                status["conditions"] = [cond]
            return repr(status) != before
        self._mutate_status("Ingress", ns, name, fn)

    def _gateway_status(self, ns: str, name: str, ips: list[str], facts: dict) -> None:
        def fn(gw: dict) -> bool:
            gen = gw["metadata"].get("generation", 1)
            status = gw.setdefault("status", {})
            before = repr(status)
            old = status.get("conditions") or []
            conds = [_condition("Accepted", True, "Accepted", "Gateway is accepted", gen, old),
                     _condition("Programmed", True, "Programmed", "Gateway is programmed in nginx", gen, old)]
            if not _same(old, conds):
                status["conditions"] = conds
            status["addresses"] = [{"type": "IPAddress", "value": ip} for ip in ips]
            old_listeners = {lst.get("name"): lst for lst in status.get("listeners") or []}
            listeners = []
            for lname, lf in facts["listeners"].items():
                prev = (old_listeners.get(lname) or {}).get("conditions") or []
                lconds = [
                    _condition("Accepted", lf["accepted"], "Accepted" if lf["accepted"] else lf["reason"],
                               "Listener is accepted" if lf["accepted"] else lf["message"], gen, prev),
                    _condition("Programmed", lf["accepted"] and lf["resolved"], "Programmed" if lf["accepted"] and
                               lf["resolved"] else "Invalid", "Listener is programmed" if lf["accepted"] and
                               lf["resolved"] else lf["message"], gen, prev),
                    _condition("ResolvedRefs", lf["resolved"], "ResolvedRefs" if lf["resolved"] else lf["reason"],
                               "references resolved" if lf["resolved"] else lf["message"], gen, prev)]
                listeners.append({"name": lname, "attachedRoutes": lf["attached"],
                                  "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                                  "conditions": lconds if not _same(prev, lconds) else prev})
            status["listeners"] = listeners
            return repr(status) != before
        self._mutate_status("Gateway", ns, name, fn)

    def _route_status(self, ns: str, name: str, parents: list[dict]) -> None:
        def fn(route: dict) -> bool:
            gen = route["metadata"].get("generation", 1)
            status = route.setdefault("status", {})
            before = repr(status)
            others = [p for p in status.get("parents") or [] if p.get("controllerName") != routes.GATEWAY_CONTROLLER]
            old = {repr(p.get("parentRef")): p for p in status.get("parents") or []}
            mine = []
            for p in parents:
                prev = (old.get(repr(p["parentRef"])) or {}).get("conditions") or []
                conds = [_condition("Accepted", p["accepted"], p["reason"], p["message"], gen, prev),
                         _condition("ResolvedRefs", p["resolved"], p["refs_reason"], p["refs_message"], gen, prev)]
                mine.append({"parentRef": p["parentRef"], "controllerName": routes.GATEWAY_CONTROLLER,
                             "conditions": conds if not _same(prev, conds) else prev})
            status["parents"] = others + mine
            return repr(status) != before
        self._mutate_status("HTTPRoute", ns, name, fn)

    def _class_status(self, cls: dict) -> None:
        def fn(obj: dict) -> bool:
            status = obj.setdefault("status", {})
            old = status.get("conditions") or []
            cond = _condition("Accepted", True, "Accepted", "handled by kemu's nginx gateway controller",
                              obj["metadata"].get("generation", 1), old)
            if _same(old, [cond]):
                return False
            status["conditions"] = [cond]
            return True
        self._mutate_status("GatewayClass", None, cls["metadata"]["name"], fn)


def main(config: NodeConfig) -> None:
    Controller(config).run()
