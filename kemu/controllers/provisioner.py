"""The built-in dynamic provisioners: where a node's volumes live and how they are made and removed.

Lab nodes share the machine's filesystem, so the controller-manager creates a node's volume directly under the lab's
state directory, `<lab>/storage/<node>/`; every path carries the volume's `pvc-<uid>` name.

| provisioner | volume | size |
|---|---|---|
| `rancher.io/local-path` (class `standard`, kind's default) | a directory `<pv>_<ns>_<claim>`, a hostPath PV | not enforced (as kind's) |
| `kemu.io/ext4-loop` (class `ext4`) | an image file `<pv>.img` formatted ext4, a CSI PV the node agent mounts through a loop device | `resources.requests.storage`: writing past it fails with ENOSPC |

Both give the PV a required node affinity on `kubernetes.io/hostname`, so a pod using it, and its replacement, is
scheduled to that node.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

LOCAL_PATH = "rancher.io/local-path"
EXT4_LOOP = "kemu.io/ext4-loop"
PROVISIONERS = (LOCAL_PATH, EXT4_LOOP)
MIN_EXT4_BYTES = 1 << 20          # mke2fs needs some room for its metadata
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"

DEFAULT_CLASSES = [
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
     "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS: "true"}},
     "provisioner": LOCAL_PATH, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "ext4"},
     "provisioner": EXT4_LOOP, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"},
]


class ProvisionError(RuntimeError):
    pass


def storage_root() -> str:
    """`$KEMU_STORAGE_DIR`, else the lab's `<labs dir>/<lab>/storage` (daemons carry KEMU_LAB)."""
    if os.environ.get("KEMU_STORAGE_DIR"):
        return os.environ["KEMU_STORAGE_DIR"]
    lab = os.environ.get("KEMU_LAB")
    labs = os.environ.get("KEMU_LABS_DIR", "/run/kemu/labs")
    return os.path.join(labs, lab, "storage") if lab else "/run/kemu/storage"


@dataclass(frozen=True)
class Provisioned:
    source: dict           # the PV's volume source: {"hostPath": ...} or {"csi": ...}
    path: str              # what `delete` removes


def node_affinity(node: str) -> dict:
    return {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}


def provision(provisioner: str, pv_name: str, claim: dict, node: str, size: int,
              root: str | None = None) -> Provisioned:
    """Create the volume `pv_name` for `claim` on `node` (`size` bytes); raises ProvisionError."""
    if provisioner not in PROVISIONERS:
        raise ProvisionError(f"unknown provisioner {provisioner!r}")
    if "/" in node or node in ("", ".", ".."):
        raise ProvisionError(f"node name {node!r} cannot be a directory name")
    base = os.path.join(root or storage_root(), node)
    os.makedirs(base, 0o700, exist_ok=True)
    meta = claim["metadata"]
    if provisioner == LOCAL_PATH:
        path = os.path.join(base, f"{pv_name}_{meta['namespace']}_{meta['name']}")
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)
        return Provisioned({"hostPath": {"path": path, "type": "DirectoryOrCreate"}}, path)
    path = os.path.join(base, f"{pv_name}.img")
    try:
        with open(path, "wb") as f:
            f.truncate(max(size, MIN_EXT4_BYTES))
        # no journal and no reserved blocks: the claim's size is (nearly) all usable, and no more
        subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E", "root_owner=0:0",
                        "-L", pv_name[:16], path], check=True, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        _remove(path)
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ProvisionError(f"mkfs.ext4 {path}: {detail.strip()}") from None
    return Provisioned({"csi": {"driver": EXT4_LOOP, "volumeHandle": path, "fsType": "ext4"}}, path)


def volume_path(pv: dict) -> str | None:
    """What a provisioned PV occupies on its node (None for other volumes)."""
    spec = pv.get("spec") or {}
    if (spec.get("csi") or {}).get("driver") == EXT4_LOOP:
        return spec["csi"].get("volumeHandle")
    return (spec.get("hostPath") or {}).get("path")


def delete(pv: dict, root: str | None = None) -> None:
    """Remove a provisioned volume's data (reclaimPolicy Delete); only paths under the storage root."""
    path = volume_path(pv)
    top = os.path.realpath(root or storage_root())
    if not path or not os.path.realpath(path).startswith(top + "/"):
        raise ProvisionError(f"volume {pv['metadata']['name']}: {path!r} is not under {top}; not deleting it")
    _remove(path)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)
