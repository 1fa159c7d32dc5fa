"""The requests the runtime takes, shaped like the CRI's (`RunPodSandboxRequest.config`,
`CreateContainerRequest.config`): plain values the node agent computes from a Pod, nothing of the Pod object.

The node agent translates a Pod into these (kubelet's generatePodSandboxConfig / generateContainerConfig,
`nodeagent/kuberuntime.py`); the runtime turns them into processes, namespaces, cgroups and files. Field names
follow the CRI's protobuf names in snake case; None means "not set" where the CRI uses a zero value.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from runtime.cgroups.resources import MIN_SHARES, QUOTA_PERIOD_US, SHARES_PER_CPU, Resources


@dataclass(frozen=True)
class PodSandboxMetadata:
    """Who the sandbox is for: the pod directory and cgroup names are derived from these."""
    name: str
    namespace: str
    uid: str
    attempt: int = 0


@dataclass(frozen=True)
class DNSConfig:
    """What the runtime writes to the sandbox's resolv.conf (kubelet has already applied dnsPolicy/dnsConfig)."""
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def resolv_conf(self) -> str:
        out = [f"nameserver {s}" for s in self.servers]
        if self.searches:
            out.append("search " + " ".join(self.searches))
        if self.options:
            out.append("options " + " ".join(self.options))
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class LinuxContainerResources:
    """cgroup values of a container (or, in LinuxPodSandboxConfig, of the whole pod), as kubelet computes them:
    cpu_shares from requests (MilliCPUToShares; the v2 weight is derived from them as runc does), cpu_quota /
    cpu_period from the cpu limit, memory limit in bytes, pids limit, oom_score_adj for the main process."""
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    memory_limit_in_bytes: int | None = None
    pids_limit: int | None = None
    oom_score_adj: int | None = None

    def cgroup_values(self) -> Resources:
        """The cgroup drivers' view of these values (their `Resources` speak millicores). Exact for everything
        kubelet's conversions produce: shares -> the smallest millicores giving those shares, quota -> millicores
        at the drivers' 100 ms period."""
        shares = self.cpu_shares
        request = None if shares is None or shares <= MIN_SHARES else -(-shares * 1000 // SHARES_PER_CPU)
        quota = self.cpu_quota
        limit = None if not quota or quota < 0 else -(-quota * 1000 // (self.cpu_period or QUOTA_PERIOD_US))
        return Resources(cpu_request_millis=request, cpu_limit_millis=limit,
                         memory_limit_bytes=self.memory_limit_in_bytes, pids_limit=self.pids_limit)


@dataclass(frozen=True)
class LinuxPodSandboxConfig:
    """cgroup_parent: the QoS tier below the node's cgroup ("" for Guaranteed, "burstable", "besteffort"); the
    runtime puts the pod at `<node>/<tier>/pod<uid>`. PID namespace (CRI NamespaceOption pid): POD with
    share_process_namespace, NODE with host_pid, else CONTAINER (each container its own)."""
    cgroup_parent: str = ""
    resources: LinuxContainerResources = field(default_factory=LinuxContainerResources)
    share_process_namespace: bool = False
    host_pid: bool = False


@dataclass(frozen=True)
class PodSandboxConfig:
    metadata: PodSandboxMetadata
    hostname: str
    dns_config: DNSConfig = field(default_factory=DNSConfig)
    linux: LinuxPodSandboxConfig = field(default_factory=LinuxPodSandboxConfig)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PodSandboxConfig:
        d = json.loads(text)
        linux = d.get("linux") or {}
        return cls(metadata=PodSandboxMetadata(**d["metadata"]), hostname=d["hostname"],
                   dns_config=DNSConfig(**{k: tuple(v) for k, v in (d.get("dns_config") or {}).items()}),
                   linux=LinuxPodSandboxConfig(
                       cgroup_parent=linux.get("cgroup_parent", ""),
                       resources=LinuxContainerResources(**(linux.get("resources") or {})),
                       share_process_namespace=bool(linux.get("share_process_namespace")),
                       host_pid=bool(linux.get("host_pid"))))


@dataclass(frozen=True)
class Mount:
    """A bind mount into the container. host_volume: the source is a node path (hostPath), inside which the
    runtime never creates mount points."""
    container_path: str
    host_path: str
    readonly: bool = False
    host_volume: bool = False


@dataclass(frozen=True)
class LinuxContainerSecurityContext:
    """Credentials and privileges: capabilities are names without CAP_ (`ALL` allowed); the runtime applies its
    default set minus drop plus add, and a privileged container keeps everything."""
    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    privileged: bool = False
    readonly_rootfs: bool = False
    no_new_privs: bool = False


@dataclass(frozen=True)
class LinuxContainerConfig:
    resources: LinuxContainerResources = field(default_factory=LinuxContainerResources)
    security_context: LinuxContainerSecurityContext = field(default_factory=LinuxContainerSecurityContext)


@dataclass(frozen=True)
class ContainerMetadata:
    name: str
    attempt: int = 0


@dataclass(frozen=True)
class ContainerConfig:
    """One attempt of a container. command is the final argv (kubelet has expanded command/args and $(VAR));
    termination_message_path gets this attempt's message file mounted on it ("" for none)."""
    metadata: ContainerMetadata
    command: list[str]
    envs: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    termination_message_path: str = ""
    linux: LinuxContainerConfig = field(default_factory=LinuxContainerConfig)
    # the image's own layer (kemu.api.images): files {path, content | symlink, mode} laid over the host's /
    image_layer: list[dict] = field(default_factory=list)
