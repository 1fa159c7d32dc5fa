"""Container shim, conmon + runc's roles. Run as `python -I -S shim.py MODE SPEC.json` (stdlib only: starts fast).

`run`: the shim forks the container. The child joins the container's cgroup and the sandbox's namespaces, builds
the container's root in a private mount namespace (an overlay whose lower layer is the host's `/`, see
docs/runtime.md), mounts the pod's files and volumes into it, pivots into it, drops privileges and capabilities and
execs. The parent records the PID, copies the container's stdout/stderr into a size-capped log, waits, and writes
the exit status so that an agent restarted meanwhile still learns how the container ended.
`pause`: a sandbox holder (new net/UTS/IPC and, when the pod shares it, PID namespaces; hostname; then sleep).
`exec`: run a command inside a running container (hooks): its cgroup, namespaces, root, user and capabilities.
Unless `privileged`, the container gets runc's defaults: its own PID namespace, masked/read-only /proc and /sys,
the standard device nodes only, and not the host's secrets (docs/security.md).
"""
from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum (~5 ms of every container start)
import os
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import linux  # noqa: E402  (runtime/linux.py, imported by path: no package import cost)

from cni import fastjson as json  # noqa: E402  (`import json` alone would cost ~9 ms of every container start)

LOG_MAX_BYTES = 10 * 1024 * 1024     # kubelet's containerLogMaxSize
OLD_ROOT = "/.kemu-oldroot"
# host mounts a container never sees through its root (it gets its own /proc, /sys, /dev, /run, /tmp)
PRIVATE_TREES = ("/proc", "/sys", "/dev", "/run", "/tmp")
# containerd's default spec (oci.populateDefaultUnixSpec): hidden (/dev/null or an empty read-only tmpfs over
# them) and read-only kernel files; `privileged` gets neither
MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# runc's default device allow-list (cgroup v1 devices controller): mknod of anything, use of these only
ALLOWED_DEVICES = ("c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
                   "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm")
STANDARD_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# the host's files the emulated image does not have (docs/security.md): gone, or (EMPTY_DIRS) empty
HIDDEN_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/var/lib/kemu", "/run/kemu")
EMPTY_DIRS = ("/root",)
SSH_DIR = "/etc/ssh"   # its ssh_host_*_key private keys are hidden too


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)


def _join_cgroup(procs_files: list[str]) -> None:
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


class RotatingLog:
    """A container log of at most `max_bytes` on disk: when the current file would grow past half of it, it
    becomes `<path>.1` (replacing the older one) and a new file starts; readers join `.1` and the current file.
    Rotation happens between writes, so what the container wrote in one write stays in one file."""

    def __init__(self, path: str, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path, self.limit = path, max(2, max_bytes // 2)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        data = data[-self.limit:]
        if self.size and self.size + len(data) > self.limit:
            self.rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def rotate(self) -> None:
        os.replace(self.path, self.path + ".1")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self.size = 0

    def pump(self, fd: int) -> bool:
        """Copy what is readable now from `fd`; False once every writer has closed it."""
        chunk = os.read(fd, 65536)
        self.write(chunk)
        return bool(chunk)

    def close(self) -> None:
        os.close(self.fd)


def _monitor(pid: int, out: int, log: RotatingLog, on_exit=None) -> tuple[int, float]:
    """Copy the container's output into the log until the container exits (single-threaded: a thread cannot be
    created after joining a PID namespace), then call `on_exit` (kill what is left) and copy what remains for at
    most a second. Returns (wait status, exit time)."""
    pidfd = os.pidfd_open(pid)
    status = None
    deadline = None
    reading = True
    while reading and (deadline is None or time.monotonic() < deadline):
        fds = [out] + ([pidfd] if status is None else [])
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(fds, [], [], timeout)
        if out in ready:
            reading = log.pump(out)
        if pidfd in ready:
            status, finished = os.waitpid(pid, 0)[1], time.time()
            deadline = time.monotonic() + 1.0
            if on_exit:
                on_exit()
    if status is None:
        status, finished = os.waitpid(pid, 0)[1], time.time()
    os.close(pidfd)
    os.close(out)
    log.close()
    return status, finished


# ---- the container's root ------------------------------------------------------------------------------------
def _host_submounts() -> list[str]:
    """Top-most host mounts below / that the overlay's lower layer does not show (overlayfs ignores submounts)."""
    points = sorted(set(linux.mountpoints()) - {"/"})
    tops: list[str] = []
    for p in points:
        if any(p == t or p.startswith(t + "/") for t in PRIVATE_TREES + tuple(tops)):
            continue
        tops.append(p)
    return tops


def _dev(root: str, shm: str | None, privileged: bool) -> None:
    """A minimal /dev like runc's: a `nodev` tmpfs (a node made in it is unusable) with the standard nodes bound
    from the host's, a new devpts, the pod's /dev/shm. Privileged: every host device node, usable."""
    dev = root + "/dev"
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | (0 if privileged else linux.MS_NODEV),
                "mode=755,size=65536k")
    if privileged:
        _host_devices("/dev", dev)
    else:
        for name in STANDARD_DEVICES:
            if os.path.exists(f"/dev/{name}"):
                os.close(os.open(f"{dev}/{name}", os.O_CREAT | os.O_WRONLY, 0o666))
                linux.bind_mount(f"/dev/{name}", f"{dev}/{name}")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"), ("core", "/proc/kcore")):
        if os.path.lexists(f"{dev}/{name}"):
            os.unlink(f"{dev}/{name}")
        os.symlink(target, f"{dev}/{name}")
    for d in ("pts", "shm", "mqueue"):
        os.makedirs(f"{dev}/{d}", exist_ok=True)
    linux.mount("devpts", f"{dev}/pts", "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620")
    if shm:
        linux.bind_mount(shm, f"{dev}/shm")
        if not privileged:
            linux.set_mount_attrs(f"{dev}/shm", linux.MOUNT_ATTR_NODEV)
    else:
        linux.mount("shm", f"{dev}/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=1777,size=65536k")
    linux.mount("mqueue", f"{dev}/mqueue", "mqueue", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)


def _host_devices(src: str, dst: str) -> None:
    """Privileged containers: the host's device nodes (not its pts, shm, mqueue), as containerd does."""
    for entry in os.scandir(src):
        if entry.name in ("pts", "shm", "mqueue", "fd") or entry.is_symlink():
            continue
        st = entry.stat(follow_symlinks=False)
        target = f"{dst}/{entry.name}"
        try:
            if entry.is_dir(follow_symlinks=False):
                os.mkdir(target, st.st_mode & 0o7777)
                _host_devices(entry.path, target)
                continue
            if st.st_mode & 0o170000 not in (0o020000, 0o060000):   # neither a character nor a block device
                continue
            os.mknod(target, st.st_mode, st.st_rdev)
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)
        except OSError:
            pass   # one node the tmpfs cannot take does not stop the container


def _hide_host_files(upper: str) -> None:
    """What the emulated image does not have: the host's password hashes, root's home, ssh host keys and kemu's
    own state. Whiteouts in the overlay's upper layer: there is no mount a container could undo."""
    for path in HIDDEN_FILES:
        if os.path.lexists(path):
            linux.overlay_whiteout(upper, path)
    for path in EMPTY_DIRS:
        if os.path.isdir(path):
            linux.overlay_opaque_dir(upper, path)
    try:
        keys = [f for f in os.listdir(SSH_DIR) if f.startswith("ssh_host_") and f.endswith("_key")]
    except OSError:
        keys = []
    for name in keys:
        linux.overlay_whiteout(upper, f"{SSH_DIR}/{name}")


def _mask_kernel_files(root: str) -> None:
    """containerd's maskedPaths (files: /dev/null over them; directories: an empty read-only tmpfs) and
    readonlyPaths (a read-only bind of themselves) under the container's /proc and /sys."""
    for path in MASKED_PATHS:
        target = root + path
        if os.path.isdir(target):
            linux.mount("tmpfs", target, "tmpfs", linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV)
        elif os.path.exists(target):
            linux.bind_mount(root + "/dev/null", target)
    for path in READONLY_PATHS:
        target = root + path
        if os.path.exists(target):
            linux.bind_mount(target, target)
            linux.set_mount_attrs(target, linux.MOUNT_ATTR_RDONLY | linux.MOUNT_ATTR_NOSUID
                                  | linux.MOUNT_ATTR_NODEV)


def _build_root(spec: dict) -> None:
    """Overlay root (lower: host /, upper: per attempt) + kernel filesystems; pivot into it; then the mounts.
    Unless privileged, every mount a container can write to is `nodev` and /proc, /sys are masked."""
    base = spec["root"]
    privileged = _privileged(spec)
    nodev = 0 if privileged else linux.MOUNT_ATTR_NODEV
    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d, exist_ok=True)
    _hide_host_files(upper)
    lower = _image_layer(os.path.join(base, "layer"), spec["layer"]) + ":/" if spec.get("layer") else "/"
    linux.mount("overlay", merged, "overlay", 0 if privileged else linux.MS_NODEV,
                f"lowerdir={lower},upperdir={upper},workdir={work}")
    for p in _host_submounts():
        try:
            if os.path.isdir(merged + p) and os.path.isdir(p):
                linux.bind_mount(p, merged + p)
                linux.set_mount_attrs(merged + p, linux.MOUNT_ATTR_RDONLY | nodev)
        except OSError:
            pass   # a host mount the container cannot see: it is not the container's business
    linux.mount("proc", merged + "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount("sysfs", merged + "/sys", "sysfs", (0 if privileged else linux.MS_RDONLY) | linux.MS_NOSUID
                | linux.MS_NODEV | linux.MS_NOEXEC)
    _dev(merged, spec.get("shm"), privileged)
    if not privileged:
        _mask_kernel_files(merged)
    linux.mount("tmpfs", merged + "/run", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755,size=65536k")
    # sources are resolved on the host side (a hostPath like /var/run/x goes through the host's symlinks)
    mounts = [dict(m, source=OLD_ROOT + os.path.realpath(m["source"])) for m in spec.get("mounts", [])]
    os.mkdir(merged + OLD_ROOT, 0o700)
    linux.pivot_root(merged, merged + OLD_ROOT)
    os.chdir("/")
    host_paths: list[str] = []
    for m in sorted(mounts, key=lambda m: m["target"].rstrip("/").count("/")):
        target, source = m["target"], m["source"]
        _mount_point(target, os.path.isdir(source), host_paths)
        linux.bind_mount(source, target)
        attrs = (linux.MOUNT_ATTR_RDONLY if m.get("readonly") else 0) | nodev
        if attrs:
            linux.set_mount_attrs(target, attrs)
        if m.get("host"):
            host_paths.append(os.path.realpath(target))
    linux.umount(OLD_ROOT)
    os.rmdir(OLD_ROOT)
    if spec.get("workdir"):
        _mount_point(spec["workdir"], True, host_paths)
    if spec.get("readonly_root"):   # readOnlyRootFilesystem: the overlay only; volumes keep their own mode
        linux.mount("none", "/", None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def _image_layer(path: str, files: list[dict]) -> str:
    """The image's own files as an overlay layer above the host's / (a tmpfs in this private mount namespace: a
    lower layer may not share a filesystem with `/`). Paths go through the host's symlinks (/bin -> usr/bin);
    directories take the host's mode and owner, so the merged view keeps them."""
    os.makedirs(path, exist_ok=True)
    linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755,size=8m")
    for f in files:
        parent = os.path.realpath(os.path.dirname(f["path"]))
        missing = []
        d = parent
        while d != "/" and not os.path.isdir(path + d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            os.mkdir(path + d)
            try:
                st = os.stat(d)
                os.chmod(path + d, st.st_mode & 0o7777)
                os.chown(path + d, st.st_uid, st.st_gid)
            except FileNotFoundError:
                os.chmod(path + d, 0o755)
        target = path + parent + "/" + os.path.basename(f["path"])
        if "symlink" in f:
            os.symlink(f["symlink"], target)
        else:
            with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f.get("mode", 0o644)), "w") as out:
                out.write(f["content"])
            os.chmod(target, f.get("mode", 0o644))
    return path


def _mount_point(target: str, is_dir: bool, host_paths: list[str]) -> None:
    """Create `target` inside the container's root (the overlay's upper layer) if missing. Resolved after
    pivot_root, so symlinks cannot lead outside; never inside a hostPath volume (that is the node's disk)."""
    if os.path.lexists(target):
        return
    parent = os.path.dirname(target.rstrip("/")) or "/"
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    real = os.path.realpath(existing)
    if any(real == h or real.startswith(h + "/") for h in host_paths):
        raise PermissionError(f"mountPath {target} would create a directory inside a hostPath volume")
    os.makedirs(parent, exist_ok=True)
    if is_dir:
        os.mkdir(target)
    else:
        open(target, "a").close()


# ---- credentials ---------------------------------------------------------------------------------------------
def _drop_privileges(spec: dict) -> None:
    """Bounding set, then uid/gid, then the process's capability sets (see linux.capability_sets)."""
    caps = spec.get("caps") or {}
    bounding, ambient = caps.get("bounding"), caps.get("ambient", 0)
    if bounding is not None and not spec.get("device_cgroup"):
        # no devices controller (cgroup v2: runc would load a BPF program): nothing may create device nodes
        no_mknod = ~(1 << linux.CAPS["MKNOD"])
        bounding, ambient = bounding & no_mknod, ambient & no_mknod
    uid, gid = spec.get("uid"), spec.get("gid")
    if bounding is not None:
        linux.drop_bounding(bounding)
    primary = gid if gid is not None else 0   # runc: a numeric user without a group runs with gid 0
    os.setgroups(sorted({primary, *spec.get("supplemental_groups", [])}))   # fsGroup, supplementalGroups
    os.setgid(primary)
    if uid is not None and uid != 0:
        linux.keep_caps(True)
        os.setuid(uid)
        if bounding is not None:
            linux.capset(ambient, ambient, ambient)
            linux.raise_ambient(ambient)
    elif bounding is not None:
        linux.capset(bounding, bounding, 0)
    if spec.get("no_new_privs"):
        linux.no_new_privs()


def _devices_dir(procs_files: list[str]) -> str | None:
    """The container's cgroup in the v1 devices hierarchy, if the host has one."""
    for path in procs_files:
        d = os.path.dirname(path)
        if os.path.exists(d + "/devices.allow"):
            return d
    return None


def _privileged(spec: dict) -> bool:
    """`privileged`, or (specs without the field) capabilities given as null: everything."""
    return bool(spec["privileged"]) if "privileged" in spec else "caps" in spec and spec["caps"] is None


def _restrict_devices(procs_files: list[str], privileged: bool) -> bool:
    """runc's device policy for the container's cgroup (v1): deny all, allow the standard nodes; privileged:
    all. Written before the child joins, so it holds from its first instruction in the cgroup. False when there
    is no devices controller (cgroup v2)."""
    d = _devices_dir(procs_files)
    if d is None:
        return False
    rules = [("devices.allow", "a")] if privileged else \
        [("devices.deny", "a")] + [("devices.allow", rule) for rule in ALLOWED_DEVICES]
    for name, rule in rules:
        with open(f"{d}/{name}", "w") as f:
            f.write(rule)
    return True


def set_oom_score_adj(value: int) -> int:
    """Set this process's oom_score_adj; where the host refuses a value that low (no CAP_SYS_RESOURCE, e.g. in
    an unprivileged container), keep the lowest it allows: the value inherited from the agent. Returns the value
    in effect (the QoS class does not change; the agent warns about it once on its Node)."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
        return value
    except PermissionError:
        with open("/proc/self/oom_score_adj") as f:
            current = int(f.read())
        if value > current:     # raising it is always allowed; only lowering needs the capability
            raise
        return current


def _setup_child(spec: dict) -> None:
    spec["device_cgroup"] = _restrict_devices(spec.get("cgroup_procs", []), _privileged(spec))
    _join_cgroup(spec.get("cgroup_procs", []))
    if spec.get("oom_score_adj") is not None:
        set_oom_score_adj(spec["oom_score_adj"])
    holder = spec["sandbox_pid"]
    for ns in ("ipc", "uts", "net"):
        linux.setns(f"/proc/{holder}/ns/{ns}", ns)
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    _build_root(spec)
    os.chdir(spec.get("workdir") or "/")
    _drop_privileges(spec)


def run(spec: dict) -> int:
    """Start the container process and monitor it until it exits."""
    # the child is born in the pod's PID namespace (shareProcessNamespace) or is PID 1 of its own (the default;
    # hostPID: the host's); the shim stays outside
    try:
        if spec.get("share_pid"):
            linux.setns(f"/proc/{spec['sandbox_pid']}/ns/pid", "pid")
        elif not spec.get("host_pid"):
            linux.unshare(linux.CLONE_NEWPID)
    except OSError as exc:
        _report_ready(spec, {"pid": 0, "error": f"setting up the container's PID namespace: {exc}"})
        return 1
    r, w = os.pipe()
    log_r, log_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.close(log_r)
        if spec.get("ready_fd") is not None:
            os.close(spec["ready_fd"])
        try:
            os.setsid()
            os.dup2(log_w, 1)
            os.dup2(log_w, 2)
            os.close(log_w)
            _setup_child(spec)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            # `w` is close-on-exec: a successful exec closes it (EOF = started); a failed one reports below
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        except BaseException as exc:  # report why the container could not start, then die like runc does
            os.write(w, f"{type(exc).__name__}: {exc}".encode()[:4000])
            os._exit(128)
    os.close(w)
    os.close(log_w)
    log = RotatingLog(spec["log_path"], spec.get("log_max_bytes") or LOG_MAX_BYTES)
    started = time.time()
    _write_json(spec["state_file"], {"pid": pid, "shim_pid": os.getpid(), "started": started})
    error = b""
    while chunk := os.read(r, 4096):
        error += chunk
    os.close(r)
    _report_ready(spec, {"pid": pid, "error": error.decode(errors="replace")})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    status, finished = _monitor(pid, log_r, log, lambda: _kill_cgroup(spec.get("cgroup_procs", [])))
    exit_code = os.waitstatus_to_exitcode(status)
    result = {"pid": pid, "shim_pid": os.getpid(), "started": started, "finished": finished,
              "exit_code": 128 - exit_code if exit_code < 0 else exit_code,
              "signal": -exit_code if exit_code < 0 else None, "start_error": error.decode(errors="replace")}
    _write_json(spec["state_file"], result)
    return 0


def _kill_cgroup(procs_files: list[str], timeout: float = 1.0) -> None:
    """When the container's main process is gone, so is the container: SIGKILL whatever it left in its cgroup
    (cgroup.kill where the kernel has it): in a shared or the host's PID namespace nothing else would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = set()
        for path in procs_files:
            try:
                with open(path) as f:
                    pids.update(int(p) for p in f.read().split())
            except (OSError, ValueError):
                pass
        if not pids:
            return
        for path in procs_files:
            try:
                with open(os.path.join(os.path.dirname(path), "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)


def _report_ready(spec: dict, message: dict) -> None:
    """Tell the agent (through the inherited pipe `ready_fd`) that start-up is done, and how it went."""
    fd = spec.get("ready_fd")
    if fd is not None:
        try:
            os.write(fd, json.dumps(message).encode())
            os.close(fd)
        except OSError:
            pass  # the agent went away; the state file still tells


def pause(spec: dict) -> None:
    """Become a sandbox holder: own fresh net/UTS/IPC (and PID) namespaces and sleep until killed."""
    try:
        _join_cgroup(spec.get("cgroup_procs", []))
        linux.unshare(linux.CLONE_NEWNET | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
                      | (linux.CLONE_NEWPID if spec.get("share_pid") else 0))
        linux.sethostname(spec["hostname"])
    except OSError as exc:
        _report_ready(spec, {"pid": os.getpid(), "error": str(exc)})
        os._exit(1)
    if not spec.get("share_pid"):
        _report_ready(spec, {"pid": os.getpid(), "error": ""})
        os.execv("/bin/sleep", ["sleep", "infinity"])
    pid = os.fork()   # PID 1 of the pod's PID namespace: reaps orphans, dies only by SIGKILL from outside
    if pid == 0:
        os.close(spec["ready_fd"])
        _init_loop()
    _report_ready(spec, {"pid": pid, "error": ""})
    os._exit(0)


def _init_loop() -> None:
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        signal.pause()


def exec_in(spec: dict) -> int:
    """Run `argv` inside a running container: its cgroup, namespaces (mount ns: its root), user, capabilities."""
    target = spec["target_pid"]
    spec["device_cgroup"] = _devices_dir(spec.get("cgroup_procs", [])) is not None
    _join_cgroup(spec.get("cgroup_procs", []))
    for ns in ("ipc", "uts", "net", "pid", "mnt"):   # pid: the container's own, the pod's or the host's
        linux.setns(f"/proc/{target}/ns/{ns}", ns)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(spec.get("workdir") or "/")
            _drop_privileges(spec)
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        except BaseException as exc:
            os.write(2, f"{type(exc).__name__}: {exc}\n".encode())
            os._exit(126)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main() -> None:
    mode, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.loads(f.read())
    if spec.get("remove_spec_file"):   # a one-shot spec (kemu exec): it may hold the container's secrets
        os.unlink(spec_path)
    if mode == "pause":
        pause(spec)
    elif mode == "exec":
        sys.exit(exec_in(spec))
    else:
        sys.exit(run(spec))


if __name__ == "__main__":
    main()
