"""Events, recorded as kubelet's recorder does: one object per (object, reason, message), with a count, written
by a background thread so that recording never slows the pod start-up path (upstream's broadcaster is async too)."""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time

from kemu.api.timeutil import now_rfc3339
from kemu.client import Client

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "") -> None:
        self.client = client
        self.source = {"component": component, **({"host": host} if host else {})}
        self._queue: queue.Queue = queue.Queue(maxsize=10000)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, obj: dict, type_: str, reason: str, message: str) -> None:
        """Queue the event (dropped, as upstream drops, if thousands are already waiting)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="events", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait((obj, type_, reason, message, now_rfc3339()))
        except queue.Full:
            log.warning("event queue full; dropped %s for %s", reason, obj["metadata"].get("name"))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event is written (for shutdown and tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                self._write(*item)
            finally:
                self._queue.task_done()

    def _write(self, obj: dict, type_: str, reason: str, message: str, now: str) -> None:
        """Create the event, or bump count and lastTimestamp of the same one."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "default")
        digest = hashlib.sha1(f"{meta.get('uid')}/{reason}/{message}".encode()).hexdigest()[:10]
        name = f"{meta['name']}.{digest}"
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
