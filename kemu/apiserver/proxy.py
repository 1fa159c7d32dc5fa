"""The `proxy` subresources of pods and Services (what `kubectl proxy` users reach through it):
`/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH` goes to one ready endpoint of that Service port,
`/api/v1/namespaces/NS/pods/[SCHEME:]NAME[:PORT]/proxy/PATH` to the pod's IP. The request (method, headers
without hop-by-hop ones and the caller's credentials, body) is sent from inside the lab's network namespace
(kemu.apiserver.egress) and the answer streamed back, as the kube-apiserver's UpgradeAwareHandler does."""
from __future__ import annotations

import asyncio
import random
from urllib.parse import quote

import aiohttp
from aiohttp import web
from yarl import URL

from kemu.apiserver.auth import USER, authorize
from kemu.apiserver.egress import EGRESS
from kemu.apiserver.errors import APIError
from kemu.apiserver.rbac import Attributes
from kemu.client import Client

ROUTE = "/api/v1/namespaces/{namespace}/{resource:pods|services}/{name}/{tail:proxy(/.*)?}"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
DROP_REQUEST = HOP_BY_HOP | {"authorization", "impersonate-user", "impersonate-group", "impersonate-uid"}
VERB_OF = {"GET": "get", "HEAD": "get", "OPTIONS": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
           "DELETE": "delete"}


def parse(spec: str) -> tuple[str, str, str]:
    """`[scheme:]name[:port]` → (scheme, name, port), as upstream's SplitSchemeNamePort."""
    parts = spec.split(":")
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return parts[0], parts[1], parts[2]
    raise APIError(400, f"invalid service request {spec!r}", "BadRequest")


def _unavailable(message: str) -> APIError:
    return APIError(503, message, "ServiceUnavailable")


def service_address(client: Client, namespace: str, name: str, port: str) -> tuple[str, int]:
    svc = client.get("Service", namespace, name)
    if svc is None:
        raise APIError(404, f'services "{name}" not found', "NotFound", {"name": name, "kind": "services"})
    sp = next((p for p in svc["spec"].get("ports") or [] if p.get("name", "") == port or str(p["port"]) == port),
              None)
    if sp is None and not port and len(svc["spec"].get("ports") or []) == 1:
        sp = svc["spec"]["ports"][0]
    if sp is None:
        raise _unavailable(f'no service port "{port}" found for service "{name}"')
    eps = client.get("Endpoints", namespace, name) or {}
    candidates = [(a["ip"], p["port"]) for subset in eps.get("subsets") or []
                  for p in subset.get("ports") or [] if p.get("name", "") == sp.get("name", "")
                  for a in subset.get("addresses") or []]
    if not candidates:
        raise _unavailable(f'no endpoints available for service "{name}"')
    return random.choice(candidates)


def pod_address(client: Client, namespace: str, name: str, port: str) -> tuple[str, int]:
    pod = client.get("Pod", namespace, name)
    if pod is None:
        raise APIError(404, f'pods "{name}" not found', "NotFound", {"name": name, "kind": "pods"})
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise APIError(400, f'pod "{name}" has no IP address yet', "BadRequest")
    if port and not port.isdigit():
        named = next((p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []
                      if p.get("name") == port), None)
        if named is None:
            raise _unavailable(f'no port named "{port}" in pod "{name}"')
        return ip, int(named)
    return ip, int(port) if port else 80


class Proxy:
    """The aiohttp handler of ROUTE (`client`: kemu.client.Client on the server's store)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info = request.match_info
        namespace, resource = info["namespace"], info["resource"]
        scheme, name, port = parse(info["name"])
        authorize(request, Attributes(request[USER], VERB_OF.get(request.method, "get"), True, "", "v1", resource,
                                      "proxy", namespace, name))
        locate = service_address if resource == "services" else pod_address
        ip, number = locate(self.client, namespace, name, port)
        path = quote(info["tail"][len("proxy"):] or "/", safe="/:@!$&'()*+,;=-._~%")
        url = URL.build(scheme=scheme or "http", host=ip, port=number, path=path,
                        query_string=request.rel_url.raw_query_string, encoded=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP_REQUEST}
        body = request.content if request.body_exists else None
        try:
            async with request.app[EGRESS].pods().request(request.method, url, headers=headers, data=body,
                                                          allow_redirects=False) as answer:
                response = web.StreamResponse(status=answer.status, reason=answer.reason, headers={
                    k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP})
                await response.prepare(request)
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            raise APIError(503, f"error trying to reach {resource[:-1]}: {exc}", "ServiceUnavailable") from None
