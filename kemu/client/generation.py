"""metadata.generation: 1 at creation, +1 whenever the spec changes (never for status or metadata writes), for the
kinds whose controllers report `status.observedGeneration` (kubectl rollout status and wait compare the two)."""
from __future__ import annotations

from kemu.api.kinds import KINDS

GENERATION_KINDS = frozenset({"Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob"})


def set_generation(old: dict | None, new: dict) -> None:
    """Fill `new`'s metadata.generation from the stored `old` (None: being created). A custom object's bumps on
    any change but metadata (and status, when the status subresource owns it), as upstream."""
    kind = KINDS.get(new.get("kind", ""))
    custom = kind.custom if kind else None
    if new.get("kind") not in GENERATION_KINDS and custom is None:
        return
    if old is None:
        new["metadata"]["generation"] = 1
        return
    generation = (old.get("metadata") or {}).get("generation") or 1
    if custom is not None:
        ignored = {"metadata"} | ({"status"} if custom.storage.status else set())
        changed = {k: v for k, v in old.items() if k not in ignored} != \
            {k: v for k, v in new.items() if k not in ignored}
    else:
        changed = old.get("spec") != new.get("spec")
    new["metadata"]["generation"] = generation + 1 if changed else generation
