"""`persistentVolumeClaim` volumes: the claim's bound PersistentVolume, set up on this node.

hostPath and local volumes are node directories the containers bind directly (a provisioned hostPath volume that is
missing is made again, only under the lab's state directory). A `kemu.io/ext4-loop` CSI volume is an ext4 image file:
it is mounted through a loop device (autoclear: unmounting frees the device) at
`<pod_dir>/volumes/kubernetes.io~csi/<name>/mount`, which the volume manager's teardown unmounts with the pod, so its
size is a real filesystem's and a write past it fails with ENOSPC.
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable

from runtime import linux

EXT4_LOOP = "kemu.io/ext4-loop"         # kemu.controllers.provisioner.EXT4_LOOP (nodeagent does not import it)
KEMU_OWNED = "/run/kemu/"

Lookup = Callable[[str, str, str], "dict | None"]


class ClaimError(ValueError):
    """The claim's volume cannot be set up (yet): FailedMount."""


def claim_volume(src: dict, pod: dict, pod_dir: str, vol_name: str, lookup: Lookup) -> str:
    """The node path containers bind for a persistentVolumeClaim volume source (idempotent)."""
    ns, name = pod["metadata"]["namespace"], src.get("claimName")
    claim = lookup("PersistentVolumeClaim", ns, name) if name else None
    if claim is None:
        raise ClaimError(f'persistentvolumeclaim "{name}" not found')
    volume_name = (claim.get("spec") or {}).get("volumeName")
    if (claim.get("status") or {}).get("phase") != "Bound" or not volume_name:
        raise ClaimError(f'persistentvolumeclaim "{name}" is not bound')
    pv = lookup("PersistentVolume", "", volume_name)
    if pv is None:
        raise ClaimError(f'persistentvolume "{volume_name}" not found')
    spec = pv.get("spec") or {}
    if "hostPath" in spec or "local" in spec:
        source = spec.get("hostPath") or spec.get("local") or {}
        path = source.get("path", "")
        if not os.path.isabs(path) or ".." in path.split("/"):
            raise ClaimError(f"volume {volume_name}: path {path!r} must be absolute without '..'")
        if not os.path.isdir(path):
            if source.get("type") != "DirectoryOrCreate" or not os.path.realpath(path).startswith(KEMU_OWNED):
                raise ClaimError(f"volume {volume_name}: {path} does not exist on the node")
            os.makedirs(path, 0o777, exist_ok=True)
        return path
    csi = spec.get("csi") or {}
    if csi.get("driver") != EXT4_LOOP:
        raise ClaimError(f"volume {volume_name}: kemu mounts hostPath, local and {EXT4_LOOP} volumes only")
    return _mount_image(csi.get("volumeHandle", ""), os.path.join(pod_dir, "volumes", "kubernetes.io~csi",
                                                                   vol_name, "mount"), bool(src.get("readOnly")))


def _mount_image(image: str, target: str, readonly: bool) -> str:
    if not os.path.isabs(image) or not os.path.realpath(image).startswith(KEMU_OWNED) or not os.path.isfile(image):
        raise ClaimError(f"volume image {image!r} is missing (it must be a file under {KEMU_OWNED})")
    os.makedirs(target, 0o750, exist_ok=True)
    if linux.is_mountpoint(target):
        return target
    options = "loop,nosuid,nodev" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "ext4", "-o", options, image, target], capture_output=True, text=True,
                         timeout=30, check=False)
    if res.returncode != 0:
        raise ClaimError(f"MountVolume.MountDevice failed: mount {image}: {res.stderr.strip()}")
    return target
