"""The kinds kemu serves, with kubectl's plural and short names; custom kinds (from CustomResourceDefinitions)
join and leave at run time through register() and unregister()."""
from __future__ import annotations

from dataclasses import dataclass, field

from kemu.api.crds import CustomResource


@dataclass(frozen=True)
class Kind:
    name: str
    api_version: str          # a custom kind's: its storage version
    plural: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    custom: CustomResource | None = field(default=None, compare=False, repr=False)   # what its CRD defines

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def registry_path(self) -> str:
        """Its objects' place under /registry/: `pods`; a custom kind's `<group>/<plural>`, as upstream."""
        return f"{self.group}/{self.plural}" if self.custom else self.plural


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
    Kind("ReplicationController", "v1", "replicationcontrollers", ("rc",)),
    Kind("DaemonSet", "apps/v1", "daemonsets", ("ds",)),
    Kind("StatefulSet", "apps/v1", "statefulsets", ("sts",)),
    Kind("ControllerRevision", "apps/v1", "controllerrevisions"),
    Kind("PersistentVolume", "v1", "persistentvolumes", ("pv",), namespaced=False),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", ("pvc",)),
    Kind("StorageClass", "storage.k8s.io/v1", "storageclasses", ("sc",), namespaced=False),
    Kind("Job", "batch/v1", "jobs"),
    Kind("CronJob", "batch/v1", "cronjobs", ("cj",)),
    Kind("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", ("crd", "crds"),
         namespaced=False),
    Kind("ServiceAccount", "v1", "serviceaccounts", ("sa",)),
    Kind("Role", "rbac.authorization.k8s.io/v1", "roles"),
    Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", ("netpol",)),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", ("ing",)),
    Kind("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False),
    Kind("GatewayClass", "gateway.networking.k8s.io/v1", "gatewayclasses", ("gc",), namespaced=False),
    Kind("Gateway", "gateway.networking.k8s.io/v1", "gateways", ("gtw",)),
    Kind("HTTPRoute", "gateway.networking.k8s.io/v1", "httproutes"),
    Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", ("hpa",)),
    Kind("LimitRange", "v1", "limitranges", ("limits",)),
    Kind("ResourceQuota", "v1", "resourcequotas", ("quota",)),
    Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", ("pdb",)),
    Kind("PriorityClass", "scheduling.k8s.io/v1", "priorityclasses", ("pc",), namespaced=False),
]}

_ALIASES: dict[str, Kind] = {}
_REVISION = [0]


def _aliases(kind: Kind) -> list[str]:
    names = [kind.name.lower(), kind.plural, *kind.short_names] + ([kind.custom.singular] if kind.custom else [])
    return names + [f"{n}.{kind.group}" for n in names if kind.group]


for _k in KINDS.values():
    for _alias in _aliases(_k):
        _ALIASES[_alias] = _k


def register(kind: Kind) -> None:
    """Serve a custom kind (or its changed definition); built-in kinds and their names keep precedence."""
    if kind.custom is None or (kind.name in KINDS and KINDS[kind.name].custom is None):
        raise ValueError(f"{kind.name}: only custom kinds that do not clash with a built-in kind register")
    unregister(kind.name)
    KINDS[kind.name] = kind
    for alias in _aliases(kind):
        _ALIASES.setdefault(alias, kind)
    _REVISION[0] += 1


def unregister(name: str) -> None:
    """Stop serving the custom kind `name` (no-op if it is not served)."""
    kind = KINDS.get(name)
    if kind is None or kind.custom is None:
        return
    del KINDS[name]
    for alias in [a for a, k in _ALIASES.items() if k is kind]:
        del _ALIASES[alias]
    _REVISION[0] += 1


def revision() -> int:
    """Changes with every register/unregister: what caches of served kinds key on."""
    return _REVISION[0]


def resolve_kind(name: str) -> Kind:
    """Resolve what a user types (`po`, `pods`, `Pod`, `svc`, `endpointslices.discovery.k8s.io`) to a Kind."""
    kind = KINDS.get(name) or _ALIASES.get(name.lower())
    if kind is None:
        raise KeyError(f'the server doesn\'t have a resource type "{name}"')
    return kind


def kind_of(obj: dict) -> Kind:
    return KINDS[obj["kind"]]
