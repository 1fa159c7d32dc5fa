"""Pod status as kubelet's status manager computes and writes it (phase, conditions, container statuses)."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from kemu.api.podspec import is_sidecar
from kemu.api.timeutil import now_rfc3339, rfc3339
from kemu.client import Client

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")


def _public(terminated: dict) -> dict:
    """Drop agent-internal keys (leading underscore) from a terminated state."""
    return {k: v for k, v in terminated.items() if not k.startswith("_")}


@dataclass
class ContainerState:
    """What the agent knows of one container across its restarts."""
    name: str
    restart_count: int = 0
    running_since: float | None = None
    waiting_reason: str | None = "ContainerCreating"
    waiting_message: str | None = None
    terminated: dict | None = None        # current state when it finished and will not restart
    last_terminated: dict | None = None   # lastState.terminated
    previous_terminated: dict | None = None  # the one before it (becomes lastState when the container stays down)
    ready: bool = False
    started: bool = False

    @property
    def running(self) -> bool:
        return self.running_since is not None

    @property
    def restarting(self) -> bool:
        """Waiting after an exit (back-off or about to start again)."""
        return not self.running and self.terminated is None and self.last_terminated is not None

    def state(self) -> dict:
        if self.running_since is not None:
            return {"running": {"startedAt": rfc3339(self.running_since)}}
        if self.terminated is not None:
            return {"terminated": _public(self.terminated)}
        waiting = {"reason": self.waiting_reason or "ContainerCreating"}
        if self.waiting_message:
            waiting["message"] = self.waiting_message
        return {"waiting": waiting}

    def to_status(self, image: str) -> dict:
        return {"name": self.name, "image": image, "imageID": "", "ready": self.ready,
                "restartCount": self.restart_count, "started": self.running_since is not None and self.started,
                "state": self.state(),
                "lastState": {"terminated": _public(self.last_terminated)} if self.last_terminated else {},
                **({"containerID": f"kemu://{self.name}-{self.restart_count}"}
                   if self.running_since or self.terminated else {})}


@dataclass
class PodState:
    containers: dict[str, ContainerState] = field(default_factory=dict)        # app and init, by name
    pod_ip: str | None = None
    host_ip: str | None = None
    start_time: float | None = None
    sandbox_ready: bool = False
    reason: str | None = None
    message: str | None = None
    phase: str | None = None              # set once terminal (Failed by deadline, or computed Succeeded/Failed)


def _init_counts(pod: dict, state: PodState) -> tuple[int, int, bool]:
    """(pending regular init containers, pending sidecars, a regular init container failed)."""
    pending = pending_sidecars = 0
    failed = False
    for c in pod["spec"].get("initContainers") or []:
        cs = state.containers.get(c["name"])
        if is_sidecar(c):
            if cs is None or (cs.running and not cs.started) or \
                    (not cs.running and cs.terminated is None and cs.last_terminated is None):
                pending_sidecars += 1
            continue
        if cs is None or cs.running:
            pending += 1
        elif cs.terminated is not None:
            failed |= cs.terminated["exitCode"] != 0
        elif cs.last_terminated is not None:
            failed |= cs.last_terminated["exitCode"] != 0
        else:
            pending += 1
    return pending, pending_sidecars, failed


def init_done(container: dict, cs: ContainerState | None) -> bool:
    """A regular init container succeeded; a sidecar has started (or already ran and is restarting)."""
    if cs is None:
        return False
    if is_sidecar(container):
        return (cs.running and cs.started) or cs.last_terminated is not None or cs.terminated is not None
    return cs.terminated is not None and cs.terminated["exitCode"] == 0


def initialized(pod: dict, state: PodState) -> bool:
    """Every regular init container succeeded and every sidecar has started."""
    return all(init_done(c, state.containers.get(c["name"])) for c in pod["spec"].get("initContainers") or [])


def compute_phase(pod: dict, state: PodState, terminal: bool = False) -> str:
    """kubelet's getPhase (with sidecars): a container waiting to restart counts as stopped, one never started as
    waiting; a failed init container fails the pod under restartPolicy Never."""
    if state.phase:
        return state.phase
    spec = pod["spec"]
    policy = spec.get("restartPolicy", "Always")
    pending_init, pending_sidecars, failed_init = _init_counts(pod, state)
    running = waiting = stopped = succeeded = unknown = 0
    for c in spec.get("initContainers") or []:
        cs = state.containers.get(c["name"])
        if not is_sidecar(c):
            continue
        if cs is None:
            unknown += 1
        elif cs.running:
            running += 1
        elif cs.terminated is None and cs.last_terminated is None:
            waiting += 1
    any_app_started = False
    for c in spec["containers"]:
        cs = state.containers.get(c["name"])
        if cs is None:
            unknown += 1
            continue
        any_app_started |= cs.running or cs.terminated is not None or cs.last_terminated is not None
        if cs.running:
            running += 1
        elif cs.terminated is not None:
            stopped += 1
            succeeded += cs.terminated["exitCode"] == 0
        elif cs.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or (pending_sidecars and not any_app_started) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def build_status(pod: dict, state: PodState, old: dict, now: Callable[[], str] = now_rfc3339) -> dict:
    """The new status, keeping lastTransitionTime of conditions whose value did not change."""
    phase = compute_phase(pod, state)
    spec = pod["spec"]
    images = {c["name"]: c.get("image", "") for c in spec["containers"]}
    inits = {c["name"]: c.get("image", "") for c in spec.get("initContainers") or []}
    pending_init = [c["name"] for c in spec.get("initContainers") or []
                    if not init_done(c, state.containers.get(c["name"]))]
    waiting_reason = "PodInitializing" if pending_init else "ContainerCreating"

    def container_status(name: str, image: str, reason: str) -> dict:
        cs = state.containers.get(name) or ContainerState(name, waiting_reason=reason)
        return cs.to_status(image)
    statuses = [container_status(n, image, waiting_reason) for n, image in images.items()]
    init_statuses = [container_status(n, image, "PodInitializing") for n, image in inits.items()]
    sidecars = [c["name"] for c in spec.get("initContainers") or [] if is_sidecar(c)]
    must_be_ready = list(images) + sidecars
    not_ready = [n for n in must_be_ready if not (n in state.containers and state.containers[n].ready)]
    old_conditions = {c["type"]: c for c in old.get("conditions") or []}

    def condition(ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> dict:
        value = "True" if ok else "False"
        prev = old_conditions.get(ctype)
        cond = {"type": ctype, "status": value, "lastProbeTime": None,
                "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == value else now()}
        if reason and not ok:
            cond["reason"] = reason
            if message:
                cond["message"] = message
        return cond

    terminal = phase in TERMINAL
    ready_reason = "PodCompleted" if terminal else "ContainersNotReady"
    ready_message = None if terminal else f"containers with unready status: [{' '.join(not_ready)}]"
    status = {
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", state.sandbox_ready and not terminal),
            condition("Initialized", not pending_init, "ContainersNotInitialized",
                      f"containers with incomplete status: [{' '.join(pending_init)}]"),
            condition("ContainersReady", not not_ready and not terminal, ready_reason, ready_message),
            condition("Ready", not not_ready and not terminal, ready_reason, ready_message),
            old_conditions.get("PodScheduled") or condition("PodScheduled", True),
        ],
        "initContainerStatuses": init_statuses or None,
        "containerStatuses": statuses,
        "qosClass": old.get("qosClass"),
    }
    if state.host_ip:
        status["hostIP"] = state.host_ip
        status["hostIPs"] = [{"ip": state.host_ip}]
    if state.pod_ip:
        status["podIP"] = state.pod_ip
        status["podIPs"] = [{"ip": state.pod_ip}]
    if state.start_time:
        status["startTime"] = rfc3339(state.start_time)
    if state.reason:
        status["reason"] = state.reason
        status["message"] = state.message
    return {k: v for k, v in status.items() if v is not None}


class StatusManager:
    """Writes pod status back to the store only when it changed (a compare-and-swap on the pod).

    Like kubelet's status manager it remembers what it last wrote per pod and skips the store while the freshly
    computed status is the same, but compares with the store at least every `recheck` seconds (someone else may
    have changed the status). A static pod's status goes to its mirror pod: same name, matched by the config hash
    instead of the uid."""

    def __init__(self, client: Client, recheck: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.recheck = recheck
        self.clock = clock
        self._written: dict[str, tuple[dict, float]] = {}   # uid -> (status, when it was compared with the store)
        self._lock = threading.Lock()

    def write(self, pod: dict, state: PodState, qos_class: str) -> None:
        meta = pod["metadata"]
        mirror_of = (meta.get("annotations") or {}).get("kubernetes.io/config.hash")
        with self._lock:
            cached, checked = self._written.get(meta["uid"], (None, 0.0))
        if cached is not None and self.clock() - checked < self.recheck:
            fresh = dict(build_status(pod, state, cached), qosClass=qos_class)
            # skip the store only if nothing changed here and nobody else (e.g. the node lifecycle controller
            # marking pods not ready) changed the status we last wrote
            if fresh == cached and (mirror_of or (pod.get("status") or {}) == cached):
                return

        def same_pod(live: dict) -> bool:
            if mirror_of:
                return (live["metadata"].get("annotations") or {}).get("kubernetes.io/config.mirror") == mirror_of
            return live["metadata"].get("uid") == meta["uid"]

        def mutate(live: dict) -> bool | None:
            if not same_pod(live):
                return False
            old = live.get("status") or {}
            new = build_status(pod if mirror_of else live, state, old)
            new["qosClass"] = qos_class
            if old.get("phase") in TERMINAL and new["phase"] != old["phase"]:
                return False   # terminal phases never change
            live["status"] = new
            return None
        result = self.client.mutate("Pod", meta["namespace"], meta["name"], mutate)
        with self._lock:
            if result is not None and same_pod(result):
                self._written[meta["uid"]] = (result.get("status") or {}, self.clock())
            else:
                self._written.pop(meta["uid"], None)

    def forget(self, uid: str) -> None:
        with self._lock:
            self._written.pop(uid, None)
