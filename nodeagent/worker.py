"""The pod worker: one thread per pod driving its sandbox and containers toward the spec (kubelet's podWorkers +
SyncPod). It restarts containers under the restart policy with upstream's back-off and reports through the status
manager; the runtime does the kernel work."""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from nodeagent import volumes
from nodeagent.env import EnvError, container_argv, container_env
from nodeagent.podfiles import standard_mounts
from nodeagent.status import ContainerState, PodState, rfc3339
from runtime import qos
from runtime.container import ContainerProcess, ExitStatus
from runtime.process import StartError
from runtime.sandbox import Sandbox

if TYPE_CHECKING:
    from nodeagent.agent import NodeAgent

log = logging.getLogger(__name__)


class PodWorker:
    def __init__(self, agent: "NodeAgent", pod: dict) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.state = PodState(host_ip=agent.config.node_ip)
        self.sandbox: Sandbox | None = None
        self.procs: dict[str, ContainerProcess] = {}
        self.deleted = False
        self.finished = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True)

    # ---- driven by the agent -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def update(self, pod: dict | None) -> None:
        """A new desired state (None: the object is gone, e.g. force-deleted)."""
        with self._lock:
            if pod is None:
                self.deleted = True
            else:
                self.pod = pod
        self._wake.set()

    def adopt(self) -> None:
        """Pick up what a previous agent left running: sandbox, container processes, restart counts."""
        runtime = self.agent.runtime
        sandbox = runtime.sandbox(self.pod)
        if sandbox is None:
            return
        self.sandbox = sandbox
        status = self.pod.get("status") or {}
        self.state.pod_ip = status.get("podIP")
        self.state.sandbox_ready = sandbox.alive() and bool(self.state.pod_ip)
        self.state.start_time = sandbox.created
        previous = {s["name"]: s for s in status.get("containerStatuses") or []}
        for c in self.pod["spec"]["containers"]:
            proc = ContainerProcess.latest(runtime.container_dir(self.pod, c["name"]), c["name"])
            if proc is None:
                continue
            cs = ContainerState(c["name"], restart_count=proc.attempt, waiting_reason=None)
            prev = previous.get(c["name"]) or {}
            cs.last_terminated = (prev.get("lastState") or {}).get("terminated")
            cs.started = bool(prev.get("started"))
            self.procs[c["name"]] = proc
            if proc.exit_status() is None:
                cs.running_since = proc.started
            self.state.containers[c["name"]] = cs
        log.info("adopted %s: sandbox pid %s, containers %s", self.name, sandbox.holder_pid,
                 {n: p.pid for n, p in self.procs.items()})

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                delay = self._sync()
            except Exception:
                log.exception("sync of %s failed", self.name)
                delay = 1.0
            if self.finished.is_set():
                return
            self._wake.wait(min(delay, self.agent.config.sync_frequency))
            self._wake.clear()

    def _sync(self) -> float:
        with self._lock:
            pod, deleted = self.pod, self.deleted
        if deleted or pod["metadata"].get("deletionTimestamp"):
            grace = 0 if deleted else pod["metadata"].get("deletionGracePeriodSeconds",
                                                          pod["spec"].get("terminationGracePeriodSeconds", 30))
            self._terminate(pod, float(grace))
            if not deleted:
                self.agent.client.delete("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"])
            self.finished.set()
            return 0
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            if self.sandbox is not None:
                self.agent.runtime.stop_sandbox(pod, self.sandbox)
                self.sandbox = None
            return 60.0
        if not self._ensure_sandbox(pod):
            self._write_status(pod)
            return 2.0
        next_sync = self.agent.config.sync_frequency
        try:
            volumes.refresh(pod, self.agent.runtime.pod_dir(pod), self.agent.lookup)
        except volumes.VolumeError as exc:
            log.warning("%s: %s", self.name, exc)
        for container in pod["spec"]["containers"]:
            next_sync = min(next_sync, self._sync_container(pod, container))
        self._write_status(pod)
        return next_sync

    def _ensure_sandbox(self, pod: dict) -> bool:
        runtime = self.agent.runtime
        if self.sandbox is not None and self.sandbox.alive():
            return True
        attempt = 0
        if self.sandbox is not None:   # the holder died: kubelet kills the containers and makes a new sandbox
            attempt = self.sandbox.attempt + 1
            self.agent.events.record(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and "
                                                                      "re-created.")
            self._kill_containers(pod, 0)
            runtime.stop_sandbox(pod, self.sandbox)
            self.sandbox = None
            self.state.sandbox_ready = False
        try:
            self.sandbox, network = runtime.run_sandbox(pod, attempt)
        except Exception as exc:
            msg = f"Failed to create pod sandbox: {exc}"
            log.warning("%s: %s", self.name, msg)
            self.agent.events.record(pod, "Warning", "FailedCreatePodSandBox", msg)
            return False
        try:
            volumes.prepare(pod, runtime.pod_dir(pod), self.agent.lookup)
        except volumes.VolumeError as exc:
            self.agent.events.record(pod, "Warning", "FailedMount", str(exc))
        self.state.pod_ip = network.ip
        self.state.sandbox_ready = True
        self.state.start_time = self.state.start_time or time.time()
        return True

    def _sync_container(self, pod: dict, container: dict) -> float:
        """Start, watch or restart one container; returns seconds until it needs attention again."""
        name = container["name"]
        cs = self.state.containers.setdefault(name, ContainerState(name))
        proc = self.procs.get(name)
        if proc is not None:
            status = proc.exit_status()
            if status is None:
                cs.ready = True   # no readiness probe: ready once running (probes: nodeagent.prober)
                cs.started = True
                return self.agent.config.sync_frequency
            self._record_exit(pod, container, cs, proc, status)
            del self.procs[name]
        if cs.terminated is not None:
            return 60.0
        policy = pod["spec"].get("restartPolicy", "Always")
        last = cs.last_terminated
        if last is not None:
            if policy == "Never" or (policy == "OnFailure" and last["exitCode"] == 0):
                cs.terminated, cs.last_terminated = last, cs.previous_terminated
                cs.waiting_reason = None
                return 60.0
            key = f"{self.uid}/{name}"
            wait = self.agent.backoff.remaining(key, last["_finished"])
            if wait > 0:
                if cs.waiting_reason != "CrashLoopBackOff":
                    self.agent.events.record(pod, "Warning", "BackOff", "Back-off restarting failed container "
                                                                        f"{name} in pod {pod['metadata']['name']}")
                cs.waiting_reason = "CrashLoopBackOff"
                cs.waiting_message = (f"back-off {int(self.agent.backoff.current(key))}s restarting failed "
                                      f"container={name} pod={pod['metadata']['name']}")
                return wait
            self.agent.backoff.next(key, last["_finished"])
            cs.restart_count += 1
        self._start_container(pod, container, cs)
        return 0.05 if cs.running_since else 1.0

    def _start_container(self, pod: dict, container: dict, cs: ContainerState) -> None:
        agent = self.agent
        try:
            env = container_env(pod_with_ip(pod, self.state), container, agent.services(), agent.lookup)
            argv = container_argv(container, env)
            mounts = standard_mounts(agent.runtime.pod_dir(pod), pod, container, self.state.pod_ip or "",
                                     agent.config.cluster_dns, agent.config.cluster_domain)
            mounts += volumes.container_mounts(pod, container, agent.runtime.pod_dir(pod))
        except (EnvError, volumes.VolumeError) as exc:
            cs.waiting_reason, cs.waiting_message = "CreateContainerConfigError", str(exc)
            agent.events.record(pod, "Warning", "Failed", f"Error: {exc}")
            return
        oom_adj = qos.oom_score_adj(pod, container, agent.memory_capacity)
        try:
            proc = agent.runtime.start_container(pod, container, self.sandbox, cs.restart_count, argv, env, mounts,
                                                 oom_adj)
        except StartError as exc:
            now = time.time()
            self._set_last(cs, {"exitCode": 128, "reason": "StartError", "message": str(exc),
                                "startedAt": rfc3339(now), "finishedAt": rfc3339(now), "_finished": now})
            agent.events.record(pod, "Warning", "Failed", f"Error: {exc}")
            return
        self.procs[container["name"]] = proc
        cs.running_since = proc.started
        cs.waiting_reason = cs.waiting_message = None
        agent.events.record(pod, "Normal", "Created", f"Created container {container['name']}")
        agent.events.record(pod, "Normal", "Started", f"Started container {container['name']}")

    def _record_exit(self, pod: dict, container: dict, cs: ContainerState, proc: ContainerProcess,
                     status: ExitStatus) -> None:
        oom = self.agent.runtime.oom_kills(pod, container["name"]) > 0
        if status.start_error:
            reason, code = "StartError", 128
        elif oom and status.exit_code != 0:
            reason, code = "OOMKilled", status.exit_code
        else:
            reason, code = ("Completed" if status.exit_code == 0 else "Error"), status.exit_code
        terminated = {"exitCode": code, "reason": reason, "startedAt": rfc3339(status.started),
                      "finishedAt": rfc3339(status.finished), "containerID": f"kemu://{container['name']}-"
                                                                            f"{proc.attempt}",
                      "_finished": status.finished}
        if status.signal:
            terminated["signal"] = status.signal
        if status.start_error:
            terminated["message"] = status.start_error
        if reason == "OOMKilled":
            self.agent.events.record(pod, "Warning", "OOMKilling", f"Container {container['name']} was OOM-killed "
                                                                   "(memory limit reached)")
        cs.running_since = None
        cs.ready = False
        self._set_last(cs, terminated)

    @staticmethod
    def _set_last(cs: ContainerState, terminated: dict) -> None:
        cs.previous_terminated = cs.last_terminated
        cs.last_terminated = terminated
        cs.waiting_reason = "ContainerCreating"

    # ---- stopping ----------------------------------------------------------------------------------------------
    def _kill_containers(self, pod: dict, grace: float) -> None:
        threads = []
        for name, proc in list(self.procs.items()):
            if proc.exit_status() is None:
                self.agent.events.record(pod, "Normal", "Killing", f"Stopping container {name}")
                t = threading.Thread(target=self.agent.runtime.stop_container, args=(pod, proc, grace))
                t.start()
                threads.append(t)
        for t in threads:
            t.join()
        self.procs.clear()

    def _terminate(self, pod: dict, grace: float) -> None:
        self._kill_containers(pod, grace)
        self.agent.runtime.remove_pod(pod)
        self.sandbox = None

    def _write_status(self, pod: dict) -> None:
        self.agent.status.write(pod, self.state, qos.qos_class(pod))


def pod_with_ip(pod: dict, state: PodState) -> dict:
    """The pod as the downward API sees it at container start (podIP/hostIP known before status is written)."""
    status = dict(pod.get("status") or {}, podIP=state.pod_ip or "", hostIP=state.host_ip or "",
                  podIPs=[{"ip": state.pod_ip}] if state.pod_ip else [])
    return dict(pod, status=status)

