"""cgroup v2: one unified tree; controllers enabled via cgroup.subtree_control."""
from __future__ import annotations

import logging
import os

from . import fs
from .base import Cgroup, CgroupDriver, Usage
from .resources import QUOTA_PERIOD_US, Resources, cpu_quota, cpu_shares, cpu_weight

log = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "memory", "pids")


class V2Driver(CgroupDriver):
    version = 2

    def __init__(self, root: str = "/sys/fs/cgroup"):
        self.root = root
        self.mounts = [root]
        offered = (fs.read_or(os.path.join(root, "cgroup.controllers"), "") or "").split()
        self.controllers = [c for c in CONTROLLERS if c in offered]
        missing = [c for c in CONTROLLERS if c not in offered]
        if missing:
            log.warning("cgroup v2 at %s lacks controllers, not enforced: %s", root, ", ".join(missing))

    def _dir(self, cg: Cgroup) -> str:
        return os.path.join(self.root, cg.path)

    def _enable_subtree(self, d: str) -> None:
        """Delegate our controllers to d's children (only those not yet enabled)."""
        f = os.path.join(d, "cgroup.subtree_control")
        have = {c.lstrip("+") for c in (fs.read_or(f, "") or "").split()}
        want = [c for c in self.controllers if c not in have]
        if want:
            try:
                fs.write(f, " ".join("+" + c for c in want))
            except OSError as e:
                # EBUSY: d holds processes ("no internal processes"), typically the root of
                # a container's cgroup namespace: move them into a leaf first.
                raise OSError(e.errno, f"cannot enable {want} in {f}: {e.strerror}") from e

    def _prepare_root(self) -> None:
        self._enable_subtree(self.root)

    def _mkdir(self, path: str, intermediate: bool) -> Cgroup:
        cg = Cgroup(self, path)
        d = self._dir(cg)
        os.makedirs(d, exist_ok=True)
        if intermediate:
            # "no internal processes": intermediate cgroups hold no tasks, only children
            self._enable_subtree(d)
        return cg

    def _apply(self, cg: Cgroup, res: Resources, container: bool) -> None:
        d = self._dir(cg)
        if "cpu" in self.controllers:
            fs.write(os.path.join(d, "cpu.weight"), cpu_weight(cpu_shares(res.cpu_request_millis)))
            quota = cpu_quota(res.cpu_limit_millis, QUOTA_PERIOD_US)
            fs.write(os.path.join(d, "cpu.max"), f"{'max' if quota is None else quota} {QUOTA_PERIOD_US}")
        if "memory" in self.controllers:
            lim = res.memory_limit_bytes
            fs.write(os.path.join(d, "memory.max"), "max" if lim is None else lim)
            if container:
                self._write_optional(os.path.join(d, "memory.swap.max"), 0)
                # kubelet (v2, singleProcessOOMKill=false): an OOM kills the whole container
                self._write_optional(os.path.join(d, "memory.oom.group"), 1)
        if "pids" in self.controllers:
            fs.write(os.path.join(d, "pids.max"), "max" if res.pids_limit is None else res.pids_limit)

    # ---- freeze / kill ----
    def _native_kill(self, cg: Cgroup) -> bool:
        f = os.path.join(self._dir(cg), "cgroup.kill")
        if not os.path.exists(f):
            return False
        fs.write(f, 1)  # kernel >= 5.14: SIGKILL to the whole subtree, fork-safe
        return True

    def _freeze(self, cg: Cgroup) -> bool:
        d = self._dir(cg)
        if not os.path.exists(os.path.join(d, "cgroup.freeze")):
            return False
        fs.write(os.path.join(d, "cgroup.freeze"), 1)
        events = os.path.join(d, "cgroup.events")
        if not self._wait_for(lambda: fs.parse_keyed(fs.read_or(events, "") or "").get("frozen") == 1):
            log.warning("%r did not freeze; killing anyway", cg)
        return True

    def _thaw(self, cg: Cgroup) -> None:
        self._write_optional(os.path.join(self._dir(cg), "cgroup.freeze"), 0)

    # ---- stats ----
    def _oom_kill_count(self, cg: Cgroup) -> int:
        """OOM kills in cg. With memory.oom.group=1 (containers) the kernel counts oom_kill
        once for the victim and once more per task of the group it then kills, the victim
        included unless it already dropped its mm (seen: 2 for one single-process OOM on
        6.1), so the count of OOM incidents there is oom_group_kill (kernel >= 5.17; one per
        group kill, and every OOM kill in a group leaf is one). Older kernels: oom_kill."""
        d = self._dir(cg)
        events = fs.parse_keyed(fs.read_or(os.path.join(d, "memory.events"), "") or "")
        group = (fs.read_or(os.path.join(d, "memory.oom.group"), "0") or "0").strip() == "1"
        if group and events.get("oom_group_kill", 0) > 0:
            return events["oom_group_kill"]
        return events.get("oom_kill", 0)

    def _usage(self, cg: Cgroup) -> Usage:
        d = self._dir(cg)
        usec = fs.parse_keyed(fs.read_or(os.path.join(d, "cpu.stat"), "") or "").get("usage_usec", 0)
        current = (fs.read_or(os.path.join(d, "memory.current"), "0") or "0").strip() or "0"
        stat = fs.parse_keyed(fs.read_or(os.path.join(d, "memory.stat"), "") or "")
        ws = max(0, int(current) - stat.get("inactive_file", 0))
        return Usage(cpu_seconds=usec / 1e6, memory_working_set_bytes=ws)
