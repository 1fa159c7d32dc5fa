"""PodRuntime: the CRI-shaped surface the node agent drives (sandboxes, containers, exec, stop, removal, listing).

It takes the plain requests of `runtime/cri.py` (PodSandboxConfig, ContainerConfig), never a Pod. It owns
everything below a pod's directory `<state>/pods/<ns>_<name>_<uid>/` (named from the sandbox metadata), the pod's
cgroups (`<node>/<cgroup_parent>/pod<uid>/<container>`) and its network attachment; it knows nothing of restart
policies, probes, hooks, volumes or status, which are the node agent's business.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace

from runtime import cgroups, linux
from runtime.cnilib import CNIConfig
from runtime.container import ContainerProcess, sigterm_then_kill
from runtime.cri import ContainerConfig, LinuxContainerSecurityContext, Mount, PodSandboxConfig, PodSandboxMetadata
from runtime.names import path_component
from runtime.process import SHIM, CreateContainerError, reap
from runtime.sandbox import Sandbox

log = logging.getLogger(__name__)

DEFAULT_PIDS_LIMIT = 4096       # per container (kubelet's podPidsLimit is off by default; a shared machine wants one)
SANDBOX_CONFIG = "config.json"  # the PodSandboxConfig the sandbox was made from (GC works from it)
QOS_OF_TIER = {"": "Guaranteed", "burstable": "Burstable", "besteffort": "BestEffort"}


@dataclass
class PodNetwork:
    ip: str
    prefix_len: int
    gateway: str | None


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    """`<ns>_<name>_<uid>`: one directory entry under the pods dir, whatever the values are (runtime.names)."""
    return path_component(f"{namespace}_{name}_{uid}", "pod directory name")


def write_file(path: str, content: str) -> str:
    """Replace `path` atomically, but only when the content changes: running containers have the file
    bind-mounted, and a replaced file would leave them holding the old, deleted inode."""
    try:
        with open(path) as f:
            if f.read() == content:
                return path
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(content)
    os.replace(tmp, path)
    return path


def credentials(sc: LinuxContainerSecurityContext) -> dict:
    """The shim fields for the credentials a container (and whatever is exec'd in it) runs with."""
    sets = None if sc.privileged else linux.capability_sets(list(sc.capabilities_add), list(sc.capabilities_drop),
                                                            sc.run_as_user)
    return {"uid": sc.run_as_user, "gid": sc.run_as_group, "supplemental_groups": list(sc.supplemental_groups),
            "caps": sets, "privileged": sc.privileged, "no_new_privs": sc.no_new_privs and not sc.privileged}


def exec_spec(proc: ContainerProcess, argv: list[str], security: LinuxContainerSecurityContext,
              working_dir: str | None, share_pid: bool, cgroup_procs: list[str]) -> dict:
    """The shim `exec` spec for running `argv` in the running container `proc`: its environment (read from the
    process), cgroup, namespaces, working directory and credentials. One builder for probes, hooks, `kemu exec`
    and the node agent's exec endpoint."""
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            env = dict(i.decode(errors="replace").split("=", 1) for i in f.read().split(b"\0") if b"=" in i)
    except OSError:
        env = {}
    return {"target_pid": proc.pid, "argv": argv, "env": env, "workdir": working_dir, "share_pid": share_pid,
            "cgroup_procs": cgroup_procs, **credentials(security)}


def _shim_mount(m: Mount) -> dict:
    return {"source": m.host_path, "target": m.container_path, "readonly": m.readonly, "host": m.host_volume}


class PodRuntime:
    def __init__(self, pods_dir: str, cgroup_node: str, cni: CNIConfig,
                 pids_limit: int | None = DEFAULT_PIDS_LIMIT) -> None:
        self.pods_dir = pods_dir
        os.makedirs(pods_dir, exist_ok=True)
        self.cgroups = cgroups.detect()
        self.node_cgroup = self.cgroups.node(cgroup_node)
        self.cni = cni
        self.pids_limit = pids_limit

    # ---- sandboxes ---------------------------------------------------------------------------------------------
    def pod_dir(self, meta: PodSandboxMetadata) -> str:
        return os.path.join(self.pods_dir, pod_dir_name(meta.namespace, meta.name, meta.uid))

    def pod_cgroup_path(self, config: PodSandboxConfig) -> str:
        parent = config.linux.cgroup_parent
        return f"{self.node_cgroup.path}/{parent + '/' if parent else ''}pod{config.metadata.uid}"

    def _pod_cgroup(self, config: PodSandboxConfig) -> cgroups.Cgroup:
        """Create or update the pod's cgroup with the pod-level values."""
        qos = QOS_OF_TIER.get(config.linux.cgroup_parent)
        if qos is None:
            raise ValueError(f"unknown cgroup parent {config.linux.cgroup_parent!r}")
        return self.cgroups.pod(self.node_cgroup, qos, config.metadata.uid,
                                config.linux.resources.cgroup_values())

    def run_sandbox(self, config: PodSandboxConfig) -> tuple[Sandbox, PodNetwork]:
        """Holder process + CNI ADD; the sandbox's /etc/hostname and /etc/resolv.conf. On failure nothing is left
        behind but the pod directory."""
        meta = config.metadata
        pod_dir = self.pod_dir(meta)
        os.makedirs(pod_dir, exist_ok=True)
        write_file(os.path.join(pod_dir, SANDBOX_CONFIG), config.to_json())   # lets GC clean up later
        write_file(os.path.join(pod_dir, "etc", "hostname"), config.hostname + "\n")
        write_file(os.path.join(pod_dir, "etc", "resolv.conf"), config.dns_config.resolv_conf())
        holder_cg = self.cgroups.sandbox(self._pod_cgroup(config))
        sandbox = Sandbox.create(pod_dir, config.hostname, [os.path.join(d, "cgroup.procs") for d in holder_cg.dirs()],
                                 meta.attempt, share_pid=config.linux.share_process_namespace)
        try:
            result = self.cni.add(self.container_id(meta), sandbox.netns_path, "eth0",
                                  cni_args={"K8S_POD_NAMESPACE": meta.namespace, "K8S_POD_NAME": meta.name,
                                            "K8S_POD_UID": meta.uid})
        except Exception:
            sandbox.destroy()
            raise
        ip4 = next(i for i in result.get("ips", []) if ":" not in i["address"])
        address, prefix = ip4["address"].split("/")
        return sandbox, PodNetwork(address, int(prefix), ip4.get("gateway"))

    def sandbox(self, meta: PodSandboxMetadata) -> Sandbox | None:
        return Sandbox.load(self.pod_dir(meta))

    def sandbox_ip(self, meta: PodSandboxMetadata) -> str | None:
        """The sandbox's IPv4 address as CNI ADD returned it (libcni's result cache), or None when no ADD
        completed for it."""
        result = self.cni.cached_result(self.container_id(meta), "eth0") or {}
        ip4 = next((i for i in result.get("ips") or [] if ":" not in i.get("address", "")), None)
        return ip4["address"].split("/")[0] if ip4 else None

    @staticmethod
    def container_id(meta: PodSandboxMetadata) -> str:
        return meta.uid

    def stop_sandbox(self, config: PodSandboxConfig, sandbox: Sandbox) -> None:
        """CNI DEL (tolerant of a vanished netns) and holder teardown."""
        try:
            self.cni.delete(self.container_id(config.metadata), sandbox.netns_path, "eth0")
        except Exception as exc:
            log.warning("CNI DEL for %s: %s", config.metadata.name, exc)
        sandbox.destroy()

    # ---- containers --------------------------------------------------------------------------------------------
    def container_dir(self, meta: PodSandboxMetadata, name: str) -> str:
        return os.path.join(self.pod_dir(meta), "containers", name)

    def start_container(self, sandbox_config: PodSandboxConfig, config: ContainerConfig,
                        sandbox: Sandbox) -> ContainerProcess:
        """Start one attempt in its own cgroup and root, in the sandbox's namespaces (CreateContainer +
        StartContainer). Raises CreateContainerError for a configuration the kernel cannot take (an unknown
        capability, as containerd does: the API server does not check capability names) and StartError when the shim
        cannot start it."""
        name = config.metadata.name
        sc = config.linux.security_context
        unknown = linux.unknown_capabilities(list(sc.capabilities_add) + list(sc.capabilities_drop))
        if unknown:
            raise CreateContainerError(f'unknown capability "CAP_{str(unknown[0]).upper().removeprefix("CAP_")}"')
        res = config.linux.resources.cgroup_values()
        if res.pids_limit is None:
            res = replace(res, pids_limit=self.pids_limit)
        cg = self.cgroups.container(self._pod_cgroup(sandbox_config), name, res)
        if cg.pids():   # a previous attempt's leftovers (e.g. an exec that outlived it) do not join the new one
            cg.kill_all()
        pod_dir = self.pod_dir(sandbox_config.metadata)
        shm = os.path.join(pod_dir, "shm")
        os.makedirs(shm, mode=0o1777, exist_ok=True)
        os.chmod(shm, 0o1777)
        etc = os.path.join(pod_dir, "etc")
        mounts = [Mount("/etc/hostname", os.path.join(etc, "hostname")),
                  Mount("/etc/resolv.conf", os.path.join(etc, "resolv.conf"))] + list(config.mounts)
        spec = {"argv": config.command, "env": config.envs, "sandbox_pid": sandbox.holder_pid,
                "mounts": [_shim_mount(m) for m in mounts],
                "cgroup_procs": [os.path.join(d, "cgroup.procs") for d in cg.dirs()], "shm": shm,
                "workdir": config.working_dir, "oom_score_adj": config.linux.resources.oom_score_adj,
                "share_pid": sandbox_config.linux.share_process_namespace, "host_pid": sandbox_config.linux.host_pid,
                "termination_message_path": config.termination_message_path,
                "readonly_root": sc.readonly_rootfs, "layer": config.image_layer, **credentials(sc)}
        return ContainerProcess.start(self.container_dir(sandbox_config.metadata, name), name,
                                      config.metadata.attempt, spec)

    def exec_sync(self, sandbox_config: PodSandboxConfig, proc: ContainerProcess, argv: list[str], timeout: float,
                  security: LinuxContainerSecurityContext, working_dir: str | None = None) -> tuple[int, str]:
        """Run `argv` inside the running container (its cgroup, namespaces, root, user, capabilities) like
        `runc exec`; returns (exit code, stdout+stderr). On timeout everything it started is killed."""
        if not argv:
            raise ValueError("empty command")
        cg = self.container_cgroup(sandbox_config, proc.name)
        spec = exec_spec(proc, argv, security, working_dir, sandbox_config.linux.share_process_namespace,
                         [os.path.join(d, "cgroup.procs") for d in cg.dirs()] if cg else [])
        fd, path = tempfile.mkstemp(prefix=".exec-", suffix=".json", dir=proc.dir)
        with os.fdopen(fd, "w") as f:
            json.dump(spec, f)
        try:
            p = subprocess.Popen([sys.executable, "-I", "-S", SHIM, "exec", path], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                out, _ = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                return 137, f"timed out after {timeout:g}s"
        finally:
            os.unlink(path)
        return p.returncode, out.decode(errors="replace")

    def container_cgroup(self, sandbox_config: PodSandboxConfig, name: str) -> cgroups.Cgroup | None:
        return self.cgroups.find(f"{self.pod_cgroup_path(sandbox_config)}/{name}")

    def stop_container(self, sandbox_config: PodSandboxConfig, proc: ContainerProcess, grace: float) -> None:
        """SIGTERM, `grace` seconds, then SIGKILL of everything in the container's cgroup (no stray children).
        Hooks are the node agent's: it runs preStop before calling this with what is left of the grace."""
        cg = self.container_cgroup(sandbox_config, proc.name)
        sigterm_then_kill(proc, grace, lambda: cg.kill_all() if cg else None)

    def oom_kills(self, sandbox_config: PodSandboxConfig, name: str) -> int:
        cg = self.container_cgroup(sandbox_config, name)
        return cg.oom_kill_count() if cg else 0

    def usage(self, sandbox_config: PodSandboxConfig, containers: list[str]) -> dict:
        """CPU seconds and memory working set of the pod and the named containers, from their cgroups:
        {"cpu_seconds", "memory_working_set_bytes", "containers": {name: {same keys}}} (zeros when gone)."""
        def read(cg: cgroups.Cgroup | None) -> dict:
            u = cg.usage() if cg else None
            return {"cpu_seconds": u.cpu_seconds if u else 0.0,
                    "memory_working_set_bytes": u.memory_working_set_bytes if u else 0}
        return dict(read(self.cgroups.find(self.pod_cgroup_path(sandbox_config))),
                    containers={n: read(self.container_cgroup(sandbox_config, n)) for n in containers})

    # ---- whole pods --------------------------------------------------------------------------------------------
    def remove_pod(self, config: PodSandboxConfig) -> None:
        """Everything the pod had: processes, network attachment, sandbox, cgroups, mounts and files."""
        pod_dir = self.pod_dir(config.metadata)
        cg = self.cgroups.find(self.pod_cgroup_path(config))
        if cg:
            cg.kill_all()
        sandbox = Sandbox.load(pod_dir)
        if sandbox:
            self.stop_sandbox(config, sandbox)
        else:
            try:
                self.cni.delete(self.container_id(config.metadata), os.path.join(pod_dir, "netns"), "eth0")
            except Exception as exc:
                log.warning("CNI DEL for %s: %s", config.metadata.name, exc)
        if cg:
            cg.remove()
        self._remove_dir(pod_dir)
        reap()

    def remove_pod_dir(self, entry: str) -> PodSandboxConfig | None:
        """Remove a pod directory found on disk (GC of pods that are gone): with its sandbox config, everything
        as `remove_pod`; without one, its mounts and files. Returns the config it found."""
        try:
            with open(os.path.join(self.pods_dir, entry, SANDBOX_CONFIG)) as f:
                config = PodSandboxConfig.from_json(f.read())
        except (OSError, ValueError, TypeError, KeyError):
            self._remove_dir(os.path.join(self.pods_dir, entry))
            return None
        self.remove_pod(config)
        return config

    @staticmethod
    def _remove_dir(pod_dir: str) -> None:
        """Release whatever is still mounted below the pod directory (deepest first), then remove it: rmtree never
        walks into a mount."""
        for point in reversed(linux.mountpoints()):
            if point.startswith(pod_dir + "/"):
                try:
                    linux.umount(point)
                except OSError as exc:
                    log.warning("unmounting %s: %s", point, exc)
        shutil.rmtree(pod_dir, ignore_errors=True)

    def known_pod_dirs(self) -> list[str]:
        return sorted(os.listdir(self.pods_dir)) if os.path.isdir(self.pods_dir) else []
