"""Authentication (who is asking) and the authorization hook (may they).

A client certificate chained to the lab CA authenticates as user = CN, groups = O (as the kube-apiserver's x509
authenticator); without one the request is anonymous and gets 401, except for the health and version endpoints.
Authorization is a later slice: `authorize` is the one place it plugs in, and today allows every authenticated user.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from kemu.apiserver.errors import APIError

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = field(default=())


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
USER = web.RequestKey("user", User)          # request[USER]: who is asking


def authenticate(request: web.Request) -> User | None:
    """The user of a TLS-verified client certificate (None: no credentials). Plain HTTP (an explicit flag) is
    trusted as an admin, as the kube-apiserver's old insecure port was."""
    transport = request.transport
    if transport is None:
        return None
    if transport.get_extra_info("sslcontext") is None:
        return User("system:admin", ("system:masters",))
    cert = transport.get_extra_info("peercert")
    if not cert:
        return None
    names = [(k, v) for rdn in cert.get("subject", ()) for k, v in rdn]
    cn = next((v for k, v in names if k == "commonName"), "")
    if not cn:
        return None
    return User(cn, tuple(v for k, v in names if k == "organizationName") + ("system:authenticated",))


def authorize(user: User, verb: str, resource: str, namespace: str | None, name: str) -> None:
    """Raise 403 Forbidden when `user` may not `verb` the resource (RBAC plugs in here); today: allowed."""
    return None


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")
