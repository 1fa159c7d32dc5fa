"""What the server serves, derived from kemu.api.kinds: discovery documents (`/api`, `/apis`, APIResourceLists),
`/version`, and the resolution of a request path to (kind, namespace, name, subresource)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from kemu.api.crds import version_priority
from kemu.api.kinds import KINDS, Kind, revision
from kemu.api.version import KUBERNETES_VERSION, MAJOR, MINOR
from kemu.apiserver.errors import APIError
from kemu.apiserver.reviews import REVIEW_KINDS
from kemu.client.resourcemetrics import METRICS_KINDS

HPA_V1 = Kind("HorizontalPodAutoscaler", "autoscaling/v1", "horizontalpodautoscalers", ("hpa",))  # also v2

GIT_VERSION = KUBERNETES_VERSION
VERSION = {"major": MAJOR, "minor": MINOR, "gitVersion": GIT_VERSION, "gitCommit": "kemu", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
           "platform": "linux/amd64"}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CATEGORY_ALL = {"Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"}
WITH_STATUS = {"Namespace", "Node", "Pod", "Service", "Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob",
               "CustomResourceDefinition"}
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


def served() -> dict[tuple[str, str], dict[str, Kind]]:
    """(group, version) -> plural -> Kind; a custom kind at each of its served versions."""
    return _served(revision())


@lru_cache(maxsize=4)
def _served(_revision: int) -> dict[tuple[str, str], dict[str, Kind]]:
    out: dict[tuple[str, str], dict[str, Kind]] = {}
    for kind in [*KINDS.values(), *REVIEW_KINDS.values(), *METRICS_KINDS.values(), HPA_V1]:
        versions = [(kind.group, v.name) for v in kind.custom.served_versions()] if kind.custom else \
            [group_version(kind)]
        for gv in versions:
            out.setdefault(gv, {})[kind.plural] = kind
    return out


def has_subresource(kind: Kind, version: str, sub: str) -> bool:
    """Whether `<plural>/<sub>` is served: a custom kind's status and scale as its CRD version enables them."""
    if kind.custom is None:
        return sub == "status" or sub == "scale" and kind.name in WITH_SCALE
    v = kind.custom.version(version)
    return sub == "status" and v.status or sub == "scale" and v.scale is not None


def _resource(kind: Kind) -> dict:
    out = {"name": kind.plural, "singularName": kind.custom.singular if kind.custom else kind.name.lower(),
           "namespaced": kind.namespaced, "kind": kind.name,
           "verbs": ["create"] if kind.name in REVIEW_KINDS else ["get", "list"] if kind.name in METRICS_KINDS
           else VERBS}
    if kind.short_names:
        out["shortNames"] = list(kind.short_names)
    if kind.name in CATEGORY_ALL:
        out["categories"] = ["all"]
    if kind.custom and kind.custom.categories:
        out["categories"] = list(kind.custom.categories)
    return out


def _subresources(kind: Kind, version: str = "") -> list[dict]:
    base = {"singularName": "", "namespaced": kind.namespaced}
    out = []
    if kind.custom:
        for sub, extra in (("status", {"kind": kind.name}),
                           ("scale", {"group": "autoscaling", "version": "v1", "kind": "Scale"})):
            if has_subresource(kind, version, sub):
                out.append({**base, "name": f"{kind.plural}/{sub}", **extra, "verbs": ["get", "patch", "update"]})
        return out
    if kind.name in WITH_STATUS:
        out.append({**base, "name": f"{kind.plural}/status", "kind": kind.name, "verbs": ["get", "patch", "update"]})
    if kind.name in WITH_SCALE:
        out.append({**base, "name": f"{kind.plural}/scale", "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]})
    if kind.name == "ServiceAccount":
        out.append({**base, "name": "serviceaccounts/token", "group": "authentication.k8s.io", "version": "v1",
                    "kind": "TokenRequest", "verbs": ["create"]})
    if kind.name == "Pod":
        out += [{**base, "name": f"pods/{sub}", "kind": sub_kind, "verbs": verbs, **where}
                for sub, (sub_kind, verbs, where) in POD_SUBRESOURCES.items()]
    return out


def resource_list(group: str, version: str) -> bytes | None:
    return _resource_list(group, version, revision())


@lru_cache(maxsize=256)
def _resource_list(group: str, version: str, _revision: int) -> bytes | None:
    kinds = served().get((group, version))
    if kinds is None:
        return None
    resources = []
    for kind in sorted(kinds.values(), key=lambda k: k.plural):
        resources.append(_resource(kind))
        resources += _subresources(kind, version)
    gv = f"{group}/{version}" if group else version
    return json.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                       "resources": resources}).encode()


@lru_cache(maxsize=None)
def api_versions() -> bytes:
    return json.dumps({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}).encode()


def api_groups() -> bytes:
    return _api_groups(revision())


@lru_cache(maxsize=4)
def _api_groups(_revision: int) -> bytes:
    groups = []
    for group in sorted({g for g, _ in served() if g}):
        versions = [{"groupVersion": f"{group}/{v}", "version": v}
                    for v in sorted((v for g, v in served() if g == group), key=version_priority)]
        groups.append({"name": group, "versions": versions, "preferredVersion": versions[0]})
    return json.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}).encode()


@dataclass(frozen=True)
class Target:
    """What a resource request addresses."""
    kind: Kind
    namespace: str | None        # None: every namespace (lists) or a cluster-scoped kind
    name: str = ""
    subresource: str = ""
    api_version: str = ""        # as requested (a custom kind may be served at several versions)


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
    return Target(kind, namespace, name, sub, f"{group}/{version}" if group else version)
