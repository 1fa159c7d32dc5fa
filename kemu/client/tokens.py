"""Service-account tokens: bound JWTs signed by the lab's service-account key, as the kube-apiserver's TokenRequest
issues them, and their verification (its service-account token authenticator).

A token is a JWS (ES256) whose claims are upstream's: `iss` https://kubernetes.default.svc.cluster.local, `sub`
system:serviceaccount:NS:NAME, `aud`, `exp`/`iat`/`nbf`, `jti`, and `kubernetes.io` {namespace, serviceaccount
{name, uid}, pod {name, uid} when bound to a pod, node {name, uid} when that pod is bound to a node}. The key pair is
kubeadm's `pki/sa.key` / `pki/sa.pub`. A token is valid while its signature, issuer, audience and expiry check out
and the ServiceAccount (and the bound pod) still exist with the uids the token names.

`request_token` is the TokenRequest itself (the API server's `serviceaccounts/token` handler calls it, and so does
the node agent in-process to project a pod's token: it holds the signing key, as a kubelet would hold a
TokenRequest permission).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from kemu.api.timeutil import parse_time, rfc3339

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600            # TokenRequest's default expirationSeconds
MIN_EXPIRATION = 600                 # "may not specify a duration less than 10 minutes"
KUBELET_EXPIRATION = 3607            # what kubelet asks for a projected token (its "warnafter" marker)
LEEWAY = 60                          # clock skew accepted on nbf/exp (upstream: 1 minute)
KEY_FILE, PUB_FILE = "sa.key", "sa.pub"


class TokenError(ValueError):
    """A token that does not authenticate (the request gets 401)."""


class TokenRequestError(ValueError):
    """A TokenRequest that cannot be honoured: `code` 404 (missing SA/pod), 422 (invalid spec) or 409 (uid)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def ensure_key(directory: str) -> str:
    """Create the service-account signing key (EC P-256) once under `directory` (0600); returns the key's path."""
    path = os.path.join(directory, KEY_FILE)
    if os.path.exists(path):
        return path
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    for name, data in ((KEY_FILE, key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())),
                       (PUB_FILE, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))):
        tmp = os.path.join(directory, name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(directory, name))
    return path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _kid(public: ec.EllipticCurvePublicKey) -> str:
    """Upstream's key id: base64url(sha256(DER public key))."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


@dataclass
class Signer:
    """Signs tokens with the service-account private key."""
    key: ec.EllipticCurvePrivateKey
    issuer: str = ISSUER

    @classmethod
    def load(cls, path: str, issuer: str = ISSUER) -> "Signer":
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path}: the service-account key must be an EC (P-256) key")
        return cls(key, issuer)

    def verifier(self) -> "Verifier":
        return Verifier([self.key.public_key()], self.issuer)

    def sign(self, claims: dict) -> str:
        header = {"alg": "ES256", "kid": _kid(self.key.public_key())}
        signing_input = f"{_b64(json.dumps(header, separators=(',', ':')).encode())}." \
                        f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass
class Verifier:
    """Checks a token's signature (any of `keys`), issuer, audience and time window; returns its claims."""
    keys: list[ec.EllipticCurvePublicKey]
    issuer: str = ISSUER

    @classmethod
    def load(cls, path: str, issuer: str = ISSUER) -> "Verifier":
        """From a PEM public key, or the private key file itself (as --service-account-key-file accepts)."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{path}: the service-account key must be an EC (P-256) key")
        return cls([key], issuer)

    def claims(self, token: str, audiences: list[str], now: float | None = None) -> dict:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("not a JWT")
        try:
            header = json.loads(_unb64(parts[0]))
            claims = json.loads(_unb64(parts[1]))
            sig = _unb64(parts[2])
        except (ValueError, UnicodeDecodeError):
            raise TokenError("malformed JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256" or len(sig) != 64:
            raise TokenError("unsupported JWT algorithm")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        for key in self.keys:
            try:
                key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
                break
            except InvalidSignature:
                continue
        else:
            raise TokenError("invalid signature")
        if not isinstance(claims, dict) or claims.get("iss") != self.issuer:
            raise TokenError("token issued by another issuer")
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else aud or []
        if not set(aud) & set(audiences):
            raise TokenError("token audiences are not accepted")
        now = time.time() if now is None else now
        if not isinstance(claims.get("exp"), (int, float)) or now > claims["exp"] + LEEWAY:
            raise TokenError("token has expired")
        if isinstance(claims.get("nbf"), (int, float)) and now < claims["nbf"] - LEEWAY:
            raise TokenError("token is not valid yet")
        return claims


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def parse_service_account_user(user: str) -> tuple[str, str] | None:
    """`system:serviceaccount:NS:NAME` → (NS, NAME), else None."""
    prefix = "system:serviceaccount:"
    if not user.startswith(prefix):
        return None
    namespace, _, name = user[len(prefix):].partition(":")
    return (namespace, name) if namespace and name and ":" not in name else None


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def request_token(client, signer: Signer, namespace: str, name: str, spec: dict,
                  default_audiences: list[str] | None = None) -> dict:
    """Honour a TokenRequest for ServiceAccount NAMESPACE/NAME (`spec`: audiences, expirationSeconds,
    boundObjectRef); returns the TokenRequest's `status` {token, expirationTimestamp}. `client` reads the
    ServiceAccount and the bound object (kemu.client.Client)."""
    sa = client.get("ServiceAccount", namespace, name)
    if sa is None:
        raise TokenRequestError(404, f'serviceaccounts "{name}" not found')
    expiration = spec.get("expirationSeconds") or DEFAULT_EXPIRATION
    if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
        raise TokenRequestError(422, "spec.expirationSeconds: Invalid value: may not specify a duration less "
                                     "than 10 minutes")
    audiences = spec.get("audiences") or default_audiences or [signer.issuer]
    now = int(time.time())
    private = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}}
    ref = spec.get("boundObjectRef")
    if ref:
        kind = ref.get("kind")
        if kind not in ("Pod", "Secret"):
            raise TokenRequestError(422, f'spec.boundObjectRef.kind: Unsupported value: "{kind}": supported '
                                         'values: "Pod", "Secret"')
        bound = client.get(kind, namespace, ref.get("name") or "")
        if bound is None:
            raise TokenRequestError(404, f'{kind.lower()}s "{ref.get("name")}" not found')
        if ref.get("uid") and ref["uid"] != bound["metadata"]["uid"]:
            raise TokenRequestError(409, f'the UID in the bound object reference ({ref["uid"]}) does not match '
                                         f'the UID in record. The object might have been deleted and then '
                                         f'recreated')
        private[kind.lower()] = {"name": bound["metadata"]["name"], "uid": bound["metadata"]["uid"]}
        if kind == "Pod":
            if (bound["spec"].get("serviceAccountName") or "default") != name:
                raise TokenRequestError(400, f'cannot bind token for serviceaccount "{name}" to pod running with '
                                             f'different serviceaccount name.')
            node = bound["spec"].get("nodeName")
            node_obj = client.get("Node", None, node) if node else None
            if node_obj is not None:
                private["node"] = {"name": node, "uid": node_obj["metadata"]["uid"]}
    if expiration == KUBELET_EXPIRATION:
        private["warnafter"] = now + DEFAULT_EXPIRATION
    claims = {"aud": audiences, "exp": now + expiration, "iat": now, "iss": signer.issuer, "jti": str(uuid.uuid4()),
              "kubernetes.io": private, "nbf": now, "sub": service_account_user(namespace, name)}
    return {"token": signer.sign(claims), "expirationTimestamp": rfc3339(now + expiration)}


def authenticate_token(client, verifier: Verifier, token: str, audiences: list[str]):
    """The identity a service-account token stands for, as (user, uid, groups, extra); TokenError when it does
    not authenticate (bad signature, issuer, audience, expiry, or its ServiceAccount/pod no longer exist)."""
    claims = verifier.claims(token, audiences)
    private = claims.get("kubernetes.io")
    user = parse_service_account_user(str(claims.get("sub", "")))
    if not isinstance(private, dict) or user is None:
        raise TokenError("not a service-account token")
    namespace, name = user
    sa_claim = private.get("serviceaccount") or {}
    if private.get("namespace") != namespace or sa_claim.get("name") != name:
        raise TokenError("token claims do not agree")
    sa = client.get("ServiceAccount", namespace, name)
    if sa is None or sa_claim.get("uid") not in (None, sa["metadata"]["uid"]):
        raise TokenError(f"service account {namespace}/{name} has been deleted")
    extra: dict[str, list[str]] = {}
    for kind in ("pod", "secret"):
        ref = private.get(kind)
        if ref:
            obj = client.get(kind.capitalize(), namespace, ref.get("name", ""))
            deleted = obj and obj["metadata"].get("deletionTimestamp")
            if obj is None or obj["metadata"]["uid"] != ref.get("uid") or \
                    (deleted and (parse_time(deleted) or 0) < time.time() - LEEWAY):
                raise TokenError(f"{kind} {namespace}/{ref.get('name')} the token is bound to no longer exists")
            if kind == "pod":
                extra["authentication.kubernetes.io/pod-name"] = [ref["name"]]
                extra["authentication.kubernetes.io/pod-uid"] = [ref["uid"]]
    if private.get("node"):
        extra["authentication.kubernetes.io/node-name"] = [private["node"].get("name", "")]
        extra["authentication.kubernetes.io/node-uid"] = [private["node"].get("uid", "")]
    if claims.get("jti"):
        extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
    groups = service_account_groups(namespace) + ("system:authenticated",)
    return service_account_user(namespace, name), sa["metadata"]["uid"], groups, extra
