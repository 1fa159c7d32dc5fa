"""Turns pod specs into processes the way containerd + runc + pause do, minus images.

- `linux`: the few syscalls Python 3.11 lacks (setns, unshare, mount) via ctypes.
- `shim`: the per-container monitor (conmon's role): enters the sandbox, execs the command, records the exit.
- `sandbox`: the holder process owning a pod's network, UTS and IPC namespaces, and its netns bind mount.
- `container`: one container's process, state on disk, stop with grace.
- `cgroups`, `qos`: cgroup v1/v2 drivers and upstream's QoS rules; `cnilib`: the CNI runtime side (libcni).
"""
