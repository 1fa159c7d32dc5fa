"""The API server's two metrics faces.

`metrics.k8s.io/v1beta1` (what metrics-server serves through the aggregation layer, here built in): PodMetrics and
NodeMetrics, get and list, made by scraping every Ready node agent's `/stats/summary` through the egress session
(kemu.client.resourcemetrics converts). `kubectl top` and `kemu top` read them.

`/metrics`: the server's own Prometheus registry with upstream's names: apiserver_request_total (verb, group,
version, resource, subresource, scope, component, code), apiserver_request_duration_seconds,
apiserver_current_inflight_requests."""
from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from kemu.api.kinds import Kind
from kemu.api.selectors import parse_selector
from kemu.apiserver import bodies
from kemu.apiserver.egress import EGRESS
from kemu.apiserver.errors import APIError, bad_request, method_not_allowed
from kemu.apiserver.resources import resolve
from kemu.client.resourcemetrics import METRICS_API, node_metrics, node_ready, pod_metrics

SCRAPE_TIMEOUT = 5.0
# apiserver_request_duration_seconds buckets (upstream)
DURATION_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30,
                    45, 60)


# ---- metrics.k8s.io ------------------------------------------------------------------------------------------------
async def _summaries(request: web.Request, client, only: str | None = None) -> dict[str, dict]:
    egress = request.app[EGRESS]
    nodes = [n for n in client.list("Node")[0] if node_ready(n) and (only is None or n["metadata"]["name"] == only)]

    async def one(node: dict) -> tuple[str, dict | None]:
        name = node["metadata"]["name"]
        try:
            url = egress.node_url(client, name, "/stats/summary")
            async with egress.kubelet().get(url, timeout=SCRAPE_TIMEOUT) as answer:
                if answer.status != 200:
                    return name, None
                return name, json.loads(await answer.read())
        except (APIError, OSError, asyncio.TimeoutError, ValueError, Exception):   # noqa: BLE001 - node left out
            return name, None
    results = await asyncio.gather(*(one(n) for n in nodes))
    return {name: s for name, s in results if s is not None}


def _list(kind: Kind, items: list[dict]) -> dict:
    return {"kind": f"{kind.name}List", "apiVersion": METRICS_API, "metadata": {}, "items": items}


def _not_found(kind: Kind, name: str) -> APIError:
    resource = f"{kind.name.lower()}.metrics.k8s.io"
    return APIError(404, f'{resource} "{name}" not found', "NotFound",
                    {"name": name, "group": "metrics.k8s.io", "kind": kind.plural})


async def serve(request: web.Request, api, target) -> web.Response:
    """GET of PodMetrics/NodeMetrics (one or a list, with labelSelector)."""
    if request.method != "GET":
        raise method_not_allowed()
    if request.query.get("watch") in ("1", "true"):
        raise APIError(405, "the server does not allow this method on the requested resource (watch)",
                       "MethodNotAllowed")
    try:
        selector = parse_selector(request.query.get("labelSelector"))
    except ValueError as exc:
        raise bad_request(f"unable to parse requirement: {exc}") from None
    client = api.client
    kind = target.kind
    if kind.name == "NodeMetrics":
        nodes = {n["metadata"]["name"]: n for n in client.list("Node")[0]}
        summaries = await _summaries(request, client, only=target.name or None)
        items = [m for s in summaries.values() if (m := node_metrics(s)) is not None]
        for m in items:
            m["metadata"]["labels"] = dict((nodes.get(m["metadata"]["name"]) or {}).get("metadata", {})
                                           .get("labels") or {})
        items = [m for m in items if selector(m["metadata"]["labels"])]
    else:
        pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p
                for p in client.list("Pod", target.namespace)[0]}
        if target.name:
            pod = pods.get((target.namespace, target.name))
            nodes_wanted = {(pod or {}).get("spec", {}).get("nodeName")} - {None, ""}
            if not nodes_wanted:
                raise _not_found(kind, target.name)
            summaries = await _summaries(request, client, only=next(iter(nodes_wanted)))
        else:
            summaries = await _summaries(request, client)
        items = []
        for summary in summaries.values():
            for m in pod_metrics(summary):
                pod = pods.get((m["metadata"]["namespace"], m["metadata"]["name"]))
                if pod is None or (target.namespace and m["metadata"]["namespace"] != target.namespace):
                    continue
                m["metadata"]["labels"] = dict(pod["metadata"].get("labels") or {})
                if selector(m["metadata"]["labels"]):
                    items.append(m)
        items.sort(key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))
    if target.name:
        found = [m for m in items if m["metadata"]["name"] == target.name]
        if not found:
            raise _not_found(kind, target.name)
        return bodies.respond(found[0])
    items.sort(key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"]))
    return bodies.respond(_list(kind, items))


# ---- /metrics --------------------------------------------------------------------------------------------------------
class APIServerMetrics:
    """The API server's registry (upstream names); `middleware` records every request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ["verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component", "code"]
        self.requests = Counter("apiserver_request_total", "Counter of apiserver requests broken out for each verb, "
                                "dry run value, group, version, resource, scope, component, and HTTP response code.",
                                labels, registry=r)
        self.duration = Histogram("apiserver_request_duration_seconds", "Response latency distribution in seconds "
                                  "for each verb, dry run value, group, version, resource, subresource, scope and "
                                  "component.", labels[:-1], buckets=DURATION_BUCKETS, registry=r)
        self.inflight = Gauge("apiserver_current_inflight_requests", "Maximal number of currently used inflight "
                              "request limit of this apiserver per request kind in last second.", ["request_kind"],
                              registry=r)
        for kind in ("readOnly", "mutating"):
            self.inflight.labels(request_kind=kind)

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        kind = "readOnly" if request.method in ("GET", "HEAD", "OPTIONS") else "mutating"
        gauge = self.inflight.labels(request_kind=kind)
        gauge.inc()
        start = time.monotonic()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            gauge.dec()
            labels = request_labels(request)
            self.requests.labels(**labels, code=str(code)).inc()
            self.duration.labels(**labels).observe(time.monotonic() - start)


def request_labels(request: web.Request) -> dict[str, str]:
    """verb/group/version/resource/subresource/scope as upstream's RequestInfo derives them (non-resource paths:
    the verb only)."""
    method = request.method
    out = {"verb": method, "dry_run": "", "group": "", "version": "", "resource": "", "subresource": "",
           "scope": "", "component": "apiserver"}
    if request.query.get("dryRun"):
        out["dry_run"] = "All"
    path = request.path
    if path.startswith("/api/v1/"):
        group, version, tail = "", "v1", path[len("/api/v1/"):]
    elif path.startswith("/apis/") and path.count("/") >= 4:
        _, _, group, version, tail = path.split("/", 4)
    else:
        return out
    try:
        target = resolve(group, version, tail)
    except APIError:
        return out
    verb = {"GET": "GET", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH", "DELETE": "DELETE"}.get(method, method)
    if method == "GET" and not target.name:
        verb = "WATCH" if request.query.get("watch") in ("1", "true") else "LIST"
    out.update(verb=verb, group=group, version=version, resource=target.kind.plural,
               subresource=target.subresource,
               scope="resource" if target.name else "namespace" if target.namespace else "cluster")
    return out


METRICS_KEY = web.AppKey("apiserver_metrics", APIServerMetrics)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS_KEY].text(), content_type="text/plain", charset="utf-8")
