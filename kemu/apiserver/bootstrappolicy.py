"""The default RBAC policy a lab starts with (the kube-apiserver's bootstrappolicy plus kubeadm's bindings):
`cluster-admin`, the aggregated user-facing roles `admin`, `edit`, `view` (filled from `system:aggregate-to-*`),
`system:discovery`, `system:basic-user`, `system:public-info-viewer`, and identities for kemu's own components.

kemu's daemons (controller-manager, node agents, proxies) use the store directly; their roles and bindings exist so
an HTTP client holding such an identity (e.g. `kubectl --as=system:kube-proxy`) gets what its upstream
counterpart would. There is no Node authorizer: `system:node` is bound to the group `system:nodes`.
"""
from __future__ import annotations

import copy

from kemu.apiserver.rbac import RBAC_GROUP
from kemu.controllers.clusterroleaggregation import aggregate

READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
READ_WRITE = READ + WRITE
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> dict:
    out = {"verbs": list(verbs), "apiGroups": groups, "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def url_rule(verbs: list[str], urls: list[str]) -> dict:
    return {"verbs": list(verbs), "nonResourceURLs": urls}


def _role(name: str, rules: list[dict] | None = None, labels: dict | None = None,
          aggregate_from: str | None = None) -> dict:
    role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
            "metadata": {"name": name, "labels": {**LABELS, **(labels or {})}, "annotations": dict(ANNOTATIONS)},
            "rules": rules or []}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE + aggregate_from: "true"}}]}
    return role


def _binding(name: str, role: str, subjects: list[tuple[str, str]], labelled: bool = True) -> dict:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, **({"labels": dict(LABELS), "annotations": dict(ANNOTATIONS)}
                                          if labelled else {})},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": kind, "apiGroup": RBAC_GROUP, "name": who} for kind, who in subjects]}


def cluster_roles() -> list[dict]:
    events = rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])
    roles = [
        _role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
        _role("system:discovery", [url_rule(["get"], ["/livez", "/readyz", "/healthz", "/version", "/version/",
                                                      "/openapi", "/openapi/*", "/api", "/api/*", "/apis",
                                                      "/apis/*"])]),
        _role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        _role("system:public-info-viewer", [url_rule(["get"], ["/livez", "/readyz", "/healthz", "/version",
                                                               "/version/"])]),
        _role("admin", aggregate_from="admin"),
        _role("edit", labels={AGGREGATE + "admin": "true"}, aggregate_from="edit"),
        _role("view", labels={AGGREGATE + "edit": "true"}, aggregate_from="view"),
        _role("system:aggregate-to-admin", labels={AGGREGATE + "admin": "true"}, rules=[
            rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
            rule(READ_WRITE, [RBAC_GROUP], ["roles", "rolebindings"])]),
        _role("system:aggregate-to-edit", labels={AGGREGATE + "edit": "true"}, rules=[
            rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                              "services/proxy"]),
            rule(["impersonate"], [""], ["serviceaccounts"]),
            rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
            rule(["create"], [""], ["pods/eviction"]),
            rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                               "services", "services/proxy", "persistentvolumeclaims", "configmaps", "secrets",
                               "events"]),
            rule(["create"], [""], ["serviceaccounts/token"]),
            rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                                   "deployments/scale", "deployments/rollback", "replicasets",
                                   "replicasets/scale"]),
            rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
            rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
            rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                         "ingresses", "replicasets", "replicasets/scale",
                                         "replicationcontrollers/scale", "networkpolicies"]),
            rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
            rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
            rule(READ_WRITE, ["coordination.k8s.io"], ["leases"])]),
        _role("system:aggregate-to-view", labels={AGGREGATE + "view": "true"}, rules=[
            rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                              "services", "services/status", "endpoints", "persistentvolumeclaims",
                              "persistentvolumeclaims/status", "configmaps"]),
            rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                              "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                              "pods/log"]),
            rule(READ, [""], ["namespaces"]),
            rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                                  "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                                  "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale"]),
            rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
            rule(READ, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
            rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                        "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                        "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                        "networkpolicies"]),
            rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"])]),
        _role("system:service-account-issuer-discovery", [url_rule(["get"], ["/.well-known/openid-configuration",
                                                                             "/.well-known/openid-configuration/",
                                                                             "/openid/v1/jwks", "/openid/v1/jwks/"])]),
        _role("system:auth-delegator", [rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
                                        rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"])]),
        # kemu's components, as their upstream counterparts
        _role("system:node", [
            rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]),
            rule(READ, [""], ["services", "pods", "nodes"]),
            rule(["create", "update", "patch", "delete"], [""], ["nodes", "pods"]),
            rule(["update", "patch"], [""], ["nodes/status", "pods/status"]),
            rule(["create"], [""], ["pods/eviction", "serviceaccounts/token"]),
            rule(READ, [""], ["secrets", "configmaps"]),
            rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes", "endpoints"]),
            rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]), events]),
        _role("system:node-proxier", [rule(["list", "watch"], [""], ["services", "endpoints"]),
                                      rule(READ, [""], ["nodes"]),
                                      rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]), events]),
        _role("system:kube-scheduler", [
            events, rule(READ, [""], ["nodes", "pods", "namespaces", "services", "persistentvolumeclaims",
                                      "persistentvolumes", "replicationcontrollers"]),
            rule(["create"], [""], ["pods/binding", "bindings"]), rule(["patch", "update"], [""], ["pods/status"]),
            rule(READ, ["apps"], ["replicasets", "statefulsets"]),
            rule(["create", "get", "update"], ["coordination.k8s.io"], ["leases"])]),
        # kemu's controller-manager runs every controller under one identity (upstream: one SA per controller)
        _role("system:kube-controller-manager", [rule(["*"], ["", "apps", "batch", "discovery.k8s.io",
                                                              "coordination.k8s.io", "events.k8s.io"], ["*"]),
                                                 rule(READ, [RBAC_GROUP], ["*"])]),
    ]
    aggregate(roles)
    return roles


def cluster_role_bindings() -> list[dict]:
    return [
        _binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
        _binding("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
        _binding("system:basic-user", "system:basic-user", [("Group", "system:authenticated")]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [("Group", "system:authenticated"), ("Group", "system:unauthenticated")]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 [("Group", "system:serviceaccounts")]),
        _binding("system:node", "system:node", [("Group", "system:nodes")]),
        _binding("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
        _binding("system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 [("User", "system:kube-controller-manager")]),
        # kubeadm: its admin group (the API server's kubelet-client certificate carries it)
        _binding("kubeadm:cluster-admins", "cluster-admin", [("Group", "kubeadm:cluster-admins")], labelled=False),
    ]


def service_account(namespace: str, name: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def bootstrap_objects(namespaces: list[str]) -> list[dict]:
    """Everything a new lab stores besides its namespaces: the RBAC policy and each namespace's `default`
    ServiceAccount (the serviceaccounts controller keeps them afterwards)."""
    return copy.deepcopy(cluster_roles() + cluster_role_bindings()) + [service_account(ns) for ns in namespaces]
