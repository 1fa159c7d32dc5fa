"""The field schema of kemu's object model: which fields each kind knows, their types and their patch strategies.

One table (`TYPES`) feeds three consumers: the OpenAPI v3 documents (kubectl reads the merge keys to build
strategic merge patches), strict field validation (`unknown_fields`: 400 `strict decoding error` for a field the
schema does not know) and the strategic merge patch itself (`patch_meta`). Types kemu does not model in detail are
open (`x-kubernetes-preserve-unknown-fields`), so real manifests are never refused for fields kemu ignores.
"""
from __future__ import annotations

from dataclasses import dataclass

from kemu.api.kinds import KINDS
from kemu.api.structural import unknown_fields as structural_unknown

STR, INT, BOOL, NUM, OPEN, QTY, INTSTR, TIME = "string", "integer", "boolean", "number", "open", "quantity", \
    "int-or-string", "date-time"


@dataclass(frozen=True)
class ListOf:
    """A list of `item` (a type name or primitive); `key`+`strategy` are its strategic-merge-patch metadata."""
    item: str
    key: str = ""
    strategy: str = ""          # "" (atomic), "merge", "merge,retainKeys"


@dataclass(frozen=True)
class MapOf:
    value: str


Field = str | ListOf | MapOf
OBJ_FIELDS: dict[str, Field] = {"apiVersion": STR, "kind": STR, "metadata": "ObjectMeta"}

TYPES: dict[str, dict[str, Field]] = {
    "ObjectMeta": {
        "name": STR, "generateName": STR, "namespace": STR, "selfLink": STR, "uid": STR, "resourceVersion": STR,
        "generation": INT, "creationTimestamp": TIME, "deletionTimestamp": TIME, "deletionGracePeriodSeconds": INT,
        "labels": MapOf(STR), "annotations": MapOf(STR),
        "ownerReferences": ListOf("OwnerReference", "uid", "merge"), "finalizers": ListOf(STR, "", "merge"),
        "managedFields": ListOf(OPEN)},
    "OwnerReference": {"apiVersion": STR, "kind": STR, "name": STR, "uid": STR, "controller": BOOL,
                       "blockOwnerDeletion": BOOL},
    "LabelSelector": {"matchLabels": MapOf(STR), "matchExpressions": ListOf("LabelSelectorRequirement")},
    "LabelSelectorRequirement": {"key": STR, "operator": STR, "values": ListOf(STR)},
    "Condition": {"type": STR, "status": STR, "reason": STR, "message": STR, "lastTransitionTime": TIME,
                  "lastProbeTime": TIME, "lastHeartbeatTime": TIME, "lastUpdateTime": TIME,
                  "observedGeneration": INT},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {
        "activeDeadlineSeconds": INT, "affinity": OPEN, "automountServiceAccountToken": BOOL,
        "containers": ListOf("Container", "name", "merge"), "dnsConfig": OPEN, "dnsPolicy": STR,
        "enableServiceLinks": BOOL, "ephemeralContainers": ListOf("Container", "name", "merge"),
        "hostAliases": ListOf(OPEN, "ip", "merge"), "hostIPC": BOOL, "hostNetwork": BOOL, "hostPID": BOOL,
        "hostUsers": BOOL, "hostname": STR, "imagePullSecrets": ListOf(OPEN, "name", "merge"),
        "initContainers": ListOf("Container", "name", "merge"), "nodeName": STR, "nodeSelector": MapOf(STR),
        "os": OPEN, "overhead": MapOf(QTY), "preemptionPolicy": STR, "priority": INT, "priorityClassName": STR,
        "readinessGates": ListOf(OPEN), "resourceClaims": ListOf(OPEN, "name", "merge,retainKeys"),
        "resources": "ResourceRequirements", "restartPolicy": STR, "runtimeClassName": STR, "schedulerName": STR,
        "schedulingGates": ListOf(OPEN, "name", "merge"), "securityContext": OPEN, "serviceAccount": STR,
        "serviceAccountName": STR, "setHostnameAsFQDN": BOOL, "shareProcessNamespace": BOOL, "subdomain": STR,
        "terminationGracePeriodSeconds": INT, "tolerations": ListOf(OPEN),
        "topologySpreadConstraints": ListOf(OPEN, "topologyKey", "merge"),
        "volumes": ListOf("Volume", "name", "merge,retainKeys")},
    "Container": {
        "args": ListOf(STR), "command": ListOf(STR), "env": ListOf("EnvVar", "name", "merge"),
        "envFrom": ListOf(OPEN), "image": STR, "imagePullPolicy": STR, "lifecycle": OPEN, "livenessProbe": OPEN,
        "name": STR, "ports": ListOf("ContainerPort", "containerPort", "merge"), "readinessProbe": OPEN,
        "resizePolicy": ListOf(OPEN), "resources": "ResourceRequirements", "restartPolicy": STR,
        "securityContext": OPEN, "startupProbe": OPEN, "stdin": BOOL, "stdinOnce": BOOL,
        "terminationMessagePath": STR, "terminationMessagePolicy": STR, "tty": BOOL,
        "volumeDevices": ListOf(OPEN, "devicePath", "merge"),
        "volumeMounts": ListOf("VolumeMount", "mountPath", "merge"), "workingDir": STR},
    "ContainerPort": {"containerPort": INT, "hostIP": STR, "hostPort": INT, "name": STR, "protocol": STR},
    "EnvVar": {"name": STR, "value": STR, "valueFrom": OPEN},
    "VolumeMount": {"mountPath": STR, "mountPropagation": STR, "name": STR, "readOnly": BOOL,
                    "recursiveReadOnly": STR, "subPath": STR, "subPathExpr": STR},
    "Volume": {"name": STR, "*": OPEN},          # "*": any volume source (kemu models a few of them)
    "ResourceRequirements": {"limits": MapOf(QTY), "requests": MapOf(QTY), "claims": ListOf(OPEN, "name", "")},
    "PodStatus": {"conditions": ListOf("Condition", "type", "merge"), "*": OPEN},
    "Status": {"conditions": ListOf("Condition", "type", "merge"), "*": OPEN},
    "NodeStatus": {"conditions": ListOf("Condition", "type", "merge"),
                   "addresses": ListOf(OPEN, "type", "merge"), "*": OPEN},
    "ServiceSpec": {
        "allocateLoadBalancerNodePorts": BOOL, "clusterIP": STR, "clusterIPs": ListOf(STR),
        "externalIPs": ListOf(STR), "externalName": STR, "externalTrafficPolicy": STR, "healthCheckNodePort": INT,
        "internalTrafficPolicy": STR, "ipFamilies": ListOf(STR), "ipFamilyPolicy": STR, "loadBalancerClass": STR,
        "loadBalancerIP": STR, "loadBalancerSourceRanges": ListOf(STR),
        "ports": ListOf("ServicePort", "port", "merge"), "publishNotReadyAddresses": BOOL,
        "selector": MapOf(STR), "sessionAffinity": STR, "sessionAffinityConfig": OPEN, "trafficDistribution": STR,
        "type": STR},
    "ServicePort": {"appProtocol": STR, "name": STR, "nodePort": INT, "port": INT, "protocol": STR,
                    "targetPort": INTSTR},
    "DeploymentSpec": {"minReadySeconds": INT, "paused": BOOL, "progressDeadlineSeconds": INT, "replicas": INT,
                       "revisionHistoryLimit": INT, "selector": "LabelSelector", "strategy": "DeploymentStrategy",
                       "template": "PodTemplateSpec"},
    "DeploymentStrategy": {"type": STR, "rollingUpdate": OPEN, "$retainKeys": ""},
    "ReplicaSetSpec": {"minReadySeconds": INT, "replicas": INT, "selector": "LabelSelector",
                       "template": "PodTemplateSpec"},
    "DaemonSetSpec": {"minReadySeconds": INT, "revisionHistoryLimit": INT, "selector": "LabelSelector",
                      "template": "PodTemplateSpec", "updateStrategy": OPEN},
    "JobSpec": {"activeDeadlineSeconds": INT, "backoffLimit": INT, "backoffLimitPerIndex": INT,
                "completionMode": STR, "completions": INT, "managedBy": STR, "manualSelector": BOOL,
                "maxFailedIndexes": INT, "parallelism": INT, "podFailurePolicy": OPEN, "podReplacementPolicy": STR,
                "selector": "LabelSelector", "successPolicy": OPEN, "suspend": BOOL, "template": "PodTemplateSpec",
                "ttlSecondsAfterFinished": INT},
    "JobTemplateSpec": {"metadata": "ObjectMeta", "spec": "JobSpec"},
    "CronJobSpec": {"concurrencyPolicy": STR, "failedJobsHistoryLimit": INT, "jobTemplate": "JobTemplateSpec",
                    "schedule": STR, "startingDeadlineSeconds": INT, "successfulJobsHistoryLimit": INT,
                    "suspend": BOOL, "timeZone": STR},
    "Scale": {**OBJ_FIELDS, "spec": "ScaleSpec", "status": OPEN},
    "CustomResourceDefinitionSpec": {"conversion": OPEN, "group": STR, "names": OPEN, "preserveUnknownFields": BOOL,
                                     "scope": STR, "versions": ListOf(OPEN)},
    "ScaleSpec": {"replicas": INT},
    "PolicyRule": {"apiGroups": ListOf(STR), "resources": ListOf(STR), "verbs": ListOf(STR),
                   "resourceNames": ListOf(STR), "nonResourceURLs": ListOf(STR)},
    "AggregationRule": {"clusterRoleSelectors": ListOf("LabelSelector")},
    "Subject": {"kind": STR, "apiGroup": STR, "name": STR, "namespace": STR},
    "RoleRef": {"apiGroup": STR, "kind": STR, "name": STR},
}
# the top-level fields of every kind (its `kind` name is its schema name)
TOP: dict[str, dict[str, Field]] = {
    "Namespace": {"spec": OPEN, "status": OPEN},
    "Node": {"spec": OPEN, "status": "NodeStatus"},
    "Pod": {"spec": "PodSpec", "status": "PodStatus"},
    "Service": {"spec": "ServiceSpec", "status": "Status"},
    "Endpoints": {"subsets": ListOf(OPEN)},
    "EndpointSlice": {"addressType": STR, "endpoints": ListOf(OPEN), "ports": ListOf(OPEN)},
    "ConfigMap": {"data": MapOf(STR), "binaryData": MapOf(STR), "immutable": BOOL},
    "Secret": {"data": MapOf(STR), "stringData": MapOf(STR), "type": STR, "immutable": BOOL},
    "Event": {f: OPEN for f in ("involvedObject", "source", "series", "related")} |
             {f: STR for f in ("reason", "message", "type", "action", "reportingComponent", "reportingInstance")} |
             {"count": INT, "firstTimestamp": TIME, "lastTimestamp": TIME, "eventTime": STR},
    "Deployment": {"spec": "DeploymentSpec", "status": "Status"},
    "ReplicaSet": {"spec": "ReplicaSetSpec", "status": "Status"},
    "DaemonSet": {"spec": "DaemonSetSpec", "status": "Status"},
    "Job": {"spec": "JobSpec", "status": "Status"},
    "CronJob": {"spec": "CronJobSpec", "status": OPEN},
    "CustomResourceDefinition": {"spec": "CustomResourceDefinitionSpec", "status": OPEN},
    "ServiceAccount": {"secrets": ListOf(OPEN, "name", "merge"), "imagePullSecrets": ListOf(OPEN),
                       "automountServiceAccountToken": BOOL},
    "Role": {"rules": ListOf("PolicyRule")},
    "ClusterRole": {"rules": ListOf("PolicyRule"), "aggregationRule": "AggregationRule"},
    "RoleBinding": {"subjects": ListOf("Subject"), "roleRef": "RoleRef"},
    "ClusterRoleBinding": {"subjects": ListOf("Subject"), "roleRef": "RoleRef"},
}
for _kind, _fields in TOP.items():
    TYPES[_kind] = {**OBJ_FIELDS, **_fields}
for _kind in set(KINDS) - set(TOP):   # a kind not described yet is served with an open schema, never refused
    TYPES[_kind] = {**OBJ_FIELDS, "*": OPEN}


def field_type(type_name: str, field: str) -> Field | None:
    """The type of `field` in `type_name` (None: unknown field)."""
    fields = TYPES.get(type_name)
    if fields is None:
        return OPEN
    return fields.get(field, fields.get("*"))


def unknown_fields(obj: object, type_name: str, path: str = "", prune: bool = False) -> list[str]:
    """Paths of fields `obj` has that `type_name` does not know (`spec.x`, `spec.containers[0].y`), as upstream's
    strict decoder names them; `prune` also removes them (what a non-strict decode keeps of the object)."""
    out: list[str] = []
    custom = KINDS[type_name].custom if type_name in KINDS else None
    if custom is not None and isinstance(obj, dict):     # a custom kind: its version's structural schema
        return structural_unknown(obj, custom.version(obj.get("apiVersion")).schema, path, prune)
    if not isinstance(obj, dict) or type_name not in TYPES:
        return out
    for key in list(obj):
        where = f"{path}.{key}" if path else key
        ftype = field_type(type_name, key)
        if ftype is None or ftype == "":
            out.append(where)
            if prune:
                del obj[key]
            continue
        value = obj[key]
        if isinstance(ftype, ListOf) and isinstance(value, list):
            for i, item in enumerate(value):
                out += unknown_fields(item, ftype.item, f"{where}[{i}]", prune)
        elif isinstance(ftype, str):
            out += unknown_fields(value, ftype, where, prune)
    return out


def patch_meta(type_name: str | None, field: str) -> tuple[str | None, ListOf | None]:
    """For a strategic merge patch: the type of `field` in `type_name` and, for a list, its strategy."""
    if type_name is None:
        return None, None
    ftype = field_type(type_name, field)
    if isinstance(ftype, ListOf):
        return (ftype.item if ftype.item in TYPES else None), ftype
    if isinstance(ftype, str) and ftype in TYPES:
        return ftype, None
    return None, None

