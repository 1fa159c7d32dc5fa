"""Watch streams: store events after a revision become newline-delimited JSON watch events, flushed one by one.

`encode_event` is the wire format; `WatchHub` runs one store watch on a thread and fans its events out to every
HTTP watch (`Subscription`); `translate` turns a store event into the watch event a filtered watch sees (an object
leaving the selector is DELETED, one entering it ADDED, as the kube-apiserver's watch cache does).
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Callable

from kemu.store import Compacted, Event, Store

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def encode_event(kind: str, obj: dict) -> bytes:
    """One watch event, one line."""
    return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"


def bookmark(api_version: str, kind: str, revision: int, initial_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return encode_event("BOOKMARK", {"kind": kind, "apiVersion": api_version, "metadata": meta})


def expired(revision: int, oldest: str = "") -> dict:
    """The 410 Status of an ERROR event for a compacted revision."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f"too old resource version: {revision}" + (f" ({oldest})" if oldest else ""),
            "reason": "Expired", "code": 410}


def _decode(value: bytes, revision: int) -> dict:
    obj = json.loads(value)
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def translate(event: Event, matches: Callable[[dict], bool]) -> tuple[str, dict] | None:
    """(ADDED|MODIFIED|DELETED, object) for a watcher whose filter is `matches`; None when it sees nothing."""
    old = _decode(event.prev_value, event.revision) if event.prev_value else None
    if event.type == "DELETE":
        return ("DELETED", old) if old is not None and matches(old) else None
    new = _decode(event.value, event.revision)
    was, now = old is not None and matches(old), matches(new)
    if now:
        return ("MODIFIED" if was else "ADDED"), new
    return ("DELETED", new) if was else None


class Subscription:
    """One watch's events from the hub: `get()` awaits the next batch (or the exception that ends it)."""

    def __init__(self, hub: "WatchHub", prefix: str, start_revision: int) -> None:
        self.hub, self.prefix, self.start = hub, prefix, start_revision
        self.queue: asyncio.Queue[list[Event] | Exception] = asyncio.Queue()
        self.last = start_revision - 1          # the newest revision handed out (events up to it are skipped)

    def offer(self, events: list[Event]) -> None:
        mine = [e for e in events if e.revision > self.last and e.key.startswith(self.prefix)]
        if mine:
            self.last = mine[-1].revision
            self.queue.put_nowait(mine)

    async def get(self) -> list[Event] | Exception:
        return await self.queue.get()

    def close(self) -> None:
        self.hub.subscribers.discard(self)


class WatchHub:
    """One store watch on the whole registry, read on one thread and fanned out to every HTTP watch on the event
    loop (a thread and a store cursor per watch would not scale to hundreds of watchers). A watch that starts
    before the hub's position first catches up from the store's history, then continues from the hub without
    a gap or a duplicate (events are de-duplicated by revision)."""

    def __init__(self, store: Store, prefix: str = "/registry/") -> None:
        self.store, self.prefix = store, prefix
        self.loop = asyncio.get_running_loop()
        self.subscribers: set[Subscription] = set()
        self.position = store.revision()          # every event up to here has been dispatched
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="watch hub", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            watcher = self.store.watch(self.prefix, self.position + 1)
            try:
                while not self.stopped.is_set():
                    batch = watcher.next_batch(0.5)
                    if batch:
                        self.loop.call_soon_threadsafe(self._dispatch, batch)
            except Exception as exc:             # compacted under us, or the store failed: every watch ends
                self.loop.call_soon_threadsafe(self._fail, exc)
                self.stopped.wait(0.2)
                self.position = self.store.revision()
            finally:
                watcher.close()

    def _dispatch(self, batch: list[Event]) -> None:
        self.position = max(self.position, batch[-1].revision)
        for sub in list(self.subscribers):
            sub.offer(batch)

    def _fail(self, exc: Exception) -> None:
        for sub in list(self.subscribers):
            sub.queue.put_nowait(exc if isinstance(exc, Compacted) else Compacted(str(exc)))
        self.subscribers.clear()

    async def subscribe(self, prefix: str, start_revision: int) -> Subscription:
        """Events under `prefix` with revision >= start_revision, in order; raises Compacted when that history
        is gone."""
        sub = Subscription(self, prefix, start_revision)
        self.subscribers.add(sub)
        caught_up_to = self.position
        if start_revision <= caught_up_to:
            try:
                history = await asyncio.to_thread(self._history, prefix, start_revision, caught_up_to)
            except BaseException:
                sub.close()
                raise
            pending = []
            while not sub.queue.empty():           # what the hub delivered meanwhile (dispatched after history)
                item = sub.queue.get_nowait()
                if isinstance(item, list):
                    pending += item
            sub.last = start_revision - 1
            sub.offer(history)
            sub.offer(pending)
        return sub

    def _history(self, prefix: str, start: int, until: int) -> list[Event]:
        watcher = self.store.watch(prefix, start)
        events: list[Event] = []
        try:
            timeout = 0.2
            while True:
                batch = watcher.next_batch(timeout)
                if not batch:
                    return events
                events += batch
                if batch[-1].revision >= until:
                    return events
                timeout = 0.05
        finally:
            watcher.close()

    def close(self) -> None:
        self.stopped.set()
