"""Upstream defaults, filled in before validation exactly where the kube-apiserver fills them."""
from __future__ import annotations

from kemu.api import networking
from kemu.api.crds import CustomResource, crd_defaults
from kemu.api import policy
from kemu.api.kinds import KINDS
from kemu.api.schema import TYPES, normalize, type_problems
from kemu.api.structural import apply_defaults as apply_defaults_from_schema
from kemu.api.structural import unknown_fields

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
    if kind in TYPES and not (kind in KINDS and KINDS[kind].custom):
        normalize(obj, kind)                    # nulls are unset fields, as Go's decoder reads them
        if type_problems(obj, kind, "")[0]:
            return obj                          # undecodable: validation reports it; nothing to default
    if kind in _DEFAULTERS and isinstance(meta, dict):
        _DEFAULTERS[kind](obj)
    elif kind in KINDS and KINDS[kind].custom and isinstance(meta, dict):
        custom_defaults(obj, KINDS[kind].custom)
    return obj


def custom_defaults(obj: dict, custom: CustomResource) -> None:
    """A custom object as the kube-apiserver decodes it: fields its schema does not specify pruned, `default`s
    of its version's schema filled."""
    schema = custom.version(obj.get("apiVersion")).schema
    unknown_fields(obj, schema, prune=True)
    apply_defaults_from_schema(obj, schema)


def _pod(obj: dict) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    pod_spec_defaults(spec)
    obj.setdefault("status", {}).setdefault("phase", "Pending")
    if "kubernetes.io/config.mirror" not in (obj["metadata"].get("annotations") or {}):
        # the ServiceAccount admission plugin's defaulting (mirror pods have no service account)
        spec["serviceAccountName"] = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]


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


def _replication_controller(obj: dict) -> None:
    """v1 ReplicationController: replicas 1; an empty selector and labels default from the template's labels."""
    _replicaset(obj)
    spec, meta = obj["spec"], obj["metadata"]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") if isinstance(spec, dict) else None
    if isinstance(spec, dict) and isinstance(labels, dict) and labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        if not meta.get("labels"):
            meta["labels"] = dict(labels)


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


def _statefulset(obj: dict) -> None:
    """apps/v1 StatefulSet defaults; each volumeClaimTemplate is defaulted as a claim."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("updateStrategy", {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(strategy.setdefault("rollingUpdate", {}), dict):
            strategy["rollingUpdate"].setdefault("partition", 0)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    if isinstance(retention, dict):
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            _claim(claim, status=False)
    _template(spec)


def _claim(obj: dict, status: bool = True) -> None:
    """v1 PersistentVolumeClaim: volumeMode Filesystem, phase Pending (the default class is admission's)."""
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    if status:
        obj.setdefault("status", {}).setdefault("phase", "Pending")


def _volume(obj: dict) -> None:
    """v1 PersistentVolume: reclaim Retain (a provisioner sets its class's), volumeMode Filesystem, Pending."""
    spec = obj.setdefault("spec", {})
    if isinstance(spec, dict):
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _storage_class(obj: dict) -> None:
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


_DEFAULTERS.update({"StatefulSet": _statefulset, "PersistentVolumeClaim": _claim, "PersistentVolume": _volume,
                    "StorageClass": _storage_class})
_DEFAULTERS["ReplicationController"] = _replication_controller
_DEFAULTERS.update({"ReplicaSet": _replicaset, "Deployment": _deployment, "DaemonSet": _daemonset, "Job": _job,
                    "CronJob": _cronjob})


def _network_policy(obj: dict) -> None:
    """policyTypes: [Ingress] plus Egress when egress rules exist; port protocol TCP (networking/v1 defaults)."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    for field in ("ingress", "egress"):
        for rule in spec.get(field) or []:
            for port in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


_DEFAULTERS["NetworkPolicy"] = _network_policy


# ---- rbac.authorization.k8s.io/v1 ------------------------------------------------------------------------------
def _binding(obj: dict) -> None:
    """SetDefaults_Subject / SetDefaults_RoleRef: User and Group subjects and roleRef in the RBAC group."""
    if isinstance(obj.get("roleRef"), dict):
        obj["roleRef"]["apiGroup"] = obj["roleRef"].get("apiGroup") or "rbac.authorization.k8s.io"
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


_DEFAULTERS.update({"RoleBinding": _binding, "ClusterRoleBinding": _binding})


_DEFAULTERS["CustomResourceDefinition"] = crd_defaults
_DEFAULTERS.update(networking.DEFAULTERS)     # Gateway, HTTPRoute (kemu/api/networking.py)
_DEFAULTERS.update(policy.DEFAULTERS)
