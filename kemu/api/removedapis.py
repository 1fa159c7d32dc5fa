"""API versions Kubernetes has removed: manifests copied from old docs and books still name them. The API server
answers them as upstream's does (`no matches for kind ... in version ...`), plus the release that removed the
version and what to use instead."""
from __future__ import annotations

PSA = "Pod Security Admission (pod-security.kubernetes.io/* namespace labels)"
# (apiVersion, kind) -> (release that removed it, replacement); kind "*" covers every kind of that version
REMOVED: dict[tuple[str, str], tuple[str, str]] = {
    ("extensions/v1beta1", "Deployment"): ("1.16", "apiVersion: apps/v1 (spec.selector is then required)"),
    ("extensions/v1beta1", "DaemonSet"): ("1.16", "apiVersion: apps/v1 (spec.selector is then required)"),
    ("extensions/v1beta1", "ReplicaSet"): ("1.16", "apiVersion: apps/v1"),
    ("extensions/v1beta1", "NetworkPolicy"): ("1.16", "apiVersion: networking.k8s.io/v1"),
    ("extensions/v1beta1", "PodSecurityPolicy"): ("1.16", PSA),
    ("extensions/v1beta1", "Ingress"): ("1.22", "apiVersion: networking.k8s.io/v1"),
    ("apps/v1beta1", "*"): ("1.16", "apiVersion: apps/v1 (spec.selector is then required)"),
    ("apps/v1beta2", "*"): ("1.16", "apiVersion: apps/v1"),
    ("policy/v1beta1", "PodSecurityPolicy"): ("1.25", PSA),
    ("policy/v1beta1", "PodDisruptionBudget"): ("1.25", "apiVersion: policy/v1"),
    ("batch/v1beta1", "CronJob"): ("1.25", "apiVersion: batch/v1"),
    ("batch/v2alpha1", "CronJob"): ("1.21", "apiVersion: batch/v1"),
    ("networking.k8s.io/v1beta1", "*"): ("1.22", "apiVersion: networking.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1beta1", "*"): ("1.22", "apiVersion: rbac.authorization.k8s.io/v1"),
    ("rbac.authorization.k8s.io/v1alpha1", "*"): ("1.22", "apiVersion: rbac.authorization.k8s.io/v1"),
    ("apiextensions.k8s.io/v1beta1", "*"): ("1.22", "apiVersion: apiextensions.k8s.io/v1"),
    ("discovery.k8s.io/v1beta1", "*"): ("1.25", "apiVersion: discovery.k8s.io/v1"),
    ("autoscaling/v2beta1", "*"): ("1.25", "apiVersion: autoscaling/v2"),
    ("autoscaling/v2beta2", "*"): ("1.26", "apiVersion: autoscaling/v2"),
    ("scheduling.k8s.io/v1beta1", "*"): ("1.22", "apiVersion: scheduling.k8s.io/v1"),
}


def removed_problem(api_version: object, kind: object) -> str | None:
    """upstream's message for a removed apiVersion/kind, with the removing release and the replacement."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    hit = REMOVED.get((api_version, kind)) or REMOVED.get((api_version, "*"))
    if hit is None:
        return None
    release, instead = hit
    return (f'no matches for kind "{kind}" in version "{api_version}": removed in Kubernetes {release}; use '
            f"{instead}")
