"""Authentication and authorization with the real kubectl (v1.32) against a lab: protobuf bodies from kubectl's
generators, `auth can-i`, impersonation (`--as`, `--as-group`), `create token`, an RBAC matrix over the default
roles, and a pod that talks to https://kubernetes.default.svc with its projected service-account token and CA.

kubectl comes from `python -m kemu.testing.k8sbins .venv/bin`; the tests skip without it.
"""
from __future__ import annotations

import base64
import json

import pytest

pytestmark = [pytest.mark.root]
VIEWER = "system:serviceaccount:default:viewer"


def jwt_claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_generators_send_protobuf_and_are_stored(kemu_lab, kubectl):
    assert kubectl("create", "namespace", "team").stdout.strip() == "namespace/team created"
    assert kubectl("create", "configmap", "cfg", "-n", "team", "--from-literal=a=1").stdout.strip() == \
        "configmap/cfg created"
    assert kubectl("create", "secret", "generic", "pw", "--from-literal=p=s3cret").stdout.strip() == \
        "secret/pw created"
    assert kubectl("create", "service", "clusterip", "api", "--tcp=443:8443").stdout.strip() == "service/api created"
    dry = kubectl("create", "deployment", "dry", "--image=kemu/agnhost", "--dry-run=server")
    assert dry.stdout.strip() == "deployment.apps/dry created (server dry run)"
    assert kubectl("create", "deployment", "web", "--image=kemu/agnhost", "--", "/agnhost", "pause") \
        .stdout.strip() == "deployment.apps/web created"
    assert kemu_lab.get("ConfigMap", "cfg", "team")["data"] == {"a": "1"}
    assert base64.b64decode(kemu_lab.get("Secret", "pw")["data"]["p"]) == b"s3cret"
    assert kemu_lab.get("Service", "api")["spec"]["ports"][0]["targetPort"] == 8443
    assert kemu_lab.get("Deployment", "dry") is None
    web = kemu_lab.get("Deployment", "web")
    assert web["metadata"]["creationTimestamp"] and web["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "kemu/agnhost"
    # the serviceaccounts controller gives the new namespace its default account
    kemu_lab.wait("default ServiceAccount in team", lambda: kemu_lab.get("ServiceAccount", "default", "team"))
    assert kubectl("get", "sa", "-n", "team", "-o", "name").stdout.split() == ["serviceaccount/default"]


def test_can_i_impersonation_and_tokens(kemu_lab, kubectl):
    assert kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    kubectl("create", "serviceaccount", "viewer")
    kubectl("create", "rolebinding", "viewer-view", "--clusterrole=view", "--serviceaccount=default:viewer")
    assert kubectl("auth", "can-i", "list", "pods", f"--as={VIEWER}").stdout.strip() == "yes"
    no = kubectl("auth", "can-i", "delete", "pods", f"--as={VIEWER}", check=False)
    assert no.returncode == 1 and no.stdout.strip() == "no"
    denied = kubectl("delete", "pod", "web", f"--as={VIEWER}", check=False)
    assert denied.stderr.strip() == f'Error from server (Forbidden): pods "web" is forbidden: User "{VIEWER}" ' \
                                    'cannot delete resource "pods" in API group "" in the namespace "default"'
    listing = kubectl("auth", "can-i", "--list", f"--as={VIEWER}").stdout
    assert any(line.split()[:1] == ["pods"] and "[get list watch]" in line for line in listing.splitlines())
    whoami = kubectl("auth", "whoami", f"--as={VIEWER}", "-o", "json").stdout
    assert json.loads(whoami)["status"]["userInfo"]["username"] == VIEWER
    token = kubectl("create", "token", "viewer", "--duration=20m").stdout.strip()
    claims = jwt_claims(token)
    assert claims["sub"] == VIEWER and claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["exp"] - claims["iat"] == 1200
    assert kubectl(f"--token={token}", "get", "pods", "-o", "name").returncode == 0
    forbidden = kubectl(f"--token={token}", "delete", "secret", "x", check=False)
    assert f'User "{VIEWER}" cannot delete resource "secrets"' in forbidden.stderr
    garbage = kubectl("--token=garbage", "get", "pods", check=False)
    assert garbage.returncode == 1 and "Unauthorized" in garbage.stderr
    kubectl("delete", "serviceaccount", "viewer")
    gone = kubectl(f"--token={token}", "get", "pods", check=False)
    assert "Unauthorized" in gone.stderr, "a token of a deleted ServiceAccount no longer authenticates"


def test_rbac_matrix_over_the_default_roles(kemu_lab, kubectl):
    kubectl("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice")
    kubectl("create", "rolebinding", "devs-edit", "--clusterrole=edit", "--group=devs")
    kubectl("create", "clusterrolebinding", "carol-admin", "--clusterrole=cluster-admin", "--user=carol")
    assert kubectl("--as=alice", "get", "pods").returncode == 0
    refused = kubectl("--as=alice", "create", "configmap", "x", check=False)
    assert 'User "alice" cannot create resource "configmaps"' in refused.stderr
    assert kubectl("--as=alice", "get", "pods", "-n", "kube-system", check=False).returncode == 1, "own namespace"
    assert kubectl("--as=bob", "--as-group=devs", "create", "deployment", "ed", "--image=kemu/agnhost", "--",
                   "/agnhost", "pause").stdout.strip() == "deployment.apps/ed created"
    role = kubectl("--as=bob", "--as-group=devs", "create", "role", "r", "--verb=get", "--resource=pods",
                   check=False)
    assert 'User "bob" cannot create resource "roles" in API group "rbac.authorization.k8s.io"' in role.stderr
    assert kubectl("--as=bob", "get", "pods", check=False).returncode == 1, "bob alone is not in devs"
    assert kubectl("--as=carol", "create", "role", "r", "--verb=get", "--resource=pods").stdout.strip() == \
        "role.rbac.authorization.k8s.io/r created"
    assert kubectl("--as=carol", "delete", "deployment", "ed").returncode == 0
    # impersonating needs the impersonate verb: alice may not become carol
    climb = kubectl("--token=x", "get", "pods", check=False)
    assert "Unauthorized" in climb.stderr
    kubectl("create", "clusterrole", "impersonator", "--verb=impersonate", "--resource=users",
            "--resource-name=carol")
    kubectl("create", "clusterrolebinding", "alice-imp", "--clusterrole=impersonator", "--user=alice")
    assert kubectl("auth", "can-i", "impersonate", "users/carol", "--as=alice").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "impersonate", "users/dave", "--as=alice", check=False).stdout.strip() == "no"
    assert [r["metadata"]["name"] for r in json.loads(kubectl("get", "clusterroles", "-o", "json").stdout)["items"]
            if r["metadata"]["name"] in ("admin", "edit", "view")] == ["admin", "edit", "view"]


def test_a_pod_uses_its_token_against_the_in_cluster_api(kemu_lab, kubectl):
    kubectl("create", "serviceaccount", "reader")
    kubectl("create", "rolebinding", "reader-view", "--clusterrole=view", "--serviceaccount=default:reader")
    kemu_lab.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
                    "spec": {"serviceAccountName": "reader",
                             "containers": [{"name": "c", "image": "kemu/agnhost", "args": ["pause"]}]}})
    kemu_lab.wait_pod("client", "Running")
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = kemu_lab.exec("client", ["cat", f"{sa_dir}/token"]).strip()
    claims = jwt_claims(token)
    pod = kemu_lab.get("Pod", "client")
    assert claims["sub"] == "system:serviceaccount:default:reader"
    assert claims["kubernetes.io"]["pod"] == {"name": "client", "uid": pod["metadata"]["uid"]}
    assert kemu_lab.exec("client", ["cat", f"{sa_dir}/namespace"]) == "default"
    env = kemu_lab.exec("client", ["env"])
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env and "KUBERNETES_SERVICE_PORT=443" in env

    def curl(method: str, path: str, token_expr: str = f"$(cat {sa_dir}/token)") -> tuple[str, str]:
        out = kemu_lab.exec("client", ["sh", "-c", f'curl -s -m 10 -X {method} -w "\\n%{{http_code}}" '
                                                   f'--cacert {sa_dir}/ca.crt -H "Authorization: Bearer {token_expr}" '
                                                   f'https://kubernetes.default.svc{path}'], check=False)
        body, _, code = out.rpartition("\n")
        return code, body
    code, body = curl("GET", "/api/v1/namespaces/default/pods")
    assert code == "200" and "client" in [p["metadata"]["name"] for p in json.loads(body)["items"]]
    code, body = curl("DELETE", "/api/v1/namespaces/default/pods/client")
    assert code == "403" and json.loads(body)["message"] == (
        'pods "client" is forbidden: User "system:serviceaccount:default:reader" cannot delete resource "pods" in '
        'API group "" in the namespace "default"')
    code, body = curl("GET", "/api/v1/namespaces/default/pods", token_expr="garbage")
    assert code == "401" and json.loads(body)["reason"] == "Unauthorized"
    assert kemu_lab.get("Pod", "client")["metadata"].get("deletionTimestamp") is None
