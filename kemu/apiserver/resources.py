"""What the server serves, derived from kemu.api.kinds: discovery documents (`/api`, `/apis`, APIResourceLists),
`/version`, and the resolution of a request path to (kind, namespace, name, subresource)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from kemu.api.kinds import KINDS, Kind
from kemu.apiserver.errors import APIError

GIT_VERSION = "v1.32.0"
VERSION = {"major": "1", "minor": "32", "gitVersion": GIT_VERSION, "gitCommit": "kemu", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
           "platform": "linux/amd64"}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CATEGORY_ALL = {"Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"}
WITH_STATUS = {"Namespace", "Node", "Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"}
WITH_SCALE = {"Deployment", "ReplicaSet"}
# pod subresources served by later slices (streams, eviction, binding): listed so clients see them
POD_SUBRESOURCES: dict[str, tuple[str, list[str], dict]] = {
    "attach": ("PodAttachOptions", ["create", "get"], {}), "binding": ("Binding", ["create"], {}),
    "eviction": ("Eviction", ["create"], {"group": "policy", "version": "v1"}),
    "exec": ("PodExecOptions", ["create", "get"], {}), "log": ("Pod", ["get"], {}),
    "portforward": ("PodPortForwardOptions", ["create", "get"], {})}


def group_version(kind: Kind) -> tuple[str, str]:
    group, _, version = kind.api_version.rpartition("/")
    return group, version


@lru_cache(maxsize=None)
def served() -> dict[tuple[str, str], dict[str, Kind]]:
    """(group, version) -> plural -> Kind."""
    out: dict[tuple[str, str], dict[str, Kind]] = {}
    for kind in KINDS.values():
        out.setdefault(group_version(kind), {})[kind.plural] = kind
    return out


def _resource(kind: Kind) -> dict:
    out = {"name": kind.plural, "singularName": kind.name.lower(), "namespaced": kind.namespaced,
           "kind": kind.name, "verbs": VERBS}
    if kind.short_names:
        out["shortNames"] = list(kind.short_names)
    if kind.name in CATEGORY_ALL:
        out["categories"] = ["all"]
    return out


def _subresources(kind: Kind) -> list[dict]:
    base = {"singularName": "", "namespaced": kind.namespaced}
    out = []
    if kind.name in WITH_STATUS:
        out.append({**base, "name": f"{kind.plural}/status", "kind": kind.name, "verbs": ["get", "patch", "update"]})
    if kind.name in WITH_SCALE:
        out.append({**base, "name": f"{kind.plural}/scale", "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]})
    if kind.name == "Pod":
        out += [{**base, "name": f"pods/{sub}", "kind": sub_kind, "verbs": verbs, **where}
                for sub, (sub_kind, verbs, where) in POD_SUBRESOURCES.items()]
    return out


@lru_cache(maxsize=None)
def resource_list(group: str, version: str) -> bytes | None:
    kinds = served().get((group, version))
    if kinds is None:
        return None
    resources = []
    for kind in sorted(kinds.values(), key=lambda k: k.plural):
        resources.append(_resource(kind))
        resources += _subresources(kind)
    gv = f"{group}/{version}" if group else version
    return json.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                       "resources": resources}).encode()


@lru_cache(maxsize=None)
def api_versions() -> bytes:
    return json.dumps({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}).encode()


@lru_cache(maxsize=None)
def api_groups() -> bytes:
    groups = []
    for group in sorted({g for g, _ in served() if g}):
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for g, v in sorted(served()) if g == group]
        groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
    return json.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}).encode()


@dataclass(frozen=True)
class Target:
    """What a resource request addresses."""
    kind: Kind
    namespace: str | None        # None: every namespace (lists) or a cluster-scoped kind
    name: str = ""
    subresource: str = ""


def resolve(group: str, version: str, tail: str) -> Target:
    """`namespaces/default/pods/web/status` (under /api/v1 or /apis/G/V) -> Target; 404 for what is not served."""
    kinds = served().get((group, version))
    parts = [p for p in tail.split("/") if p]
    if kinds is None or not parts:
        raise APIError(404, "the server could not find the requested resource", "NotFound")
    namespace = None
    if parts[0] == "namespaces" and len(parts) >= 3 and parts[2] in kinds and kinds[parts[2]].namespaced:
        namespace, parts = parts[1], parts[2:]
    if parts[0] not in kinds or len(parts) > 3:
        raise APIError(404, "the server could not find the requested resource", "NotFound")
    kind = kinds[parts[0]]
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if kind.namespaced and name and namespace is None:
        raise APIError(404, "the server could not find the requested resource", "NotFound")
    return Target(kind, namespace, name, sub)
