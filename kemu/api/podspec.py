"""Facts about a pod's spec that every component reads the same way."""
from __future__ import annotations


def is_sidecar(container: dict | None) -> bool:
    """A restartable init container (restartPolicy: Always): starts before, runs beside, stops after the app."""
    return bool(container) and container.get("restartPolicy") == "Always"
