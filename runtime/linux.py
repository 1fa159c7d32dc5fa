"""Namespaces, mounts and capabilities through libc (stdlib only: the shim imports this before exec)."""
from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2
NS_FLAGS = {"net": CLONE_NEWNET, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "mnt": CLONE_NEWNS, "pid": CLONE_NEWPID}

SYS_PIVOT_ROOT = 155          # x86_64
SYS_MOUNT_SETATTR = 442       # all architectures (since 5.12)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_KEEPCAPS = 8
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522

# capability numbers (linux/capability.h)
CAPS = {name: i for i, name in enumerate([
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE"])}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def setns(path: str, nstype: str) -> None:
    """Move this thread into the namespace at `path` (e.g. /proc/PID/ns/net)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, NS_FLAGS[nstype]), f"setns {path}")
    finally:
        os.close(fd)


def call_in_netns(path: str, fn):
    """`fn()` run on a fresh thread that first enters the network namespace at `path`, e.g. to make a socket
    there (a socket stays in the namespace it was made in). setns applies to one thread and that thread ends
    afterwards, so no thread of the caller ever changes namespace. Returns fn's result or raises its error."""
    import threading
    box: dict = {}

    def run() -> None:
        try:
            setns(path, "net")
            box["value"] = fn()
        except BaseException as exc:   # noqa: BLE001 - handed to the caller
            box["error"] = exc
    t = threading.Thread(target=run, name="in-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), f"sethostname {name}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                       ctypes.c_ulong(flags), data.encode() if data else None), f"mount {source} on {target}")


def bind_mount(source: str, target: str, readonly: bool = False) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        make_readonly(target)


def make_readonly(target: str) -> None:
    """Read-only for the mount at `target` and every mount below it (mount_setattr, AT_RECURSIVE)."""
    attr = (ctypes.c_uint64 * 4)(MOUNT_ATTR_RDONLY, 0, 0, 0)   # struct mount_attr {set, clr, propagation, userns}
    ret = _libc.syscall(SYS_MOUNT_SETATTR, -100, target.encode(), AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    if ret != 0:   # older kernels: the top mount only
        mount("none", target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def umount(target: str, lazy: bool = True) -> None:
    _check(_libc.umount2(target.encode(), MNT_DETACH if lazy else 0), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_PIVOT_ROOT, new_root.encode(), put_old.encode()), f"pivot_root {new_root}")


def mountpoints() -> list[str]:
    """Mount points of this mount namespace, in mount order."""
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def is_mountpoint(path: str) -> bool:
    return path in mountpoints()


# ---- capabilities --------------------------------------------------------------------------------------------
def cap_last() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40


def cap_mask(names: set[str]) -> int:
    return sum(1 << CAPS[n] for n in names if n in CAPS)


def drop_bounding(keep: int) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for cap in range(cap_last() + 1):
        if not keep & (1 << cap):
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop cap {cap} from bounding set")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF,
                                 effective >> 32, permitted >> 32, inheritable >> 32)
    _check(_libc.capset(header, data), "capset")


def keep_caps(on: bool) -> None:
    _check(_libc.prctl(PR_SET_KEEPCAPS, int(on), 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")


def no_new_privs() -> None:
    """setuid binaries and file capabilities no longer raise privileges (allowPrivilegeEscalation: false)."""
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def raise_ambient(mask: int) -> None:
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    for cap in range(cap_last() + 1):
        if mask & (1 << cap):
            _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), f"raise ambient cap {cap}")


# containerd's default set for containers (oci/spec_opts defaultUnixCaps): 14 capabilities
DEFAULT_CAPS = frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                          "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"})


def capability_sets(add: list[str] | None, drop: list[str] | None, uid: int | None,
                    last: int | None = None) -> dict[str, int]:
    """securityContext.capabilities → bit masks: `bounding` (= effective/permitted for root) and `ambient`
    (for a non-root user only the explicitly added capabilities, so they survive execve). Names may carry the
    CAP_ prefix; ALL means every capability the kernel knows."""
    everything = set(n for n, i in CAPS.items() if i <= (cap_last() if last is None else last))

    def names(items: list[str] | None) -> set[str]:
        out = {str(n).upper().removeprefix("CAP_") for n in items or []}
        return everything if "ALL" in out else out & everything
    added, dropped = names(add), names(drop)
    bounding = (set(DEFAULT_CAPS) - dropped) | added
    ambient = added if uid not in (None, 0) else set()
    return {"bounding": cap_mask(bounding), "ambient": cap_mask(ambient & bounding)}


def unknown_capabilities(items: list[str] | None) -> list[str]:
    return [n for n in items or [] if str(n).upper().removeprefix("CAP_") not in set(CAPS) | {"ALL"}]


# ---- container hardening (masked paths, nodev mounts, overlay whiteouts) ---------------------------------------
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4


def set_mount_attrs(target: str, attrs: int) -> None:
    """Add MOUNT_ATTR_* flags (e.g. RDONLY|NODEV) to the mount at `target` and every mount below it."""
    attr = (ctypes.c_uint64 * 4)(attrs, 0, 0, 0)
    ret = _libc.syscall(SYS_MOUNT_SETATTR, -100, target.encode(), AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr))
    if ret != 0:   # older kernels: the top mount only
        flags = MS_BIND | MS_REMOUNT | (MS_RDONLY if attrs & MOUNT_ATTR_RDONLY else 0) \
            | (MS_NODEV if attrs & MOUNT_ATTR_NODEV else 0) | (MS_NOSUID if attrs & MOUNT_ATTR_NOSUID else 0)
        mount("none", target, None, flags)


def overlay_whiteout(upper: str, path: str) -> None:
    """Hide the lower layer's `path` in an overlay whose upper dir is `upper` (a 0:0 character device), creating
    the parent directories in the upper layer with the lower layer's owner and mode."""
    _upper_parents(upper, path)
    if not os.path.lexists(upper + path):
        os.mknod(upper + path, 0o600 | 0o020000, os.makedev(0, 0))


def overlay_opaque_dir(upper: str, path: str) -> None:
    """Make `path` an empty directory in the overlay (its lower content hidden), same owner and mode as below."""
    _upper_parents(upper, path)
    _copy_dir(path, upper + path)
    os.setxattr(upper + path, "trusted.overlay.opaque", b"y")


def _upper_parents(upper: str, path: str) -> None:
    parts = path.strip("/").split("/")[:-1]
    for i in range(len(parts)):
        lower = "/" + "/".join(parts[:i + 1])
        if not os.path.isdir(upper + lower):
            _copy_dir(lower, upper + lower)


def _copy_dir(lower: str, target: str) -> None:
    st = os.stat(lower)
    if os.path.isdir(target):
        return
    os.mkdir(target)
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, st.st_mode & 0o7777)
