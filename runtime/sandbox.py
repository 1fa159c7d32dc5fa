"""The pod sandbox: a holder process owning the pod's network, UTS and IPC namespaces (the pause container)."""
from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass

from runtime import linux
from runtime.process import pid_alive, spawn_shim, start_ticks


@dataclass
class Sandbox:
    """One pod sandbox on disk (`<pod_dir>/sandbox.json`) and in the kernel (holder PID + netns bind mount)."""
    pod_dir: str
    holder_pid: int
    holder_ticks: int
    hostname: str
    netns_path: str
    attempt: int = 0
    created: float = 0.0

    @property
    def state_file(self) -> str:
        return os.path.join(self.pod_dir, "sandbox.json")

    @classmethod
    def create(cls, pod_dir: str, hostname: str, cgroup_procs: list[str], attempt: int = 0,
               share_pid: bool = False) -> "Sandbox":
        """Start a holder in new namespaces (with `share_pid`, also a PID namespace whose PID 1 it is) and
        bind-mount its netns at `<pod_dir>/netns` for CNI."""
        os.makedirs(pod_dir, exist_ok=True)
        report = spawn_shim("pause", {"hostname": hostname, "cgroup_procs": cgroup_procs, "share_pid": share_pid},
                            pod_dir)
        pid = report["pid"]
        netns_path = os.path.join(pod_dir, "netns")
        sandbox = cls(pod_dir, pid, start_ticks(pid) or 0, hostname, netns_path, attempt, time.time())
        try:
            open(netns_path, "a").close()
            linux.bind_mount(f"/proc/{pid}/ns/net", netns_path)
        except OSError:
            sandbox.destroy()
            raise
        sandbox.save()
        return sandbox

    @classmethod
    def load(cls, pod_dir: str) -> "Sandbox | None":
        try:
            with open(os.path.join(pod_dir, "sandbox.json")) as f:
                return cls(**json.load(f))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def save(self) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, self.state_file)

    def alive(self) -> bool:
        return pid_alive(self.holder_pid, self.holder_ticks)

    def ns_path(self, ns: str) -> str:
        return f"/proc/{self.holder_pid}/ns/{ns}"

    def destroy(self) -> None:
        """Kill the holder and release the netns bind mount (the netns dies with its last user)."""
        if self.alive():
            try:
                os.kill(self.holder_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if os.path.exists(self.netns_path):
            try:
                linux.umount(self.netns_path)
            except OSError:
                pass
            try:
                os.unlink(self.netns_path)
            except OSError:
                pass
        try:
            os.unlink(self.state_file)
        except FileNotFoundError:
            pass
