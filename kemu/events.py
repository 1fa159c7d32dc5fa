"""Events, recorded as kubelet's recorder does: one object per (object, reason, message), with a count."""
from __future__ import annotations

import hashlib
import logging

from kemu.client import Client, now_rfc3339

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.source = {"component": component, **({"host": host} if host else {})}

    def record(self, obj: dict, type_: str, reason: str, message: str) -> None:
        """Create the event, or bump count and lastTimestamp of the same one."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "default")
        digest = hashlib.sha1(f"{meta.get('uid')}/{reason}/{message}".encode()).hexdigest()[:10]
        name = f"{meta['name']}.{digest}"
        now = now_rfc3339()
        try:
            def bump(ev: dict) -> None:
                ev["count"] = ev.get("count", 1) + 1
                ev["lastTimestamp"] = now
            if self.client.mutate("Event", ns, name, bump) is None:
                self.client.create({
                    "apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": meta["name"],
                                       "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion", "v1")},
                    "reason": reason, "message": message, "type": type_, "count": 1,
                    "firstTimestamp": now, "lastTimestamp": now, "source": self.source,
                    "reportingComponent": self.source["component"]})
        except Exception:  # events are best effort, as upstream
            log.exception("recording event %s for %s failed", reason, meta.get("name"))
