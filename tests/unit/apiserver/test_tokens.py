"""Service-account JWTs: issued by TokenRequest with upstream's claims, verified (signature, issuer, audience,
expiry) and refused once the ServiceAccount or the bound pod is gone."""
from __future__ import annotations

import base64
import json

import pytest

from kemu.client.tokens import (
    Signer,
    TokenError,
    TokenRequestError,
    Verifier,
    authenticate_token,
    ensure_key,
    request_token,
)
from kemu.client import Client
from kemu.store import SQLiteStore

AUD = ["https://kubernetes.default.svc.cluster.local"]


@pytest.fixture
def client(tmp_path):
    store = SQLiteStore(str(tmp_path / "store.db"))
    c = Client(store)
    c.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
             {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
              "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "kemu/agnhost"}]}}])
    yield c
    store.close()


def claims_of(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_issue_and_verify_a_bound_token(client, tmp_path):
    signer = Signer.load(ensure_key(str(tmp_path / "pki")))
    assert ensure_key(str(tmp_path / "pki")) == str(tmp_path / "pki" / "sa.key"), "created once"
    pod = client.get("Pod", "default", "p")
    status = request_token(client, signer, "default", "robot", {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": pod["metadata"]["uid"]}})
    claims = claims_of(status["token"])
    sa_uid = client.get("ServiceAccount", "default", "robot")["metadata"]["uid"]
    assert claims["iss"] == AUD[0] and claims["aud"] == AUD and claims["sub"] == "system:serviceaccount:default:robot"
    assert claims["exp"] - claims["iat"] == 3600 and status["expirationTimestamp"].endswith("Z")
    assert claims["kubernetes.io"] == {"namespace": "default", "serviceaccount": {"name": "robot", "uid": sa_uid},
                                       "pod": {"name": "p", "uid": pod["metadata"]["uid"]}}
    verifier = Verifier.load(str(tmp_path / "pki" / "sa.pub"))
    user, uid, groups, extra = authenticate_token(client, verifier, status["token"], AUD)
    assert (user, uid) == ("system:serviceaccount:default:robot", sa_uid)
    assert groups == ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
    assert extra["authentication.kubernetes.io/pod-name"] == ["p"]
    with pytest.raises(TokenError):
        authenticate_token(client, verifier, status["token"], ["other-audience"])
    with pytest.raises(TokenError):     # another key's signature
        other = Signer.load(ensure_key(str(tmp_path / "other"))).verifier()
        authenticate_token(client, other, status["token"], AUD)
    with pytest.raises(TokenError):
        verifier.claims(status["token"], AUD, now=claims["exp"] + 120)
    tampered = status["token"].split(".")
    tampered[1] = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "system:serviceaccount:default:x"})
                                           .encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        authenticate_token(client, verifier, ".".join(tampered), AUD)
    client.delete("Pod", "default", "p")
    with pytest.raises(TokenError, match="no longer exists"):
        authenticate_token(client, verifier, status["token"], AUD)


def test_token_requests_that_are_refused(client, tmp_path):
    signer = Signer.load(ensure_key(str(tmp_path)))
    with pytest.raises(TokenRequestError) as missing:
        request_token(client, signer, "default", "nobody", {})
    assert missing.value.code == 404 and str(missing.value) == 'serviceaccounts "nobody" not found'
    with pytest.raises(TokenRequestError) as short:
        request_token(client, signer, "default", "robot", {"expirationSeconds": 60})
    assert short.value.code == 422
    with pytest.raises(TokenRequestError) as wrong_uid:
        request_token(client, signer, "default", "robot", {"boundObjectRef": {"kind": "Pod", "name": "p",
                                                                              "uid": "x"}})
    assert wrong_uid.value.code == 409
    token = request_token(client, signer, "default", "robot", {})["token"]
    client.delete("ServiceAccount", "default", "robot")
    with pytest.raises(TokenError):
        authenticate_token(client, signer.verifier(), token, AUD)
