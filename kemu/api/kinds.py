"""The kinds kemu serves, with kubectl's plural and short names."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    api_version: str
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("Namespace", "v1", "namespaces", ("ns",), namespaced=False),
    Kind("Node", "v1", "nodes", ("no",), namespaced=False),
    Kind("Pod", "v1", "pods", ("po",)),
    Kind("Service", "v1", "services", ("svc",)),
    Kind("Endpoints", "v1", "endpoints", ("ep",)),
    Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices"),
    Kind("ConfigMap", "v1", "configmaps", ("cm",)),
    Kind("Secret", "v1", "secrets"),
    Kind("Event", "v1", "events", ("ev",)),
    Kind("Deployment", "apps/v1", "deployments", ("deploy",)),
    Kind("ReplicaSet", "apps/v1", "replicasets", ("rs",)),
    Kind("DaemonSet", "apps/v1", "daemonsets", ("ds",)),
    Kind("Job", "batch/v1", "jobs"),
    Kind("CronJob", "batch/v1", "cronjobs", ("cj",)),
]}

_ALIASES: dict[str, Kind] = {}
for _k in KINDS.values():
    for _alias in (_k.name.lower(), _k.plural, *_k.short_names):
        _ALIASES[_alias] = _k
        if _k.group:
            _ALIASES[f"{_alias}.{_k.group}"] = _k


def resolve_kind(name: str) -> Kind:
    """Resolve what a user types (`po`, `pods`, `Pod`, `svc`, `endpointslices.discovery.k8s.io`) to a Kind."""
    kind = KINDS.get(name) or _ALIASES.get(name.lower())
    if kind is None:
        raise KeyError(f'the server doesn\'t have a resource type "{name}"')
    return kind


def kind_of(obj: dict) -> Kind:
    return KINDS[obj["kind"]]
