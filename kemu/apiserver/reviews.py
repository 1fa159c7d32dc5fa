"""The create-only, never-stored resources of authentication.k8s.io and authorization.k8s.io: access reviews
(`kubectl auth can-i`), rules reviews (`kubectl auth can-i --list`), TokenReview, SelfSubjectReview (`kubectl auth
whoami`), and the `serviceaccounts/token` subresource (TokenRequest, `kubectl create token`)."""
from __future__ import annotations

from aiohttp import web

from kemu.api.kinds import KINDS, Kind
from kemu.apiserver.auth import AUTH, Auth
from kemu.apiserver.errors import APIError, bad_request, not_found
from kemu.apiserver.rbac import Attributes, User
from kemu.client.tokens import Signer, TokenError, TokenRequestError, request_token

AUTHZ, AUTHN = "authorization.k8s.io/v1", "authentication.k8s.io/v1"
REVIEW_KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("SelfSubjectAccessReview", AUTHZ, "selfsubjectaccessreviews", namespaced=False),
    Kind("SubjectAccessReview", AUTHZ, "subjectaccessreviews", namespaced=False),
    Kind("LocalSubjectAccessReview", AUTHZ, "localsubjectaccessreviews"),
    Kind("SelfSubjectRulesReview", AUTHZ, "selfsubjectrulesreviews", namespaced=False),
    Kind("TokenReview", AUTHN, "tokenreviews", namespaced=False),
    Kind("SelfSubjectReview", AUTHN, "selfsubjectreviews", namespaced=False),
]}
SIGNER = web.AppKey("signer", Signer)      # app[SIGNER]: issues TokenRequests (absent: the server has no key)


def user_info(user: User) -> dict:
    out: dict = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def _attributes(user: User, spec: dict, namespace: str | None = None) -> Attributes:
    res = spec.get("resourceAttributes")
    if isinstance(res, dict):
        return Attributes(user, res.get("verb", ""), True, res.get("group", ""), res.get("version", ""),
                          res.get("resource", ""), res.get("subresource", ""),
                          namespace if namespace is not None else res.get("namespace", ""), res.get("name", ""))
    non = spec.get("nonResourceAttributes")
    if isinstance(non, dict):
        return Attributes(user, non.get("verb", ""), False, path=non.get("path", ""))
    raise APIError(422, "spec.resourceAttributes: Required value: exactly one of nonResourceAttributes or "
                        "resourceAttributes must be specified", "Invalid")


def _access_status(auth: Auth, attrs: Attributes) -> dict:
    allowed, reason = auth.allowed(attrs)
    status: dict = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


def review(auth: Auth, kind: Kind, obj: dict, user: User, namespace: str | None) -> dict:
    """The answer to one review object (`obj` with its spec) asked by `user`."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    name = kind.name
    if name == "SelfSubjectAccessReview":
        status = _access_status(auth, _attributes(user, spec))
    elif name in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        if not spec.get("user") and not spec.get("groups"):
            raise APIError(422, f'{name}.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": at '
                                'least one of user or group must be specified', "Invalid")
        subject = User(spec.get("user", ""), tuple(spec.get("groups") or ()), spec.get("uid", ""),
                       spec.get("extra") or {})
        if namespace is not None and (spec.get("resourceAttributes") or {}).get("namespace") not in \
                (None, "", namespace):
            raise bad_request("spec.resourceAttributes.namespace must match metadata.namespace")
        status = _access_status(auth, _attributes(subject, spec, namespace))
    elif name == "SelfSubjectRulesReview":
        resource, urls, incomplete = auth.rules(user, spec.get("namespace", ""))
        status = {"resourceRules": resource, "nonResourceRules": urls, "incomplete": incomplete}
    elif name == "TokenReview":
        token = spec.get("token", "")
        try:
            who = auth.token_user(token)
            status = {"authenticated": True, "user": user_info(who), "audiences": list(auth.audiences)}
        except TokenError as exc:
            status = {"authenticated": False, "error": f"[invalid bearer token, {exc}]"}
    else:                                           # SelfSubjectReview
        status = {"userInfo": user_info(user)}
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    meta = {**meta, "creationTimestamp": None}
    if namespace:
        meta["namespace"] = namespace
    return {"kind": name, "apiVersion": kind.api_version, "metadata": meta, "spec": spec, "status": status}


def token_request(request: web.Request, namespace: str, name: str, obj: dict) -> dict:
    """POST .../serviceaccounts/NAME/token: a TokenRequest answered with a signed token (201)."""
    signer = request.app.get(SIGNER)
    if signer is None:
        raise APIError(404, "the server could not find the requested resource (no service-account signing key)",
                       "NotFound")
    if obj.get("kind") not in (None, "TokenRequest"):
        raise bad_request(f"the kind in the data ({obj.get('kind')}) does not match the expected kind "
                          f"(TokenRequest)")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    auth = request.app[AUTH]
    try:
        status = request_token(auth.client, signer, namespace, name, spec, auth.audiences)
    except TokenRequestError as exc:
        if exc.code == 404 and str(exc).startswith("serviceaccounts"):
            raise not_found(KINDS["ServiceAccount"], name) from None
        raise APIError(exc.code, str(exc)) from None
    spec = {"audiences": spec.get("audiences") or list(auth.audiences),
            "expirationSeconds": spec.get("expirationSeconds") or 3600,
            **({"boundObjectRef": spec["boundObjectRef"]} if spec.get("boundObjectRef") else {})}
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return {"kind": "TokenRequest", "apiVersion": AUTHN,
            "metadata": {**meta, "name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": spec, "status": status}
