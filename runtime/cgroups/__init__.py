"""kemu's cgroup layer: a kubelet-like pod/container tree on cgroup v1 or v2.

    drv = detect()
    node = drv.node("kemu-lab-node1")
    pod = drv.pod(node, "Burstable", uid, pod_resources(pod_dict))
    drv.sandbox(pod).add_pid(holder_pid)
    c = drv.container(pod, "app", container_resources(container_dict))
    c.add_pid(pid); ...; c.oom_kill_count(); c.usage(); pod.remove()

See docs/cgroups.md.
"""
from __future__ import annotations

import os

from . import fs
from .base import SANDBOX, Cgroup, CgroupDriver, Usage, cleanup_node, exit_reason
from .resources import Resources, cpu_quota, cpu_shares, cpu_weight
from .v1 import V1Driver
from .v2 import V2Driver

__all__ = [
    "detect", "Cgroup", "CgroupDriver", "V1Driver", "V2Driver", "Resources", "Usage",
    "cleanup_node", "exit_reason", "cpu_shares", "cpu_weight", "cpu_quota", "SANDBOX",
]


def is_cgroup2(root: str, mountinfo: str | None = None) -> bool:
    """True if root is a cgroup2 mount (per mountinfo) or looks like one (cgroup.controllers).

    Every mount counts, not only cgroup ones: on a hybrid host /sys/fs/cgroup is a tmpfs, and
    that answer must not fall through to probing the files of whatever is mounted here."""
    if mountinfo is None:
        mountinfo = fs.read_or("/proc/self/mountinfo", "") or ""
    real = os.path.realpath(root)
    top = [m for m in fs.parse_mountinfo(mountinfo, fstypes=None) if m.mountpoint == real]
    if top:  # the last mount on a mountpoint is the visible one
        return top[-1].fstype == "cgroup2"
    # not a mountpoint (a subtree of a mount, or a fake tree in tests): look at the files
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def detect(root: str = "/sys/fs/cgroup") -> CgroupDriver:
    """V2Driver if root is a cgroup2 mount (unified host), else V1Driver (legacy/hybrid)."""
    return V2Driver(root) if is_cgroup2(root) else V1Driver(root)
