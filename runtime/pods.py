"""PodRuntime: the CRI-shaped surface the node agent drives (sandboxes, containers, removal, listing).

It owns everything below a pod's directory `<state>/pods/<ns>_<name>_<uid>/` and the pod's cgroups and network
attachment; it knows nothing of restart policies, probes or status, which are the agent's business.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass

from runtime import cgroups, qos
from runtime.cnilib import CNIConfig
from runtime.container import ContainerProcess, sigterm_then_kill
from runtime.process import reap
from runtime.sandbox import Sandbox

log = logging.getLogger(__name__)


@dataclass
class PodNetwork:
    ip: str
    prefix_len: int
    gateway: str | None


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}_{name}_{uid}"


class PodRuntime:
    def __init__(self, pods_dir: str, cgroup_node: str, cni: CNIConfig) -> None:
        self.pods_dir = pods_dir
        os.makedirs(pods_dir, exist_ok=True)
        self.cgroups = cgroups.detect()
        self.node_cgroup = self.cgroups.node(cgroup_node)
        self.cni = cni

    # ---- sandboxes ---------------------------------------------------------------------------------------------
    def pod_dir(self, pod: dict) -> str:
        meta = pod["metadata"]
        return os.path.join(self.pods_dir, pod_dir_name(meta["namespace"], meta["name"], meta["uid"]))

    def pod_cgroup(self, pod: dict) -> cgroups.Cgroup:
        return self.cgroups.pod(self.node_cgroup, qos.qos_class(pod), pod["metadata"]["uid"], qos.pod_resources(pod))

    def run_sandbox(self, pod: dict, attempt: int = 0) -> tuple[Sandbox, PodNetwork]:
        """Holder process + CNI ADD. On failure nothing is left behind."""
        pod_dir = self.pod_dir(pod)
        os.makedirs(pod_dir, exist_ok=True)
        with open(os.path.join(pod_dir, "pod.json"), "w") as f:   # lets GC clean up after the object is gone
            json.dump(pod, f)
        pod_cg = self.pod_cgroup(pod)
        holder_cg = self.cgroups.sandbox(pod_cg)
        hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
        sandbox = Sandbox.create(pod_dir, hostname, [os.path.join(d, "cgroup.procs") for d in holder_cg.dirs()],
                                 attempt)
        try:
            result = self.cni.add(self.container_id(pod), sandbox.netns_path, "eth0",
                                  cni_args={"K8S_POD_NAMESPACE": pod["metadata"]["namespace"],
                                            "K8S_POD_NAME": pod["metadata"]["name"],
                                            "K8S_POD_UID": pod["metadata"]["uid"]})
        except Exception:
            sandbox.destroy()
            raise
        ip4 = next(i for i in result.get("ips", []) if ":" not in i["address"])
        address, prefix = ip4["address"].split("/")
        return sandbox, PodNetwork(address, int(prefix), ip4.get("gateway"))

    def sandbox(self, pod: dict) -> Sandbox | None:
        return Sandbox.load(self.pod_dir(pod))

    @staticmethod
    def container_id(pod: dict) -> str:
        return pod["metadata"]["uid"]

    def stop_sandbox(self, pod: dict, sandbox: Sandbox) -> None:
        """CNI DEL (tolerant of a vanished netns) and holder teardown."""
        try:
            self.cni.delete(self.container_id(pod), sandbox.netns_path, "eth0")
        except Exception as exc:
            log.warning("CNI DEL for %s: %s", pod["metadata"]["name"], exc)
        sandbox.destroy()

    # ---- containers --------------------------------------------------------------------------------------------
    def container_dir(self, pod: dict, name: str) -> str:
        return os.path.join(self.pod_dir(pod), "containers", name)

    def start_container(self, pod: dict, container: dict, sandbox: Sandbox, attempt: int, argv: list[str],
                        env: dict[str, str], mounts: list[dict], oom_score_adj: int | None) -> ContainerProcess:
        cg = self.cgroups.container(self.pod_cgroup(pod), container["name"], qos.container_resources(container))
        security = container.get("securityContext") or {}
        pod_security = pod["spec"].get("securityContext") or {}
        spec = {"argv": argv, "env": env, "sandbox_pid": sandbox.holder_pid, "mounts": mounts,
                "cgroup_procs": [os.path.join(d, "cgroup.procs") for d in cg.dirs()],
                "workdir": container.get("workingDir"), "oom_score_adj": oom_score_adj,
                "uid": security.get("runAsUser", pod_security.get("runAsUser")),
                "gid": security.get("runAsGroup", pod_security.get("runAsGroup")),
                "share_pid": False}
        return ContainerProcess.start(self.container_dir(pod, container["name"]), container["name"], attempt, spec)

    def container_cgroup(self, pod: dict, name: str) -> cgroups.Cgroup | None:
        return self.cgroups.find(f"{self.pod_cgroup_path(pod)}/{name}")

    def pod_cgroup_path(self, pod: dict) -> str:
        tier = {"Guaranteed": "", "Burstable": "burstable/", "BestEffort": "besteffort/"}[qos.qos_class(pod)]
        return f"{self.node_cgroup.path}/{tier}pod{pod['metadata']['uid']}"

    def stop_container(self, pod: dict, c: ContainerProcess, grace: float) -> None:
        """SIGTERM, `grace` seconds, then SIGKILL of everything in the container's cgroup (no stray children)."""
        cg = self.container_cgroup(pod, c.name)
        sigterm_then_kill(c, grace, lambda: cg.kill_all() if cg else None)

    def oom_kills(self, pod: dict, name: str) -> int:
        cg = self.container_cgroup(pod, name)
        return cg.oom_kill_count() if cg else 0

    # ---- whole pods --------------------------------------------------------------------------------------------
    def remove_pod(self, pod: dict) -> None:
        """Everything the pod had: processes, network attachment, sandbox, cgroups, files."""
        pod_dir = self.pod_dir(pod)
        cg = self.cgroups.find(self.pod_cgroup_path(pod))
        if cg:
            cg.kill_all()
        sandbox = Sandbox.load(pod_dir)
        if sandbox:
            self.stop_sandbox(pod, sandbox)
        else:
            try:
                self.cni.delete(self.container_id(pod), os.path.join(pod_dir, "netns"), "eth0")
            except Exception as exc:
                log.warning("CNI DEL for %s: %s", pod["metadata"]["name"], exc)
        if cg:
            cg.remove()
        shutil.rmtree(pod_dir, ignore_errors=True)
        reap()

    def known_pod_dirs(self) -> list[str]:
        return sorted(os.listdir(self.pods_dir)) if os.path.isdir(self.pods_dir) else []
