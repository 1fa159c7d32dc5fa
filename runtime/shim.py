"""Container shim, conmon's role. Run as `python -I -S shim.py SPEC.json` (stdlib only, so it starts fast).

The shim forks: the child joins the container's cgroup, enters the sandbox's namespaces, gets a private mount
namespace with the pod's files and volumes, drops privileges and execs the command; the parent records the child's
PID, waits, and writes the exit status so that an agent restarted meanwhile still learns how the container ended.
Modes: `run` (a container) and `pause` (a sandbox holder: new net/UTS/IPC namespaces, hostname, then sleep).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linux  # noqa: E402  (runtime/linux.py, imported by path: no package import cost)


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _join_cgroup(procs_files: list[str]) -> None:
    for path in procs_files:
        with open(path, "w") as f:
            f.write(str(os.getpid()))


def _setup_child(spec: dict) -> None:
    _join_cgroup(spec.get("cgroup_procs", []))
    if spec.get("oom_score_adj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(spec["oom_score_adj"]))
    holder = spec["sandbox_pid"]
    for ns in ("ipc", "uts", "net") + (("pid",) if spec.get("share_pid") else ()):
        linux.setns(f"/proc/{holder}/ns/{ns}", ns)
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    for m in spec.get("mounts", []):
        target = m["target"]
        if not os.path.exists(target):
            # never create mount points on the host's filesystem: containers share it (no image rootfs yet)
            raise FileNotFoundError(f"mountPath {target} does not exist on the node")
        linux.bind_mount(m["source"], target, readonly=m.get("readonly", False))
    if spec.get("workdir"):
        os.makedirs(spec["workdir"], exist_ok=True)
        os.chdir(spec["workdir"])
    if spec.get("gid") is not None:
        os.setgroups([spec["gid"]])
        os.setgid(spec["gid"])
    if spec.get("uid") is not None:
        os.setuid(spec["uid"])


def run(spec: dict) -> int:
    """Start the container process and monitor it until it exits."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if spec.get("ready_fd") is not None:
            os.close(spec["ready_fd"])
        try:
            os.setsid()
            _setup_child(spec)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            os.close(w)
            os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
        except BaseException as exc:  # report why the container could not start, then die like runc does
            os.write(w, f"{type(exc).__name__}: {exc}".encode()[:4000])
            os._exit(128)
    os.close(w)
    started = time.time()
    _write_json(spec["state_file"], {"pid": pid, "shim_pid": os.getpid(), "started": started})
    error = b""
    while chunk := os.read(r, 4096):
        error += chunk
    os.close(r)
    _report_ready(spec, {"pid": pid, "error": error.decode(errors="replace")})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    finished = time.time()
    exit_code = os.waitstatus_to_exitcode(status)
    result = {"pid": pid, "shim_pid": os.getpid(), "started": started, "finished": finished,
              "exit_code": 128 - exit_code if exit_code < 0 else exit_code,
              "signal": -exit_code if exit_code < 0 else None, "start_error": error.decode(errors="replace")}
    _write_json(spec["state_file"], result)
    return 0


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
    """Become a sandbox holder: own fresh net/UTS/IPC namespaces and sleep until killed."""
    try:
        _join_cgroup(spec.get("cgroup_procs", []))
        linux.unshare(linux.CLONE_NEWNET | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC)
        linux.sethostname(spec["hostname"])
    except OSError as exc:
        _report_ready(spec, {"pid": os.getpid(), "error": str(exc)})
        os._exit(1)
    _report_ready(spec, {"pid": os.getpid(), "error": ""})
    os.execv("/bin/sleep", ["sleep", "infinity"])


def main() -> None:
    mode, spec_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    if mode == "pause":
        pause(spec)
    else:
        sys.exit(run(spec))


if __name__ == "__main__":
    main()
