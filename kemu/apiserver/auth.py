"""Authentication (who is asking), impersonation (who they act as) and authorization (may they), as the
kube-apiserver's filters chain them.

- Authentication: `Authorization: Bearer <jwt>` is a service-account token (kemu.client.tokens; a bad one is
  401 whatever else the request carries); otherwise a client certificate chained to the lab CA is user = CN,
  groups = O (the x509 authenticator). Authenticated users are also in `system:authenticated`. Without
  credentials only the health and version endpoints answer (as `system:anonymous`); everything else is 401. Plain
  HTTP (the explicit `--insecure` flag of tests and benchmarks) is trusted as an admin.
- Impersonation: `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`, `Impersonate-Extra-<key>`
  (`kubectl --as/--as-group`), each checked with the `impersonate` verb on users / groups / serviceaccounts /
  uids / userextras, as upstream's WithImpersonation does.
- Authorization: `system:masters` may do everything; everyone else is judged by RBAC (kemu.apiserver.rbac).
  A refusal is upstream's 403 Forbidden Status.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from aiohttp import web

from kemu.apiserver.errors import APIError
from kemu.apiserver.rbac import RBAC, Attributes, User, forbidden_message
from kemu.client.tokens import (
    ISSUER,
    TokenError,
    Verifier,
    authenticate_token,
    parse_service_account_user,
    service_account_groups,
)

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
MASTERS = "system:masters"
AUTHENTICATED, UNAUTHENTICATED = "system:authenticated", "system:unauthenticated"
ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))
ADMIN = User("system:admin", (MASTERS, AUTHENTICATED))
USER = web.RequestKey("user", User)          # request[USER]: who the request acts as (after impersonation)
EXTRA_PREFIX = "Impersonate-Extra-"


@dataclass
class Auth:
    """The authenticators and the authorizer of one server (`client`: kemu.client.Client on its store)."""
    client: object
    verifier: Verifier | None = None
    audiences: list[str] = field(default_factory=lambda: [ISSUER])

    def __post_init__(self) -> None:
        self.rbac = RBAC(self.client)

    # ---- authentication ------------------------------------------------------------------------------------
    def token_user(self, token: str) -> User:
        """The identity of a bearer token; TokenError if it does not authenticate."""
        if self.verifier is None:
            raise TokenError("no service-account key configured")
        name, uid, groups, extra = authenticate_token(self.client, self.verifier, token, self.audiences)
        return User(name, groups, uid, extra)

    def authenticate(self, request: web.Request) -> User | None:
        """Who sent `request` (None: no credentials); 401 for a bearer token that does not authenticate."""
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            try:
                return self.token_user(header[7:].strip())
            except TokenError:
                raise unauthorized() from None
        transport = request.transport
        if transport is None:
            return None
        if transport.get_extra_info("sslcontext") is None:
            return ADMIN
        cert = transport.get_extra_info("peercert")
        if not cert:
            return None
        names = [(k, v) for rdn in cert.get("subject", ()) for k, v in rdn]
        cn = next((v for k, v in names if k == "commonName"), "")
        if not cn:
            return None
        return User(cn, tuple(v for k, v in names if k == "organizationName") + (AUTHENTICATED,))

    # ---- authorization -------------------------------------------------------------------------------------
    def allowed(self, attrs: Attributes) -> tuple[bool, str]:
        if MASTERS in attrs.user.groups:
            return True, ""
        return self.rbac.authorize(attrs)

    def check(self, attrs: Attributes) -> None:
        """Raise 403 Forbidden unless `attrs` is allowed."""
        ok, reason = self.allowed(attrs)
        if not ok:
            raise forbidden(attrs, reason)

    def rules(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        """What `user` may do in `namespace` (SelfSubjectRulesReview): masters first get `*`, as upstream."""
        resource, urls, incomplete = self.rbac.rules_for(user, namespace)
        if MASTERS in user.groups:
            resource = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}] + resource
            urls = [{"verbs": ["*"], "nonResourceURLs": ["*"]}] + urls
        return resource, urls, incomplete

    # ---- impersonation -------------------------------------------------------------------------------------
    def impersonate(self, request: web.Request, user: User) -> User:
        """The user `request` acts as: `user`, or whom its Impersonate-* headers name, if `user` may."""
        headers = request.headers
        name = headers.get("Impersonate-User")
        groups = headers.getall("Impersonate-Group", [])
        uid = headers.get("Impersonate-Uid")
        extra: dict[str, list[str]] = {}
        for lower, key in {k.lower(): k for k in headers}.items():
            if lower.startswith(EXTRA_PREFIX.lower()):
                extra[lower[len(EXTRA_PREFIX):]] = headers.getall(key)
        if name is None:
            if groups or extra or uid:
                raise APIError(500, "Internal error occurred: requested impersonation of groups, extra or uid "
                                    "without impersonating a user", "InternalError")
            return user
        checks = []
        sa = parse_service_account_user(name)
        if sa:
            checks.append(Attributes(user, "impersonate", resource="serviceaccounts", namespace=sa[0], name=sa[1]))
        else:
            checks.append(Attributes(user, "impersonate", resource="users", name=name))
        checks += [Attributes(user, "impersonate", resource="groups", name=g) for g in groups]
        if uid:
            checks.append(Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="uids",
                                     name=uid))
        for key, values in extra.items():
            checks += [Attributes(user, "impersonate", api_group="authentication.k8s.io", resource="userextras",
                                  subresource=key, name=v) for v in values]
        for attrs in checks:
            self.check(attrs)
        if sa and not groups:
            groups = list(service_account_groups(sa[0]))
        if name == ANONYMOUS.name:
            if UNAUTHENTICATED not in groups:
                groups.append(UNAUTHENTICATED)
        elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
            groups.append(AUTHENTICATED)
        return User(name, tuple(groups), uid or "", extra)


AUTH = web.AppKey("auth", Auth)


def authorize(request: web.Request, attrs: Attributes) -> None:
    """Raise 403 unless the request's user may do `attrs` (the user is filled in from the request)."""
    request.app[AUTH].check(replace(attrs, user=request[USER]))


def forbidden(attrs: Attributes, reason: str = "") -> APIError:
    details = {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource} if attrs.resource_request \
        else None
    return APIError(403, forbidden_message(attrs, reason), "Forbidden",
                    {k: v for k, v in (details or {}).items() if v} or None)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")
