"""Upstream defaults, filled in before validation exactly where the kube-apiserver fills them."""
from __future__ import annotations

PROBE_DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1,
                  "failureThreshold": 3}
DEFAULT_GRACE_SECONDS = 30
DEFAULT_AFFINITY_TIMEOUT = 10800


def apply_defaults(obj: dict) -> dict:
    """Fill upstream defaults in place and return obj."""
    if not isinstance(obj, dict):
        return obj
    meta = obj.setdefault("metadata", {}) if isinstance(obj.get("metadata", {}), dict) else obj["metadata"]
    kind = obj.get("kind")
    if kind in _DEFAULTERS and isinstance(meta, dict):
        _DEFAULTERS[kind](obj)
    return obj


def _pod(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    pod_spec_defaults(spec)
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def pod_spec_defaults(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("schedulerName", "default-scheduler")
    for field in ("initContainers", "containers"):
        for c in spec.get(field) or []:
            if not isinstance(c, dict):
                continue
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if isinstance(c.get(probe), dict):
                    for key, value in PROBE_DEFAULTS.items():
                        c[probe].setdefault(key, value)


def _service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {}).setdefault(
            "timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
    if stype == "ExternalName":
        return
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _namespace(obj: dict) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")


def _secret(obj: dict) -> None:
    obj.setdefault("type", "Opaque")


_DEFAULTERS = {"Pod": _pod, "Service": _service, "Namespace": _namespace, "Secret": _secret}


# ---- workloads (apps/v1, batch/v1) ---------------------------------------------------------------------------------
def _template(spec: dict) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec_defaults(template["spec"])


def _replicaset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("minReadySeconds", 0)
        _template(spec)


def _deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("strategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
    _template(spec)


def _daemonset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.setdefault("rollingUpdate", {}), dict):
            strategy["rollingUpdate"].setdefault("maxUnavailable", 1)
            strategy["rollingUpdate"].setdefault("maxSurge", 0)
    _template(spec)


def job_spec_defaults(spec: dict) -> None:
    """Job defaults (also applied to a CronJob's jobTemplate): completions/parallelism 1 when both unset."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    _template(spec)


def _job(obj: dict) -> None:
    if isinstance(obj.setdefault("spec", {}), dict):
        job_spec_defaults(obj["spec"])


def _cronjob(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.setdefault("spec", {}), dict):
        job_spec_defaults(job_template["spec"])


_DEFAULTERS.update({"ReplicaSet": _replicaset, "Deployment": _deployment, "DaemonSet": _daemonset, "Job": _job,
                    "CronJob": _cronjob})
