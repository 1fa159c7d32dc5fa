"""Spawning and watching the shim processes the runtime owns."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")


_children: dict[int, subprocess.Popen] = {}
_children_lock = threading.Lock()      # reap() runs from the agent's loop and from the runtime's threads


def reap() -> None:
    """Collect exited shims and holders this process started (they are our children until we restart); safe to
    call from several threads at once."""
    with _children_lock:
        for pid, proc in list(_children.items()):
            if proc.poll() is not None:
                _children.pop(pid, None)


class StartError(RuntimeError):
    """A sandbox or container could not be started; the message says why."""


class CreateContainerError(ValueError):
    """The runtime refuses the container's configuration before starting anything (containerd's CreateContainer
    errors, e.g. an unknown capability); the container stays Waiting with reason CreateContainerError."""


def spawn_shim(mode: str, spec: dict, spec_dir: str, stdout: int | None = None) -> dict:
    """Run the shim in `mode` with `spec`, detached from the agent (own session), and wait for its start report."""
    r, w = os.pipe()
    spec = dict(spec, ready_fd=w)
    fd, spec_path = tempfile.mkstemp(prefix=f".{mode}-", suffix=".json", dir=spec_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", SHIM, mode, spec_path], stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                stderr=subprocess.STDOUT if stdout is not None else subprocess.DEVNULL,
                                pass_fds=(w,), start_new_session=True, close_fds=True)
        os.close(w)
        raw = b""
        with os.fdopen(r, "rb") as reader:
            raw = reader.read()
    finally:
        os.unlink(spec_path)
    report = json.loads(raw) if raw else {"pid": proc.pid, "error": "shim exited before starting"}
    if report.get("error"):
        proc.wait(timeout=10)
        raise StartError(report["error"])
    with _children_lock:
        _children[proc.pid] = proc
    report["shim_pid"] = proc.pid
    return report


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the PID, an identity
    that survives agent restarts and cannot be fooled by PID reuse. None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def pid_alive(pid: int, ticks: int | None = None) -> bool:
    """Is `pid` alive and, if `ticks` is given, still the same process?"""
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)
