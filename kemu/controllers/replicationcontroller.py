"""ReplicationController controller (v1 `rc`): the ReplicaSet controller's loop over an equality selector, as
upstream's ReplicationManager wraps its ReplicaSetController."""
from __future__ import annotations

from kemu.controllers.replicaset import ReplicaSetController


class ReplicationControllerController(ReplicaSetController):
    KIND = "ReplicationController"

    @staticmethod
    def selector(rc: dict) -> dict:
        """`spec.selector` is a plain label map: every label must equal (matchLabels)."""
        return {"matchLabels": rc["spec"].get("selector") or {}}
