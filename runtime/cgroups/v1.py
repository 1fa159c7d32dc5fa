"""cgroup v1: one directory per hierarchy (cpu, cpuacct, memory, pids, freezer, devices).

The devices hierarchy gets the same tree; the container's rules (runc's allow-list, or everything when
privileged) are written by the shim (runtime/shim.py) before the container joins, as runc does."""
from __future__ import annotations

import logging
import os

from . import fs
from .base import Cgroup, CgroupDriver, Usage
from .resources import QUOTA_PERIOD_US, Resources, cpu_quota, cpu_shares

log = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer", "devices")


def find_hierarchies(root: str, mountinfo: str | None = None) -> dict[str, str]:
    """controller -> mountpoint for the v1 hierarchies under `root`.

    Reads /proc/self/mountinfo (handles comounts like cpu,cpuacct); when nothing is mounted
    under root (a fake tree in tests) falls back to directory names ("cpu,cpuacct" allowed)."""
    root = os.path.realpath(root)
    if mountinfo is None:
        mountinfo = fs.read_or("/proc/self/mountinfo", "") or ""
    found: dict[str, str] = {}
    for m in fs.parse_mountinfo(mountinfo):
        if m.fstype == "cgroup" and os.path.dirname(m.mountpoint.rstrip("/")) == root:
            for c in m.options.intersection(CONTROLLERS):
                found.setdefault(c, m.mountpoint)
    if found:
        return found
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except FileNotFoundError:
        return {}
    for e in entries:
        if e.is_dir(follow_symlinks=False):
            for c in e.name.split(","):
                if c in CONTROLLERS:
                    found.setdefault(c, e.path)
    return found


class V1Driver(CgroupDriver):
    version = 1

    def __init__(self, root: str = "/sys/fs/cgroup", mountinfo: str | None = None):
        self.root = root
        self.hierarchies = find_hierarchies(root, mountinfo)
        if not self.hierarchies:
            raise RuntimeError(f"no cgroup v1 hierarchies (or cgroup2 mount) under {root}")
        self.controllers = [c for c in CONTROLLERS if c in self.hierarchies]
        missing = [c for c in CONTROLLERS if c not in self.hierarchies]
        if missing:
            log.warning("cgroup v1: hierarchies not mounted, not enforced: %s", ", ".join(missing))
        # each comounted hierarchy once, in a stable order
        self.mounts = list(dict.fromkeys(self.hierarchies[c] for c in CONTROLLERS if c in self.hierarchies))

    def _dir(self, controller: str, cg: Cgroup) -> str | None:
        m = self.hierarchies.get(controller)
        return os.path.join(m, cg.path) if m else None

    def _mkdir(self, path: str, intermediate: bool) -> Cgroup:
        cg = Cgroup(self, path)
        for d in cg.dirs():
            os.makedirs(d, exist_ok=True)
        return cg

    def _prepare_root(self) -> None:
        # Old kernels default memory.use_hierarchy to 0; limits must apply to descendants.
        m = self.hierarchies.get("memory")
        f = os.path.join(m, "memory.use_hierarchy") if m else ""
        if m and (fs.read_or(f, "1") or "1").strip() == "0":
            try:
                fs.write(f, 1)
            except OSError as e:  # EBUSY once the root has children: warn, don't fail
                log.warning("memory.use_hierarchy is 0 and cannot be set (%s): pod limits "
                            "will not cover containers", e.strerror)

    def _apply(self, cg: Cgroup, res: Resources, container: bool) -> None:
        cpu = self._dir("cpu", cg)
        if cpu:
            fs.write(os.path.join(cpu, "cpu.shares"), cpu_shares(res.cpu_request_millis))
            quota = cpu_quota(res.cpu_limit_millis, QUOTA_PERIOD_US)
            fs.write(os.path.join(cpu, "cpu.cfs_period_us"), QUOTA_PERIOD_US)
            fs.write(os.path.join(cpu, "cpu.cfs_quota_us"), -1 if quota is None else quota)
        mem = self._dir("memory", cg)
        if mem:
            self._set_memory(mem, res.memory_limit_bytes, container)
        pids = self._dir("pids", cg)
        if pids:
            fs.write(os.path.join(pids, "pids.max"), "max" if res.pids_limit is None else res.pids_limit)

    def _set_memory(self, d: str, limit: int | None, container: bool) -> None:
        """memory.limit_in_bytes; for containers memsw = limit (no swap). The kernel
        requires memsw >= limit at every step, so raise memsw first, lower it last."""
        lim_file = os.path.join(d, "memory.limit_in_bytes")
        sw_file = os.path.join(d, "memory.memsw.limit_in_bytes")
        value = -1 if limit is None else limit
        if not container:
            fs.write(lim_file, value)
            return
        cur = fs.read_or(sw_file)
        cur_sw = fs.parse_limit(cur) if cur and cur.strip() else None
        inf = float("inf")
        raising = (inf if limit is None else limit) > (inf if cur_sw is None else cur_sw)
        if raising:
            self._write_optional(sw_file, value)
            fs.write(lim_file, value)
        else:
            fs.write(lim_file, value)
            self._write_optional(sw_file, value)

    # ---- freeze / kill ----
    def _freeze(self, cg: Cgroup) -> bool:
        d = self._dir("freezer", cg)
        if not d or not os.path.isdir(d):
            return False
        state = os.path.join(d, "freezer.state")
        fs.write(state, "FROZEN")
        if not self._wait_for(lambda: (fs.read_or(state, "") or "").strip() == "FROZEN"):
            log.warning("%r did not reach FROZEN; killing anyway", cg)
        return True

    def _thaw(self, cg: Cgroup) -> None:
        d = self._dir("freezer", cg)
        if d:
            self._write_optional(os.path.join(d, "freezer.state"), "THAWED")

    # ---- stats ----
    def _oom_kill_count(self, cg: Cgroup) -> int:
        d = self._dir("memory", cg)
        text = fs.read_or(os.path.join(d, "memory.oom_control"), "") if d else ""
        return fs.parse_keyed(text or "").get("oom_kill", 0)

    def _usage(self, cg: Cgroup) -> Usage:
        acct = self._dir("cpuacct", cg)
        ns = fs.read_or(os.path.join(acct, "cpuacct.usage"), "0") if acct else "0"
        mem = self._dir("memory", cg)
        ws = 0
        if mem:
            usage = int((fs.read_or(os.path.join(mem, "memory.usage_in_bytes"), "0") or "0").strip() or 0)
            stat = fs.parse_keyed(fs.read_or(os.path.join(mem, "memory.stat"), "") or "")
            inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
            ws = max(0, usage - inactive)
        return Usage(cpu_seconds=int((ns or "0").strip() or 0) / 1e9, memory_working_set_bytes=ws)
