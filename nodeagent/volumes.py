"""The volume manager: materialises a pod's volumes under its directory and says where containers mount them.

Volume kinds are issue 4's; until they land every volume is rejected at container start with a clear reason.
"""
from __future__ import annotations

from typing import Callable

Lookup = Callable[[str, str, str], "dict | None"]   # (kind, namespace, name) -> object


class VolumeError(ValueError):
    """A volume cannot be set up (CreateContainerConfigError / FailedMount)."""


def prepare(pod: dict, pod_dir: str, lookup: Lookup) -> None:
    """Create every volume of the pod (once per pod; volumes outlive container restarts)."""
    for vol in pod["spec"].get("volumes") or []:
        raise VolumeError(f"volume {vol.get('name')!r}: volumes are not supported yet")


def container_mounts(pod: dict, container: dict, pod_dir: str) -> list[dict]:
    """Shim mount specs ({source, target, readonly}) for the container's volumeMounts."""
    return []


def refresh(pod: dict, pod_dir: str, lookup: Lookup) -> None:
    """Bring projected content (configMap, secret, downwardAPI) up to date; called every sync."""


def teardown(pod_dir: str) -> None:
    """Release what `prepare` mounted (tmpfs); the pod directory is removed afterwards."""
