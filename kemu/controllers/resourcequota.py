"""The ResourceQuota controller: keeps every quota's status.hard and status.used current (admission raises
used as objects are created; this loop recomputes it as objects go away or finish), as upstream's
resourcequota controller does on changes and on a full resync."""
from __future__ import annotations

import threading

from kemu.client import Client
from kemu.client.quota import COUNTED, used, used_status
from kemu.controllers.common import Controller, SharedInformers, key_of

RESYNC_SECONDS = 30.0


class ResourceQuotaController(Controller):
    KIND = "ResourceQuota"

    def __init__(self, client: Client, informers: SharedInformers, resync: float = RESYNC_SECONDS) -> None:
        super().__init__(client, informers, "resourcequota-controller")
        self.resync = resync
        for kind in ("Pod", "Service"):
            informers.get(kind).handlers.append(self._on_object)

    def _on_object(self, key: str, old: dict | None, new: dict | None) -> None:
        ns = (new or old)["metadata"].get("namespace")
        for quota in self.own.items():
            if quota["metadata"]["namespace"] == ns:
                self.queue.add(key_of(quota))

    def start(self) -> None:
        super().start()

        def loop() -> None:
            while not threading.Event().wait(self.resync):
                for quota in self.own.items():
                    self.queue.add(key_of(quota))
        threading.Thread(target=loop, name="quota-resync", daemon=True).start()

    def sync(self, key: str) -> None:
        quota = self.get_own(key)
        if quota is None:
            return
        ns = quota["metadata"]["namespace"]
        objects = []
        for kind in COUNTED:
            if kind == "ResourceQuota" or any(n.startswith(("count/", "requests.", "limits.")) or n in
                                              ("cpu", "memory") or n == COUNTED[kind] or n.startswith("services.")
                                              for n in quota["spec"].get("hard") or {}):
                objects += self.client.list(kind, ns)[0]
        status = {"hard": dict(quota["spec"].get("hard") or {}), "used": used_status(used(quota, objects))}
        self.update_status(quota, status)
