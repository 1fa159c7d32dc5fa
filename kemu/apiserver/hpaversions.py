"""HorizontalPodAutoscaler at autoscaling/v1 (what `kubectl autoscale` creates) beside the stored autoscaling/v2:
upstream's conversion both ways (targetCPUUtilizationPercentage ⇄ a cpu Resource Utilization metric;
currentCPUUtilizationPercentage; v2's conditions and other metrics kept in the v1 object's
`autoscaling.alpha.kubernetes.io/conditions` and `.../metrics` annotations). Requests at v1 are converted to v2,
served as usual, and the answers converted back. PATCH at v1 is refused (use autoscaling/v2)."""
from __future__ import annotations

import copy
import dataclasses
import json

from aiohttp import web

from kemu.api.kinds import KINDS
from kemu.apiserver import bodies
from kemu.apiserver.errors import APIError

V1 = "autoscaling/v1"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"


def _cpu_utilization(metric: dict) -> int | None:
    res = metric.get("resource") or {}
    target = res.get("target") or {}
    if metric.get("type") == "Resource" and res.get("name") == "cpu" and target.get("type") == "Utilization":
        return target.get("averageUtilization")
    return None


def to_v2(obj: dict) -> dict:
    """A v1 HorizontalPodAutoscaler as autoscaling/v2."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    spec = out.get("spec") or {}
    metrics = json.loads(annotations.pop(METRICS, "[]") or "[]")
    pct = spec.pop("targetCPUUtilizationPercentage", None)
    if pct is not None:
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": pct}}}] + metrics
    if metrics:
        spec["metrics"] = metrics
    status = out.get("status")
    if isinstance(status, dict):
        current = status.pop("currentCPUUtilizationPercentage", None)
        if current is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": current}}}]
        conditions = annotations.pop(CONDITIONS, None)
        if conditions:
            status["conditions"] = json.loads(conditions)
    annotations.pop(CURRENT_METRICS, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return out


def to_v1(obj: dict) -> dict:
    """A stored (v2) HorizontalPodAutoscaler as autoscaling/v1."""
    if not isinstance(obj, dict) or obj.get("kind") != "HorizontalPodAutoscaler":
        return obj
    out = copy.deepcopy(obj)
    out["apiVersion"] = V1
    spec = out.get("spec") or {}
    metrics = spec.pop("metrics", None) or []
    spec.pop("behavior", None)
    cpu = next((m for m in metrics if _cpu_utilization(m) is not None), None)
    annotations = dict(out["metadata"].get("annotations") or {})
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = _cpu_utilization(cpu)
    others = [m for m in metrics if m is not cpu]
    if others:
        annotations[METRICS] = json.dumps(others, separators=(",", ":"))
    status = out.get("status")
    if isinstance(status, dict):
        for m in status.pop("currentMetrics", None) or []:
            if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
                value = ((m["resource"].get("current") or {}).get("averageUtilization"))
                if value is not None:
                    status["currentCPUUtilizationPercentage"] = value
        conditions = status.pop("conditions", None)
        if conditions:
            annotations[CONDITIONS] = json.dumps(conditions, separators=(",", ":"))
    if annotations:
        out["metadata"]["annotations"] = annotations
    return out


def _answer_to_v1(response: web.StreamResponse) -> web.StreamResponse:
    if not isinstance(response, web.Response) or not response.body:
        return response
    try:
        answer = json.loads(response.body)
    except ValueError:
        return response
    if isinstance(answer, dict) and answer.get("kind") == "HorizontalPodAutoscalerList":
        answer["apiVersion"] = V1
        answer["items"] = [to_v1(o) for o in answer.get("items") or []]
    elif isinstance(answer, dict) and answer.get("kind") == "HorizontalPodAutoscaler":
        answer = to_v1(answer)
    else:
        return response
    return web.Response(status=response.status, body=json.dumps(answer, separators=(",", ":")).encode(),
                        content_type="application/json", headers={k: v for k, v in response.headers.items()
                                                                  if k == "Warning"})


async def handle(api, request: web.Request, target) -> web.StreamResponse:
    """Serve a request for autoscaling/v1 HorizontalPodAutoscalers through the v2 handlers."""
    if request.method == "PATCH":
        raise APIError(415, "kemu patches HorizontalPodAutoscalers at autoscaling/v2 only; use "
                            "--type=merge against autoscaling/v2 or edit the v2 object", "UnsupportedMediaType")
    forwarded = request
    if request.method in ("POST", "PUT"):
        content_type = request.content_type if "Content-Type" in request.headers else "application/json"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}
        headers["Content-Type"] = "application/json"
        forwarded = request.clone(headers=headers)     # before the body is read: aiohttp clones only then
        obj = bodies.decode(await bodies.read_body(forwarded), content_type)
        if isinstance(obj, dict) and obj.get("kind") in (None, "HorizontalPodAutoscaler"):
            obj = to_v2(dict(obj, kind="HorizontalPodAutoscaler", apiVersion=obj.get("apiVersion") or V1))
        forwarded._read_bytes = json.dumps(obj).encode()      # the v2 body the handlers read
    v2 = dataclasses.replace(target, kind=KINDS["HorizontalPodAutoscaler"], api_version="autoscaling/v2")
    return _answer_to_v1(await api._handle(forwarded, v2))
