"""Pod status as kubelet's status manager computes and writes it (phase, conditions, container statuses)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kemu.client import Client, now_rfc3339

log = logging.getLogger(__name__)


def rfc3339(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else None


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
    containers: dict[str, ContainerState] = field(default_factory=dict)
    pod_ip: str | None = None
    host_ip: str | None = None
    start_time: float | None = None
    sandbox_ready: bool = False
    reason: str | None = None
    message: str | None = None


def compute_phase(pod: dict, state: PodState) -> str:
    """kubelet's getPhase: a container waiting to restart counts as stopped, one never started as waiting."""
    spec = pod["spec"]
    policy = spec.get("restartPolicy", "Always")
    running = waiting = stopped = succeeded = 0
    for c in spec["containers"]:
        cs = state.containers.get(c["name"])
        if cs is None:
            waiting += 1
        elif cs.running_since is not None:
            running += 1
        elif cs.terminated is not None:
            stopped += 1
            succeeded += cs.terminated["exitCode"] == 0
        elif cs.last_terminated is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if policy == "Never" else "Running"


def build_status(pod: dict, state: PodState, old: dict) -> dict:
    """The new status, keeping lastTransitionTime of conditions whose value did not change."""
    phase = compute_phase(pod, state)
    images = {c["name"]: c.get("image", "") for c in pod["spec"]["containers"]}
    statuses = [state.containers[n].to_status(images[n]) for n in images if n in state.containers]
    containers_ready = bool(statuses) and all(s["ready"] for s in statuses) and len(statuses) == len(images)
    old_conditions = {c["type"]: c for c in old.get("conditions") or []}

    def condition(ctype: str, ok: bool, reason: str | None = None) -> dict:
        value = "True" if ok else "False"
        prev = old_conditions.get(ctype)
        cond = {"type": ctype, "status": value, "lastProbeTime": None,
                "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == value
                else now_rfc3339()}
        if reason and not ok:
            cond["reason"] = reason
        return cond

    terminal = phase in ("Succeeded", "Failed")
    status = {
        "phase": phase,
        "conditions": [
            condition("PodReadyToStartContainers", state.sandbox_ready),
            condition("Initialized", True),
            condition("ContainersReady", containers_ready and not terminal, "ContainersNotReady"),
            condition("Ready", containers_ready and not terminal, "ContainersNotReady"),
            condition("PodScheduled", True),
        ],
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
    """Writes pod status back to the store only when it changed (a compare-and-swap on the pod)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def write(self, pod: dict, state: PodState, qos_class: str) -> dict | None:
        meta = pod["metadata"]

        def mutate(live: dict) -> bool | None:
            if live["metadata"].get("uid") != meta["uid"]:
                return False
            old = live.get("status") or {}
            new = build_status(live, state, old)
            new["qosClass"] = qos_class
            if old.get("phase") in ("Succeeded", "Failed") and new["phase"] != old["phase"]:
                return False   # terminal phases never change
            live["status"] = new
            return None
        return self.client.mutate("Pod", meta["namespace"], meta["name"], mutate)
