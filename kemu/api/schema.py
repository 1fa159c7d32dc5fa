"""The field schema of kemu's object model: which fields each kind knows, their types, ranges and patch strategies.

One table (`TYPES`) feeds every consumer: validation (`type_problems`: the type and range of every field kemu
reads, as the kube-apiserver's decoder and its `ValidateNonnegativeField`-style checks refuse them), admission's
decoding (`normalize`: nulls are unset fields, as Go's JSON decoder reads them), the API server's OpenAPI v3
documents (kubectl reads the merge keys to build strategic merge patches), strict field validation
(`unknown_fields`: 400 `strict decoding error` for a field the schema does not know) and the strategic merge patch
itself (`patch_meta`). Types kemu does not model in detail are open (`x-kubernetes-preserve-unknown-fields`), so
real manifests are never refused for fields kemu ignores.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kemu.api import networking
from kemu.api.kinds import KINDS
from kemu.api.quantity import parse_quantity
from kemu.api.structural import go_value, json_type
from kemu.api.structural import unknown_fields as structural_unknown

STR, BOOL, NUM, OPEN, QTY, INTSTR, TIME = "string", "boolean", "number", "open", "quantity", "int-or-string", \
    "date-time"
Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Int:
    """An integer of `bits` (Go's int32 or int64), within [minimum, maximum] where they are set (validation's
    range, worded as upstream's: "must be greater than or equal to 0", "must be between 0 and 2147483647, ...")."""
    bits: int = 64
    minimum: int | None = None
    maximum: int | None = None

    def range_problem(self, value: int) -> str | None:
        if self.minimum is not None and self.maximum is not None and not self.minimum <= value <= self.maximum:
            return f"must be between {self.minimum} and {self.maximum}, inclusive"
        if self.minimum is not None and value < self.minimum:
            return f"must be greater than or equal to {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"must be less than or equal to {self.maximum}"
        return None


INT, INT32 = Int(64), Int(32)
NONNEG, NONNEG32 = Int(64, 0), Int(32, 0)
PORT = Int(32, 1, 65535)
ID = Int(64, 0, 2**31 - 1)          # a user or group ID (upstream: 0..2147483647)


@dataclass(frozen=True)
class ListOf:
    """A list of `item` (a type name or primitive); `key`+`strategy` are its strategic-merge-patch metadata."""
    item: Field
    key: str = ""
    strategy: str = ""          # "" (atomic), "merge", "merge,retainKeys"


@dataclass(frozen=True)
class MapOf:
    value: Field


Field = str | Int | ListOf | MapOf
OBJ_FIELDS: dict[str, Field] = {"apiVersion": STR, "kind": STR, "metadata": "ObjectMeta"}
REF: dict[str, Field] = {"name": STR, "optional": BOOL}      # configMapRef, secretRef, ...
KEY_REF: dict[str, Field] = {"name": STR, "key": STR, "optional": BOOL}

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
        "activeDeadlineSeconds": Int(64, 1, 2**31 - 1), "affinity": OPEN, "automountServiceAccountToken": BOOL,
        "containers": ListOf("Container", "name", "merge"), "dnsConfig": "PodDNSConfig", "dnsPolicy": STR,
        "enableServiceLinks": BOOL, "ephemeralContainers": ListOf("Container", "name", "merge"),
        "hostAliases": ListOf("HostAlias", "ip", "merge"), "hostIPC": BOOL, "hostNetwork": BOOL, "hostPID": BOOL,
        "hostUsers": BOOL, "hostname": STR, "imagePullSecrets": ListOf(OPEN, "name", "merge"),
        "initContainers": ListOf("Container", "name", "merge"), "nodeName": STR, "nodeSelector": MapOf(STR),
        "os": OPEN, "overhead": MapOf(QTY), "preemptionPolicy": STR, "priority": INT32, "priorityClassName": STR,
        "readinessGates": ListOf(OPEN), "resourceClaims": ListOf(OPEN, "name", "merge,retainKeys"),
        "resources": "ResourceRequirements", "restartPolicy": STR, "runtimeClassName": STR, "schedulerName": STR,
        "schedulingGates": ListOf(OPEN, "name", "merge"), "securityContext": "PodSecurityContext",
        "serviceAccount": STR, "serviceAccountName": STR, "setHostnameAsFQDN": BOOL, "shareProcessNamespace": BOOL,
        "subdomain": STR, "terminationGracePeriodSeconds": NONNEG, "tolerations": ListOf("Toleration"),
        "topologySpreadConstraints": ListOf(OPEN, "topologyKey", "merge"),
        "volumes": ListOf("Volume", "name", "merge,retainKeys")},
    "PodDNSConfig": {"nameservers": ListOf(STR), "searches": ListOf(STR), "options": ListOf("NameValue")},
    "NameValue": {"name": STR, "value": STR},
    "HostAlias": {"ip": STR, "hostnames": ListOf(STR)},
    "Toleration": {"key": STR, "operator": STR, "value": STR, "effect": STR, "tolerationSeconds": INT},
    "PodSecurityContext": {
        "runAsUser": ID, "runAsGroup": ID, "runAsNonRoot": BOOL, "fsGroup": ID, "supplementalGroups": ListOf(ID),
        "supplementalGroupsPolicy": STR, "fsGroupChangePolicy": STR, "sysctls": ListOf("NameValue"),
        "seccompProfile": OPEN, "seLinuxOptions": OPEN, "windowsOptions": OPEN, "appArmorProfile": OPEN,
        "seLinuxChangePolicy": STR},
    "SecurityContext": {
        "runAsUser": ID, "runAsGroup": ID, "runAsNonRoot": BOOL, "privileged": BOOL, "readOnlyRootFilesystem": BOOL,
        "allowPrivilegeEscalation": BOOL, "procMount": STR, "capabilities": "Capabilities", "seccompProfile": OPEN,
        "seLinuxOptions": OPEN, "windowsOptions": OPEN, "appArmorProfile": OPEN},
    "Capabilities": {"add": ListOf(STR), "drop": ListOf(STR)},
    "Container": {
        "args": ListOf(STR), "command": ListOf(STR), "env": ListOf("EnvVar", "name", "merge"),
        "envFrom": ListOf("EnvFromSource"), "image": STR, "imagePullPolicy": STR, "lifecycle": "Lifecycle",
        "livenessProbe": "Probe", "name": STR, "ports": ListOf("ContainerPort", "containerPort", "merge"),
        "readinessProbe": "Probe", "resizePolicy": ListOf(OPEN), "resources": "ResourceRequirements",
        "restartPolicy": STR, "securityContext": "SecurityContext", "startupProbe": "Probe", "stdin": BOOL,
        "stdinOnce": BOOL, "terminationMessagePath": STR, "terminationMessagePolicy": STR, "tty": BOOL,
        "volumeDevices": ListOf(OPEN, "devicePath", "merge"),
        "volumeMounts": ListOf("VolumeMount", "mountPath", "merge"), "workingDir": STR},
    "ContainerPort": {"containerPort": INT32, "hostIP": STR, "hostPort": INT32, "name": STR, "protocol": STR},
    "EnvVar": {"name": STR, "value": STR, "valueFrom": "EnvVarSource"},
    "EnvVarSource": {"fieldRef": "ObjectFieldSelector", "resourceFieldRef": "ResourceFieldSelector",
                     "configMapKeyRef": "KeySelector", "secretKeyRef": "KeySelector"},
    "ObjectFieldSelector": {"apiVersion": STR, "fieldPath": STR},
    "ResourceFieldSelector": {"containerName": STR, "resource": STR, "divisor": QTY},
    "KeySelector": KEY_REF,
    "EnvFromSource": {"prefix": STR, "configMapRef": "LocalRef", "secretRef": "LocalRef"},
    "LocalRef": REF,
    "Probe": {"exec": "ExecAction", "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction", "grpc": "GRPCAction",
              "initialDelaySeconds": NONNEG32, "timeoutSeconds": NONNEG32, "periodSeconds": NONNEG32,
              "successThreshold": NONNEG32, "failureThreshold": NONNEG32, "terminationGracePeriodSeconds": Int(64, 1)},
    "ExecAction": {"command": ListOf(STR)},
    "HTTPGetAction": {"path": STR, "port": INTSTR, "host": STR, "scheme": STR, "httpHeaders": ListOf("NameValue")},
    "TCPSocketAction": {"port": INTSTR, "host": STR},
    "GRPCAction": {"port": INT32, "service": STR},
    "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler", "stopSignal": STR},
    "LifecycleHandler": {"exec": "ExecAction", "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction",
                         "sleep": "SleepAction"},
    "SleepAction": {"seconds": NONNEG},
    "VolumeMount": {"mountPath": STR, "mountPropagation": STR, "name": STR, "readOnly": BOOL,
                    "recursiveReadOnly": STR, "subPath": STR, "subPathExpr": STR},
    # "*": any other volume source (kemu models a few of them)
    "Volume": {"name": STR, "emptyDir": "EmptyDirVolumeSource", "hostPath": "HostPathVolumeSource",
               "configMap": "ConfigMapVolumeSource", "secret": "SecretVolumeSource",
               "downwardAPI": "DownwardAPIVolumeSource", "projected": "ProjectedVolumeSource",
               "persistentVolumeClaim": "PersistentVolumeClaimVolumeSource", "*": OPEN},
    "EmptyDirVolumeSource": {"medium": STR, "sizeLimit": QTY},
    "HostPathVolumeSource": {"path": STR, "type": STR},
    "KeyToPath": {"key": STR, "path": STR, "mode": INT32},
    "ConfigMapVolumeSource": {"name": STR, "items": ListOf("KeyToPath"), "defaultMode": INT32, "optional": BOOL},
    "SecretVolumeSource": {"secretName": STR, "items": ListOf("KeyToPath"), "defaultMode": INT32,
                           "optional": BOOL},
    "DownwardAPIVolumeFile": {"path": STR, "fieldRef": "ObjectFieldSelector",
                              "resourceFieldRef": "ResourceFieldSelector", "mode": INT32},
    "DownwardAPIVolumeSource": {"items": ListOf("DownwardAPIVolumeFile"), "defaultMode": INT32},
    "ProjectedVolumeSource": {"sources": ListOf("VolumeProjection"), "defaultMode": INT32},
    "VolumeProjection": {"configMap": "ConfigMapProjection", "secret": "ConfigMapProjection",
                         "downwardAPI": "DownwardAPIProjection",
                         "serviceAccountToken": "ServiceAccountTokenProjection", "clusterTrustBundle": OPEN,
                         "podCertificate": OPEN},
    "ConfigMapProjection": {"name": STR, "items": ListOf("KeyToPath"), "optional": BOOL},
    "DownwardAPIProjection": {"items": ListOf("DownwardAPIVolumeFile")},
    "ServiceAccountTokenProjection": {"audience": STR, "expirationSeconds": INT, "path": STR},
    "ResourceRequirements": {"limits": MapOf(QTY), "requests": MapOf(QTY), "claims": ListOf(OPEN, "name", "")},
    "PodStatus": {"conditions": ListOf("Condition", "type", "merge"), "phase": STR, "podIP": STR,
                  "podIPs": ListOf("PodIP"), "hostIP": STR, "hostIPs": ListOf("PodIP"), "startTime": TIME,
                  "reason": STR, "message": STR, "qosClass": STR, "*": OPEN},
    "PodIP": {"ip": STR},
    "Status": {"conditions": ListOf("Condition", "type", "merge"), "*": OPEN},
    "ServiceStatus": {"conditions": ListOf("Condition", "type", "merge"), "loadBalancer": "LoadBalancerStatus"},
    "LoadBalancerStatus": {"ingress": ListOf("LoadBalancerIngress")},
    "LoadBalancerIngress": {"ip": STR, "hostname": STR, "ipMode": STR, "ports": ListOf(OPEN)},
    "NodeSpec": {"podCIDR": STR, "podCIDRs": ListOf(STR), "providerID": STR, "unschedulable": BOOL,
                 "taints": ListOf("Taint"), "externalID": STR, "configSource": OPEN},
    "Taint": {"key": STR, "value": STR, "effect": STR, "timeAdded": TIME},
    "NodeStatus": {"conditions": ListOf("Condition", "type", "merge"),
                   "addresses": ListOf("NodeAddress", "type", "merge"), "capacity": MapOf(QTY),
                   "allocatable": MapOf(QTY), "*": OPEN},
    "NodeAddress": {"type": STR, "address": STR},
    "NamespaceSpec": {"finalizers": ListOf(STR)},
    "ServiceSpec": {
        "allocateLoadBalancerNodePorts": BOOL, "clusterIP": STR, "clusterIPs": ListOf(STR),
        "externalIPs": ListOf(STR), "externalName": STR, "externalTrafficPolicy": STR, "healthCheckNodePort": INT32,
        "internalTrafficPolicy": STR, "ipFamilies": ListOf(STR), "ipFamilyPolicy": STR, "loadBalancerClass": STR,
        "loadBalancerIP": STR, "loadBalancerSourceRanges": ListOf(STR),
        "ports": ListOf("ServicePort", "port", "merge"), "publishNotReadyAddresses": BOOL,
        "selector": MapOf(STR), "sessionAffinity": STR, "sessionAffinityConfig": "SessionAffinityConfig",
        "trafficDistribution": STR, "type": STR},
    "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
    "ClientIPConfig": {"timeoutSeconds": INT32},
    "ServicePort": {"appProtocol": STR, "name": STR, "nodePort": INT32, "port": INT32, "protocol": STR,
                    "targetPort": INTSTR},
    "Endpoint": {"addresses": ListOf(STR), "conditions": "EndpointConditions", "hostname": STR, "nodeName": STR,
                 "targetRef": OPEN, "zone": STR, "hints": OPEN, "deprecatedTopology": MapOf(STR)},
    "EndpointConditions": {"ready": BOOL, "serving": BOOL, "terminating": BOOL},
    "EndpointPort": {"name": STR, "protocol": STR, "port": INT32, "appProtocol": STR},
    "EndpointSubset": {"addresses": ListOf("EndpointAddress"), "notReadyAddresses": ListOf("EndpointAddress"),
                       "ports": ListOf("EndpointPort")},
    "EndpointAddress": {"ip": STR, "hostname": STR, "nodeName": STR, "targetRef": OPEN},
    "DeploymentSpec": {"minReadySeconds": NONNEG32, "paused": BOOL, "progressDeadlineSeconds": INT32,
                       "replicas": NONNEG32, "revisionHistoryLimit": NONNEG32, "selector": "LabelSelector",
                       "strategy": "DeploymentStrategy", "template": "PodTemplateSpec"},
    "DeploymentStrategy": {"type": STR, "rollingUpdate": "RollingUpdate", "$retainKeys": ""},
    "RollingUpdate": {"maxSurge": INTSTR, "maxUnavailable": INTSTR, "partition": INT32},
    "ReplicaSetSpec": {"minReadySeconds": NONNEG32, "replicas": NONNEG32, "selector": "LabelSelector",
                       "template": "PodTemplateSpec"},
    "DaemonSetSpec": {"minReadySeconds": NONNEG32, "revisionHistoryLimit": NONNEG32, "selector": "LabelSelector",
                      "template": "PodTemplateSpec", "updateStrategy": "DaemonSetUpdateStrategy"},
    "DaemonSetUpdateStrategy": {"type": STR, "rollingUpdate": "RollingUpdate"},
    "StatefulSetSpec": {"minReadySeconds": NONNEG32, "ordinals": OPEN,
                        "persistentVolumeClaimRetentionPolicy": "StatefulSetPersistentVolumeClaimRetentionPolicy",
                        "podManagementPolicy": STR, "replicas": NONNEG32, "revisionHistoryLimit": NONNEG32,
                        "selector": "LabelSelector", "serviceName": STR, "template": "PodTemplateSpec",
                        "updateStrategy": "StatefulSetUpdateStrategy",
                        "volumeClaimTemplates": ListOf("PersistentVolumeClaimTemplate")},
    "StatefulSetPersistentVolumeClaimRetentionPolicy": {"whenDeleted": STR, "whenScaled": STR},
    "StatefulSetUpdateStrategy": {"type": STR, "rollingUpdate": "RollingUpdate"},
    "PersistentVolumeClaimTemplate": {**OBJ_FIELDS, "spec": "PersistentVolumeClaimSpec", "status": OPEN},
    "PersistentVolumeClaimSpec": {"accessModes": ListOf(STR), "dataSource": OPEN, "dataSourceRef": OPEN,
                                  "resources": "ResourceRequirements", "selector": "LabelSelector",
                                  "storageClassName": STR, "volumeAttributesClassName": STR, "volumeMode": STR,
                                  "volumeName": STR},
    "PersistentVolumeSpec": {"accessModes": ListOf(STR), "capacity": MapOf(QTY), "claimRef": OPEN, "csi": OPEN,
                             "hostPath": "HostPathVolumeSource", "local": "LocalVolumeSource",
                             "mountOptions": ListOf(STR), "nodeAffinity": OPEN,
                             "persistentVolumeReclaimPolicy": STR, "storageClassName": STR,
                             "volumeAttributesClassName": STR, "volumeMode": STR, "*": OPEN},
    "LocalVolumeSource": {"path": STR, "fsType": STR},
    "PersistentVolumeClaimVolumeSource": {"claimName": STR, "readOnly": BOOL},
    "JobSpec": {"activeDeadlineSeconds": Int(64, 1), "backoffLimit": NONNEG32, "backoffLimitPerIndex": NONNEG32,
                "completionMode": STR, "completions": NONNEG32, "managedBy": STR, "manualSelector": BOOL,
                "maxFailedIndexes": NONNEG32, "parallelism": NONNEG32, "podFailurePolicy": OPEN,
                "podReplacementPolicy": STR, "selector": "LabelSelector", "successPolicy": OPEN, "suspend": BOOL,
                "template": "PodTemplateSpec", "ttlSecondsAfterFinished": NONNEG32},
    "JobTemplateSpec": {"metadata": "ObjectMeta", "spec": "JobSpec"},
    "CronJobSpec": {"concurrencyPolicy": STR, "failedJobsHistoryLimit": NONNEG32, "jobTemplate": "JobTemplateSpec",
                    "schedule": STR, "startingDeadlineSeconds": NONNEG, "successfulJobsHistoryLimit": NONNEG32,
                    "suspend": BOOL, "timeZone": STR},
    "Scale": {**OBJ_FIELDS, "spec": "ScaleSpec", "status": OPEN},
    "CustomResourceDefinitionSpec": {"conversion": OPEN, "group": STR, "names": OPEN, "preserveUnknownFields": BOOL,
                                     "scope": STR, "versions": ListOf(OPEN)},
    "ScaleSpec": {"replicas": NONNEG32},
    "PolicyRule": {"apiGroups": ListOf(STR), "resources": ListOf(STR), "verbs": ListOf(STR),
                   "resourceNames": ListOf(STR), "nonResourceURLs": ListOf(STR)},
    "AggregationRule": {"clusterRoleSelectors": ListOf("LabelSelector")},
    "Subject": {"kind": STR, "apiGroup": STR, "name": STR, "namespace": STR},
    "RoleRef": {"apiGroup": STR, "kind": STR, "name": STR},
    # autoscaling and resource policy (kemu/api/policy.py validates them)
    "HorizontalPodAutoscalerSpec": {"scaleTargetRef": "CrossVersionObjectReference", "minReplicas": INT32,
                                    "maxReplicas": INT32, "metrics": ListOf(OPEN), "behavior": OPEN,
                                    "targetCPUUtilizationPercentage": INT32},
    "CrossVersionObjectReference": {"apiVersion": STR, "kind": STR, "name": STR},
    "LimitRangeSpec": {"limits": ListOf("LimitRangeItem")},
    "LimitRangeItem": {"type": STR, "max": MapOf(QTY), "min": MapOf(QTY), "default": MapOf(QTY),
                       "defaultRequest": MapOf(QTY), "maxLimitRequestRatio": MapOf(QTY)},
    "ResourceQuotaSpec": {"hard": MapOf(QTY), "scopes": ListOf(STR), "scopeSelector": OPEN},
    "ReplicationControllerSpec": {"minReadySeconds": NONNEG32, "replicas": NONNEG32, "selector": MapOf(STR),
                                  "template": "PodTemplateSpec"},
    "NetworkPolicySpec": {"podSelector": "LabelSelector", "policyTypes": ListOf(STR),
                          "ingress": ListOf("NetworkPolicyIngressRule"), "egress": ListOf("NetworkPolicyEgressRule")},
    "NetworkPolicyIngressRule": {"from": ListOf("NetworkPolicyPeer"), "ports": ListOf("NetworkPolicyPort")},
    "NetworkPolicyEgressRule": {"to": ListOf("NetworkPolicyPeer"), "ports": ListOf("NetworkPolicyPort")},
    "NetworkPolicyPeer": {"podSelector": "LabelSelector", "namespaceSelector": "LabelSelector",
                          "ipBlock": "IPBlock"},
    "IPBlock": {"cidr": STR, "except": ListOf(STR)},
    "NetworkPolicyPort": {"protocol": STR, "port": INTSTR, "endPort": PORT},
    "PodDisruptionBudgetSpec": {"minAvailable": INTSTR, "maxUnavailable": INTSTR, "selector": "LabelSelector",
                                "unhealthyPodEvictionPolicy": STR},
}
# the top-level fields of every kind (its `kind` name is its schema name)
TOP: dict[str, dict[str, Field]] = {
    "Namespace": {"spec": "NamespaceSpec", "status": OPEN},
    "Node": {"spec": "NodeSpec", "status": "NodeStatus"},
    "Pod": {"spec": "PodSpec", "status": "PodStatus"},
    "Service": {"spec": "ServiceSpec", "status": "ServiceStatus"},
    "Endpoints": {"subsets": ListOf("EndpointSubset")},
    "EndpointSlice": {"addressType": STR, "endpoints": ListOf("Endpoint"), "ports": ListOf("EndpointPort")},
    "ConfigMap": {"data": MapOf(STR), "binaryData": MapOf(STR), "immutable": BOOL},
    "Secret": {"data": MapOf(STR), "stringData": MapOf(STR), "type": STR, "immutable": BOOL},
    "Event": {f: OPEN for f in ("involvedObject", "source", "series", "related")} |
             {f: STR for f in ("reason", "message", "type", "action", "reportingComponent", "reportingInstance")} |
             {"count": INT32, "firstTimestamp": TIME, "lastTimestamp": TIME, "eventTime": STR},
    "Deployment": {"spec": "DeploymentSpec", "status": "Status"},
    "ReplicaSet": {"spec": "ReplicaSetSpec", "status": "Status"},
    "ReplicationController": {"spec": "ReplicationControllerSpec", "status": "Status"},
    "NetworkPolicy": {"spec": "NetworkPolicySpec"},
    "DaemonSet": {"spec": "DaemonSetSpec", "status": "Status"},
    "Job": {"spec": "JobSpec", "status": "Status"},
    "StatefulSet": {"spec": "StatefulSetSpec", "status": "Status"},
    "ControllerRevision": {"data": OPEN, "revision": INT},
    "PersistentVolume": {"spec": "PersistentVolumeSpec", "status": OPEN},
    "PersistentVolumeClaim": {"spec": "PersistentVolumeClaimSpec", "status": OPEN},
    "StorageClass": {"provisioner": STR, "parameters": MapOf(STR), "reclaimPolicy": STR, "mountOptions": ListOf(STR),
                     "allowVolumeExpansion": BOOL, "volumeBindingMode": STR, "allowedTopologies": ListOf(OPEN)},
    "CronJob": {"spec": "CronJobSpec", "status": OPEN},
    "CustomResourceDefinition": {"spec": "CustomResourceDefinitionSpec", "status": OPEN},
    "ServiceAccount": {"secrets": ListOf(OPEN, "name", "merge"), "imagePullSecrets": ListOf(OPEN),
                       "automountServiceAccountToken": BOOL},
    "Role": {"rules": ListOf("PolicyRule")},
    "ClusterRole": {"rules": ListOf("PolicyRule"), "aggregationRule": "AggregationRule"},
    "RoleBinding": {"subjects": ListOf("Subject"), "roleRef": "RoleRef"},
    "ClusterRoleBinding": {"subjects": ListOf("Subject"), "roleRef": "RoleRef"},
    "HorizontalPodAutoscaler": {"spec": "HorizontalPodAutoscalerSpec", "status": OPEN},
    "LimitRange": {"spec": "LimitRangeSpec"},
    "ResourceQuota": {"spec": "ResourceQuotaSpec", "status": OPEN},
    "PodDisruptionBudget": {"spec": "PodDisruptionBudgetSpec", "status": OPEN},
    "PriorityClass": {"value": INT32, "globalDefault": BOOL, "description": STR, "preemptionPolicy": STR},
}
_named, _top = networking.types(STR, BOOL, INT32, PORT, OPEN, ListOf, MapOf)   # Ingress, Gateway API kinds
TYPES.update(_named)
TOP.update(_top)
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



# ---- decoding and type checks ------------------------------------------------------------------------------------
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
INT_BOUNDS = {32: (-2**31, 2**31 - 1), 64: (-2**63, 2**63 - 1)}


def normalize(obj: object, type_name: str) -> None:
    """Read `obj` as Go's JSON decoder reads it into `type_name`, in place: a null field is an unset field (then
    defaulted), a null string in a map is "", and a whole number written as a float (1.0, 1e3) is that integer."""
    if not isinstance(obj, dict) or type_name not in TYPES:
        return
    for key in list(obj):
        ftype = field_type(type_name, key)
        if ftype is None or ftype == OPEN:
            continue
        value = obj[key]
        if value is None:
            del obj[key]
        elif isinstance(ftype, Int) and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            obj[key] = int(value)
        elif isinstance(ftype, MapOf) and isinstance(value, dict):
            for k, v in value.items():
                if v is None and ftype.value == STR:
                    value[k] = ""
                elif isinstance(ftype.value, str):
                    normalize(v, ftype.value)
        elif isinstance(ftype, ListOf) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(ftype.item, Int) and isinstance(item, float) and item.is_integer() \
                        and abs(item) < 2**63:
                    value[i] = int(item)
                elif isinstance(ftype.item, str):
                    normalize(item, ftype.item)
        elif isinstance(ftype, str):
            normalize(value, ftype)


def _type_name(ftype: Field) -> str:
    if isinstance(ftype, Int):
        return "integer"
    if isinstance(ftype, ListOf):
        return "array"
    if isinstance(ftype, MapOf) or ftype in TYPES:
        return "object"
    return {QTY: "string", INTSTR: "integer,string", TIME: "string"}.get(ftype, ftype)


def type_problems(value: object, ftype: Field, path: str) -> tuple[Problems, Problems]:
    """(type problems, range problems) of `value` against `ftype` at `path`. A type problem is a value the
    kube-apiserver cannot decode (400, nothing else checked); a range problem is its validation's "Invalid value"."""
    types: Problems = []
    ranges: Problems = []
    _check(value, ftype, path, types, ranges)
    return types, ranges


def _wrong_type(value: object, ftype: Field, path: str) -> tuple[str, str]:
    want, have = _type_name(ftype), json_type(value)
    return path, f'Invalid value: "{have}": {path} in body must be of type {want}: "{have}"'


def _key_problem(key: object, path: str) -> tuple[str, str]:
    return path, f"Invalid value: {go_value(key)}: {path} in body must have string keys (quote the key)"


def _check(value: object, ftype: Field, path: str, types: Problems, ranges: Problems) -> None:
    if ftype == OPEN or ftype == "" or value is None:
        return
    if isinstance(ftype, Int):
        if isinstance(value, bool) or not isinstance(value, int):
            types.append(_wrong_type(value, ftype, path))
            return
        low, high = INT_BOUNDS[ftype.bits]
        if not low <= value <= high:
            types.append((path, f"Invalid value: {value}: {path} in body must be an int{ftype.bits} (between "
                                f"{low} and {high})"))
            return
        problem = ftype.range_problem(value)
        if problem:
            ranges.append((path, f"Invalid value: {value}: {problem}"))
        return
    if isinstance(ftype, ListOf):
        if not isinstance(value, list):
            types.append(_wrong_type(value, ftype, path))
            return
        for i, item in enumerate(value):
            _check(item, ftype.item, f"{path}[{i}]", types, ranges)
        return
    if isinstance(ftype, MapOf):
        if not isinstance(value, dict):
            types.append(_wrong_type(value, ftype, path))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                types.append(_key_problem(key, path))
                continue
            _check(item, ftype.value, f"{path}[{key}]", types, ranges)
        return
    if ftype in TYPES:
        if not isinstance(value, dict):
            types.append(_wrong_type(value, ftype, path))
            return
        for key, item in value.items():
            if not isinstance(key, str):
                types.append(_key_problem(key, path))
                continue
            sub = field_type(ftype, key)
            if sub is not None:
                _check(item, sub, f"{path}.{key}" if path else key, types, ranges)
        return
    _scalar(value, ftype, path, types, ranges)


def _scalar(value: object, ftype: str, path: str, types: Problems, ranges: Problems) -> None:
    if ftype == STR and not isinstance(value, str) or ftype == BOOL and not isinstance(value, bool) or \
            ftype == NUM and (isinstance(value, bool) or not isinstance(value, (int, float))) or \
            ftype == INTSTR and (isinstance(value, bool) or not isinstance(value, (int, str))):
        types.append(_wrong_type(value, ftype, path))
    elif ftype == INTSTR and isinstance(value, int) and not INT_BOUNDS[32][0] <= value <= INT_BOUNDS[32][1]:
        types.append((path, f"Invalid value: {value}: {path} in body must be an int32 or a string"))
    elif ftype == TIME and (not isinstance(value, str) or not RFC3339.match(value)):
        types.append((path, f"Invalid value: {go_value(value)}: must be an RFC 3339 time such as "
                            "2006-01-02T15:04:05Z"))
    elif ftype == QTY:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            types.append(_wrong_type(value, ftype, path))
            return
        try:
            quantity = parse_quantity(value)
        except ValueError:
            types.append((path, f"Invalid value: {go_value(value)}: quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
            return
        if quantity < 0:
            ranges.append((path, f"Invalid value: {go_value(value)}: must be greater than or equal to 0"))
        elif quantity >= 2**63:
            ranges.append((path, f"Invalid value: {go_value(value)}: must be less than 2^63 (a quantity's "
                                 "largest value)"))
