"""The pod worker: one thread per pod driving its sandbox and containers toward the spec (kubelet's podWorkers +
SyncPod). Init containers run in order, sidecars start before and stop after the app containers, containers
restart under the restart policy with upstream's back-off, probe results (from the prober manager) restart
containers or flip readiness, and everything is reported through the status manager; the runtime does the kernel
work. The ExitWatcher (PLEG's role for exits) wakes a worker the moment one of its containers exits."""
from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import dataclass
from typing import Callable

from kemu.api import images
from kemu.api.podspec import is_sidecar
from kemu.api.timeutil import parse_time, rfc3339
from nodeagent import qos, securitycontext, volumes
from nodeagent.backoff import Backoff
from nodeagent.env import EnvError, container_argv, container_env
from nodeagent.kuberuntime import container_config, container_security, sandbox_config
from nodeagent.lifecycle import HandlerRunner
from nodeagent.podfiles import standard_mounts
from nodeagent.prober import ProbeManager, Recorder
from nodeagent.status import TERMINAL, ContainerState, PodState, StatusManager, compute_phase, init_done
from nodeagent.tokens import TokenManager
from nodeagent.volumes import Lookup
from runtime.container import ContainerProcess, ExitStatus
from runtime.pods import PodRuntime
from runtime.process import CreateContainerError, StartError
from runtime.sandbox import Sandbox

log = logging.getLogger(__name__)
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


class ExitWatcher:
    """Calls back when a process exits (pidfd + epoll), for shims the agent started and ones it re-adopted."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="exit-watcher", daemon=True).start()

    def watch(self, pid: int, callback: Callable[[], None]) -> None:
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            callback()
            return
        with self._lock:
            self._callbacks[fd] = callback
        self._epoll.register(fd, select.EPOLLIN)

    def _run(self) -> None:
        while True:
            for fd, _ in self._epoll.poll():
                with self._lock:
                    callback = self._callbacks.pop(fd, None)
                try:
                    self._epoll.unregister(fd)
                finally:
                    os.close(fd)
                if callback:
                    callback()


@dataclass
class WorkerDeps:
    """Everything a pod worker uses, and nothing else (kubelet's pod workers get a sync function and a recorder):
    shared node-level managers, the few node settings it reads, a ConfigMap/Secret lookup, the Services for
    container environments and a callback for a gracefully deleted pod that has stopped."""
    runtime: PodRuntime
    prober: ProbeManager
    status: StatusManager
    record: Recorder                           # (pod, type, reason, message) -> an Event
    backoff: Backoff
    exit_watcher: ExitWatcher
    lookup: Lookup                             # (kind, namespace, name) -> ConfigMap or Secret
    services: Callable[[], list[dict]]
    on_terminated: Callable[[dict], None]      # remove the pod object (if it is still the same pod)
    node_ip: str
    cluster_dns: str
    cluster_domain: str
    sync_frequency: float
    memory_capacity: int                       # bytes, for oom_score_adj
    tokens: TokenManager | None = None         # service-account tokens for projected volumes (None: placeholders)


class PodWorker:
    def __init__(self, deps: WorkerDeps, pod: dict) -> None:
        self.deps = deps
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        # what the runtime knows of the pod; identity, DNS, QoS and hostname never change for a pod
        self.sandbox_config = sandbox_config(pod, deps.cluster_dns, deps.cluster_domain)
        self.pod_dir = deps.runtime.pod_dir(self.sandbox_config.metadata)
        self.hooks = HandlerRunner(deps.runtime)
        self.state = PodState(host_ip=deps.node_ip)
        self.sandbox: Sandbox | None = None
        self.procs: dict[str, ContainerProcess] = {}
        self.terminate_grace: float | None = None   # set: stop the pod with this grace, then finish
        self.finished = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"pod-{pod['metadata']['name']}", daemon=True)

    # ---- driven by the node agent ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def update(self, pod: dict | None) -> None:
        """A new desired state (None: the object is gone, e.g. force-deleted: stop at once)."""
        with self._lock:
            if pod is None:
                self.terminate_grace = 0.0
            else:
                self.pod = pod
        self._wake.set()

    def terminate(self, grace: float) -> None:
        """Stop the pod (e.g. its static manifest was removed) and finish."""
        with self._lock:
            self.terminate_grace = grace if self.terminate_grace is None else min(grace, self.terminate_grace)
        self._wake.set()

    def adopt(self) -> None:
        """Pick up what a previous agent left: sandbox, running containers (same PIDs, restart counts, readiness),
        and exits that happened while no agent was watching (recorded by the shims)."""
        runtime = self.deps.runtime
        status = self.pod.get("status") or {}
        if status.get("phase") in TERMINAL:   # finished before: never run again
            self.state.phase = status["phase"]
            self.state.reason, self.state.message = status.get("reason"), status.get("message")
        sandbox = runtime.sandbox(self.sandbox_config.metadata)
        if sandbox is None:
            return
        self.sandbox = sandbox
        self.deps.exit_watcher.watch(sandbox.holder_pid, self.wake)
        # the IP CNI ADD gave the sandbox (its result cache), not only what a status write managed to record: an
        # agent killed between ADD and the first status write left none there
        self.state.pod_ip = runtime.sandbox_ip(self.sandbox_config.metadata) or status.get("podIP")
        self.state.sandbox_ready = sandbox.alive() and bool(self.state.pod_ip)
        self.state.start_time = sandbox.created
        previous = {s["name"]: s for s in (status.get("containerStatuses") or []) +
                    (status.get("initContainerStatuses") or [])}
        for c in self._all_containers(self.pod):
            proc = ContainerProcess.latest(runtime.container_dir(self.sandbox_config.metadata, c["name"]),
                                           c["name"])
            if proc is not None:
                self.state.containers[c["name"]] = self._adopt_container(c, proc, previous.get(c["name"]) or {})
        log.info("adopted %s: sandbox pid %s, containers %s", self.name, sandbox.holder_pid,
                 {n: p.pid for n, p in self.procs.items()})

    def _adopt_container(self, container: dict, proc: ContainerProcess, prev: dict) -> ContainerState:
        name = container["name"]
        cs = ContainerState(name, restart_count=proc.attempt, waiting_reason=None)
        cs.last_terminated = (prev.get("lastState") or {}).get("terminated")
        exit_status = proc.exit_status()
        attempt_id = f"kemu://{name}-{proc.attempt}"
        if exit_status is None:
            reported = (prev.get("state") or {}).get("running", {}).get("startedAt")
            cs.running_since = parse_time(reported) if reported and prev.get("containerID") == attempt_id \
                else proc.started   # what the status said stays said
            cs.started = bool(prev.get("started"))
            self._track(container, proc, was_ready=bool(prev.get("ready")), was_started=cs.started)
            return cs
        recorded_state = (prev.get("state") or {}).get("terminated")
        if recorded_state and recorded_state.get("containerID") == attempt_id:   # finished for good, seen
            cs.terminated = dict(recorded_state, _finished=exit_status.finished)
        elif cs.last_terminated and cs.last_terminated.get("containerID") == attempt_id:   # seen, restarting
            cs.last_terminated = dict(cs.last_terminated, _finished=exit_status.finished)
            cs.waiting_reason = ((prev.get("state") or {}).get("waiting") or {}).get("reason")
        else:   # exited while no agent was watching: recorded on the first sync
            self.procs[name] = proc
        return cs

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        failure = ""
        while True:
            try:
                delay = self._sync()
                failure = ""
            except Exception as exc:   # this pod only: say so on it (once per distinct error) and retry
                log.exception("sync of %s failed", self.name)
                if str(exc) != failure:
                    failure = str(exc)
                    self.deps.record(self.pod, "Warning", "FailedSync", f"error syncing pod: {exc}")
                delay = 1.0
            if self.finished.is_set():
                return
            self._wake.wait(max(0.0, min(delay, self.deps.sync_frequency)))
            self._wake.clear()

    def _sync(self) -> float:
        with self._lock:
            pod, grace = self.pod, self.terminate_grace
        meta = pod["metadata"]
        if grace is not None or meta.get("deletionTimestamp"):
            if grace is None:
                grace = float(meta.get("deletionGracePeriodSeconds",
                                       pod["spec"].get("terminationGracePeriodSeconds", 30)))
            self._terminate(pod, grace)
            if self.terminate_grace is None:
                self.deps.on_terminated(pod)
            self.finished.set()
            return 0
        if self.state.phase in TERMINAL:
            if self.procs or self.sandbox is not None:
                self._stop_everything(pod, 0)
                self._write_status(pod)
            return 60.0
        deadline = self._deadline(pod)
        if deadline is not None and deadline <= 0:
            self._deadline_exceeded(pod)
            return 0
        if not self._ensure_sandbox(pod):
            self._write_status(pod)
            return 2.0
        try:
            volumes.refresh(pod, self.pod_dir, self.deps.lookup, self.deps.tokens)
        except volumes.VolumeError as exc:
            log.warning("%s: %s", self.name, exc)
        next_sync = self.deps.sync_frequency if deadline is None else \
            min(deadline, self.deps.sync_frequency)
        self._observe(pod)
        done, delay = self._sync_init_containers(pod)
        next_sync = min(next_sync, delay)
        if done:
            policy = pod["spec"].get("restartPolicy", "Always")
            for container in pod["spec"]["containers"]:
                next_sync = min(next_sync, self._sync_container(pod, container, policy))
            if all(self.state.containers[c["name"]].terminated is not None for c in pod["spec"]["containers"]):
                self._stop_sidecars(pod)
        phase = compute_phase(pod, self.state)
        if phase in TERMINAL:
            self.state.phase = phase
            self._stop_everything(pod, float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
        self._write_status(pod)
        return next_sync

    @staticmethod
    def _all_containers(pod: dict) -> list[dict]:
        return list(pod["spec"].get("initContainers") or []) + list(pod["spec"]["containers"])

    # ---- observing running containers --------------------------------------------------------------------------
    def _observe(self, pod: dict) -> None:
        """Record exits; kill containers whose liveness or startup probe failed; take readiness."""
        specs = {c["name"]: c for c in self._all_containers(pod)}
        policy = pod["spec"].get("restartPolicy", "Always")
        for name, proc in list(self.procs.items()):
            cs = self.state.containers.setdefault(name, ContainerState(name))
            status = proc.exit_status()
            probe_kill = None
            if status is None:
                key = (self.uid, name)
                probe_kill = self.deps.prober.failed(key)
                if probe_kill is None:
                    cs.started = self.deps.prober.started(key)
                    cs.ready = cs.started and self.deps.prober.ready(key)
                    continue
                status = self._kill_for_probe(pod, specs[name], proc, probe_kill, policy)
            self._record_exit(pod, specs[name], cs, proc, status, probe_kill)
            del self.procs[name]
            self.deps.prober.remove_container(self.uid, name)

    def _kill_for_probe(self, pod: dict, container: dict, proc: ContainerProcess, kind: str,
                        policy: str) -> ExitStatus:
        restarts = is_sidecar(container) or policy == "Always" or policy == "OnFailure"
        message = f"Container {container['name']} failed {kind} probe" + (", will be restarted" if restarts else "")
        self.deps.record(pod, "Normal", "Killing", message)
        probe = container.get(f"{kind}Probe") or {}
        grace = probe.get("terminationGracePeriodSeconds", pod["spec"].get("terminationGracePeriodSeconds", 30))
        self._stop_container(pod, container, proc, float(grace))
        return proc.exit_status() or ExitStatus(137, 9, proc.started, time.time())

    def _record_exit(self, pod: dict, container: dict, cs: ContainerState, proc: ContainerProcess,
                     status: ExitStatus, probe_kill: str | None = None) -> None:
        oom = self.deps.runtime.oom_kills(self.sandbox_config, container["name"]) > 0
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
        message = status.start_error or proc.termination_message(container.get("terminationMessagePolicy", "File"))
        if message:
            terminated["message"] = message
        if probe_kill:
            terminated["_probe_kill"] = probe_kill
        if reason == "OOMKilled":
            self.deps.record(pod, "Warning", "OOMKilling", f"Container {container['name']} was OOM-killed "
                                                           "(memory limit reached)")
        cs.running_since = None
        cs.ready = False
        self._set_last(cs, terminated)

    @staticmethod
    def _set_last(cs: ContainerState, terminated: dict) -> None:
        cs.previous_terminated = cs.last_terminated
        cs.last_terminated = terminated
        cs.waiting_reason = "ContainerCreating"

    # ---- starting and restarting -------------------------------------------------------------------------------
    def _sync_init_containers(self, pod: dict) -> tuple[bool, float]:
        """Run init containers in order (sidecars: start and keep running). (all done, seconds to next sync)"""
        delay = self.deps.sync_frequency
        pod_policy = pod["spec"].get("restartPolicy", "Always")
        for c in pod["spec"].get("initContainers") or []:
            cs = self.state.containers.get(c["name"])
            if is_sidecar(c):
                delay = min(delay, self._sync_container(pod, c, "Always"))
                if not init_done(c, self.state.containers.get(c["name"])):
                    return False, delay
                continue
            if init_done(c, cs):
                continue
            delay = min(delay, self._sync_container(pod, c, "Never" if pod_policy == "Never" else "OnFailure"))
            return False, delay
        return True, delay

    def _sync_container(self, pod: dict, container: dict, policy: str) -> float:
        """Start or restart one container under `policy`; returns seconds until it needs attention again."""
        name = container["name"]
        cs = self.state.containers.setdefault(name, ContainerState(name))
        if name in self.procs:
            return self.deps.sync_frequency
        if cs.terminated is not None:
            return 60.0
        last = cs.last_terminated
        if last is not None:
            if self._stays_down(cs, policy):
                return 60.0
            # kubelet measures back-off from the newest *exited* attempt; after a probe kill that is the one before
            since = cs.previous_terminated if last.get("_probe_kill") else last
            if since is not None:
                key = f"{self.uid}/{name}"
                wait = self.deps.backoff.remaining(key, finished_at(since))
                if wait > 0:
                    if cs.waiting_reason != "CrashLoopBackOff":
                        self.deps.record(pod, "Warning", "BackOff",
                                         f"Back-off restarting failed container {name} in pod "
                                         f"{pod['metadata']['name']}")
                    cs.waiting_reason = "CrashLoopBackOff"
                    cs.waiting_message = (f"back-off {self.deps.backoff.current(key):g}s restarting failed "
                                          f"container={name} pod={pod['metadata']['name']}")
                    return wait
                self.deps.backoff.next(key, finished_at(since))
            cs.restart_count += 1
        self._start_container(pod, container, cs)
        if name not in self.procs and cs.last_terminated is not last and self._stays_down(cs, policy):
            return 60.0   # it could not even start (StartError) and the policy keeps it down
        return self.deps.sync_frequency if name in self.procs else 1.0

    @staticmethod
    def _stays_down(cs: ContainerState, policy: str) -> bool:
        """If the restart policy keeps the container down after its last exit, make that its final state."""
        last = cs.last_terminated
        if last is None or not (policy == "Never" or (policy == "OnFailure" and last["exitCode"] == 0)):
            return False
        cs.terminated, cs.last_terminated = last, cs.previous_terminated
        cs.waiting_reason = None
        return True

    def _start_container(self, pod: dict, container: dict, cs: ContainerState) -> None:
        deps = self.deps
        seen = pod_with_ip(pod, self.state)   # the downward API and hooks see the pod IP before status has it
        try:
            securitycontext.verify_run_as_non_root(pod, container)
            image = images.lookup(str(container.get("image") or ""))
            env = container_env(seen, container, deps.services(), deps.lookup, images.entry_env(image))
            argv = container_argv(container, env, image)
            mounts = standard_mounts(self.pod_dir, pod, container, self.state.pod_ip or "")
            mounts += volumes.container_mounts(pod, container, self.pod_dir)
        except (EnvError, volumes.VolumeError, securitycontext.SecurityContextError) as exc:
            cs.waiting_reason, cs.waiting_message = "CreateContainerConfigError", str(exc)
            deps.record(pod, "Warning", "Failed", f"Error: {exc}")
            return
        config = container_config(pod, container, cs.restart_count, argv, env, mounts, deps.memory_capacity, image)
        image = container.get("image") or "host"
        deps.record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        try:
            proc = deps.runtime.start_container(self.sandbox_config, config, self.sandbox)
            self.hooks.post_start(self.sandbox_config, seen, container, proc)
        except CreateContainerError as exc:
            cs.waiting_reason, cs.waiting_message = "CreateContainerError", str(exc)
            deps.record(pod, "Warning", "Failed", f"Error: {exc}")
            return
        except StartError as exc:
            now = time.time()
            self._set_last(cs, {"exitCode": 128, "reason": "StartError", "message": str(exc),
                                "startedAt": rfc3339(now), "finishedAt": rfc3339(now), "_finished": now,
                                "containerID": f"kemu://{container['name']}-{cs.restart_count}"})
            deps.record(pod, "Warning", getattr(exc, "event_reason", "Failed"), f"Error: {exc}")
            return
        cs.running_since = proc.started
        cs.waiting_reason = cs.waiting_message = None
        deps.record(pod, "Normal", "Created", f"Created container {container['name']}")
        deps.record(pod, "Normal", "Started", f"Started container {container['name']}")
        self._track(container, proc)
        cs.started = deps.prober.started((self.uid, container["name"]))
        cs.ready = cs.started and deps.prober.ready((self.uid, container["name"]))

    def _track(self, container: dict, proc: ContainerProcess, was_ready: bool = False,
               was_started: bool = False) -> None:
        """Watch a running attempt: its exit wakes this worker; its probes start."""
        self.procs[container["name"]] = proc
        runtime, sandbox, pod = self.deps.runtime, self.sandbox_config, self.pod
        security = container_security(pod, container)

        def exec_fn(argv: list[str], timeout: float) -> tuple[int, str]:
            return runtime.exec_sync(sandbox, proc, argv, timeout, security, container.get("workingDir"))
        self.deps.prober.add_container(pod, container, exec_fn, self.state.pod_ip or "", proc.started,
                                       was_ready=was_ready, was_started=was_started)
        self.deps.exit_watcher.watch(proc.shim_pid or proc.pid, self.wake)

    # ---- deadlines and stopping --------------------------------------------------------------------------------
    def _deadline(self, pod: dict) -> float | None:
        """Seconds left of activeDeadlineSeconds (None: no deadline)."""
        ads = pod["spec"].get("activeDeadlineSeconds")
        if ads is None or self.state.start_time is None:
            return None
        return self.state.start_time + float(ads) - time.time()

    def _deadline_exceeded(self, pod: dict) -> None:
        self.deps.record(pod, "Normal", "DeadlineExceeded", DEADLINE_MESSAGE)
        self.state.phase, self.state.reason, self.state.message = "Failed", "DeadlineExceeded", DEADLINE_MESSAGE
        self._stop_everything(pod, float(pod["spec"].get("terminationGracePeriodSeconds", 30)))
        self._write_status(pod)

    def _kill(self, pod: dict, names: list[str], grace: float) -> None:
        """Stop these running containers in parallel with `grace`, recording how they ended (no restart)."""
        specs = {c["name"]: c for c in self._all_containers(pod)}
        threads = []
        for name in names:
            proc = self.procs.get(name)
            if proc is None:
                continue
            self.deps.prober.remove_container(self.uid, name)
            if proc.exit_status() is None:
                self.deps.record(pod, "Normal", "Killing", f"Stopping container {name}")
                t = threading.Thread(target=self._stop_container, args=(pod, specs[name], proc, grace))
                t.start()
                threads.append(t)
        for t in threads:
            t.join()
        for name in names:
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            cs = self.state.containers.setdefault(name, ContainerState(name))
            self._record_exit(pod, specs[name], cs, proc,
                              proc.exit_status() or ExitStatus(137, 9, proc.started, time.time()))
            cs.terminated, cs.last_terminated = cs.last_terminated, cs.previous_terminated
            cs.waiting_reason = None

    def _stop_sidecars(self, pod: dict, grace: float | None = None) -> None:
        """Every regular container is done: stop the sidecars, in reverse order (kubelet: at least 2 s each)."""
        if grace is None:
            grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        for c in reversed(pod["spec"].get("initContainers") or []):
            if is_sidecar(c) and c["name"] in self.procs:
                self._kill(pod, [c["name"]], max(grace, 2.0))

    def _stop_everything(self, pod: dict, grace: float) -> None:
        """App containers first, then sidecars (within what is left of the grace), then the sandbox."""
        deadline = time.monotonic() + grace
        self._kill(pod, [c["name"] for c in pod["spec"]["containers"]], grace)
        self._kill(pod, [c["name"] for c in pod["spec"].get("initContainers") or [] if not is_sidecar(c)], grace)
        self._stop_sidecars(pod, max(0.0, deadline - time.monotonic()))
        if self.sandbox is not None:
            self.deps.runtime.stop_sandbox(self.sandbox_config, self.sandbox)
            self.sandbox = None
            self.state.sandbox_ready = False

    def _stop_container(self, pod: dict, container: dict | None, proc: ContainerProcess, grace: float) -> None:
        """kubelet's killContainer: preStop hook, then SIGTERM and SIGKILL within what is left of `grace`."""
        self.hooks.stop_container(self.sandbox_config, pod_with_ip(pod, self.state), container, proc, grace)

    def _terminate(self, pod: dict, grace: float) -> None:
        self._stop_everything(pod, grace)
        self.deps.prober.remove_pod(self.uid)
        self.deps.backoff.forget(f"{self.uid}/")
        volumes.teardown(self.pod_dir)
        self.deps.runtime.remove_pod(self.sandbox_config)

    def _ensure_sandbox(self, pod: dict) -> bool:
        runtime = self.deps.runtime
        if self.sandbox is not None and self.sandbox.alive() and self.state.pod_ip:
            return True
        # a dead holder, or one without a network (the agent died between creating it and CNI ADD): replace it
        attempt = 0
        if self.sandbox is not None:   # the holder died: kubelet kills the containers and makes a new sandbox
            attempt = self.sandbox.attempt + 1
            self.deps.record(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and "
                                                              "re-created.")
            for proc in self.procs.values():
                runtime.stop_container(self.sandbox_config, proc, 0)
            self._observe(pod)   # records the exits; the containers restart in the new sandbox
            runtime.stop_sandbox(self.sandbox_config, self.sandbox)
            self.sandbox = None
            self.state.sandbox_ready = False
        try:
            self.sandbox, network = runtime.run_sandbox(sandbox_config(pod, self.deps.cluster_dns,
                                                                       self.deps.cluster_domain, attempt))
        except Exception as exc:
            msg = f"Failed to create pod sandbox: {exc}"
            log.warning("%s: %s", self.name, msg)
            self.deps.record(pod, "Warning", "FailedCreatePodSandBox", msg)
            return False
        try:
            volumes.prepare(pod, self.pod_dir, self.deps.lookup, self.deps.tokens)
        except volumes.VolumeError as exc:
            self.deps.record(pod, "Warning", "FailedMount", str(exc))
        self.deps.exit_watcher.watch(self.sandbox.holder_pid, self.wake)   # a dead holder: a new sandbox at once
        self.state.pod_ip = network.ip
        self.state.sandbox_ready = True
        self.state.start_time = self.state.start_time or time.time()
        return True

    def _write_status(self, pod: dict) -> None:
        self.deps.status.write(pod, self.state, qos.qos_class(pod))


def finished_at(terminated: dict) -> float:
    """When an attempt finished, to the sub-second when this agent saw it (re-adopted: from the status)."""
    return terminated.get("_finished") or parse_time(terminated["finishedAt"])


def pod_with_ip(pod: dict, state: PodState) -> dict:
    """The pod as the downward API sees it at container start (podIP/hostIP known before status is written)."""
    status = dict(pod.get("status") or {}, podIP=state.pod_ip or "", hostIP=state.host_ip or "",
                  podIPs=[{"ip": state.pod_ip}] if state.pod_ip else [])
    return dict(pod, status=status)
