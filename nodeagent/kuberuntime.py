"""Pod -> runtime requests: what kubelet's kuberuntime_sandbox.go / kuberuntime_container.go (generatePodSandboxConfig,
generateContainerConfig, determineEffectiveSecurityContext) do. The runtime gets plain CRI-shaped values
(runtime/cri.py); QoS, cgroup values and oom_score_adj are computed here from the pod's resources."""
from __future__ import annotations

from kemu.api import images
from nodeagent import qos
from nodeagent.env import image_locals
from nodeagent.podfiles import dns_config
from runtime.cgroups.resources import QUOTA_PERIOD_US, Resources, cpu_quota, cpu_shares
from runtime.cri import (ContainerConfig, ContainerMetadata, LinuxContainerConfig, LinuxContainerResources,
                         LinuxContainerSecurityContext, LinuxPodSandboxConfig, Mount, PodSandboxConfig,
                         PodSandboxMetadata)

# the pod cgroup's parent below the node cgroup, per QoS class (kubelet: kubepods, kubepods/burstable, ...)
CGROUP_PARENT = {qos.GUARANTEED: "", qos.BURSTABLE: "burstable", qos.BEST_EFFORT: "besteffort"}
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def sandbox_metadata(pod: dict, attempt: int = 0) -> PodSandboxMetadata:
    meta = pod["metadata"]
    return PodSandboxMetadata(meta["name"], meta["namespace"], meta["uid"], attempt)


def hostname(pod: dict) -> str:
    return pod["spec"].get("hostname") or pod["metadata"]["name"]


def linux_resources(res: Resources, oom_score_adj: int | None = None) -> LinuxContainerResources:
    """kubelet's CRI values for one cgroup: shares from the cpu request (2 when none), quota at a 100 ms period
    from the cpu limit, the memory limit."""
    return LinuxContainerResources(cpu_shares=cpu_shares(res.cpu_request_millis),
                                   cpu_quota=cpu_quota(res.cpu_limit_millis), cpu_period=QUOTA_PERIOD_US,
                                   memory_limit_in_bytes=res.memory_limit_bytes, pids_limit=res.pids_limit,
                                   oom_score_adj=oom_score_adj)


def sandbox_config(pod: dict, cluster_dns: str, cluster_domain: str, attempt: int = 0) -> PodSandboxConfig:
    """generatePodSandboxConfig: identity, hostname, DNS, the pod cgroup's parent and pod-level values."""
    return PodSandboxConfig(
        metadata=sandbox_metadata(pod, attempt), hostname=hostname(pod),
        dns_config=dns_config(pod, cluster_dns, cluster_domain),
        linux=LinuxPodSandboxConfig(cgroup_parent=CGROUP_PARENT[qos.qos_class(pod)],
                                    resources=linux_resources(qos.pod_resources(pod)),
                                    share_process_namespace=bool(pod["spec"].get("shareProcessNamespace")),
                                    host_pid=bool(pod["spec"].get("hostPID"))))


def container_security(pod: dict, container: dict) -> LinuxContainerSecurityContext:
    """The effective security context: the container's settings over the pod's; fsGroup and supplementalGroups
    become supplemental groups (determineEffectiveSecurityContext)."""
    sc = container.get("securityContext") or {}
    psc = pod["spec"].get("securityContext") or {}
    caps = sc.get("capabilities") or {}
    groups = ([psc["fsGroup"]] if psc.get("fsGroup") is not None else []) + list(psc.get("supplementalGroups") or [])
    privileged = bool(sc.get("privileged"))
    return LinuxContainerSecurityContext(
        run_as_user=sc.get("runAsUser", psc.get("runAsUser")), run_as_group=sc.get("runAsGroup", psc.get("runAsGroup")),
        supplemental_groups=tuple(int(g) for g in groups), capabilities_add=tuple(caps.get("add") or ()),
        capabilities_drop=tuple(caps.get("drop") or ()), privileged=privileged,
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        no_new_privs=sc.get("allowPrivilegeEscalation") is False and not privileged)


def container_config(pod: dict, container: dict, attempt: int, argv: list[str], env: dict[str, str],
                     mounts: list[Mount], memory_capacity: int, image: images.Entry | None = None) -> ContainerConfig:
    """generateContainerConfig for one attempt: argv and env (already resolved by nodeagent/env.py), mounts (from
    podfiles and the volume manager), cgroup values and oom_score_adj from the QoS rules, credentials; the image's
    catalog entry gives the default workingDir and the image's own layer."""
    resources = linux_resources(qos.container_resources(container),
                                qos.oom_score_adj(pod, container, memory_capacity))
    return ContainerConfig(
        metadata=ContainerMetadata(container["name"], attempt), command=argv, envs=env,
        working_dir=container.get("workingDir") or (image.working_dir if image else None) or None, mounts=mounts,
        image_layer=images.layer(image, image_locals()),
        termination_message_path=container.get("terminationMessagePath", DEFAULT_TERMINATION_MESSAGE_PATH),
        linux=LinuxContainerConfig(resources, container_security(pod, container)))
