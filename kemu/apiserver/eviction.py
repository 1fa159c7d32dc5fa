"""`POST pods/NAME/eviction` (policy/v1 Eviction, what `kubectl drain` sends): a delete that disruption budgets may
refuse: when the pod's PodDisruptionBudget has no disruption left the answer is 429 TooManyRequests (upstream's
message and DisruptionBudget cause), else one disruption is taken from it (kemu.client.disruption) and the pod is
deleted with the Eviction's deleteOptions (a scheduled pod terminates gracefully): upstream's 201 Status."""
from __future__ import annotations

from aiohttp import web

from kemu.apiserver import bodies
from kemu.apiserver.errors import APIError, bad_request, method_not_allowed, not_found
from kemu.apiserver.resources import Target
from kemu.client.disruption import TooManyRequests, check_eviction

EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")


async def evict(request: web.Request, api, target: Target) -> web.Response:
    """`api`: the ResourceAPI (its client and its DELETE semantics)."""
    if request.method != "POST":
        raise method_not_allowed()
    content_type = request.content_type if "Content-Type" in request.headers else "application/json"  # upstream's
    body = bodies.decode(await bodies.read_body(request), content_type)                           # default
    if not isinstance(body, dict) or body.get("kind") not in (None, "Eviction"):
        raise bad_request(f"the kind in the data ({(body or {}).get('kind')}) does not match the expected kind "
                          "(Eviction)")
    if body.get("apiVersion") not in (None, *EVICTION_VERSIONS):
        raise bad_request(f"unsupported Eviction version {body.get('apiVersion')}")
    name = (body.get("metadata") or {}).get("name")
    if name != target.name:
        raise bad_request("name in URL does not match name in Eviction object")
    pod = api.client.get("Pod", target.namespace, target.name)
    if pod is None:
        raise not_found(target.kind, target.name)
    options = dict(body.get("deleteOptions") or {})
    if "dryRun" in request.query:
        options["dryRun"] = request.query.getall("dryRun")
    if "dryRun" not in request.query:
        try:
            check_eviction(api.client, pod)          # the pod's PodDisruptionBudget may forbid it now
        except TooManyRequests as exc:
            raise APIError(429, str(exc), "TooManyRequests",
                           {"causes": [{"reason": "DisruptionBudget", "message": exc.cause}]}) from None
        except ValueError as exc:
            raise APIError(500, str(exc), "InternalError") from None
    api.delete_object(target, pod, options)
    return bodies.respond({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                           "code": 201}, 201)
