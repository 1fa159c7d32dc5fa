"""Version-independent part of the cgroup layer: the tree layout, the Cgroup object,
the kill loop and recursive removal. V1Driver/V2Driver fill in the file formats."""
from __future__ import annotations

import errno
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from runtime.names import cgroup_name

from . import fs
from .resources import Resources

log = logging.getLogger(__name__)

QOS_TIERS = {"guaranteed": "", "burstable": "burstable", "besteffort": "besteffort"}
SANDBOX = "_sandbox"  # not a valid DNS label, so it can never clash with a container name


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    memory_working_set_bytes: int


def _check_name(name: str) -> str:
    return cgroup_name(name)


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class Cgroup:
    """One cgroup (v2) or one same-named directory in each hierarchy used (v1)."""

    def __init__(self, driver: "CgroupDriver", path: str):
        self.driver = driver
        self.path = path.strip("/")
        for part in self.path.split("/"):
            _check_name(part)  # never let a path escape the hierarchy ("..")

    def __repr__(self) -> str:
        return f"Cgroup(v{self.driver.version}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cgroup) and other.driver is self.driver and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def dirs(self) -> list[str]:
        """Absolute directories backing this cgroup (one per hierarchy on v1)."""
        return [os.path.join(m, self.path) for m in self.driver.mounts]

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs())

    def add_pid(self, pid: int) -> None:
        """Move a process in (every hierarchy on v1)."""
        for d in self.dirs():
            fs.write(os.path.join(d, "cgroup.procs"), pid)

    def pids(self) -> list[int]:
        """All processes in this cgroup and below (union over hierarchies on v1)."""
        found: set[int] = set()
        for d in self.dirs():
            for dirpath, _dirs, _files in os.walk(d):
                text = fs.read_or(os.path.join(dirpath, "cgroup.procs"), "")
                found.update(fs.parse_procs(text or ""))
        return sorted(found)

    def children(self) -> list["Cgroup"]:
        names: set[str] = set()
        for d in self.dirs():
            try:
                names.update(e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                pass
        return [Cgroup(self.driver, _join(self.path, n)) for n in sorted(names)]

    def kill_all(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> bool:
        """Signal every process below until none is left; True when empty.

        SIGKILL uses the kernel's atomic cgroup.kill where present (v2, >=5.14); otherwise
        each round freezes the subtree, signals what it sees, and thaws, so nothing can
        fork between reading cgroup.procs and the kill."""
        deadline = time.monotonic() + timeout
        signalled: set[int] = set()
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                log.warning("%r: %d processes left after %.1fs", self, len(pids), timeout)
                return False
            if not (sig == signal.SIGKILL and self.driver._native_kill(self)):
                self._signal_frozen(sig, signalled)
            time.sleep(0.02)

    def _signal_frozen(self, sig: int, signalled: set[int]) -> None:
        """Freeze, signal every process seen (non-KILL signals once per pid), thaw."""
        frozen = self.driver._freeze(self)
        try:
            for pid in self.pids():
                if sig == signal.SIGKILL or pid not in signalled:
                    signalled.add(pid)
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
        finally:
            if frozen:
                self.driver._thaw(self)

    def oom_kill_count(self) -> int:
        """Processes the kernel OOM-killed in this cgroup (cumulative for its lifetime)."""
        return self.driver._oom_kill_count(self)

    def usage(self) -> Usage:
        return self.driver._usage(self)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left, then rmdir bottom-up in every hierarchy. Idempotent.
        Raises OSError(EBUSY) if something could not be removed."""
        if not self.exists():
            return
        if self.pids():
            self.kill_all(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = [d for d in self.dirs() if not _rmtree(d)]
            if not left:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.EBUSY, f"cgroup not removable: {left}")
            # a css can take a moment to go after its last task exits
            time.sleep(0.05)
            if self.pids():
                self.kill_all(timeout=max(0.1, deadline - time.monotonic()))


def _rmtree(top: str) -> bool:
    """rmdir every directory under top, deepest first; True when top is gone."""
    ok = True
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        ok = fs.rmdir(dirpath) and ok
    return ok and not os.path.isdir(top)


class CgroupDriver(ABC):
    """The kemu tree on one cgroup filesystem; subclasses know the file formats."""

    version: int
    root: str
    mounts: list[str]  # hierarchy roots this driver writes into (1 entry on v2)
    controllers: list[str]  # controllers actually enforced (others are logged and skipped)

    # ---- tree layout (shared) ----
    def node(self, name: str, res: Resources | None = None) -> Cgroup:
        """Create (idempotent) the node root with its burstable/ and besteffort/ tiers.
        `res` (optional, kemu extension) limits the whole node like kubepods' allocatable."""
        _check_name(name)
        self._prepare_root()
        node = self._mkdir(name, intermediate=True)
        if res is not None:
            self._apply(node, res, container=False)
        self._mkdir(_join(name, "burstable"), intermediate=True)
        besteffort = self._mkdir(_join(name, "besteffort"), intermediate=True)
        self._apply(besteffort, Resources(), container=False)  # kubelet: MinShares
        return node

    def pod(self, node: Cgroup, qos: str, pod_uid: str, res: Resources) -> Cgroup:
        """Create/update pod<uid> under the QoS tier; `res` are pod-level totals."""
        tier = QOS_TIERS.get(qos.lower().replace("-", ""))
        if tier is None:
            raise ValueError(f"unknown QoS class {qos!r}")
        pod = self._mkdir(_join(node.path, tier, "pod" + _check_name(pod_uid)), intermediate=True)
        self._apply(pod, res, container=False)
        return pod

    def container(self, pod: Cgroup, name: str, res: Resources) -> Cgroup:
        """Create/update a leaf cgroup for one container (swap off)."""
        c = self._mkdir(_join(pod.path, _check_name(name)), intermediate=False)
        self._apply(c, res, container=True)
        return c

    def set_tier(self, node: Cgroup, qos: str, res: Resources) -> Cgroup:
        """Set a QoS tier's values, e.g. burstable cpu shares = sum of its pods' requests
        as kubelet's QoS container manager does (optional; tiers default to untouched)."""
        tier = QOS_TIERS.get(qos.lower().replace("-", ""))
        if not tier:
            raise ValueError(f"{qos!r} has no tier cgroup")
        cg = Cgroup(self, _join(node.path, tier))
        self._apply(cg, res, container=False)
        return cg

    def sandbox(self, pod: Cgroup) -> Cgroup:
        """Leaf for the pod's sandbox holder process (pause); same on v1 and v2."""
        return self.container(pod, SANDBOX, Resources())

    def find(self, path: str) -> Cgroup | None:
        """Re-attach to an existing cgroup by relative path (None if absent or invalid)."""
        try:
            cg = Cgroup(self, path)
        except ValueError:
            return None
        return cg if cg.exists() else None

    # ---- per-version hooks ----
    def _prepare_root(self) -> None:
        """Anything the hierarchy root needs before a node is created."""

    @abstractmethod
    def _mkdir(self, path: str, intermediate: bool) -> Cgroup: ...

    @abstractmethod
    def _apply(self, cg: Cgroup, res: Resources, container: bool) -> None: ...

    def _native_kill(self, cg: Cgroup) -> bool:
        return False

    @abstractmethod
    def _freeze(self, cg: Cgroup) -> bool: ...

    @abstractmethod
    def _thaw(self, cg: Cgroup) -> None: ...

    @abstractmethod
    def _oom_kill_count(self, cg: Cgroup) -> int: ...

    @abstractmethod
    def _usage(self, cg: Cgroup) -> Usage: ...

    # ---- helpers for subclasses ----
    @staticmethod
    def _wait_for(pred, timeout: float = 1.0) -> bool:
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    @staticmethod
    def _write_optional(path: str, value: str | int) -> bool:
        """Write a file the kernel may not provide (memsw, swap.max); False if absent."""
        try:
            fs.write(path, value)
            return True
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
                return False
            raise


def cleanup_node(driver: CgroupDriver, name: str, timeout: float = 5.0) -> list[str]:
    """Kill and remove a whole node tree; returns relative paths left behind."""
    node = driver.find(_check_name(name))
    if node is None:
        return []
    node.kill_all(timeout=timeout)
    try:
        node.remove(timeout=timeout)
    except OSError as e:
        log.warning("cleanup of %s incomplete: %s", name, e)
    left: set[str] = set()
    for m in driver.mounts:
        top = os.path.join(m, name)
        for dirpath, _dirs, _files in os.walk(top):
            left.add(os.path.relpath(dirpath, m))
    return sorted(left)


def exit_reason(returncode: int, oom_kills: int) -> tuple[str, int]:
    """Kubernetes terminated-state (reason, exitCode) from a Popen-style returncode
    (negative = killed by signal) and the container cgroup's oom_kill count."""
    code = 128 - returncode if returncode < 0 else returncode
    if code != 0 and oom_kills > 0:
        return "OOMKilled", code
    return ("Completed", 0) if code == 0 else ("Error", code)
