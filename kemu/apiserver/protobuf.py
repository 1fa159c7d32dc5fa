"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) ⇄ kemu's JSON-shaped dicts.

The wire format is the magic `k8s\\0` then a `runtime.Unknown` {1 typeMeta {1 apiVersion, 2 kind}, 2 raw,
3 contentEncoding, 4 contentType} whose `raw` is the object's own message from k8s.io/api's generated.proto.

Why a table-driven wire decoder rather than protobuf-runtime message classes: the JSON shape needs facts that a
.proto does not carry (JSON names of inlined Go structs such as Probe's handler or Volume's source, which Go fields are
pointers or `omitempty`, and the special encodings of Time, IntOrString, Quantity, RawExtension, ExtraValue), so a
table walk is needed either way; decoding straight from the wire into dicts is one pass, has no dependency and no
descriptor pool to build at import time.

MESSAGES holds one entry per message, `"pkg.Name": "NUM jsonName TYPE[*][!|^], ..."`, written from upstream's
generated.proto field numbers and types.go JSON tags. TYPE is a scalar (`s` string, `i` int32/int64, `b` bool, `y`
bytes → base64, `f` double), a special (`T` Time, `MT` MicroTime, `D` Duration, `IS` IntOrString, `Q` Quantity,
`R` RawExtension/FieldsV1 JSON, `L` a string list such as ExtraValue), a map `{K:V}`, or another message. `*` is a
repeated field, `!` a Go pointer or non-omitempty field (a zero value is kept, as JSON keeps it), `^` a Go struct
inlined into its parent's JSON. Go encodes every non-pointer field, so an unflagged scalar with its zero value is
dropped, as the JSON encoding's `omitempty` drops it; a zero (empty) Time decodes to None (JSON `null`).
"""
from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# (apiVersion, message) of every top-level object a body may carry; the kind is the message's name.
ROOTS: tuple[tuple[str, str], ...] = (
    ("v1", "core.Namespace"), ("v1", "core.Node"), ("v1", "core.Pod"), ("v1", "core.Service"),
    ("v1", "core.Endpoints"), ("v1", "core.ConfigMap"), ("v1", "core.Secret"), ("v1", "core.Event"),
    ("v1", "core.ServiceAccount"), ("v1", "core.PersistentVolumeClaim"), ("v1", "core.PersistentVolume"),
    ("v1", "core.ResourceQuota"), ("v1", "core.LimitRange"), ("v1", "core.Binding"), ("v1", "core.PodTemplate"),
    ("v1", "core.ReplicationController"), ("v1", "meta.Status"),
    ("apps/v1", "apps.Deployment"), ("apps/v1", "apps.ReplicaSet"), ("apps/v1", "apps.DaemonSet"),
    ("apps/v1", "apps.StatefulSet"), ("apps/v1", "apps.ControllerRevision"),
    ("batch/v1", "batch.Job"), ("batch/v1", "batch.CronJob"),
    ("policy/v1", "policy.Eviction"), ("policy/v1beta1", "policy.Eviction"),
    ("policy/v1", "policy.PodDisruptionBudget"), ("scheduling.k8s.io/v1", "sched.PriorityClass"),
    ("rbac.authorization.k8s.io/v1", "rbac.Role"), ("rbac.authorization.k8s.io/v1", "rbac.RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "rbac.ClusterRole"), ("rbac.authorization.k8s.io/v1", "rbac.ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "authz.SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "authz.SubjectAccessReview"),
    ("authorization.k8s.io/v1", "authz.LocalSubjectAccessReview"),
    ("authorization.k8s.io/v1", "authz.SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "authn.TokenRequest"), ("authentication.k8s.io/v1", "authn.TokenReview"),
    ("authentication.k8s.io/v1", "authn.SelfSubjectReview"),
    ("networking.k8s.io/v1", "net.Ingress"), ("networking.k8s.io/v1", "net.IngressClass"),
    ("networking.k8s.io/v1", "net.NetworkPolicy"),
    ("storage.k8s.io/v1", "storage.StorageClass"),
    ("discovery.k8s.io/v1", "disc.EndpointSlice"), ("coordination.k8s.io/v1", "coord.Lease"),
    ("autoscaling/v1", "as1.HorizontalPodAutoscaler"), ("autoscaling/v1", "as1.Scale"),
    ("autoscaling/v2", "as2.HorizontalPodAutoscaler"),
)
# Kinds every group version carries (metav1.AddToGroupVersion), whatever apiVersion the client stamps on them.
ANY_VERSION: dict[str, str] = {"DeleteOptions": "meta.DeleteOptions"}

# Generated from k8s.io/api and k8s.io/apimachinery generated.proto (field numbers, types) and types.go (JSON names,
# pointers, omitempty, inlining); only the messages the roots above reach.
MESSAGES: dict[str, str | tuple[str, ...]] = {
    "core.AWSElasticBlockStoreVolumeSource": "1 volumeID s!, 2 fsType s, 3 partition i, 4 readOnly b",
    "core.Affinity": ("1 nodeAffinity core.NodeAffinity!, 2 podAffinity core.PodAffinity!, "
        "3 podAntiAffinity core.PodAntiAffinity!"),
    "core.AppArmorProfile": "1 type s!, 2 localhostProfile s!",
    "core.AttachedVolume": "1 name s!, 2 devicePath s!",
    "core.AzureDiskVolumeSource": ("1 diskName s!, 2 diskURI s!, 3 cachingMode s!, 4 fsType s!, "
        "5 readOnly b!, 6 kind s!"),
    "core.AzureFilePersistentVolumeSource": ("1 secretName s!, 2 shareName s!, 3 readOnly b, "
        "4 secretNamespace s!"),
    "core.AzureFileVolumeSource": "1 secretName s!, 2 shareName s!, 3 readOnly b",
    "core.Binding": "1 metadata meta.ObjectMeta, 2 target core.ObjectReference!",
    "core.CSIPersistentVolumeSource": ("1 driver s!, 2 volumeHandle s!, 3 readOnly b, 4 fsType s, "
        "5 volumeAttributes {s:s}, 6 controllerPublishSecretRef core.SecretReference!, "
        "7 nodeStageSecretRef core.SecretReference!, 8 nodePublishSecretRef core.SecretReference!, "
        "9 controllerExpandSecretRef core.SecretReference!, 10 nodeExpandSecretRef core.SecretReference!"),
    "core.CSIVolumeSource": ("1 driver s!, 2 readOnly b!, 3 fsType s!, 4 volumeAttributes {s:s}, "
        "5 nodePublishSecretRef core.LocalObjectReference!"),
    "core.Capabilities": "1 add s*, 2 drop s*",
    "core.CephFSPersistentVolumeSource": ("1 monitors s*, 2 path s, 3 user s, 4 secretFile s, "
        "5 secretRef core.SecretReference!, 6 readOnly b"),
    "core.CephFSVolumeSource": ("1 monitors s*, 2 path s, 3 user s, 4 secretFile s, "
        "5 secretRef core.LocalObjectReference!, 6 readOnly b"),
    "core.CinderPersistentVolumeSource": ("1 volumeID s!, 2 fsType s, 3 readOnly b, "
        "4 secretRef core.SecretReference!"),
    "core.CinderVolumeSource": ("1 volumeID s!, 2 fsType s, 3 readOnly b, "
        "4 secretRef core.LocalObjectReference!"),
    "core.ClientIPConfig": "1 timeoutSeconds i!",
    "core.ClusterTrustBundleProjection": ("1 name s!, 2 signerName s!, 3 labelSelector meta.LabelSelector!, "
        "5 optional b!, 4 path s!, 6 user i!"),
    "core.ConfigMap": "1 metadata meta.ObjectMeta, 4 immutable b!, 2 data {s:s}, 3 binaryData {s:y}",
    "core.ConfigMapEnvSource": "1 localObjectReference core.LocalObjectReference^, 2 optional b!",
    "core.ConfigMapKeySelector": ("1 localObjectReference core.LocalObjectReference^, 2 key s!, "
        "3 optional b!"),
    "core.ConfigMapNodeConfigSource": ("1 namespace s!, 2 name s!, 3 uid s, 4 resourceVersion s, "
        "5 kubeletConfigKey s!"),
    "core.ConfigMapProjection": ("1 localObjectReference core.LocalObjectReference^, 2 items core.KeyToPath*, "
        "4 optional b!"),
    "core.ConfigMapVolumeSource": ("1 localObjectReference core.LocalObjectReference^, "
        "2 items core.KeyToPath*, 3 defaultMode i!, 4 optional b!, 5 defaultUser i!"),
    "core.Container": ("1 name s!, 2 image s, 3 command s*, 4 args s*, 5 workingDir s, "
        "6 ports core.ContainerPort*, 19 envFrom core.EnvFromSource*, 7 env core.EnvVar*, "
        "8 resources core.ResourceRequirements, 23 resizePolicy core.ContainerResizePolicy*, "
        "24 restartPolicy s!, 25 restartPolicyRules core.ContainerRestartRule*, "
        "9 volumeMounts core.VolumeMount*, 21 volumeDevices core.VolumeDevice*, "
        "10 livenessProbe core.Probe!, 11 readinessProbe core.Probe!, 22 startupProbe core.Probe!, "
        "12 lifecycle core.Lifecycle!, 13 terminationMessagePath s, 20 terminationMessagePolicy s, "
        "14 imagePullPolicy s, 15 securityContext core.SecurityContext!, 16 stdin b, 17 stdinOnce b, "
        "18 tty b"),
    "core.ContainerExtendedResourceRequest": "1 containerName s!, 2 resourceName s!, 3 requestName s!",
    "core.ContainerImage": "1 names s*, 2 sizeBytes i",
    "core.ContainerPort": "1 name s, 2 hostPort i, 3 containerPort i!, 4 protocol s, 5 hostIP s",
    "core.ContainerResizePolicy": "1 resourceName s!, 2 restartPolicy s!",
    "core.ContainerRestartRule": "1 action s, 2 exitCodes core.ContainerRestartRuleOnExitCodes",
    "core.ContainerRestartRuleOnExitCodes": "1 operator s, 2 values i*",
    "core.ContainerState": ("1 waiting core.ContainerStateWaiting!, 2 running core.ContainerStateRunning!, "
        "3 terminated core.ContainerStateTerminated!"),
    "core.ContainerStateRunning": "1 startedAt T",
    "core.ContainerStateTerminated": ("1 exitCode i!, 2 signal i, 3 reason s, 4 message s, 5 startedAt T, "
        "6 finishedAt T, 7 containerID s"),
    "core.ContainerStateWaiting": "1 reason s, 2 message s",
    "core.ContainerStatus": ("1 name s!, 2 state core.ContainerState, 3 lastState core.ContainerState, "
        "4 ready b!, 5 restartCount i!, 6 image s!, 7 imageID s!, 8 containerID s, 9 started b!, "
        "10 allocatedResources {s:Q}, 11 resources core.ResourceRequirements!, "
        "12 volumeMounts core.VolumeMountStatus*, 13 user core.ContainerUser!, "
        "14 allocatedResourcesStatus core.ResourceStatus*, 15 stopSignal s!"),
    "core.ContainerUser": "1 linux core.LinuxContainerUser!",
    "core.DaemonEndpoint": "1 Port i!",
    "core.DownwardAPIProjection": "1 items core.DownwardAPIVolumeFile*",
    "core.DownwardAPIVolumeFile": ("1 path s!, 2 fieldRef core.ObjectFieldSelector!, "
        "3 resourceFieldRef core.ResourceFieldSelector!, 4 mode i!, 5 user i!"),
    "core.DownwardAPIVolumeSource": ("1 items core.DownwardAPIVolumeFile*, 2 defaultMode i!, "
        "3 defaultUser i!"),
    "core.EmptyDirVolumeSource": "1 medium s, 2 sizeLimit Q!, 3 mode i!",
    "core.EndpointAddress": "1 ip s!, 3 hostname s, 4 nodeName s!, 2 targetRef core.ObjectReference!",
    "core.EndpointPort": "1 name s, 2 port i!, 3 protocol s, 4 appProtocol s!",
    "core.EndpointSubset": ("1 addresses core.EndpointAddress*, 2 notReadyAddresses core.EndpointAddress*, "
        "3 ports core.EndpointPort*"),
    "core.Endpoints": "1 metadata meta.ObjectMeta, 2 subsets core.EndpointSubset*",
    "core.EnvFromSource": ("1 prefix s, 2 configMapRef core.ConfigMapEnvSource!, "
        "3 secretRef core.SecretEnvSource!"),
    "core.EnvVar": "1 name s!, 2 value s, 3 valueFrom core.EnvVarSource!",
    "core.EnvVarSource": ("1 fieldRef core.ObjectFieldSelector!, "
        "2 resourceFieldRef core.ResourceFieldSelector!, 3 configMapKeyRef core.ConfigMapKeySelector!, "
        "4 secretKeyRef core.SecretKeySelector!, 5 fileKeyRef core.FileKeySelector!"),
    "core.EphemeralContainer": ("1 ephemeralContainerCommon core.EphemeralContainerCommon^, "
        "2 targetContainerName s"),
    "core.EphemeralContainerCommon": ("1 name s!, 2 image s, 3 command s*, 4 args s*, 5 workingDir s, "
        "6 ports core.ContainerPort*, 19 envFrom core.EnvFromSource*, 7 env core.EnvVar*, "
        "8 resources core.ResourceRequirements, 23 resizePolicy core.ContainerResizePolicy*, "
        "24 restartPolicy s!, 25 restartPolicyRules core.ContainerRestartRule*, "
        "9 volumeMounts core.VolumeMount*, 21 volumeDevices core.VolumeDevice*, "
        "10 livenessProbe core.Probe!, 11 readinessProbe core.Probe!, 22 startupProbe core.Probe!, "
        "12 lifecycle core.Lifecycle!, 13 terminationMessagePath s, 20 terminationMessagePolicy s, "
        "14 imagePullPolicy s, 15 securityContext core.SecurityContext!, 16 stdin b, 17 stdinOnce b, "
        "18 tty b"),
    "core.EphemeralVolumeSource": "1 volumeClaimTemplate core.PersistentVolumeClaimTemplate!",
    "core.Event": ("1 metadata meta.ObjectMeta!, 2 involvedObject core.ObjectReference!, 3 reason s, "
        "4 message s, 5 source core.EventSource, 6 firstTimestamp T, 7 lastTimestamp T, 8 count i, 9 type s, "
        "10 eventTime MT, 11 series core.EventSeries!, 12 action s, 13 related core.ObjectReference!, "
        "14 reportingComponent s!, 15 reportingInstance s!"),
    "core.EventSeries": "1 count i, 2 lastObservedTime MT",
    "core.EventSource": "1 component s, 2 host s",
    "core.EvictionResponder": "1 name s!, 2 priority i!",
    "core.ExecAction": "1 command s*",
    "core.FCVolumeSource": "1 targetWWNs s*, 2 lun i!, 3 fsType s, 4 readOnly b, 5 wwids s*",
    "core.FileKeySelector": "1 volumeName s!, 2 path s!, 3 key s!, 4 optional b!",
    "core.FlexPersistentVolumeSource": ("1 driver s!, 2 fsType s, 3 secretRef core.SecretReference!, "
        "4 readOnly b, 5 options {s:s}"),
    "core.FlexVolumeSource": ("1 driver s!, 2 fsType s, 3 secretRef core.LocalObjectReference!, 4 readOnly b, "
        "5 options {s:s}"),
    "core.FlockerVolumeSource": "1 datasetName s, 2 datasetUUID s",
    "core.GCEPersistentDiskVolumeSource": "1 pdName s!, 2 fsType s, 3 partition i, 4 readOnly b",
    "core.GRPCAction": "1 port i!, 2 service s!, 3 mode s!",
    "core.GitRepoVolumeSource": "1 repository s!, 2 revision s, 3 directory s",
    "core.GlusterfsPersistentVolumeSource": ("1 endpoints s!, 2 path s!, 3 readOnly b, "
        "4 endpointsNamespace s!"),
    "core.GlusterfsVolumeSource": "1 endpoints s!, 2 path s!, 3 readOnly b",
    "core.HTTPGetAction": ("1 path s, 2 port IS!, 3 host s, 4 scheme s, 5 httpHeaders core.HTTPHeader*, "
        "6 protocol s!"),
    "core.HTTPHeader": "1 name s!, 2 value s!",
    "core.HostAlias": "1 ip s!, 2 hostnames s*",
    "core.HostIP": "1 ip s!",
    "core.HostPathVolumeSource": "1 path s!, 2 type s!",
    "core.ISCSIPersistentVolumeSource": ("1 targetPortal s!, 2 iqn s!, 3 lun i!, 4 iscsiInterface s, "
        "5 fsType s, 6 readOnly b, 7 portals s*, 8 chapAuthDiscovery b, 11 chapAuthSession b, "
        "10 secretRef core.SecretReference!, 12 initiatorName s!"),
    "core.ISCSIVolumeSource": ("1 targetPortal s!, 2 iqn s!, 3 lun i!, 4 iscsiInterface s, 5 fsType s, "
        "6 readOnly b, 7 portals s*, 8 chapAuthDiscovery b, 11 chapAuthSession b, "
        "10 secretRef core.LocalObjectReference!, 12 initiatorName s!"),
    "core.ImageVolumeSource": "1 reference s, 2 pullPolicy s",
    "core.ImageVolumeStatus": "1 imageRef s",
    "core.KeyToPath": "1 key s!, 2 path s!, 3 mode i!, 4 user i!",
    "core.Lifecycle": ("1 postStart core.LifecycleHandler!, 2 preStop core.LifecycleHandler!, "
        "3 stopSignal s!"),
    "core.LifecycleHandler": ("1 exec core.ExecAction!, 2 httpGet core.HTTPGetAction!, "
        "3 tcpSocket core.TCPSocketAction!, 4 sleep core.SleepAction!"),
    "core.LimitRange": "1 metadata meta.ObjectMeta, 2 spec core.LimitRangeSpec",
    "core.LimitRangeItem": ("1 type s!, 2 max {s:Q}, 3 min {s:Q}, 4 default {s:Q}, 5 defaultRequest {s:Q}, "
        "6 maxLimitRequestRatio {s:Q}"),
    "core.LimitRangeSpec": "1 limits core.LimitRangeItem*",
    "core.LinuxContainerUser": "1 uid i!, 2 gid i!, 3 supplementalGroups i*",
    "core.LoadBalancerIngress": "1 ip s, 2 hostname s, 3 ipMode s!, 4 ports core.PortStatus*",
    "core.LoadBalancerStatus": "1 ingress core.LoadBalancerIngress*",
    "core.LocalObjectReference": "1 name s",
    "core.LocalVolumeSource": "1 path s!, 2 fsType s!",
    "core.ModifyVolumeStatus": "1 targetVolumeAttributesClassName s, 2 status s!",
    "core.NFSVolumeSource": "1 server s!, 2 path s!, 3 readOnly b",
    "core.Namespace": "1 metadata meta.ObjectMeta, 2 spec core.NamespaceSpec, 3 status core.NamespaceStatus",
    "core.NamespaceCondition": "1 type s!, 2 status s!, 4 lastTransitionTime T, 5 reason s, 6 message s",
    "core.NamespaceSpec": "1 finalizers s*",
    "core.NamespaceStatus": "1 phase s, 2 conditions core.NamespaceCondition*",
    "core.Node": "1 metadata meta.ObjectMeta, 2 spec core.NodeSpec, 3 status core.NodeStatus",
    "core.NodeAddress": "1 type s!, 2 address s!",
    "core.NodeAffinity": ("1 requiredDuringSchedulingIgnoredDuringExecution core.NodeSelector!, "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.PreferredSchedulingTerm*"),
    "core.NodeAllocatableMappedResources": "1 name s!, 2 quantity Q!",
    "core.NodeAllocatableOverheadResources": "1 name s!, 2 perPod Q!, 3 perContainer Q!",
    "core.NodeAllocatableResourceClaimStatus": ("1 resourceClaimName s!, 2 containers s*, "
        "4 mapping core.NodeAllocatableMappedResources*, 5 overhead core.NodeAllocatableOverheadResources*"),
    "core.NodeCondition": ("1 type s!, 2 status s!, 3 lastHeartbeatTime T, 4 lastTransitionTime T, "
        "5 reason s, 6 message s"),
    "core.NodeConfigSource": "2 configMap core.ConfigMapNodeConfigSource!",
    "core.NodeConfigStatus": ("1 assigned core.NodeConfigSource!, 2 active core.NodeConfigSource!, "
        "3 lastKnownGood core.NodeConfigSource!, 4 error s"),
    "core.NodeDaemonEndpoints": "1 kubeletEndpoint core.DaemonEndpoint",
    "core.NodeFeatures": "1 supplementalGroupsPolicy b!",
    "core.NodePodPreemptionPolicy": "1 disableResizePreemption s*",
    "core.NodeRuntimeHandler": "1 name s!, 2 features core.NodeRuntimeHandlerFeatures!",
    "core.NodeRuntimeHandlerFeatures": "1 recursiveReadOnlyMounts b!, 2 userNamespaces b!",
    "core.NodeSelector": "1 nodeSelectorTerms core.NodeSelectorTerm*",
    "core.NodeSelectorRequirement": "1 key s!, 2 operator s!, 3 values s*",
    "core.NodeSelectorTerm": ("1 matchExpressions core.NodeSelectorRequirement*, "
        "2 matchFields core.NodeSelectorRequirement*"),
    "core.NodeSpec": ("1 podCIDR s, 7 podCIDRs s*, 3 providerID s, 4 unschedulable b, 5 taints core.Taint*, "
        "6 configSource core.NodeConfigSource!, 2 externalID s, "
        "8 podPreemptionPolicy core.NodePodPreemptionPolicy!"),
    "core.NodeStatus": ("1 capacity {s:Q}, 2 allocatable {s:Q}, 3 phase s, 4 conditions core.NodeCondition*, "
        "5 addresses core.NodeAddress*, 6 daemonEndpoints core.NodeDaemonEndpoints, "
        "7 nodeInfo core.NodeSystemInfo, 8 images core.ContainerImage*, 9 volumesInUse s*, "
        "10 volumesAttached core.AttachedVolume*, 11 config core.NodeConfigStatus!, "
        "12 runtimeHandlers core.NodeRuntimeHandler*, 13 features core.NodeFeatures!, "
        "14 declaredFeatures s*"),
    "core.NodeSwapStatus": "1 capacity i!",
    "core.NodeSystemInfo": ("1 machineID s!, 2 systemUUID s!, 3 bootID s!, 4 kernelVersion s!, 5 osImage s!, "
        "6 containerRuntimeVersion s!, 7 kubeletVersion s!, 8 kubeProxyVersion s!, 9 operatingSystem s!, "
        "10 architecture s!, 11 swap core.NodeSwapStatus!"),
    "core.ObjectFieldSelector": "1 apiVersion s, 2 fieldPath s!",
    "core.ObjectReference": ("1 kind s, 2 namespace s, 3 name s, 4 uid s, 5 apiVersion s, "
        "6 resourceVersion s, 7 fieldPath s"),
    "core.PersistentVolume": ("1 metadata meta.ObjectMeta, 2 spec core.PersistentVolumeSpec, "
        "3 status core.PersistentVolumeStatus"),
    "core.PersistentVolumeClaim": ("1 metadata meta.ObjectMeta, 2 spec core.PersistentVolumeClaimSpec, "
        "3 status core.PersistentVolumeClaimStatus"),
    "core.PersistentVolumeClaimCondition": ("1 type s!, 2 status s!, 3 lastProbeTime T, "
        "4 lastTransitionTime T, 5 reason s, 6 message s"),
    "core.PersistentVolumeClaimSpec": ("1 accessModes s*, 4 selector meta.LabelSelector!, "
        "2 resources core.VolumeResourceRequirements, 3 volumeName s, 5 storageClassName s!, "
        "6 volumeMode s!, 7 dataSource core.TypedLocalObjectReference!, "
        "8 dataSourceRef core.TypedObjectReference!, 9 volumeAttributesClassName s!"),
    "core.PersistentVolumeClaimStatus": ("1 phase s, 2 accessModes s*, 3 capacity {s:Q}, "
        "4 conditions core.PersistentVolumeClaimCondition*, 5 allocatedResources {s:Q}, "
        "7 allocatedResourceStatuses {s:s}, 8 currentVolumeAttributesClassName s!, "
        "9 modifyVolumeStatus core.ModifyVolumeStatus!, 10 healthStatus core.VolumeHealthStatus!"),
    "core.PersistentVolumeClaimTemplate": ("1 metadata meta.ObjectMeta, "
        "2 spec core.PersistentVolumeClaimSpec!"),
    "core.PersistentVolumeClaimVolumeSource": "1 claimName s!, 2 readOnly b",
    "core.PersistentVolumeSource": ("1 gcePersistentDisk core.GCEPersistentDiskVolumeSource!, "
        "2 awsElasticBlockStore core.AWSElasticBlockStoreVolumeSource!, "
        "3 hostPath core.HostPathVolumeSource!, 4 glusterfs core.GlusterfsPersistentVolumeSource!, "
        "5 nfs core.NFSVolumeSource!, 6 rbd core.RBDPersistentVolumeSource!, "
        "7 iscsi core.ISCSIPersistentVolumeSource!, 8 cinder core.CinderPersistentVolumeSource!, "
        "9 cephfs core.CephFSPersistentVolumeSource!, 10 fc core.FCVolumeSource!, "
        "11 flocker core.FlockerVolumeSource!, 12 flexVolume core.FlexPersistentVolumeSource!, "
        "13 azureFile core.AzureFilePersistentVolumeSource!, "
        "14 vsphereVolume core.VsphereVirtualDiskVolumeSource!, 15 quobyte core.QuobyteVolumeSource!, "
        "16 azureDisk core.AzureDiskVolumeSource!, "
        "17 photonPersistentDisk core.PhotonPersistentDiskVolumeSource!, "
        "18 portworxVolume core.PortworxVolumeSource!, 19 scaleIO core.ScaleIOPersistentVolumeSource!, "
        "20 local core.LocalVolumeSource!, 21 storageos core.StorageOSPersistentVolumeSource!, "
        "22 csi core.CSIPersistentVolumeSource!"),
    "core.PersistentVolumeSpec": ("1 capacity {s:Q}, 2 persistentVolumeSource core.PersistentVolumeSource^, "
        "3 accessModes s*, 4 claimRef core.ObjectReference!, 5 persistentVolumeReclaimPolicy s, "
        "6 storageClassName s, 7 mountOptions s*, 8 volumeMode s!, 9 nodeAffinity core.VolumeNodeAffinity!, "
        "10 volumeAttributesClassName s!"),
    "core.PersistentVolumeStatus": "1 phase s, 2 message s, 3 reason s, 4 lastPhaseTransitionTime T!",
    "core.PhotonPersistentDiskVolumeSource": "1 pdID s!, 2 fsType s",
    "core.Pod": "1 metadata meta.ObjectMeta, 2 spec core.PodSpec, 3 status core.PodStatus",
    "core.PodAffinity": ("1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*, "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"),
    "core.PodAffinityTerm": ("1 labelSelector meta.LabelSelector!, 2 namespaces s*, 3 topologyKey s!, "
        "4 namespaceSelector meta.LabelSelector!, 5 matchLabelKeys s*, 6 mismatchLabelKeys s*"),
    "core.PodAntiAffinity": ("1 requiredDuringSchedulingIgnoredDuringExecution core.PodAffinityTerm*, "
        "2 preferredDuringSchedulingIgnoredDuringExecution core.WeightedPodAffinityTerm*"),
    "core.PodCertificateProjection": ("1 signerName s, 2 keyType s, 3 maxExpirationSeconds i!, "
        "4 credentialBundlePath s, 5 keyPath s, 6 certificateChainPath s, 7 userAnnotations {s:s}, "
        "8 user i!"),
    "core.PodCondition": ("1 type s!, 7 observedGeneration i, 2 status s!, 3 lastProbeTime T, "
        "4 lastTransitionTime T, 5 reason s, 6 message s"),
    "core.PodDNSConfig": "1 nameservers s*, 2 searches s*, 3 options core.PodDNSConfigOption*",
    "core.PodDNSConfigOption": "1 name s, 2 value s!",
    "core.PodExtendedResourceClaimStatus": ("1 requestMappings core.ContainerExtendedResourceRequest*, "
        "2 resourceClaimName s!"),
    "core.PodIP": "1 ip s!",
    "core.PodOS": "1 name s!",
    "core.PodReadinessGate": "1 conditionType s!",
    "core.PodResourceClaim": "1 name s!, 3 resourceClaimName s!, 4 resourceClaimTemplateName s!",
    "core.PodResourceClaimStatus": "1 name s!, 2 resourceClaimName s!",
    "core.PodSchedulingGate": "1 name s!",
    "core.PodSchedulingGroup": "1 podGroupName s!",
    "core.PodSecurityContext": ("1 seLinuxOptions core.SELinuxOptions!, "
        "8 windowsOptions core.WindowsSecurityContextOptions!, 2 runAsUser i!, 6 runAsGroup i!, "
        "3 runAsNonRoot b!, 4 supplementalGroups i*, 12 supplementalGroupsPolicy s!, 5 fsGroup i!, "
        "7 sysctls core.Sysctl*, 9 fsGroupChangePolicy s!, 10 seccompProfile core.SeccompProfile!, "
        "11 appArmorProfile core.AppArmorProfile!, 13 seLinuxChangePolicy s!"),
    "core.PodSpec": ("1 volumes core.Volume*, 20 initContainers core.Container*, "
        "2 containers core.Container*, 34 ephemeralContainers core.EphemeralContainer*, 3 restartPolicy s, "
        "4 terminationGracePeriodSeconds i!, 5 activeDeadlineSeconds i!, 6 dnsPolicy s, "
        "7 nodeSelector {s:s}, 8 serviceAccountName s, 9 serviceAccount s, "
        "21 automountServiceAccountToken b!, 10 nodeName s, 11 hostNetwork b, 12 hostPID b, 13 hostIPC b, "
        "27 shareProcessNamespace b!, 14 securityContext core.PodSecurityContext!, "
        "15 imagePullSecrets core.LocalObjectReference*, 16 hostname s, 17 subdomain s, "
        "18 affinity core.Affinity!, 19 schedulerName s, 22 tolerations core.Toleration*, "
        "23 hostAliases core.HostAlias*, 24 priorityClassName s, 25 priority i!, "
        "26 dnsConfig core.PodDNSConfig!, 28 readinessGates core.PodReadinessGate*, 29 runtimeClassName s!, "
        "30 enableServiceLinks b!, 31 preemptionPolicy s!, 32 overhead {s:Q}, "
        "33 topologySpreadConstraints core.TopologySpreadConstraint*, 35 setHostnameAsFQDN b!, "
        "36 os core.PodOS!, 37 hostUsers b!, 38 schedulingGates core.PodSchedulingGate*, "
        "39 resourceClaims core.PodResourceClaim*, 40 resources core.ResourceRequirements!, "
        "41 hostnameOverride s!, 43 schedulingGroup core.PodSchedulingGroup!, "
        "44 evictionResponders core.EvictionResponder*"),
    "core.PodStatus": ("17 observedGeneration i, 1 phase s, 2 conditions core.PodCondition*, 3 message s, "
        "4 reason s, 11 nominatedNodeName s, 5 hostIP s, 16 hostIPs core.HostIP*, 6 podIP s, "
        "12 podIPs core.PodIP*, 7 startTime T!, 10 initContainerStatuses core.ContainerStatus*, "
        "8 containerStatuses core.ContainerStatus*, 9 qosClass s, "
        "13 ephemeralContainerStatuses core.ContainerStatus*, 14 resize s, "
        "15 resourceClaimStatuses core.PodResourceClaimStatus*, "
        "18 extendedResourceClaimStatus core.PodExtendedResourceClaimStatus!, 19 allocatedResources {s:Q}, "
        "20 resources core.ResourceRequirements!, "
        "21 nodeAllocatableResourceClaimStatuses core.NodeAllocatableResourceClaimStatus*, "
        "22 volumeHealth core.PodVolumeHealth*"),
    "core.PodTemplate": "1 metadata meta.ObjectMeta, 2 template core.PodTemplateSpec",
    "core.PodTemplateSpec": "1 metadata meta.ObjectMeta, 2 spec core.PodSpec",
    "core.PodVolumeHealth": ("1 name s!, 2 healthConditions core.VolumeHealthCondition*, "
        "3 lastTransitionTime T"),
    "core.PortStatus": "1 port i!, 2 protocol s!, 3 error s!",
    "core.PortworxVolumeSource": "1 volumeID s!, 2 fsType s, 3 readOnly b",
    "core.PreferredSchedulingTerm": "1 weight i!, 2 preference core.NodeSelectorTerm!",
    "core.Probe": ("1 handler core.ProbeHandler^, 2 initialDelaySeconds i, 3 timeoutSeconds i, "
        "4 periodSeconds i, 5 successThreshold i, 6 failureThreshold i, 7 terminationGracePeriodSeconds i!"),
    "core.ProbeHandler": ("1 exec core.ExecAction!, 2 httpGet core.HTTPGetAction!, "
        "3 tcpSocket core.TCPSocketAction!, 4 grpc core.GRPCAction!"),
    "core.ProjectedVolumeSource": "1 sources core.VolumeProjection*, 2 defaultMode i!, 3 defaultUser i!",
    "core.QuobyteVolumeSource": "1 registry s!, 2 volume s!, 3 readOnly b, 4 user s, 5 group s, 6 tenant s",
    "core.RBDPersistentVolumeSource": ("1 monitors s*, 2 image s!, 3 fsType s, 4 pool s, 5 user s, "
        "6 keyring s, 7 secretRef core.SecretReference!, 8 readOnly b"),
    "core.RBDVolumeSource": ("1 monitors s*, 2 image s!, 3 fsType s, 4 pool s, 5 user s, 6 keyring s, "
        "7 secretRef core.LocalObjectReference!, 8 readOnly b"),
    "core.ReplicationController": ("1 metadata meta.ObjectMeta, 2 spec core.ReplicationControllerSpec, "
        "3 status core.ReplicationControllerStatus"),
    "core.ReplicationControllerCondition": ("1 type s!, 2 status s!, 3 lastTransitionTime T, 4 reason s, "
        "5 message s"),
    "core.ReplicationControllerSpec": ("1 replicas i!, 4 minReadySeconds i, 2 selector {s:s}, "
        "3 template core.PodTemplateSpec!"),
    "core.ReplicationControllerStatus": ("1 replicas i!, 2 fullyLabeledReplicas i, 4 readyReplicas i, "
        "5 availableReplicas i, 3 observedGeneration i, 6 conditions core.ReplicationControllerCondition*"),
    "core.ResourceClaim": "1 name s!, 2 request s",
    "core.ResourceFieldSelector": "1 containerName s, 2 resource s!, 3 divisor Q",
    "core.ResourceHealth": "1 resourceID s!, 2 health s, 6 message s!",
    "core.ResourceQuota": ("1 metadata meta.ObjectMeta, 2 spec core.ResourceQuotaSpec, "
        "3 status core.ResourceQuotaStatus"),
    "core.ResourceQuotaSpec": "1 hard {s:Q}, 2 scopes s*, 3 scopeSelector core.ScopeSelector!",
    "core.ResourceQuotaStatus": "1 hard {s:Q}, 2 used {s:Q}",
    "core.ResourceRequirements": "1 limits {s:Q}, 2 requests {s:Q}, 3 claims core.ResourceClaim*",
    "core.ResourceStatus": "1 name s!, 2 resources core.ResourceHealth*",
    "core.SELinuxOptions": "1 user s, 2 role s, 3 type s, 4 level s",
    "core.ScaleIOPersistentVolumeSource": ("1 gateway s!, 2 system s!, 3 secretRef core.SecretReference!, "
        "4 sslEnabled b, 5 protectionDomain s, 6 storagePool s, 7 storageMode s, 8 volumeName s, 9 fsType s, "
        "10 readOnly b"),
    "core.ScaleIOVolumeSource": ("1 gateway s!, 2 system s!, 3 secretRef core.LocalObjectReference!, "
        "4 sslEnabled b, 5 protectionDomain s, 6 storagePool s, 7 storageMode s, 8 volumeName s, 9 fsType s, "
        "10 readOnly b"),
    "core.ScopeSelector": "1 matchExpressions core.ScopedResourceSelectorRequirement*",
    "core.ScopedResourceSelectorRequirement": "1 scopeName s!, 2 operator s!, 3 values s*",
    "core.SeccompProfile": "1 type s!, 2 localhostProfile s!",
    "core.Secret": "1 metadata meta.ObjectMeta, 5 immutable b!, 2 data {s:y}, 4 stringData {s:s}, 3 type s",
    "core.SecretEnvSource": "1 localObjectReference core.LocalObjectReference^, 2 optional b!",
    "core.SecretKeySelector": "1 localObjectReference core.LocalObjectReference^, 2 key s!, 3 optional b!",
    "core.SecretProjection": ("1 localObjectReference core.LocalObjectReference^, 2 items core.KeyToPath*, "
        "4 optional b!"),
    "core.SecretReference": "1 name s, 2 namespace s",
    "core.SecretVolumeSource": ("1 secretName s, 2 items core.KeyToPath*, 3 defaultMode i!, 4 optional b!, "
        "5 defaultUser i!"),
    "core.SecurityContext": ("1 capabilities core.Capabilities!, 2 privileged b!, "
        "3 seLinuxOptions core.SELinuxOptions!, 10 windowsOptions core.WindowsSecurityContextOptions!, "
        "4 runAsUser i!, 8 runAsGroup i!, 5 runAsNonRoot b!, 6 readOnlyRootFilesystem b!, "
        "7 allowPrivilegeEscalation b!, 9 procMount s!, 11 seccompProfile core.SeccompProfile!, "
        "12 appArmorProfile core.AppArmorProfile!"),
    "core.Service": "1 metadata meta.ObjectMeta, 2 spec core.ServiceSpec, 3 status core.ServiceStatus",
    "core.ServiceAccount": ("1 metadata meta.ObjectMeta, 2 secrets core.ObjectReference*, "
        "3 imagePullSecrets core.LocalObjectReference*, 4 automountServiceAccountToken b!"),
    "core.ServiceAccountTokenProjection": "1 audience s, 2 expirationSeconds i!, 3 path s!, 4 user i!",
    "core.ServicePort": "1 name s, 2 protocol s, 6 appProtocol s!, 3 port i!, 4 targetPort IS, 5 nodePort i",
    "core.ServiceSpec": ("1 ports core.ServicePort*, 2 selector {s:s}, 3 clusterIP s, 18 clusterIPs s*, "
        "4 type s, 5 externalIPs s*, 7 sessionAffinity s, 8 loadBalancerIP s, 9 loadBalancerSourceRanges s*, "
        "10 externalName s, 11 externalTrafficPolicy s, 12 healthCheckNodePort i, "
        "13 publishNotReadyAddresses b, 14 sessionAffinityConfig core.SessionAffinityConfig!, "
        "19 ipFamilies s*, 17 ipFamilyPolicy s!, 20 allocateLoadBalancerNodePorts b!, "
        "21 loadBalancerClass s!, 22 internalTrafficPolicy s!, 23 trafficDistribution s!"),
    "core.ServiceStatus": "1 loadBalancer core.LoadBalancerStatus, 2 conditions meta.Condition*",
    "core.SessionAffinityConfig": "1 clientIP core.ClientIPConfig!",
    "core.SleepAction": "1 seconds i!",
    "core.StorageOSPersistentVolumeSource": ("1 volumeName s, 2 volumeNamespace s, 3 fsType s, 4 readOnly b, "
        "5 secretRef core.ObjectReference!"),
    "core.StorageOSVolumeSource": ("1 volumeName s, 2 volumeNamespace s, 3 fsType s, 4 readOnly b, "
        "5 secretRef core.LocalObjectReference!"),
    "core.Sysctl": "1 name s!, 2 value s!",
    "core.TCPSocketAction": "1 port IS!, 2 host s",
    "core.Taint": "1 key s!, 2 value s, 3 effect s!, 4 timeAdded T!",
    "core.Toleration": "1 key s, 2 operator s, 3 value s, 4 effect s, 5 tolerationSeconds i!",
    "core.TopologySpreadConstraint": ("1 maxSkew i!, 2 topologyKey s!, 3 whenUnsatisfiable s!, "
        "4 labelSelector meta.LabelSelector!, 5 minDomains i!, 6 nodeAffinityPolicy s!, "
        "7 nodeTaintsPolicy s!, 8 matchLabelKeys s*"),
    "core.TypedLocalObjectReference": "1 apiGroup s!, 2 kind s!, 3 name s!",
    "core.TypedObjectReference": "1 apiGroup s!, 2 kind s!, 3 name s!, 4 namespace s!",
    "core.Volume": "1 name s!, 2 volumeSource core.VolumeSource^",
    "core.VolumeDevice": "1 name s!, 2 devicePath s!",
    "core.VolumeHealthCondition": "1 status s!, 2 reason s!, 3 message s",
    "core.VolumeHealthStatus": "1 healthConditions core.VolumeHealthCondition*, 2 lastTransitionTime T",
    "core.VolumeMount": ("1 name s!, 2 readOnly b, 7 recursiveReadOnly s!, 3 mountPath s!, 4 subPath s, "
        "5 mountPropagation s!, 6 subPathExpr s, 8 bindMountOptions s*"),
    "core.VolumeMountStatus": ("1 name s!, 2 mountPath s!, 3 readOnly b, 4 recursiveReadOnly s!, "
        "5 volumeStatus core.VolumeStatus!"),
    "core.VolumeNodeAffinity": "1 required core.NodeSelector!",
    "core.VolumeProjection": ("1 secret core.SecretProjection!, 2 downwardAPI core.DownwardAPIProjection!, "
        "3 configMap core.ConfigMapProjection!, 4 serviceAccountToken core.ServiceAccountTokenProjection!, "
        "5 clusterTrustBundle core.ClusterTrustBundleProjection!, "
        "6 podCertificate core.PodCertificateProjection!"),
    "core.VolumeResourceRequirements": "1 limits {s:Q}, 2 requests {s:Q}",
    "core.VolumeSource": ("1 hostPath core.HostPathVolumeSource!, 2 emptyDir core.EmptyDirVolumeSource!, "
        "3 gcePersistentDisk core.GCEPersistentDiskVolumeSource!, "
        "4 awsElasticBlockStore core.AWSElasticBlockStoreVolumeSource!, 5 gitRepo core.GitRepoVolumeSource!, "
        "6 secret core.SecretVolumeSource!, 7 nfs core.NFSVolumeSource!, 8 iscsi core.ISCSIVolumeSource!, "
        "9 glusterfs core.GlusterfsVolumeSource!, "
        "10 persistentVolumeClaim core.PersistentVolumeClaimVolumeSource!, 11 rbd core.RBDVolumeSource!, "
        "12 flexVolume core.FlexVolumeSource!, 13 cinder core.CinderVolumeSource!, "
        "14 cephfs core.CephFSVolumeSource!, 15 flocker core.FlockerVolumeSource!, "
        "16 downwardAPI core.DownwardAPIVolumeSource!, 17 fc core.FCVolumeSource!, "
        "18 azureFile core.AzureFileVolumeSource!, 19 configMap core.ConfigMapVolumeSource!, "
        "20 vsphereVolume core.VsphereVirtualDiskVolumeSource!, 21 quobyte core.QuobyteVolumeSource!, "
        "22 azureDisk core.AzureDiskVolumeSource!, "
        "23 photonPersistentDisk core.PhotonPersistentDiskVolumeSource!, "
        "26 projected core.ProjectedVolumeSource!, 24 portworxVolume core.PortworxVolumeSource!, "
        "25 scaleIO core.ScaleIOVolumeSource!, 27 storageos core.StorageOSVolumeSource!, "
        "28 csi core.CSIVolumeSource!, 29 ephemeral core.EphemeralVolumeSource!, "
        "30 image core.ImageVolumeSource!"),
    "core.VolumeStatus": "1 image core.ImageVolumeStatus!",
    "core.VsphereVirtualDiskVolumeSource": ("1 volumePath s!, 2 fsType s, 3 storagePolicyName s, "
        "4 storagePolicyID s"),
    "core.WeightedPodAffinityTerm": "1 weight i!, 2 podAffinityTerm core.PodAffinityTerm!",
    "core.WindowsSecurityContextOptions": ("1 gmsaCredentialSpecName s!, 2 gmsaCredentialSpec s!, "
        "3 runAsUserName s!, 4 hostProcess b!"),
    "apps.ControllerRevision": "1 metadata meta.ObjectMeta, 2 data R!, 3 revision i!",
    "apps.DaemonSet": "1 metadata meta.ObjectMeta, 2 spec apps.DaemonSetSpec, 3 status apps.DaemonSetStatus",
    "apps.DaemonSetCondition": "1 type s!, 2 status s!, 3 lastTransitionTime T, 4 reason s, 5 message s",
    "apps.DaemonSetSpec": ("1 selector meta.LabelSelector!, 2 template core.PodTemplateSpec!, "
        "3 updateStrategy apps.DaemonSetUpdateStrategy, 4 minReadySeconds i, 6 revisionHistoryLimit i!"),
    "apps.DaemonSetStatus": ("1 currentNumberScheduled i!, 2 numberMisscheduled i!, "
        "3 desiredNumberScheduled i!, 4 numberReady i!, 5 observedGeneration i, 6 updatedNumberScheduled i, "
        "7 numberAvailable i, 8 numberUnavailable i, 9 collisionCount i!, "
        "10 conditions apps.DaemonSetCondition*"),
    "apps.DaemonSetUpdateStrategy": "1 type s, 2 rollingUpdate apps.RollingUpdateDaemonSet!",
    "apps.Deployment": ("1 metadata meta.ObjectMeta, 2 spec apps.DeploymentSpec, "
        "3 status apps.DeploymentStatus"),
    "apps.DeploymentCondition": ("1 type s!, 2 status s!, 6 lastUpdateTime T, 7 lastTransitionTime T, "
        "4 reason s, 5 message s"),
    "apps.DeploymentSpec": ("1 replicas i!, 2 selector meta.LabelSelector!, 3 template core.PodTemplateSpec!, "
        "4 strategy apps.DeploymentStrategy, 5 minReadySeconds i, 6 revisionHistoryLimit i!, 7 paused b, "
        "9 progressDeadlineSeconds i!"),
    "apps.DeploymentStatus": ("1 observedGeneration i, 2 replicas i, 3 updatedReplicas i, 7 readyReplicas i, "
        "4 availableReplicas i, 5 unavailableReplicas i, 9 terminatingReplicas i!, "
        "6 conditions apps.DeploymentCondition*, 8 collisionCount i!"),
    "apps.DeploymentStrategy": "1 type s, 2 rollingUpdate apps.RollingUpdateDeployment!",
    "apps.ReplicaSet": ("1 metadata meta.ObjectMeta, 2 spec apps.ReplicaSetSpec, "
        "3 status apps.ReplicaSetStatus"),
    "apps.ReplicaSetCondition": "1 type s!, 2 status s!, 3 lastTransitionTime T, 4 reason s, 5 message s",
    "apps.ReplicaSetSpec": ("1 replicas i!, 4 minReadySeconds i, 2 selector meta.LabelSelector!, "
        "3 template core.PodTemplateSpec"),
    "apps.ReplicaSetStatus": ("1 replicas i!, 2 fullyLabeledReplicas i, 4 readyReplicas i, "
        "5 availableReplicas i, 7 terminatingReplicas i!, 3 observedGeneration i, "
        "6 conditions apps.ReplicaSetCondition*"),
    "apps.RollingUpdateDaemonSet": "1 maxUnavailable IS!, 2 maxSurge IS!",
    "apps.RollingUpdateDeployment": "1 maxUnavailable IS!, 2 maxSurge IS!",
    "apps.RollingUpdateStatefulSetStrategy": "1 partition i!, 2 maxUnavailable IS!",
    "apps.StatefulSet": ("1 metadata meta.ObjectMeta, 2 spec apps.StatefulSetSpec, "
        "3 status apps.StatefulSetStatus"),
    "apps.StatefulSetCondition": "1 type s!, 2 status s!, 3 lastTransitionTime T, 4 reason s, 5 message s",
    "apps.StatefulSetOrdinals": "1 start i!",
    "apps.StatefulSetPersistentVolumeClaimRetentionPolicy": "1 whenDeleted s, 2 whenScaled s",
    "apps.StatefulSetSpec": ("1 replicas i!, 2 selector meta.LabelSelector!, "
        "3 template core.PodTemplateSpec!, 4 volumeClaimTemplates core.PersistentVolumeClaim*, "
        "5 serviceName s!, 6 podManagementPolicy s, 7 updateStrategy apps.StatefulSetUpdateStrategy, "
        "8 revisionHistoryLimit i!, 9 minReadySeconds i, "
        "10 persistentVolumeClaimRetentionPolicy apps.StatefulSetPersistentVolumeClaimRetentionPolicy!, "
        "11 ordinals apps.StatefulSetOrdinals!"),
    "apps.StatefulSetStatus": ("1 observedGeneration i, 2 replicas i!, 3 readyReplicas i, "
        "4 currentReplicas i, 5 updatedReplicas i, 6 currentRevision s, 7 updateRevision s, "
        "9 collisionCount i!, 10 conditions apps.StatefulSetCondition*, 11 availableReplicas i!"),
    "apps.StatefulSetUpdateStrategy": "1 type s, 2 rollingUpdate apps.RollingUpdateStatefulSetStrategy!",
    "batch.CronJob": "1 metadata meta.ObjectMeta, 2 spec batch.CronJobSpec, 3 status batch.CronJobStatus",
    "batch.CronJobSpec": ("1 schedule s!, 8 timeZone s!, 2 startingDeadlineSeconds i!, 3 concurrencyPolicy s, "
        "4 suspend b!, 5 jobTemplate batch.JobTemplateSpec!, 6 successfulJobsHistoryLimit i!, "
        "7 failedJobsHistoryLimit i!"),
    "batch.CronJobStatus": "1 active core.ObjectReference*, 4 lastScheduleTime T!, 5 lastSuccessfulTime T!",
    "batch.Job": "1 metadata meta.ObjectMeta, 2 spec batch.JobSpec, 3 status batch.JobStatus",
    "batch.JobCondition": ("1 type s!, 2 status s!, 3 lastProbeTime T, 4 lastTransitionTime T, 5 reason s, "
        "6 message s"),
    "batch.JobSchedulingConfiguration": "",
    "batch.JobSpec": ("1 parallelism i!, 2 completions i!, 3 activeDeadlineSeconds i!, "
        "11 podFailurePolicy batch.PodFailurePolicy!, 16 successPolicy batch.SuccessPolicy!, "
        "7 backoffLimit i!, 12 backoffLimitPerIndex i!, 13 maxFailedIndexes i!, "
        "4 selector meta.LabelSelector!, 5 manualSelector b!, 6 template core.PodTemplateSpec!, "
        "8 ttlSecondsAfterFinished i!, 9 completionMode s!, 10 suspend b!, 14 podReplacementPolicy s!, "
        "15 managedBy s!, 17 scheduling batch.JobSchedulingConfiguration!"),
    "batch.JobStatus": ("1 conditions batch.JobCondition*, 2 startTime T!, 3 completionTime T!, 4 active i, "
        "5 succeeded i, 6 failed i, 11 terminating i!, 7 completedIndexes s, 10 failedIndexes s!, "
        "8 uncountedTerminatedPods batch.UncountedTerminatedPods!, 9 ready i!"),
    "batch.JobTemplateSpec": "1 metadata meta.ObjectMeta, 2 spec batch.JobSpec",
    "batch.PodFailurePolicy": "1 rules batch.PodFailurePolicyRule*",
    "batch.PodFailurePolicyOnExitCodesRequirement": "1 containerName s!, 2 operator s!, 3 values i*",
    "batch.PodFailurePolicyOnPodConditionsPattern": "1 type s!, 2 status s!",
    "batch.PodFailurePolicyRule": ("1 action s!, 2 onExitCodes batch.PodFailurePolicyOnExitCodesRequirement!, "
        "3 onPodConditions batch.PodFailurePolicyOnPodConditionsPattern*"),
    "batch.SuccessPolicy": "1 rules batch.SuccessPolicyRule*",
    "batch.SuccessPolicyRule": "1 succeededIndexes s!, 2 succeededCount i!",
    "batch.UncountedTerminatedPods": "1 succeeded s*, 2 failed s*",
    "policy.Eviction": "1 metadata meta.ObjectMeta, 2 deleteOptions meta.DeleteOptions!",
    "sched.PriorityClass": "1 metadata meta.ObjectMeta, 2 value i!, 3 globalDefault b!, 4 description s!, "
        "5 preemptionPolicy s!",
    "policy.PodDisruptionBudget": ("1 metadata meta.ObjectMeta, 2 spec policy.PodDisruptionBudgetSpec, "
        "3 status policy.PodDisruptionBudgetStatus"),
    "policy.PodDisruptionBudgetSpec": ("1 minAvailable IS!, 2 selector meta.LabelSelector, "
        "3 maxUnavailable IS!, 4 unhealthyPodEvictionPolicy s!"),
    "policy.PodDisruptionBudgetStatus": ("1 observedGeneration i, 2 disruptedPods {s:T}, "
        "3 disruptionsAllowed i!, 4 currentHealthy i!, 5 desiredHealthy i!, 6 expectedPods i!, "
        "7 conditions meta.Condition*"),
    "rbac.AggregationRule": "1 clusterRoleSelectors meta.LabelSelector*",
    "storage.StorageClass": ("1 metadata meta.ObjectMeta, 2 provisioner s!, 3 parameters {s:s}, "
        "4 reclaimPolicy s!, 5 mountOptions s*, 6 allowVolumeExpansion b!, 7 volumeBindingMode s!, "
        "8 allowedTopologies storage.TopologySelectorTerm*"),
    "storage.TopologySelectorTerm": "1 matchLabelExpressions storage.TopologySelectorLabelRequirement*",
    "storage.TopologySelectorLabelRequirement": "1 key s!, 2 values s*",
    "rbac.ClusterRole": ("1 metadata meta.ObjectMeta, 2 rules rbac.PolicyRule*, "
        "3 aggregationRule rbac.AggregationRule!"),
    "rbac.ClusterRoleBinding": ("1 metadata meta.ObjectMeta, 2 subjects rbac.Subject*, "
        "3 roleRef rbac.RoleRef!"),
    "rbac.PolicyRule": ("1 verbs s*, 2 apiGroups s*, 3 resources s*, 4 resourceNames s*, "
        "5 nonResourceURLs s*"),
    "rbac.Role": "1 metadata meta.ObjectMeta, 2 rules rbac.PolicyRule*",
    "rbac.RoleBinding": "1 metadata meta.ObjectMeta, 2 subjects rbac.Subject*, 3 roleRef rbac.RoleRef!",
    "rbac.RoleRef": "1 apiGroup s!, 2 kind s!, 3 name s!",
    "rbac.Subject": "1 kind s!, 2 apiGroup s, 3 name s!, 4 namespace s",
    "authz.FieldSelectorAttributes": "1 rawSelector s, 2 requirements meta.FieldSelectorRequirement*",
    "authz.LabelSelectorAttributes": "1 rawSelector s, 2 requirements meta.LabelSelectorRequirement*",
    "authz.LocalSubjectAccessReview": ("1 metadata meta.ObjectMeta, 2 spec authz.SubjectAccessReviewSpec!, "
        "3 status authz.SubjectAccessReviewStatus"),
    "authz.NonResourceAttributes": "1 path s, 2 verb s",
    "authz.NonResourceRule": "1 verbs s*, 2 nonResourceURLs s*",
    "authz.ResourceAttributes": ("1 namespace s, 2 verb s, 3 group s, 4 version s, 5 resource s, "
        "6 subresource s, 7 name s, 8 fieldSelector authz.FieldSelectorAttributes!, "
        "9 labelSelector authz.LabelSelectorAttributes!"),
    "authz.ResourceRule": "1 verbs s*, 2 apiGroups s*, 3 resources s*, 4 resourceNames s*",
    "authz.SelfSubjectAccessReview": ("1 metadata meta.ObjectMeta, 2 spec authz.SelfSubjectAccessReviewSpec!, "
        "3 status authz.SubjectAccessReviewStatus"),
    "authz.SelfSubjectAccessReviewSpec": ("1 resourceAttributes authz.ResourceAttributes!, "
        "2 nonResourceAttributes authz.NonResourceAttributes!"),
    "authz.SelfSubjectRulesReview": ("1 metadata meta.ObjectMeta, 2 spec authz.SelfSubjectRulesReviewSpec!, "
        "3 status authz.SubjectRulesReviewStatus"),
    "authz.SelfSubjectRulesReviewSpec": "1 namespace s",
    "authz.SubjectAccessReview": ("1 metadata meta.ObjectMeta, 2 spec authz.SubjectAccessReviewSpec!, "
        "3 status authz.SubjectAccessReviewStatus"),
    "authz.SubjectAccessReviewSpec": ("1 resourceAttributes authz.ResourceAttributes!, "
        "2 nonResourceAttributes authz.NonResourceAttributes!, 3 user s, 4 groups s*, 5 extra {s:L}, "
        "6 uid s"),
    "authz.SubjectAccessReviewStatus": "1 allowed b!, 4 denied b, 2 reason s, 3 evaluationError s",
    "authz.SubjectRulesReviewStatus": ("1 resourceRules authz.ResourceRule*, "
        "2 nonResourceRules authz.NonResourceRule*, 3 incomplete b!, 4 evaluationError s"),
    "authn.BoundObjectReference": "1 kind s, 2 apiVersion s, 3 name s, 4 uid s",
    "authn.SelfSubjectReview": "1 metadata meta.ObjectMeta, 2 status authn.SelfSubjectReviewStatus",
    "authn.SelfSubjectReviewStatus": "1 userInfo authn.UserInfo",
    "authn.TokenRequest": ("1 metadata meta.ObjectMeta, 2 spec authn.TokenRequestSpec!, "
        "3 status authn.TokenRequestStatus"),
    "authn.TokenRequestSpec": ("1 audiences s*, 4 expirationSeconds i!, "
        "3 boundObjectRef authn.BoundObjectReference!, 5 attestations {s:L}"),
    "authn.TokenRequestStatus": "1 token s!, 2 expirationTimestamp T!",
    "authn.TokenReview": ("1 metadata meta.ObjectMeta, 2 spec authn.TokenReviewSpec!, "
        "3 status authn.TokenReviewStatus"),
    "authn.TokenReviewSpec": "1 token s, 2 audiences s*",
    "authn.TokenReviewStatus": "1 authenticated b, 2 user authn.UserInfo, 4 audiences s*, 3 error s",
    "authn.UserInfo": "1 username s, 2 uid s, 3 groups s*, 4 extra {s:L}",
    "net.HTTPIngressPath": "1 path s, 3 pathType s!, 2 backend net.IngressBackend!",
    "net.HTTPIngressRuleValue": "1 paths net.HTTPIngressPath*",
    "net.IPBlock": "1 cidr s!, 2 except s*",
    "net.Ingress": "1 metadata meta.ObjectMeta, 2 spec net.IngressSpec, 3 status net.IngressStatus",
    "net.IngressBackend": "4 service net.IngressServiceBackend!, 3 resource core.TypedLocalObjectReference!",
    "net.IngressClass": "1 metadata meta.ObjectMeta, 2 spec net.IngressClassSpec",
    "net.IngressClassParametersReference": "1 apiGroup s!, 2 kind s!, 3 name s!, 4 scope s!, 5 namespace s!",
    "net.IngressClassSpec": "1 controller s, 2 parameters net.IngressClassParametersReference!",
    "net.IngressLoadBalancerIngress": "1 ip s, 2 hostname s, 4 ports net.IngressPortStatus*",
    "net.IngressLoadBalancerStatus": "1 ingress net.IngressLoadBalancerIngress*",
    "net.IngressPortStatus": "1 port i!, 2 protocol s!, 3 error s!",
    "net.IngressRule": "1 host s, 2 ingressRuleValue net.IngressRuleValue^",
    "net.IngressRuleValue": "1 http net.HTTPIngressRuleValue!",
    "net.IngressServiceBackend": "1 name s!, 2 port net.ServiceBackendPort",
    "net.IngressSpec": ("4 ingressClassName s!, 1 defaultBackend net.IngressBackend!, 2 tls net.IngressTLS*, "
        "3 rules net.IngressRule*"),
    "net.IngressStatus": "1 loadBalancer net.IngressLoadBalancerStatus",
    "net.IngressTLS": "1 hosts s*, 2 secretName s",
    "net.NetworkPolicy": "1 metadata meta.ObjectMeta, 2 spec net.NetworkPolicySpec",
    "net.NetworkPolicyEgressRule": "1 ports net.NetworkPolicyPort*, 2 to net.NetworkPolicyPeer*",
    "net.NetworkPolicyIngressRule": "1 ports net.NetworkPolicyPort*, 2 from net.NetworkPolicyPeer*",
    "net.NetworkPolicyPeer": ("1 podSelector meta.LabelSelector!, 2 namespaceSelector meta.LabelSelector!, "
        "3 ipBlock net.IPBlock!"),
    "net.NetworkPolicyPort": "1 protocol s!, 2 port IS!, 3 endPort i!",
    "net.NetworkPolicySpec": ("1 podSelector meta.LabelSelector!, 2 ingress net.NetworkPolicyIngressRule*, "
        "3 egress net.NetworkPolicyEgressRule*, 4 policyTypes s*"),
    "net.ServiceBackendPort": "1 name s, 2 number i",
    "disc.Endpoint": ("1 addresses s*, 2 conditions disc.EndpointConditions, 3 hostname s!, "
        "4 targetRef core.ObjectReference!, 5 deprecatedTopology {s:s}, 6 nodeName s!, 7 zone s!, "
        "8 hints disc.EndpointHints!"),
    "disc.EndpointConditions": "1 ready b!, 2 serving b!, 3 terminating b!",
    "disc.EndpointHints": "1 forZones disc.ForZone*, 2 forNodes disc.ForNode*",
    "disc.EndpointPort": "1 name s!, 2 protocol s!, 3 port i!, 4 appProtocol s!",
    "disc.EndpointSlice": ("1 metadata meta.ObjectMeta, 4 addressType s!, 2 endpoints disc.Endpoint*, "
        "3 ports disc.EndpointPort*"),
    "disc.ForNode": "1 name s!",
    "disc.ForZone": "1 name s!",
    "coord.Lease": "1 metadata meta.ObjectMeta, 2 spec coord.LeaseSpec",
    "coord.LeaseSpec": ("1 holderIdentity s!, 2 leaseDurationSeconds i!, 3 acquireTime MT!, 4 renewTime MT!, "
        "5 leaseTransitions i!, 6 strategy s!, 7 preferredHolder s!"),
    "as1.CrossVersionObjectReference": "1 kind s!, 2 name s!, 3 apiVersion s",
    "as1.HorizontalPodAutoscaler": ("1 metadata meta.ObjectMeta, 2 spec as1.HorizontalPodAutoscalerSpec, "
        "3 status as1.HorizontalPodAutoscalerStatus"),
    "as1.HorizontalPodAutoscalerSpec": ("1 scaleTargetRef as1.CrossVersionObjectReference!, 2 minReplicas i!, "
        "3 maxReplicas i!, 4 targetCPUUtilizationPercentage i!"),
    "as1.HorizontalPodAutoscalerStatus": ("1 observedGeneration i!, 2 lastScaleTime T!, 3 currentReplicas i!, "
        "4 desiredReplicas i!, 5 currentCPUUtilizationPercentage i!"),
    "as1.Scale": "1 metadata meta.ObjectMeta, 2 spec as1.ScaleSpec, 3 status as1.ScaleStatus",
    "as1.ScaleSpec": "1 replicas i",
    "as1.ScaleStatus": "1 replicas i!, 2 selector s",
    "as2.ContainerResourceMetricSource": "1 name s!, 2 target as2.MetricTarget!, 3 container s!",
    "as2.ContainerResourceMetricStatus": "1 name s!, 2 current as2.MetricValueStatus!, 3 container s!",
    "as2.CrossVersionObjectReference": "1 kind s!, 2 name s!, 3 apiVersion s",
    "as2.ExternalMetricSource": "1 metric as2.MetricIdentifier!, 2 target as2.MetricTarget!",
    "as2.ExternalMetricStatus": "1 metric as2.MetricIdentifier!, 2 current as2.MetricValueStatus!",
    "as2.HPAScalingPolicy": "1 type s!, 2 value i!, 3 periodSeconds i!",
    "as2.HPAScalingRules": ("3 stabilizationWindowSeconds i!, 1 selectPolicy s!, "
        "2 policies as2.HPAScalingPolicy*, 4 tolerance Q!"),
    "as2.HorizontalPodAutoscaler": ("1 metadata meta.ObjectMeta, 2 spec as2.HorizontalPodAutoscalerSpec, "
        "3 status as2.HorizontalPodAutoscalerStatus"),
    "as2.HorizontalPodAutoscalerBehavior": ("1 scaleUp as2.HPAScalingRules!, "
        "2 scaleDown as2.HPAScalingRules!"),
    "as2.HorizontalPodAutoscalerCondition": ("1 type s!, 2 status s!, 3 lastTransitionTime T, 4 reason s, "
        "5 message s, 6 observedGeneration i!"),
    "as2.HorizontalPodAutoscalerSpec": ("1 scaleTargetRef as2.CrossVersionObjectReference!, 2 minReplicas i!, "
        "3 maxReplicas i!, 4 metrics as2.MetricSpec*, 5 behavior as2.HorizontalPodAutoscalerBehavior!"),
    "as2.HorizontalPodAutoscalerStatus": ("1 observedGeneration i!, 2 lastScaleTime T!, 3 currentReplicas i, "
        "4 desiredReplicas i!, 5 currentMetrics as2.MetricStatus*, "
        "6 conditions as2.HorizontalPodAutoscalerCondition*"),
    "as2.MetricIdentifier": "1 name s!, 2 selector meta.LabelSelector!",
    "as2.MetricSpec": ("1 type s!, 2 object as2.ObjectMetricSource!, 3 pods as2.PodsMetricSource!, "
        "4 resource as2.ResourceMetricSource!, 7 containerResource as2.ContainerResourceMetricSource!, "
        "5 external as2.ExternalMetricSource!"),
    "as2.MetricStatus": ("1 type s!, 2 object as2.ObjectMetricStatus!, 3 pods as2.PodsMetricStatus!, "
        "4 resource as2.ResourceMetricStatus!, 7 containerResource as2.ContainerResourceMetricStatus!, "
        "5 external as2.ExternalMetricStatus!"),
    "as2.MetricTarget": "1 type s!, 2 value Q!, 3 averageValue Q!, 4 averageUtilization i!",
    "as2.MetricValueStatus": "1 value Q!, 2 averageValue Q!, 3 averageUtilization i!",
    "as2.ObjectMetricSource": ("1 describedObject as2.CrossVersionObjectReference!, "
        "2 target as2.MetricTarget!, 3 metric as2.MetricIdentifier!"),
    "as2.ObjectMetricStatus": ("1 metric as2.MetricIdentifier!, 2 current as2.MetricValueStatus!, "
        "3 describedObject as2.CrossVersionObjectReference!"),
    "as2.PodsMetricSource": "1 metric as2.MetricIdentifier!, 2 target as2.MetricTarget!",
    "as2.PodsMetricStatus": "1 metric as2.MetricIdentifier!, 2 current as2.MetricValueStatus!",
    "as2.ResourceMetricSource": "1 name s!, 2 target as2.MetricTarget!",
    "as2.ResourceMetricStatus": "1 name s!, 2 current as2.MetricValueStatus!",
    "meta.Condition": ("1 type s!, 2 status s!, 3 observedGeneration i, 4 lastTransitionTime T!, 5 reason s!, "
        "6 message s!"),
    "meta.DeleteOptions": ("1 gracePeriodSeconds i!, 2 preconditions meta.Preconditions!, "
        "3 orphanDependents b!, 4 propagationPolicy s!, 5 dryRun s*, "
        "6 ignoreStoreReadErrorWithClusterBreakingPotential b!"),
    "meta.FieldSelectorRequirement": "1 key s!, 2 operator s!, 3 values s*",
    "meta.LabelSelector": "1 matchLabels {s:s}, 2 matchExpressions meta.LabelSelectorRequirement*",
    "meta.LabelSelectorRequirement": "1 key s!, 2 operator s!, 3 values s*",
    "meta.ListMeta": ("1 selfLink s, 2 resourceVersion s, 3 continue s, 4 remainingItemCount i!, "
        "5 shardInfo meta.ShardInfo!"),
    "meta.ManagedFieldsEntry": ("1 manager s, 2 operation s, 3 apiVersion s, 4 time T!, 6 fieldsType s, "
        "7 fieldsV1 R!, 8 subresource s"),
    "meta.ObjectMeta": ("1 name s, 2 generateName s, 3 namespace s, 4 selfLink s, 5 uid s, "
        "6 resourceVersion s, 7 generation i, 8 creationTimestamp T, 9 deletionTimestamp T!, "
        "10 deletionGracePeriodSeconds i!, 11 labels {s:s}, 12 annotations {s:s}, "
        "13 ownerReferences meta.OwnerReference*, 14 finalizers s*, "
        "17 managedFields meta.ManagedFieldsEntry*"),
    "meta.OwnerReference": ("5 apiVersion s!, 1 kind s!, 3 name s!, 4 uid s!, 6 controller b!, "
        "7 blockOwnerDeletion b!"),
    "meta.Preconditions": "1 uid s!, 2 resourceVersion s!",
    "meta.ShardInfo": "1 selector s!",
    "meta.Status": ("1 metadata meta.ListMeta, 2 status s, 3 message s, 4 reason s, "
        "5 details meta.StatusDetails!, 6 code i"),
    "meta.StatusCause": "1 reason s, 2 message s, 3 field s",
    "meta.StatusDetails": ("1 name s, 2 group s, 3 kind s, 6 uid s, 4 causes meta.StatusCause*, "
        "5 retryAfterSeconds i"),
}

SPECIALS = frozenset({"T", "MT", "D", "IS", "Q", "R", "L"})
SCALARS = frozenset({"s", "i", "b", "y", "f"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Field:
    num: int
    name: str
    type: str            # scalar, special or message name; the value type for maps
    key: str = ""        # map key type ("" when not a map)
    repeated: bool = False
    keep: bool = False   # keep zero values (Go pointer / no omitempty)
    inline: bool = False


def _parse(spec: str) -> dict[int, Field]:
    fields = {}
    for item in filter(None, spec.split(", ")):
        num, name, typ = item.split(" ")
        flags = ""
        while typ[-1] in "*!^":
            flags, typ = typ[-1] + flags, typ[:-1]
        key = ""
        if typ.startswith("{"):
            key, typ = typ[1:-1].split(":")
        fields[int(num)] = Field(int(num), name, typ, key, "*" in flags, "!" in flags, "^" in flags)
    return fields


TABLE: dict[str, dict[int, Field]] = {
    name: _parse(spec if isinstance(spec, str) else "".join(spec)) for name, spec in MESSAGES.items()}
KINDS: dict[tuple[str, str], str] = {(api, msg.split(".", 1)[1]): msg for api, msg in ROOTS}


def decodable(api_version: str, kind: str) -> bool:
    """Whether decode() knows this kind's message."""
    return (api_version, kind) in KINDS or kind in ANY_VERSION


# ---- wire level ----

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _wire(buf: bytes):
    """Yield (field number, wire type, value): an int for varints and fixed, bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            value, pos = _varint(buf, pos)
        elif wt == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError(f"field {num}: length {size} past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wt in (1, 5):
            width = 8 if wt == 1 else 4
            if pos + width > len(buf):
                raise ValueError(f"field {num}: truncated fixed{width * 8}")
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"field {num}: unsupported wire type {wt}")
        if num == 0:
            raise ValueError("field number 0")
        yield num, wt, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# ---- special types ----

def _time(raw: bytes, micro: bool) -> str | None:
    if not raw:
        return None                       # the zero time; JSON says null
    f = {n: v for n, _, v in _wire(raw)}
    t = _EPOCH + timedelta(seconds=_signed(f.get(1, 0)), microseconds=_signed(f.get(2, 0)) // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _frac(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10 ** digits)
    return f"{whole}.{frac:0{digits}d}".rstrip("0") if frac else str(whole)


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 0s, 1.5s, 1m0s, 1h0m0s, 250ms."""
    sign, u = ("-" if ns < 0 else ""), abs(ns)
    if u == 0:
        return "0s"
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 10 ** 6:
        return f"{sign}{_frac(u, 3)}µs"
    if u < 10 ** 9:
        return f"{sign}{_frac(u, 6)}ms"
    minutes, rest = divmod(u, 60 * 10 ** 9)
    hours, minutes = divmod(minutes, 60)
    out = _frac(rest, 9) + "s"
    if hours:
        out = f"{hours}h{minutes}m{out}"
    elif minutes:
        out = f"{minutes}m{out}"
    return sign + out


def _special(typ: str, raw: bytes) -> object:
    if typ in ("T", "MT"):
        return _time(raw, typ == "MT")
    f: dict[int, object] = {}
    items: list[str] = []
    for num, _, value in _wire(raw):
        f[num] = value
        if num == 1 and typ == "L":
            items.append(value.decode("utf-8", "replace"))
    if typ == "D":
        return go_duration(_signed(f.get(1, 0)))
    if typ == "IS":
        return f.get(3, b"").decode("utf-8", "replace") if f.get(1) == 1 else _int32(f.get(2, 0))
    if typ == "Q":
        return f.get(1, b"").decode("utf-8", "replace") or "0"
    if typ == "R":
        data = f.get(1, b"")
        try:
            return json.loads(data) if data else None
        except ValueError:
            return base64.b64encode(data).decode()
    return items                          # "L"


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


# ---- decoding ----

_ZERO = ("", 0, False, 0.0)


def _scalar(typ: str, wt: int, value: object) -> object:
    if typ == "s":
        return value.decode("utf-8", "replace")
    if typ == "y":
        return base64.b64encode(value).decode()
    if typ == "i":
        return _signed(value)
    if typ == "b":
        return bool(value)
    return struct.unpack("<d" if wt == 1 else "<f", value)[0]      # "f"


_WIRE = {"s": (2,), "y": (2,), "i": (0,), "b": (0,), "f": (1, 5)}


def _value(field_type: str, wt: int, value: object, where: str) -> object:
    if field_type in SCALARS:
        if wt not in _WIRE[field_type]:
            raise ValueError(f"{where}: wire type {wt} for a {field_type!r} field")
        return _scalar(field_type, wt, value)
    if wt != 2:
        raise ValueError(f"{where}: wire type {wt} for a message field")
    if field_type in SPECIALS:
        return _special(field_type, value)
    return _message(field_type, value)


def _packed(typ: str, raw: bytes) -> list:
    out, pos = [], 0
    while pos < len(raw):
        if typ == "f":
            out.append(struct.unpack_from("<d", raw, pos)[0])
            pos += 8
        else:
            v, pos = _varint(raw, pos)
            out.append(_scalar(typ, 0, v))
    return out


def _message(name: str, raw: bytes) -> dict:
    fields = TABLE[name]
    out: dict = {}
    for num, wt, value in _wire(raw):
        field = fields.get(num)
        if field is None:
            continue                                   # a newer field: skip, as upstream's decoder does
        where = f"{name.split('.', 1)[1]}.{field.name}"
        if field.key:
            if wt != 2:
                raise ValueError(f"{where}: wire type {wt} for a map entry")
            entry = {n: (w, v) for n, w, v in _wire(value)}
            key = _value(field.key, *entry[1], where) if 1 in entry else ""
            val = _value(field.type, *entry[2], where) if 2 in entry else _empty(field.type)
            out.setdefault(field.name, {})[key] = val
        elif field.repeated:
            if wt == 2 and field.type in ("i", "b", "f"):
                out.setdefault(field.name, []).extend(_packed(field.type, value))
            else:
                out.setdefault(field.name, []).append(_value(field.type, wt, value, where))
        elif field.inline:
            out.update(_value(field.type, wt, value, where))
        else:
            v = _value(field.type, wt, value, where)
            if field.keep or field.type not in SCALARS or v not in _ZERO:
                out[field.name] = v
            else:
                out.pop(field.name, None)
    return out


def _empty(typ: str) -> object:
    if typ in SCALARS:
        return {"s": "", "y": "", "i": 0, "b": False, "f": 0.0}[typ]
    return _value(typ, 2, b"", "map value")


def _unknown(body: bytes) -> tuple[str, str, bytes, str]:
    """The envelope: (apiVersion, kind, raw, contentEncoding)."""
    if not body.startswith(MAGIC):
        raise ValueError("the body is not a Kubernetes protobuf object: it does not start with the k8s\\x00 prefix")
    api = kind = encoding = ""
    raw = b""
    try:
        for num, wt, value in _wire(body[len(MAGIC):]):
            if num == 1 and wt == 2:
                for n, w, v in _wire(value):
                    if w == 2 and n in (1, 2):
                        if n == 1:
                            api = v.decode("utf-8", "replace")
                        else:
                            kind = v.decode("utf-8", "replace")
            elif num == 2 and wt == 2:
                raw = value
            elif num == 3 and wt == 2:
                encoding = value.decode("utf-8", "replace")
    except ValueError as exc:
        raise ValueError(f"the body is not a valid Kubernetes protobuf envelope (runtime.Unknown): {exc}") from None
    if not kind:
        raise ValueError("the protobuf body's runtime.Unknown carries no kind")
    return api, kind, raw, encoding


def decode(body: bytes) -> dict:
    """A `k8s\\0`+runtime.Unknown body as the object's JSON-shaped dict; ValueError names what is wrong."""
    api, kind, raw, encoding = _unknown(bytes(body))
    if encoding:
        raise ValueError(f"{kind}: unsupported protobuf contentEncoding {encoding!r}")
    name = KINDS.get((api, kind)) or ANY_VERSION.get(kind)
    if name is None:
        raise ValueError(f'no protobuf decoding for kind "{kind}" in version "{api}"')
    try:
        obj = _message(name, raw)
    except (ValueError, KeyError, UnicodeDecodeError, struct.error) as exc:
        raise ValueError(f"malformed protobuf body for {kind} ({api}): {exc}") from None
    return {"apiVersion": api, "kind": kind, **obj}


# ---- encoding (the inverse; used by tests and for protobuf answers if wanted) ----

def _put_varint(out: bytearray, v: int) -> None:
    v &= (1 << 64) - 1
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_bytes(out: bytearray, num: int, data: bytes) -> None:
    _put_varint(out, num << 3 | 2)
    _put_varint(out, len(data))
    out += data


_TIME_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")
_DUR_RE = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h)")
_DUR_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds."""
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body == "0":
        return 0
    parts = _DUR_RE.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"invalid duration {text!r}")
    return sign * sum(round(float(n) * _DUR_NS[u]) for n, u in parts)


def _encode_time(text: str) -> bytes:
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"invalid RFC 3339 time {text!r}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone.utc)
    if zone not in "Zz":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        t -= offset if zone[0] == "+" else -offset
    out = bytearray()
    _put_varint(out, 1 << 3)
    _put_varint(out, int((t - _EPOCH).total_seconds()))
    nanos = int((frac or "0").ljust(9, "0")[:9])
    if nanos:
        _put_varint(out, 2 << 3)
        _put_varint(out, nanos)
    return bytes(out)


def _encode_special(typ: str, value: object) -> bytes:
    out = bytearray()
    if typ in ("T", "MT"):
        return _encode_time(value) if value else b""
    if typ == "D":
        _put_varint(out, 1 << 3)
        _put_varint(out, parse_go_duration(value))
    elif typ == "IS":
        if isinstance(value, str):
            _put_varint(out, 1 << 3)
            _put_varint(out, 1)
            _put_bytes(out, 3, value.encode())
        else:
            _put_varint(out, 1 << 3)
            _put_varint(out, 0)
            _put_varint(out, 2 << 3)
            _put_varint(out, int(value))
    elif typ == "Q":
        _put_bytes(out, 1, str(value).encode())
    elif typ == "R":
        _put_bytes(out, 1, json.dumps(value, separators=(",", ":")).encode())
    else:                                              # "L"
        for item in value:
            _put_bytes(out, 1, str(item).encode())
    return bytes(out)


def _encode_value(out: bytearray, num: int, typ: str, value: object) -> None:
    if typ == "s":
        _put_bytes(out, num, str(value).encode())
    elif typ == "y":
        _put_bytes(out, num, base64.b64decode(value))
    elif typ in ("i", "b"):
        _put_varint(out, num << 3)
        _put_varint(out, int(value))
    elif typ == "f":
        _put_varint(out, num << 3 | 1)
        out += struct.pack("<d", float(value))
    elif typ in SPECIALS:
        _put_bytes(out, num, _encode_special(typ, value))
    else:
        _put_bytes(out, num, _encode_message(typ, value))


def _encode_message(name: str, obj: dict) -> bytes:
    out = bytearray()
    for num, field in sorted(TABLE[name].items()):
        if field.inline:
            _put_bytes(out, num, _encode_message(field.type, obj))
            continue
        value = obj.get(field.name)
        if value is None:
            if field.type in ("T", "MT") and field.name in obj:
                _put_bytes(out, num, b"")                  # the zero time, as Go sends creationTimestamp: null
            continue
        if field.key:
            for k in sorted(value):
                entry = bytearray()
                _encode_value(entry, 1, field.key, k)
                _encode_value(entry, 2, field.type, value[k])
                _put_bytes(out, num, bytes(entry))
        elif field.repeated:
            for item in value:
                _encode_value(out, num, field.type, item)
        else:
            _encode_value(out, num, field.type, value)
    return bytes(out)


def encode(obj: dict) -> bytes:
    """A JSON-shaped object as a `k8s\\0`+runtime.Unknown protobuf body (what client-go sends)."""
    api, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = KINDS.get((api, kind)) or ANY_VERSION.get(kind)
    if name is None:
        raise ValueError(f'no protobuf encoding for kind "{kind}" in version "{api}"')
    type_meta = bytearray()
    _put_bytes(type_meta, 1, api.encode())
    _put_bytes(type_meta, 2, kind.encode())
    out = bytearray(MAGIC)
    _put_bytes(out, 1, bytes(type_meta))
    _put_bytes(out, 2, _encode_message(name, obj))
    _put_bytes(out, 3, b"")
    _put_bytes(out, 4, b"")
    return bytes(out)
