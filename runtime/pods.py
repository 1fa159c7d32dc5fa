"""PodRuntime: the CRI-shaped surface the node agent drives (sandboxes, containers, removal, listing).

It owns everything below a pod's directory `<state>/pods/<ns>_<name>_<uid>/` and the pod's cgroups and network
attachment; it knows nothing of restart policies, probes or status, which are the agent's business.
"""
from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace

from runtime import cgroups, linux, qos
from runtime.cnilib import CNIConfig
from runtime.container import ContainerProcess, sigterm_then_kill
from runtime.process import SHIM, StartError, reap
from runtime.sandbox import Sandbox

log = logging.getLogger(__name__)


@dataclass
class PodNetwork:
    ip: str
    prefix_len: int
    gateway: str | None


class PostStartHookError(StartError):
    """The postStart hook failed; the container was killed (event reason FailedPostStartHook)."""
    event_reason = "FailedPostStartHook"


MIN_GRACE_AFTER_PRESTOP = 2.0   # kubelet's minimumGracePeriodInSeconds
DEFAULT_PIDS_LIMIT = 4096       # per container (kubelet's podPidsLimit is off by default; a shared machine wants one)


def pod_dir_name(namespace: str, name: str, uid: str) -> str:
    return f"{namespace}_{name}_{uid}"


def find_container(pod: dict, name: str) -> dict | None:
    spec = pod["spec"]
    return next((c for c in (spec.get("initContainers") or []) + spec["containers"] if c["name"] == name), None)


def security(pod: dict, container: dict) -> dict:
    """The credentials a container (and whatever is exec'd in it) runs with: uid, gid, capability masks."""
    sc = container.get("securityContext") or {}
    psc = pod["spec"].get("securityContext") or {}
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    caps = sc.get("capabilities") or {}
    sets = None if sc.get("privileged") else linux.capability_sets(caps.get("add"), caps.get("drop"), uid)
    return {"uid": uid, "gid": sc.get("runAsGroup", psc.get("runAsGroup")), "caps": sets,
            "no_new_privs": sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged")}


def exec_spec(pod: dict, container: dict, proc: ContainerProcess, argv: list[str],
              cgroup_procs: list[str]) -> dict:
    """The shim `exec` spec for running `argv` in a running container: its environment, cgroup, namespaces,
    working directory and credentials (shared by probes, hooks and `kemu exec`)."""
    try:
        with open(f"/proc/{proc.pid}/environ", "rb") as f:
            env = dict(i.decode(errors="replace").split("=", 1) for i in f.read().split(b"\0") if b"=" in i)
    except OSError:
        env = {}
    return {"target_pid": proc.pid, "argv": argv, "env": env, "workdir": container.get("workingDir"),
            "share_pid": bool(pod["spec"].get("shareProcessNamespace")), "cgroup_procs": cgroup_procs,
            **security(pod, container)}


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
                                 attempt, share_pid=bool(pod["spec"].get("shareProcessNamespace")))
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
        """Start one attempt in its own cgroup and root; then the postStart hook (failure: killed, raised)."""
        res = replace(qos.container_resources(container), pids_limit=self.pids_limit)
        cg = self.cgroups.container(self.pod_cgroup(pod), container["name"], res)
        if cg.pids():   # a previous attempt's leftovers (e.g. an exec that outlived it) do not join the new one
            cg.kill_all()
        shm = os.path.join(self.pod_dir(pod), "shm")
        os.makedirs(shm, mode=0o1777, exist_ok=True)
        os.chmod(shm, 0o1777)
        spec = {"argv": argv, "env": env, "sandbox_pid": sandbox.holder_pid, "mounts": mounts,
                "cgroup_procs": [os.path.join(d, "cgroup.procs") for d in cg.dirs()], "shm": shm,
                "workdir": container.get("workingDir"), "oom_score_adj": oom_score_adj,
                "share_pid": bool(pod["spec"].get("shareProcessNamespace")),
                "termination_message_path": container.get("terminationMessagePath", "/dev/termination-log"),
                "readonly_root": bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem")),
                **security(pod, container)}
        proc = ContainerProcess.start(self.container_dir(pod, container["name"]), container["name"], attempt, spec)
        hook = (container.get("lifecycle") or {}).get("postStart")
        if hook:
            error = self.run_hook(pod, container, proc, hook, timeout=float(
                pod["spec"].get("terminationGracePeriodSeconds", 30)) or 30.0)
            if error:
                self.stop_container(pod, proc, 0, run_pre_stop=False)
                raise PostStartHookError(f"PostStartHookError: {error}")
        return proc

    # ---- hooks and exec ----------------------------------------------------------------------------------------
    def run_hook(self, pod: dict, container: dict, proc: ContainerProcess, handler: dict,
                 timeout: float) -> str | None:
        """Run a lifecycle handler (exec or httpGet); None on success, else why it failed."""
        try:
            if "exec" in handler:
                code, out = self.exec_in(pod, container, proc, list(handler["exec"].get("command") or []), timeout)
                return None if code == 0 else f"command {handler['exec'].get('command')} exited {code}: " \
                                              f"{out.strip()[-500:]}"
            if "httpGet" in handler:
                return _http_hook(pod, container, handler["httpGet"], timeout)
            if "sleep" in handler:
                time.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
                return None
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            return str(exc) or type(exc).__name__
        return "handler has no exec, httpGet or sleep action"

    def exec_in(self, pod: dict, container: dict, proc: ContainerProcess, argv: list[str],
                timeout: float) -> tuple[int, str]:
        """Run `argv` inside the running container (its cgroup, namespaces, root, user, capabilities) like
        `runc exec`; returns (exit code, stdout+stderr). On timeout everything it started is killed."""
        if not argv:
            raise ValueError("empty command")
        cg = self.container_cgroup(pod, container["name"])
        spec = exec_spec(pod, container, proc, argv, [os.path.join(d, "cgroup.procs") for d in cg.dirs()] if cg
                         else [])
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

    def container_cgroup(self, pod: dict, name: str) -> cgroups.Cgroup | None:
        return self.cgroups.find(f"{self.pod_cgroup_path(pod)}/{name}")

    def pod_cgroup_path(self, pod: dict) -> str:
        tier = {"Guaranteed": "", "Burstable": "burstable/", "BestEffort": "besteffort/"}[qos.qos_class(pod)]
        return f"{self.node_cgroup.path}/{tier}pod{pod['metadata']['uid']}"

    def stop_container(self, pod: dict, c: ContainerProcess, grace: float, run_pre_stop: bool = True) -> None:
        """preStop hook, SIGTERM, the rest of `grace` seconds, then SIGKILL of everything in the container's
        cgroup (no stray children). The hook's time counts against the grace period, as in kubelet."""
        cg = self.container_cgroup(pod, c.name)
        container = find_container(pod, c.name)
        hook = ((container or {}).get("lifecycle") or {}).get("preStop")
        if run_pre_stop and hook and grace > 0 and c.running():
            begin = time.monotonic()
            error = self.run_hook(pod, container, c, hook, timeout=grace)
            if error:
                log.warning("preStop hook of %s/%s failed: %s", pod["metadata"]["name"], c.name, error)
            grace = max(grace - (time.monotonic() - begin), MIN_GRACE_AFTER_PRESTOP)
        sigterm_then_kill(c, grace, lambda: cg.kill_all() if cg else None)

    def oom_kills(self, pod: dict, name: str) -> int:
        cg = self.container_cgroup(pod, name)
        return cg.oom_kill_count() if cg else 0

    def usage(self, pod: dict) -> dict:
        """CPU seconds and memory working set of the pod and each running container, from their cgroups:
        {"cpu_seconds", "memory_working_set_bytes", "containers": {name: {same keys}}}."""
        def read(cg: cgroups.Cgroup | None) -> dict:
            u = cg.usage() if cg else None
            return {"cpu_seconds": u.cpu_seconds if u else 0.0,
                    "memory_working_set_bytes": u.memory_working_set_bytes if u else 0}
        containers = {c["name"]: read(self.container_cgroup(pod, c["name"])) for c in pod["spec"]["containers"]}
        return dict(read(self.cgroups.find(self.pod_cgroup_path(pod))), containers=containers)

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
        from nodeagent import volumes  # the volume manager's mounts live under the pod dir
        volumes.teardown(pod_dir)
        shutil.rmtree(pod_dir, ignore_errors=True)
        reap()

    def known_pod_dirs(self) -> list[str]:
        return sorted(os.listdir(self.pods_dir)) if os.path.isdir(self.pods_dir) else []


def _http_hook(pod: dict, container: dict, get: dict, timeout: float) -> str | None:
    """A hook's httpGet, sent from the node to the pod (host defaults to the pod IP); 2xx/3xx is success."""
    host = get.get("host") or (pod.get("status") or {}).get("podIP")
    if not host:
        return "httpGet: the pod has no IP"
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = [p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port]
        if not named:
            return f"httpGet: no container port named {port!r}"
        port = named[0]
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
        conn.request("GET", get.get("path") or "/", headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    return None if 200 <= status < 400 else f"httpGet {get.get('path') or '/'}: HTTP {status}"
