"""Kubernetes QoS on the node agent's side: QoS class, cgroup values from pod resources, oom_score_adj.

The runtime gets the results as CRI values (nodeagent/kuberuntime.py); it never sees pod resources. Mirrors
upstream: pkg/apis/core/v1/helper/qos (ComputePodQOS), pkg/kubelet/qos/policy.go (GetContainerOOMScoreAdjust),
component-helpers resource.PodRequests/PodLimits and k8s.io/apimachinery resource.Quantity (Value/MilliValue round
up). Pure functions.
"""
from __future__ import annotations

from kemu.api.quantity import bytes_of, cpu_millis
from runtime.cgroups.resources import Resources, cpu_quota, cpu_shares, cpu_weight

__all__ = [
    "qos_class", "container_resources",
    "pod_resources", "oom_score_adj", "cpu_shares", "cpu_weight", "cpu_quota",
    "GUARANTEED", "BURSTABLE", "BEST_EFFORT",
]

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000

# ---- pod helpers ----
def _spec(pod: dict) -> dict:
    return pod.get("spec") or {}


def _is_sidecar(c: dict) -> bool:
    return c.get("restartPolicy") == "Always"


def _res(container: dict, kind: str, name: str) -> int | None:
    """Effective request/limit in millicores (cpu) or bytes (memory); requests default to
    limits as API defaulting does. Zero counts as absent (as ComputePodQOS does)."""
    r = container.get("resources") or {}
    q = (r.get(kind) or {}).get(name)
    if q is None and kind == "requests":
        q = (r.get("limits") or {}).get(name)
    if q is None:
        return None
    v = cpu_millis(q) if name == "cpu" else bytes_of(q)
    return v if v > 0 else None


def qos_class(pod: dict) -> str:
    """Upstream ComputePodQOS over app and init containers."""
    spec = _spec(pod)
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, int] = {}
    limits: dict[str, int] = {}
    guaranteed = True
    for c in containers:
        for name in ("cpu", "memory"):
            req = _res(c, "requests", name)
            if req is not None:
                requests[name] = requests.get(name, 0) + req
            lim = _res(c, "limits", name)
            if lim is not None:
                limits[name] = limits.get(name, 0) + lim
            else:
                guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE


def container_resources(container: dict) -> Resources:
    """Container cgroup values (pids_limit is node policy: left None)."""
    return Resources(
        cpu_request_millis=_res(container, "requests", "cpu"),
        cpu_limit_millis=_res(container, "limits", "cpu"),
        memory_request_bytes=_res(container, "requests", "memory"),
        memory_limit_bytes=_res(container, "limits", "memory"),
    )


def _pod_total(pod: dict, kind: str, name: str) -> int | None:
    """resource.PodRequests/PodLimits: max(sum(app + sidecars), max over init steps) + overhead.
    Limits count only if every container declares one (kubelet ResourceConfigForPod)."""
    spec = _spec(pod)
    app = list(spec.get("containers") or [])
    init = list(spec.get("initContainers") or [])
    values = [_res(c, kind, name) for c in app + init]
    if kind == "limits" and (not values or any(v is None for v in values)):
        return None
    if all(v is None for v in values):
        return None
    total = sum(_res(c, kind, name) or 0 for c in app)
    sidecars = 0
    init_peak = 0
    for c in init:
        v = _res(c, kind, name) or 0
        if _is_sidecar(c):
            sidecars += v
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, v + sidecars)
    result = max(total + sidecars, init_peak)
    overhead = (spec.get("overhead") or {}).get(name)
    if overhead is not None:
        result += cpu_millis(overhead) if name == "cpu" else bytes_of(overhead)
    return result


def pod_resources(pod: dict) -> Resources:
    """Pod cgroup values: summed requests (shares), and limits only when all containers have them."""
    return Resources(
        cpu_request_millis=_pod_total(pod, "requests", "cpu"),
        cpu_limit_millis=_pod_total(pod, "limits", "cpu"),
        memory_request_bytes=_pod_total(pod, "requests", "memory"),
        memory_limit_bytes=_pod_total(pod, "limits", "memory"),
    )


CAP_SYS_RESOURCE = 24


def oom_score_floor(status_path: str = "/proc/self/status", adj_path: str = "/proc/self/oom_score_adj") -> int:
    """The lowest oom_score_adj this host lets the agent's containers set: any (-1000) with CAP_SYS_RESOURCE,
    else the agent's own value (the kernel lets an unprivileged process lower it no further)."""
    with open(status_path) as f:
        caps = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    if caps & (1 << CAP_SYS_RESOURCE):
        return -1000
    with open(adj_path) as f:
        return int(f.read())


def oom_score_adj(pod: dict, container: dict, memory_capacity_bytes: int) -> int:
    """Upstream GetContainerOOMScoreAdjust (node-critical priority not modelled)."""
    qos = qos_class(pod)
    if qos == GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    if memory_capacity_bytes <= 0:
        raise ValueError("memory capacity must be positive")
    req = _res(container, "requests", "memory") or 0
    adj = 1000 - (1000 * req) // memory_capacity_bytes
    if _is_sidecar(container):
        app = _spec(pod).get("containers") or []
        if app:
            min_req = min(_res(c, "requests", "memory") or 0 for c in app)
            adj = min(adj, 1000 - (1000 * min_req) // memory_capacity_bytes)
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == BEST_EFFORT_OOM_SCORE_ADJ:
        return adj - 1
    return adj
