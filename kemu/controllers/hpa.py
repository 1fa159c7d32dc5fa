"""The HorizontalPodAutoscaler controller (autoscaling/v2), upstream's algorithm: every sync period each HPA reads
its target's scale (Deployment, ReplicaSet, StatefulSet), the resource metrics of the target's pods, computes
desired = ceil(current × usage / target) with a 10 % tolerance (unready pods and pods without metrics treated as
upstream's replica calculator does), stabilises (the highest recommendation of the downscale window, 5 minutes by
default), limits the rate by the `behavior` policies and [minReplicas, maxReplicas], writes the target's replicas
and the HPA's status with its AbleToScale, ScalingActive and ScalingLimited conditions, and records events.

The pure functions (`resource_replicas`, `stabilize`, `scale_up_limit`, `scale_down_limit`, `normalize`) carry the
algorithm; the controller around them only reads and writes objects."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kemu.api.quantity import parse_quantity
from kemu.api.selectors import selector_matches
from kemu.api.timeutil import now_rfc3339, parse_time
from kemu.client import Client
from kemu.controllers import metrics as cm_metrics
from kemu.controllers.common import Controller, SharedInformers, key_of

log = logging.getLogger(__name__)
TOLERANCE = 0.1
SYNC_PERIOD = 15.0                 # --horizontal-pod-autoscaler-sync-period
DOWNSCALE_STABILIZATION = 300.0    # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = 30.0     # --horizontal-pod-autoscaler-initial-readiness-delay
METRIC_WINDOW = 15.0               # the metrics' window (metrics-server's resolution)
SCALABLE = ("Deployment", "ReplicaSet", "StatefulSet", "ReplicationController")
MetricsFn = Callable[[str, list[dict]], dict[str, dict[str, float]]]   # (namespace, pods) -> pod -> {cpu, memory}


# ---- the replica calculator (pure) -------------------------------------------------------------------------------
class MetricsError(Exception):
    """No replica count can be computed from the metrics (the message is upstream's)."""


@dataclass
class PodInfo:
    name: str
    request: float | None     # the metric's resource request of the pod (sum of its containers), None if missing
    ready: bool               # counts for a scale-up (upstream's unready pods: not ready or CPU still starting)
    ignored: bool = False     # being deleted or failed
    pending: bool = False     # not started: unready whether or not it has metrics


def _utilization_ratio(usage: dict[str, float], requests: dict[str, float], target: float) -> tuple[float, int]:
    total_usage = sum(usage[p] for p in usage if p in requests)
    total_request = sum(requests[p] for p in usage if p in requests)
    if total_request <= 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = int(total_usage * 100 / total_request)
    return utilization / target, utilization


def resource_replicas(current: int, pods: list[PodInfo], usage: dict[str, float], target_utilization: float | None,
                      target_average: float | None = None, tolerance: float = TOLERANCE) -> tuple[int, float]:
    """(desired replicas, observed value): utilisation in percent of request when `target_utilization` is set,
    else the average usage per pod against `target_average`. Upstream's GetResourceReplicas /
    GetRawResourceReplicas."""
    known = {p.name: p for p in pods if not p.ignored}
    usage = {name: value for name, value in usage.items() if name in known}
    missing = [name for name in known if name not in usage]
    unready = [name for name, p in known.items() if not p.ready and (name in usage or p.pending)]
    missing = [name for name in missing if name not in unready]
    for name in unready:
        usage.pop(name, None)
    if not usage:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    ready_count = len(usage)
    requests: dict[str, float] = {}
    if target_utilization is not None:
        for name, p in known.items():
            if p.request is None:
                raise MetricsError(f"missing request for {{resource}} in containers of Pod {name}")
            requests[name] = p.request

    def ratio_of(values: dict[str, float]) -> tuple[float, float]:
        if target_utilization is not None:
            r, utilization = _utilization_ratio(values, requests, target_utilization)
            return r, utilization
        average = sum(values.values()) / len(values)
        return average / target_average, average
    ratio, observed = ratio_of(usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current, observed
        return math.ceil(ratio * ready_count), observed
    if missing:
        if ratio < 1.0:       # a scale-down: missing pods use 100 % of their request (or the target)
            for name in missing:
                usage[name] = requests[name] * max(100.0, target_utilization) / 100 if target_utilization \
                    is not None else target_average
        elif ratio > 1.0:     # a scale-up: missing pods use nothing
            for name in missing:
                usage[name] = 0.0
    if scale_up_with_unready:
        for name in unready:
            usage[name] = 0.0
    new_ratio, _ = ratio_of(usage)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current, observed
    desired = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and desired > current) or (new_ratio > 1.0 and desired < current):
        return current, observed
    return desired, observed


@dataclass
class Recommendation:
    when: float
    replicas: int


@dataclass
class ScaleEvent:
    when: float
    change: int        # replicas added (> 0) or removed (< 0)


def stabilize(history: list[Recommendation], now: float, current: int, desired: int, up_window: float,
              down_window: float) -> int:
    """upstream's stabilizeRecommendationWithBehaviors: the lowest recommendation of the scale-up window caps a
    scale-up, the highest of the scale-down window floors a scale-down."""
    up, down = desired, desired
    for rec in history:
        if rec.when > now - up_window:
            up = min(up, rec.replicas)
        if rec.when > now - down_window:
            down = max(down, rec.replicas)
    result = current
    if result < up:
        result = up
    if result > down:
        result = down
    return result


def _changes(events: list[ScaleEvent], period: float, now: float, sign: int) -> int:
    return sum(abs(e.change) for e in events if e.when > now - period and (e.change > 0) == (sign > 0))


def scale_up_limit(current: int, events: list[ScaleEvent], rules: dict, now: float) -> int:
    if rules.get("selectPolicy") == "Disabled":
        return current
    pick_max = rules.get("selectPolicy", "Max") == "Max"
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = policy["periodSeconds"]
        start = current - _changes(events, period, now, 1) + _changes(events, period, now, -1)
        proposed = start + policy["value"] if policy["type"] == "Pods" else \
            math.ceil(start * (1 + policy["value"] / 100))
        result = proposed if result is None else (max if pick_max else min)(result, proposed)
    return current if result is None else result


def scale_down_limit(current: int, events: list[ScaleEvent], rules: dict, now: float) -> int:
    if rules.get("selectPolicy") == "Disabled":
        return current
    pick_max = rules.get("selectPolicy", "Max") == "Max"    # Max: the policy allowing the biggest change
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = policy["periodSeconds"]
        start = current + _changes(events, period, now, -1) - _changes(events, period, now, 1)
        proposed = start - policy["value"] if policy["type"] == "Pods" else \
            int(start * (1 - policy["value"] / 100))
        result = proposed if result is None else (min if pick_max else max)(result, proposed)
    return current if result is None else result


def normalize(current: int, desired: int, low: int, high: int, up_events: list[ScaleEvent],
              down_events: list[ScaleEvent], behavior: dict, now: float) -> tuple[int, str, str]:
    """(replicas, ScalingLimited reason, message): the rate limits of `behavior` and [low, high];
    upstream's convertDesiredReplicasWithBehaviorRate."""
    events = up_events + down_events
    if desired > current:
        limit = max(scale_up_limit(current, events, behavior.get("scaleUp") or {}, now), current)
        if high > limit:
            reason, message, bound = "ScaleUpLimit", "the desired replica count is increasing faster than the " \
                                                     "maximum scale rate", limit
        else:
            reason, message, bound = "TooManyReplicas", "the desired replica count is more than the maximum " \
                                                        "replica count", high
        if desired > bound:
            return bound, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
    if desired < current:
        limit = min(scale_down_limit(current, events, behavior.get("scaleDown") or {}, now), current)
        if low < limit:
            reason, message, bound = "ScaleDownLimit", "the desired replica count is decreasing faster than the " \
                                                       "maximum scale rate", limit
        else:
            reason, message, bound = "TooFewReplicas", "the desired replica count is less than the minimum " \
                                                       "replica count", low
        if desired < bound:
            return bound, reason, message
        return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def default_behavior(behavior: dict | None, down_window: float) -> dict:
    """upstream's defaults for the directions (and fields) `behavior` leaves out."""
    behavior = dict(behavior or {})
    up = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
          "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                       {"type": "Percent", "value": 100, "periodSeconds": 15}], **(behavior.get("scaleUp") or {})}
    down = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
            **(behavior.get("scaleDown") or {})}
    down.setdefault("stabilizationWindowSeconds", down_window)
    return {"scaleUp": up, "scaleDown": down}


# ---- the controller ------------------------------------------------------------------------------------------------
def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _pod_request(pod: dict, resource: str, container: str | None) -> float | None:
    """Sum of the containers' requests of `resource` (millicores for cpu, bytes for memory); None if one lacks it."""
    total = 0.0
    for c in pod["spec"].get("containers") or []:
        if container and c["name"] != container:
            continue
        value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        if value is None:
            return None
        total += float(parse_quantity(value)) * (1000 if resource == "cpu" else 1)
    return total


def _cpu_sample_counts(pod: dict, now: float) -> bool:
    """upstream's rule for CPU samples: within the CPU initialization period a pod counts once it has been Ready
    for a whole metric window (its first samples are start-up noise); later, unless it is unready."""
    status = pod.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    started = parse_time(status.get("startTime"))
    if ready is None or started is None:
        return False
    if started + CPU_INITIALIZATION_PERIOD > now:
        since = parse_time(ready.get("lastTransitionTime")) or now
        return ready.get("status") == "True" and now >= since + METRIC_WINDOW
    return not (ready.get("status") == "False" and started + INITIAL_READINESS_DELAY > since_or(ready, now))


def since_or(condition: dict, now: float) -> float:
    return parse_time(condition.get("lastTransitionTime")) or now


def pod_infos(pods: list[dict], resource: str, container: str | None, now: float | None = None) -> list[PodInfo]:
    """The targeted pods as the replica calculator groups them (upstream's groupPods): being deleted or failed:
    ignored; Pending, or (for CPU) not Ready: unready."""
    now = time.time() if now is None else now
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        ignored = bool(pod["metadata"].get("deletionTimestamp")) or status.get("phase") in ("Failed", "Succeeded")
        pending = status.get("phase", "Pending") == "Pending"
        ready = not pending and (resource != "cpu" or _cpu_sample_counts(pod, now))
        out.append(PodInfo(pod["metadata"]["name"], _pod_request(pod, resource, container), ready, ignored, pending))
    return out


@dataclass
class _State:
    recommendations: list[Recommendation] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)


def _condition(ctype: str, status: bool, reason: str, message: str, old: list[dict]) -> dict:
    value = "True" if status else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == value else now_rfc3339()
    return {"type": ctype, "status": value, "lastTransitionTime": since, "reason": reason, "message": message}


def metric_description(metric: dict) -> str:
    source = metric.get("resource") or metric.get("containerResource") or {}
    name = source.get("name", "")
    target = source.get("target") or {}
    what = f"{name} resource utilization (percentage of request)" if target.get("type") == "Utilization" else \
        f"{name} resource"
    return f"{what}" if metric.get("type") == "Resource" else f"{what} of container {source.get('container')}"


class HorizontalPodAutoscalerController(Controller):
    KIND = "HorizontalPodAutoscaler"

    def __init__(self, client: Client, informers: SharedInformers, metrics: MetricsFn,
                 sync_period: float = SYNC_PERIOD, downscale_stabilization: float = DOWNSCALE_STABILIZATION,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, informers, "horizontal-pod-autoscaler")
        self.metrics = metrics
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        self.clock = clock
        self.pods = informers.get("Pod")
        self.state: dict[str, _State] = {}
        self._stop = threading.Event()

    def _on_own(self, key: str, old: dict | None, new: dict | None) -> None:
        """A new, deleted or re-specified HPA syncs now; its own status writes wait for the sync period (each
        sync reads fresh metrics, so a status write must not trigger the next one)."""
        if old is None or new is None or old.get("spec") != new.get("spec"):
            super()._on_own(key, old, new)

    def start(self) -> None:
        super().start()
        threading.Thread(target=self._resync, name="hpa-resync", daemon=True).start()

    def _resync(self) -> None:
        while not self._stop.wait(self.sync_period):
            for obj in self.own.items():
                self.queue.add(key_of(obj))

    def sync(self, key: str) -> None:
        hpa = self.get_own(key)
        if hpa is None:
            self.state.pop(key, None)
            return
        started = time.monotonic()
        action, error = "none", "none"
        try:
            action = self.reconcile(key, hpa)
        except MetricsError:
            error = "internal"
        finally:
            cm_metrics.hpa_reconciliations.labels(action, error).inc()
            cm_metrics.hpa_reconciliation_duration.labels(action, error).observe(time.monotonic() - started)

    def _target(self, hpa: dict) -> tuple[dict | None, str]:
        ref = hpa["spec"]["scaleTargetRef"]
        kind = ref.get("kind")
        if kind not in SCALABLE:
            return None, f'the server could not find the requested resource (get {str(kind).lower()}s.scale)'
        target = self.client.get(kind, hpa["metadata"]["namespace"], ref["name"])
        if target is None:
            return None, f'{kind.lower()}s.apps "{ref["name"]}" not found'
        return target, ""

    def reconcile(self, key: str, hpa: dict) -> str:
        spec = hpa["spec"]
        status = dict(hpa.get("status") or {})
        old_conditions = status.get("conditions") or []
        ns = hpa["metadata"]["namespace"]
        target, problem = self._target(hpa)
        if target is None:
            self.events.record(hpa, "Warning", "FailedGetScale", problem)
            self._write_status(hpa, status, [
                _condition("AbleToScale", False, "FailedGetScale",
                           f"the HPA controller was unable to get the target's current scale: {problem}",
                           old_conditions)])
            return "none"
        current = int(target["spec"].get("replicas", 1))
        status["currentReplicas"] = int((target.get("status") or {}).get("replicas", current))
        low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
        able = _condition("AbleToScale", True, "SucceededGetScale", "the HPA controller was able to get the "
                                                                    "target's current scale", old_conditions)
        if current == 0:
            self._write_status(hpa, dict(status, desiredReplicas=0), [able, _condition(
                "ScalingActive", False, "ScalingDisabled", "scaling is disabled since the replica count of the "
                                                           "target is zero", old_conditions)])
            return "none"
        selector = target["spec"].get("selector") or {}
        pods = [p for p in self.pods.items() if p["metadata"]["namespace"] == ns
                and selector_matches(selector, p["metadata"].get("labels") or {})]
        proposal, reason_metric, observed = 0, "", []
        failure = ""
        try:
            usage = self.metrics(ns, pods) if pods else {}
        except Exception as exc:      # noqa: BLE001 - reported as the metrics API's failure
            usage, failure = {}, f"unable to get metrics for resource: {exc}"
        for metric in spec.get("metrics") or []:
            source = metric.get("resource") or metric.get("containerResource") or {}
            resource = source.get("name", "cpu")
            t = source.get("target") or {}
            container = source.get("container") if metric.get("type") == "ContainerResource" else None
            values = {name: u[f"{container}/{resource}" if container else resource] for name, u in usage.items()
                      if (f"{container}/{resource}" if container else resource) in u}
            try:
                if failure:
                    raise MetricsError(failure)
                if t.get("type") == "Utilization":
                    replicas, value = resource_replicas(current, pod_infos(pods, resource, container), values,
                                                        float(t["averageUtilization"]))
                    current_metric = {"averageUtilization": int(value),
                                      "averageValue": _quantity(resource, sum(values.values()) / max(len(values), 1))}
                else:
                    average = float(parse_quantity(t["averageValue"])) * (1000 if resource == "cpu" else 1)
                    replicas, value = resource_replicas(current, pod_infos(pods, resource, container), values,
                                                        None, average)
                    current_metric = {"averageValue": _quantity(resource, value)}
            except MetricsError as exc:
                message = str(exc).replace("{resource}", resource)
                what = f"failed to get {resource} utilization: {message}"
                self.events.record(hpa, "Warning", "FailedGetResourceMetric", what)
                self.events.record(hpa, "Warning", "FailedComputeMetricsReplicas",
                                   f"invalid metrics (1 invalid out of 1), first error is: {what}")
                self._write_status(hpa, status, [able, _condition(
                    "ScalingActive", False, "FailedGetResourceMetric",
                    f"the HPA was unable to compute the replica count: {what}", old_conditions)])
                return "none"
            kind_key = "resource" if metric.get("type") == "Resource" else "containerResource"
            entry = {"name": resource, "current": current_metric}
            if container:
                entry["container"] = container
            observed.append({"type": metric.get("type", "Resource"), kind_key: entry})
            if replicas > proposal:
                proposal, reason_metric = replicas, metric_description(metric)
        status["currentMetrics"] = observed
        now = self.clock()
        state = self.state.setdefault(key, _State())
        behavior = default_behavior(spec.get("behavior"), self.downscale_stabilization)
        stabilized = stabilize(state.recommendations, now, current, proposal,
                               float(behavior["scaleUp"].get("stabilizationWindowSeconds") or 0),
                               float(behavior["scaleDown"].get("stabilizationWindowSeconds") or 0))
        keep = max(float(behavior["scaleUp"].get("stabilizationWindowSeconds") or 0),
                   float(behavior["scaleDown"].get("stabilizationWindowSeconds") or 0))
        state.recommendations = [r for r in state.recommendations if r.when > now - keep] + \
            [Recommendation(now, proposal)]
        # the range first (upstream: a target outside [min, max] is brought back whatever the metrics say)
        desired, limit_reason, limit_message = normalize(current, stabilized, low, high, state.up_events,
                                                         state.down_events, behavior, now)
        if desired > high:
            desired, limit_reason, limit_message = high, "TooManyReplicas", "the desired replica count is more " \
                                                                            "than the maximum replica count"
        if desired < low:
            desired, limit_reason, limit_message = low, "TooFewReplicas", "the desired replica count is less than " \
                                                                          "the minimum replica count"
        if stabilized != proposal:
            able = _condition("AbleToScale", True, "ScaleDownStabilized" if proposal < current else
                              "ScaleUpStabilized", "recent recommendations were higher than current one, applying "
                              "the highest recent recommendation" if proposal < current else "recent recommendations "
                              "were lower than current one, applying the lowest recent recommendation",
                              old_conditions)
        else:
            able = _condition("AbleToScale", True, "ReadyForNewScale", "recommended size matches current size",
                              old_conditions)
        active = _condition("ScalingActive", True, "ValidMetricFound", "the HPA was able to successfully calculate "
                            f"a replica count from {reason_metric}", old_conditions)
        limited = _condition("ScalingLimited", limit_reason != "DesiredWithinRange", limit_reason, limit_message,
                             old_conditions)
        action = "none"
        if desired != current:
            ref = hpa["spec"]["scaleTargetRef"]

            def scale(live: dict) -> bool | None:
                if live["spec"].get("replicas", 1) == desired:
                    return False
                live["spec"]["replicas"] = desired
                return None
            self.client.mutate(ref["kind"], ns, ref["name"], scale)
            reason = f"{reason_metric} above target" if desired > current else "All metrics below target"
            self.events.record(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            (state.up_events if desired > current else state.down_events).append(ScaleEvent(now, desired - current))
            window = max(p["periodSeconds"] for d in ("scaleUp", "scaleDown")
                         for p in behavior[d].get("policies") or [{"periodSeconds": 15}])
            state.up_events = [e for e in state.up_events if e.when > now - window]
            state.down_events = [e for e in state.down_events if e.when > now - window]
            able = _condition("AbleToScale", True, "SucceededRescale", "the HPA controller was able to update the "
                              f"target scale to {desired}", old_conditions)
            status["lastScaleTime"] = now_rfc3339()
            action = "scale_up" if desired > current else "scale_down"
        status["desiredReplicas"] = desired
        self._write_status(hpa, status, [able, active, limited])
        return action

    def _write_status(self, hpa: dict, status: dict, conditions: list[dict]) -> None:
        status = dict(status, conditions=conditions)
        status.setdefault("currentReplicas", 0)
        status.setdefault("desiredReplicas", status["currentReplicas"])
        status["observedGeneration"] = hpa["metadata"].get("generation", 1)
        self.update_status(hpa, status)


def _quantity(resource: str, value: float) -> str:
    return f"{int(value)}m" if resource == "cpu" else str(int(value))

