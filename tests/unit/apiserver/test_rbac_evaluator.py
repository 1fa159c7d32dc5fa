"""The RBAC evaluator as upstream's: rule matching (verbs, groups, resources with subresources and `*/x`,
resourceNames, nonResourceURLs), binding subjects, ClusterRole aggregation, the default policy and 403 wording."""
from __future__ import annotations

import pytest

from kemu.api.validation import validate
from kemu.apiserver.bootstrappolicy import bootstrap_objects, cluster_roles
from kemu.apiserver.rbac import RBAC, Attributes, User, forbidden_message, rule_allows
from kemu.client import Client
from kemu.controllers.clusterroleaggregation import aggregate
from kemu.store import SQLiteStore

ALICE = User("alice", ("devs", "system:authenticated"))
SA = User("system:serviceaccount:web:robot", ("system:serviceaccounts", "system:serviceaccounts:web",
                                                 "system:authenticated"))


def res(verb: str, resource: str, namespace: str = "default", name: str = "", group: str = "",
        sub: str = "", user: User = ALICE) -> Attributes:
    return Attributes(user, verb, True, group, "v1", resource, sub, namespace, name)


@pytest.mark.parametrize("rule,attrs,want", [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("get", "pods"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("list", "pods"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, res("delete", "deployments", group="apps"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("get", "pods", sub="log"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, res("get", "pods", sub="log"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]},
     res("get", "deployments", group="apps", sub="scale"), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, res("get", "pods"), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]},
     res("get", "configmaps", name="a"), True),
    ({"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]},
     res("list", "configmaps"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, Attributes(ALICE, "get", False, path="/apis/apps/v1"),
     True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, Attributes(ALICE, "get", False, path="/healthz/x"),
     False),
])
def test_rule_matching(rule, attrs, want):
    assert rule_allows(attrs, rule) is want


@pytest.fixture
def client(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"))
    c = Client(store)
    c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in ("default", "web")]
            + bootstrap_objects(["default", "web"]))
    yield c
    store.close()


def binding(kind: str, name: str, role_kind: str, role: str, subjects: list[dict], namespace: str = "") -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects}


def test_bindings_of_users_groups_and_service_accounts(client):
    rbac = RBAC(client)
    assert rbac.authorize(res("list", "pods")) == (False, "")
    client.apply([binding("RoleBinding", "v", "ClusterRole", "view", [{"kind": "Group", "name": "devs"}],
                          "default"),
                  binding("RoleBinding", "e", "ClusterRole", "edit", [{"kind": "ServiceAccount", "name": "robot"}],
                          "web")])
    assert rbac.authorize(res("list", "pods"))[0] and rbac.authorize(res("get", "pods", sub="log"))[0]
    assert not rbac.authorize(res("delete", "pods", name="x"))[0], "view cannot delete"
    assert not rbac.authorize(res("list", "pods", namespace="web"))[0], "a RoleBinding is for its namespace only"
    assert not rbac.authorize(res("list", "pods", namespace=""))[0], "nor cluster-wide"
    assert not rbac.authorize(res("list", "secrets"))[0], "view has no secrets"
    assert rbac.authorize(res("create", "deployments", "web", group="apps", user=SA))[0]
    assert not rbac.authorize(res("create", "roles", "web", group="rbac.authorization.k8s.io", user=SA))[0]
    # discovery and self-review for every authenticated user, from the default ClusterRoleBindings
    assert rbac.authorize(Attributes(SA, "get", False, path="/apis/apps/v1"))[0]
    assert rbac.authorize(res("create", "selfsubjectaccessreviews", "", group="authorization.k8s.io", user=SA))[0]
    # a binding to a role that does not exist says so, as upstream's `RBAC: ...` reason
    client.apply([binding("RoleBinding", "gone", "Role", "nope", [{"kind": "User", "name": "alice"}], "default")])
    assert rbac.authorize(res("delete", "pods")) == \
        (False, 'RBAC: role.rbac.authorization.k8s.io "nope" not found')
    resource_rules, _, incomplete = rbac.rules_for(ALICE, "default")
    assert incomplete and {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]} \
        in resource_rules


def test_default_roles_are_aggregated_and_valid():
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    view, edit, admin = (roles[n]["rules"] for n in ("view", "edit", "admin"))
    assert all(r in edit for r in view) and all(r in admin for r in edit), "view ⊂ edit ⊂ admin"
    assert any("roles" in r["resources"] for r in admin) and not any("roles" in r["resources"] for r in edit)
    for obj in bootstrap_objects(["default"]):
        assert validate(obj) == [], obj["metadata"]["name"]
    # a new role labelled aggregate-to-view reaches view, edit and admin
    extra = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "widgets", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
             "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}
    all_roles = list(roles.values()) + [extra]
    assert set(aggregate(all_roles)) == {"view", "edit", "admin"}
    assert extra["rules"][0] in roles["admin"]["rules"]


def test_forbidden_messages_are_upstreams():
    viewer = User("system:serviceaccount:default:viewer")
    assert forbidden_message(res("delete", "pods", name="web", user=viewer)) == \
        'pods "web" is forbidden: User "system:serviceaccount:default:viewer" cannot delete resource "pods" in ' \
        'API group "" in the namespace "default"'
    assert forbidden_message(res("list", "deployments", "", group="apps")) == \
        'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at ' \
        'the cluster scope'
    assert forbidden_message(Attributes(ALICE, "get", False, path="/metrics")) == \
        'forbidden: User "alice" cannot get path "/metrics"'


def test_rbac_validation_words():
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]}]}
    assert validate(role) == [("rules[0].verbs", "Required value: verbs must contain at least one value"),
                              ("rules[1].nonResourceURLs", "Invalid value: ['/x']: namespaced rules cannot apply "
                                                           "to non-resource URLs")]
    crb = binding("ClusterRoleBinding", "b", "Role", "r", [{"kind": "ServiceAccount", "name": "x"},
                                                           {"kind": "Robot", "name": "y"}])
    assert validate(crb) == [("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
                             ("subjects[0].namespace", "Required value"),
                             ("subjects[1].kind", 'Unsupported value: "Robot": supported values: "ServiceAccount", '
                                                  '"User", "Group"')]
