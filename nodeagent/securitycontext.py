"""The node agent's side of a pod's securityContext (kubelet's): the runAsNonRoot check before a container is
created, and fsGroup ownership of the pod's volumes. Credentials, capabilities and namespaces are the runtime's
(runtime/shim.py); see docs/security.md."""
from __future__ import annotations

import os
import stat

IMAGE_UID = 0          # kemu's "image" is the host userland, whose default user is root
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110   # kubelet's pkg/volume/volume_linux.go


class SecurityContextError(ValueError):
    """A container's securityContext forbids starting it (CreateContainerConfigError)."""


def _effective(pod: dict, container: dict, field: str):
    """A field of the container's securityContext, else of the pod's (DetermineEffectiveSecurityContext)."""
    sc = container.get("securityContext") or {}
    if sc.get(field) is not None:
        return sc[field]
    return (pod["spec"].get("securityContext") or {}).get(field)


def verify_run_as_non_root(pod: dict, container: dict) -> None:
    """kubelet's verifyRunAsNonRoot: with runAsNonRoot the effective uid (runAsUser, else the image's: root) must
    not be 0. Raises SecurityContextError with upstream's message."""
    if not _effective(pod, container, "runAsNonRoot"):
        return
    meta = pod["metadata"]
    who = f'(pod: "{meta["name"]}_{meta["namespace"]}({meta.get("uid", "")})", container: {container["name"]})'
    uid = _effective(pod, container, "runAsUser")
    if uid is not None:
        if uid == 0:
            raise SecurityContextError(f"container's runAsUser breaks non-root policy {who}")
        return
    if IMAGE_UID == 0:
        raise SecurityContextError(f"container has runAsNonRoot and image will run as root {who}")


def fs_group(pod: dict) -> int | None:
    return (pod["spec"].get("securityContext") or {}).get("fsGroup")


def fs_group_modes(payload: dict[str, tuple[bytes, int]], group: int | None) -> dict[str, tuple[bytes, int]]:
    """A projected volume's file modes as they end up with an fsGroup (group-readable), so that the written
    content compares equal to the next payload and is not rewritten at every sync."""
    if group is None:
        return payload
    return {path: (content, mode | RO_MASK) for path, (content, mode) in payload.items()}


def set_volume_ownership(path: str, group: int | None, readonly: bool) -> None:
    """kubelet's SetVolumeOwnership: everything under `path` group-owned by `group`; directories setgid (new
    files inherit the group) and group-searchable; group read-write (emptyDir) or read (projected)."""
    if group is None:
        return
    mask = RO_MASK if readonly else RW_MASK
    _own(path, group, mask)
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            _own(os.path.join(dirpath, name), group, mask)


def _own(path: str, group: int, mask: int) -> None:
    os.lchown(path, -1, group)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return
    extra = mask | stat.S_ISGID | EXEC_MASK if stat.S_ISDIR(st.st_mode) else mask
    os.chmod(path, stat.S_IMODE(st.st_mode) | extra)
