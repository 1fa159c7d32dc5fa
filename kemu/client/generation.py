"""metadata.generation: 1 at creation, +1 whenever the spec changes (never for status or metadata writes), for the
kinds whose controllers report `status.observedGeneration` (kubectl rollout status and wait compare the two)."""
from __future__ import annotations

GENERATION_KINDS = frozenset({"Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"})


def set_generation(old: dict | None, new: dict) -> None:
    """Fill `new`'s metadata.generation from the stored `old` (None: being created)."""
    if new.get("kind") not in GENERATION_KINDS:
        return
    if old is None:
        new["metadata"]["generation"] = 1
        return
    generation = (old.get("metadata") or {}).get("generation") or 1
    new["metadata"]["generation"] = generation + 1 if old.get("spec") != new.get("spec") else generation
