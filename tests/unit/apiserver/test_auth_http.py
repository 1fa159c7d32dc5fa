"""Authentication and authorization over HTTP (in-process server, plain HTTP = admin unless a bearer token is
sent): service-account bearer tokens (401 for a bad one), RBAC's 403 Status, impersonation headers, access and
rules reviews, TokenRequest, the ServiceAccount admission check and protobuf request bodies."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kemu.apiserver import protobuf
from kemu.apiserver.bootstrappolicy import bootstrap_objects
from kemu.apiserver.server import make_app
from kemu.client.tokens import Signer, ensure_key
from kemu.client import Client
from kemu.store import SQLiteStore

JSON = {"Content-Type": "application/json"}
PODS = "/api/v1/namespaces/default/pods"
VIEW_BINDING = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "viewer-view", "namespace": "default"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "ServiceAccount", "name": "viewer"}]}


@pytest.fixture
def env(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"))
    client = Client(store)
    client.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}]
                 + bootstrap_objects(["default"])
                 + [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer"}}, VIEW_BINDING])
    yield store, Signer.load(ensure_key(str(tmp_path / "pki")))
    store.close()


def run(env, scenario) -> None:
    store, signer = env

    async def main() -> None:
        async with TestClient(TestServer(make_app(store, signer))) as http:
            await scenario(http)
    asyncio.run(main())


async def token_for(http, name: str) -> str:
    resp = await http.post(f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
                           data=json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                            "spec": {}}), headers=JSON)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["kind"] == "TokenRequest" and body["status"]["expirationTimestamp"]
    return body["status"]["token"]


def test_bearer_tokens_rbac_and_403(env):
    async def scenario(http):
        token = await token_for(http, "viewer")
        bearer = {"Authorization": f"Bearer {token}"}
        listed = await http.get(PODS, headers=bearer)
        assert listed.status == 200 and (await listed.json())["kind"] == "PodList"
        assert (await http.get("/apis/apps/v1", headers=bearer)).status == 200, "discovery"
        denied = await http.delete(f"{PODS}/web", headers=bearer)
        status = await denied.json()
        assert denied.status == 403 and status["reason"] == "Forbidden"
        assert status["message"] == 'pods "web" is forbidden: User "system:serviceaccount:default:viewer" cannot ' \
                                    'delete resource "pods" in API group "" in the namespace "default"'
        assert status["details"] == {"name": "web", "kind": "pods"}
        secrets = await http.get("/api/v1/namespaces/default/secrets", headers=bearer)
        assert secrets.status == 403
        garbage = await http.get(PODS, headers={"Authorization": "Bearer not.a.token"})
        assert garbage.status == 401 and (await garbage.json())["reason"] == "Unauthorized"
        assert (await http.get("/api/v1/namespaces/default/serviceaccounts/nobody/token")).status == 405
        missing = await http.post("/api/v1/namespaces/default/serviceaccounts/nobody/token", data="{}",
                                  headers=JSON)
        assert missing.status == 404 and (await missing.json())["message"] == 'serviceaccounts "nobody" not found'
    run(env, scenario)


def test_impersonation_and_reviews(env):
    async def scenario(http):
        as_viewer = {"Impersonate-User": "system:serviceaccount:default:viewer"}
        assert (await http.get(PODS, headers=as_viewer)).status == 200
        assert (await http.delete(f"{PODS}/x", headers=as_viewer)).status == 403
        token = await token_for(http, "viewer")
        refused = await http.get(PODS, headers={"Authorization": f"Bearer {token}", "Impersonate-User": "bob"})
        assert refused.status == 403 and (await refused.json())["message"] == \
            'users "bob" is forbidden: User "system:serviceaccount:default:viewer" cannot impersonate resource ' \
            '"users" in API group "" at the cluster scope'
        ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": {"namespace": "default", "verb": "delete", "resource": "pods"}}}
        answer = await http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", data=json.dumps(ssar),
                                 headers={**JSON, **as_viewer})
        assert answer.status == 201 and (await answer.json())["status"]["allowed"] is False
        ssar["spec"]["resourceAttributes"]["verb"] = "list"
        answer = await http.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", data=json.dumps(ssar),
                                 headers={**JSON, **as_viewer})
        assert (await answer.json())["status"]["allowed"] is True
        rules = await http.post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", headers={
            **JSON, **as_viewer}, data=json.dumps({"kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}}))
        body = await rules.json()
        assert any("pods" in r["resources"] and "list" in r["verbs"] for r in body["status"]["resourceRules"])
        whoami = await http.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", data="{}",
                                 headers={**JSON, **as_viewer})
        assert (await whoami.json())["status"]["userInfo"]["groups"] == [
            "system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
        review = await http.post("/apis/authentication.k8s.io/v1/tokenreviews", headers=JSON, data=json.dumps(
            {"kind": "TokenReview", "spec": {"token": token}}))
        assert (await review.json())["status"]["user"]["username"] == "system:serviceaccount:default:viewer"
        discovery = await (await http.get("/api/v1")).json()
        token_sub = next(r for r in discovery["resources"] if r["name"] == "serviceaccounts/token")
        assert token_sub["kind"] == "TokenRequest" and token_sub["verbs"] == ["create"]
    run(env, scenario)


def test_pods_need_their_service_account_and_protobuf_bodies_decode(env):
    async def scenario(http):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "kemu/agnhost"}]}}
        refused = await http.post(PODS, data=json.dumps(pod), headers=JSON)
        assert refused.status == 403 and (await refused.json())["message"] == \
            'pods "p" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found'
        del pod["spec"]["serviceAccountName"]
        created = await http.post(PODS, data=json.dumps(pod), headers=JSON)
        assert created.status == 201 and (await created.json())["spec"]["serviceAccountName"] == "default"
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pb", "creationTimestamp": None},
              "data": {"a": "1"}}
        resp = await http.post("/api/v1/namespaces/default/configmaps", data=protobuf.encode(cm),
                               headers={"Content-Type": protobuf.CONTENT_TYPE})
        body = await resp.json()
        assert resp.status == 201 and body["data"] == {"a": "1"} and body["metadata"]["creationTimestamp"]
        odd = await http.post("/api/v1/namespaces/default/configmaps", data=protobuf.MAGIC + b"\x0a\x09\x0a\x02v9"
                              b"\x12\x03Odd", headers={"Content-Type": protobuf.CONTENT_TYPE})
        assert odd.status == 415 and (await odd.json())["reason"] == "UnsupportedMediaType"
    run(env, scenario)
