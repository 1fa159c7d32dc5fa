"""Turns CRI-shaped requests into processes the way containerd + runc + pause do, minus images.

- `cri`: the request types (PodSandboxConfig, ContainerConfig, ...) the node agent sends; nothing of a Pod.
- `pods`: PodRuntime, the CRI-shaped surface (sandboxes, containers, exec, stop, removal).
- `linux`: the few syscalls Python 3.11 lacks (setns, unshare, mount) via ctypes.
- `shim`: the per-container monitor (conmon's role): enters the sandbox, execs the command, records the exit.
- `sandbox`: the holder process owning a pod's network, UTS and IPC namespaces, and its netns bind mount.
- `container`: one container's process, state on disk, stop with grace.
- `cgroups`: cgroup v1/v2 drivers; `cnilib`: the CNI runtime side (libcni).
It imports nothing from kemu, nodeagent, proxy or the CLI.
"""
